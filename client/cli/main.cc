// `lookalike`: the command-line client of lookalike-server.
//
//   lookalike collections create NAME [--model M|none] [--dim D] [--metric cosine|ip|l2]
//                                     [--index Flat] [--thumbnail-size PX]
//   lookalike collections list | describe NAME | drop NAME
//   lookalike index COLLECTION PATH... [--metadata FILE.csv|FILE.jsonl] [--concurrency N]
//                                      [--batch N]
//   lookalike search COLLECTION (--image FILE | --text "words" | --id ID | --vector "a,b,c")
//                               [--k 10] [--filter k=v]...
//   lookalike embed [--model NAME] (FILE... | --text "words"...)
//   lookalike get COLLECTION ID... | delete COLLECTION ID... | models | health
//   lookalike thumbnail COLLECTION ID -o FILE.jpg   (-o - = standard output)
//
// Every command takes --server HOST:PORT (default $LOOKALIKE_SERVER or
// localhost:50051), --timeout SECONDS, --api-key KEY (default
// $LOOKALIKE_API_KEY; docs/security.md), and for a TLS server --tls-ca FILE
// (plus --tls-cert FILE --tls-key FILE for mutual TLS; defaults
// $LOOKALIKE_TLS_CA, $LOOKALIKE_TLS_CERT, $LOOKALIKE_TLS_KEY). Errors go to stderr as
// "lookalike: CODE: message" with exit code 1; usage errors exit with 2.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "client/cli/ingest_files.h"
#include "client/cli/progress.h"
#include "client/lookalike_client.h"

namespace lookalike {
namespace {

using json = nlohmann::json;

struct CommonFlags {
  std::string server;
  double timeout_s = 60.0;
  int max_attempts = 6;
  std::string api_key;  // "" = $LOOKALIKE_API_KEY, or none
  // TLS files (ClientOptions::tls_*).
  std::string tls_ca, tls_cert, tls_key;
};

void AddCommonFlags(CLI::App* cmd, CommonFlags* flags) {
  cmd->add_option("--server", flags->server,
                  "Server address HOST:PORT (default: $LOOKALIKE_SERVER or localhost:50051)");
  cmd->add_option("--timeout", flags->timeout_s, "Deadline of each request attempt, in seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 86400.0));
  cmd->add_option("--attempts", flags->max_attempts,
                  "Attempts per request for UNAVAILABLE / RESOURCE_EXHAUSTED (with backoff)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  // The environment keeps the key out of shell history and `ps`.
  cmd->add_option("--api-key", flags->api_key,
                  "API key, sent as \"authorization: Bearer KEY\" (default: $LOOKALIKE_API_KEY)");
  cmd->add_option("--tls-ca", flags->tls_ca,
                  "TLS: PEM CA certificates that signed the server's certificate (turns TLS on)")
      ->envname("LOOKALIKE_TLS_CA");
  cmd->add_option("--tls-cert", flags->tls_cert,
                  "TLS: this client's PEM certificate, for a server that requires one")
      ->envname("LOOKALIKE_TLS_CERT");
  cmd->add_option("--tls-key", flags->tls_key, "TLS: the private key of --tls-cert (PEM)")
      ->envname("LOOKALIKE_TLS_KEY");
}

int Fail(const Status& status) {
  std::fprintf(stderr, "lookalike: %s\n", status.ToString().c_str());
  return 1;
}

StatusOr<std::unique_ptr<Client>> MakeClient(const CommonFlags& flags) {
  ClientOptions options;
  options.server = flags.server;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(flags.timeout_s * 1000.0));
  options.max_attempts = flags.max_attempts;
  options.api_key = flags.api_key;
  options.tls_ca = flags.tls_ca;
  options.tls_cert = flags.tls_cert;
  options.tls_key = flags.tls_key;
  return Client::Connect(options);
}

const char* MetricCliName(v1::Metric m) {
  switch (m) {
    case v1::METRIC_UNSPECIFIED:
    case v1::COSINE:
      return "cosine";
    case v1::INNER_PRODUCT:
      return "ip";
    case v1::L2:
      return "l2";
    default:
      return "unknown";
  }
}

json MetadataJson(const google::protobuf::Map<std::string, std::string>& m) {
  json j = json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

// Metadata as "k=v, k=v", sorted by key.
std::string MetadataText(const google::protobuf::Map<std::string, std::string>& m) {
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  std::string out;
  for (const auto& [k, v] : sorted) {
    if (!out.empty()) out += ", ";
    out += k + "=" + v;
  }
  return out;
}

json VectorJson(const v1::Vector& v) {
  return json(std::vector<float>(v.values().begin(), v.values().end()));
}

void PrintJson(const json& j) {
  std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
}

json CollectionJson(const v1::CollectionInfo& c) {
  return {{"name", c.name()},
          {"model", c.model()},
          {"dim", c.dim()},
          {"metric", MetricCliName(c.metric())},
          {"index_spec", c.index_spec()},
          {"count", c.count()},
          {"disk_bytes", c.disk_bytes()},
          {"index_bytes", c.index_bytes()},
          {"gpu_bytes", c.gpu_bytes()},
          {"index_device", c.index_device()},
          {"thumbnail_size", c.thumbnail_size()}};
}

void PrintCollection(const v1::CollectionInfo& c) {
  std::printf("name:         %s\n", c.name().c_str());
  std::printf("model:        %s\n",
              StoresVectorsOnly(c) ? "none (vectors only)" : c.model().c_str());
  std::printf("dim:          %d\n", c.dim());
  std::printf("metric:       %s\n", MetricCliName(c.metric()));
  std::printf("index:        %s on %s\n", c.index_spec().c_str(), c.index_device().c_str());
  std::printf("items:        %lld\n", static_cast<long long>(c.count()));
  std::printf("disk bytes:   %lld\n", static_cast<long long>(c.disk_bytes()));
  std::printf("index bytes:  %lld\n", static_cast<long long>(c.index_bytes()));
  if (c.gpu_bytes() > 0) std::printf("gpu bytes:    %lld\n", static_cast<long long>(c.gpu_bytes()));
  if (c.thumbnail_size() > 0) {
    std::printf("thumbnails:   up to %d px (longer side)\n", c.thumbnail_size());
  } else {
    std::printf("thumbnails:   none\n");
  }
}

// ----------------------------------------------------------- collections ---

struct CreateArgs {
  std::string name, model, metric = "cosine", index = "Flat";
  int dim = 0;
  int thumbnail_size = 0;
  bool json = false;
};

int RunCreate(const CommonFlags& flags, const CreateArgs& a) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  v1::CreateCollectionRequest request;
  request.set_name(a.name);
  request.set_model(a.model);
  request.set_dim(a.dim);
  request.set_metric(a.metric == "ip" ? v1::INNER_PRODUCT : a.metric == "l2" ? v1::L2 : v1::COSINE);
  request.set_index_spec(a.index);
  request.set_thumbnail_size(a.thumbnail_size);
  auto info = (*client)->CreateCollection(request);
  if (!info.ok()) return Fail(info.status());
  if (a.json) {
    PrintJson(CollectionJson(*info));
  } else {
    std::printf("created collection \"%s\" (model %s, dim %d, %s, %s)\n", info->name().c_str(),
                info->model().c_str(), info->dim(), MetricCliName(info->metric()),
                info->index_spec().c_str());
  }
  return 0;
}

int RunList(const CommonFlags& flags, bool as_json) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  auto list = (*client)->ListCollections();
  if (!list.ok()) return Fail(list.status());
  if (as_json) {
    json j = json::array();
    for (const auto& c : *list) j.push_back(CollectionJson(c));
    PrintJson(j);
    return 0;
  }
  if (list->empty()) {
    std::printf("(no collections)\n");
    return 0;
  }
  std::printf("%-24s %-20s %6s %-7s %-10s %10s\n", "NAME", "MODEL", "DIM", "METRIC", "INDEX",
              "ITEMS");
  for (const auto& c : *list) {
    std::printf("%-24s %-20s %6d %-7s %-10s %10lld\n", c.name().c_str(), c.model().c_str(), c.dim(),
                MetricCliName(c.metric()), c.index_spec().c_str(),
                static_cast<long long>(c.count()));
  }
  return 0;
}

int RunDescribe(const CommonFlags& flags, const std::string& name, bool as_json) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  auto info = (*client)->DescribeCollection(name);
  if (!info.ok()) return Fail(info.status());
  if (as_json) {
    PrintJson(CollectionJson(*info));
  } else {
    PrintCollection(*info);
  }
  return 0;
}

int RunDrop(const CommonFlags& flags, const std::string& name) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  Status s = (*client)->DropCollection(name);
  if (!s.ok()) return Fail(s);
  std::printf("dropped collection \"%s\"\n", name.c_str());
  return 0;
}

// ----------------------------------------------------------------- index ---

struct IndexArgs {
  std::string collection;
  std::vector<std::string> paths;
  std::string metadata;
  std::string journal;
  int concurrency = 4;
  int batch = 16;
  double batch_mib = 3.0;
  bool no_resume = false;
  bool json = false;
  bool progress = true;
};

struct Failure {
  std::string path, id;
  Status status;
};

int RunIndex(const CommonFlags& flags, const IndexArgs& a) {
  auto client_or = MakeClient(flags);
  if (!client_or.ok()) return Fail(client_or.status());
  Client* client = client_or->get();

  auto info = client->DescribeCollection(a.collection);
  if (!info.ok()) return Fail(info.status());
  if (StoresVectorsOnly(*info)) {
    return Fail(
        FailedPreconditionError("collection \"" + a.collection +
                                "\" stores raw vectors only (no model); it cannot index images"));
  }

  auto files_or = CollectImageFiles(a.paths);
  if (!files_or.ok()) return Fail(files_or.status());
  const std::vector<InputFile>& files = *files_or;

  std::optional<MetadataTable> metadata;
  if (!a.metadata.empty()) {
    auto table = MetadataTable::Load(a.metadata);
    if (!table.ok()) return Fail(table.status());
    metadata = std::move(*table);
  }

  std::string journal_path =
      a.journal.empty() ? IngestJournal::DefaultPath(client->server(), a.collection) : a.journal;
  auto journal_or = IngestJournal::Open(journal_path);
  if (!journal_or.ok()) return Fail(journal_or.status());
  IngestJournal& journal = **journal_or;
  size_t journaled = journal.Count(a.collection);
  if (journaled > 0 && (a.no_resume || info->count() == 0)) {
    // An empty collection with journal entries was dropped and re-created
    // (or its data removed): what the journal remembers is gone.
    if (!a.no_resume) {
      std::fprintf(stderr, "note: collection \"%s\" is empty; ignoring %zu journal entries in %s\n",
                   a.collection.c_str(), journaled, journal_path.c_str());
    }
    Status s = journal.Forget(a.collection);
    if (!s.ok()) return Fail(s);
  }

  std::vector<size_t> todo;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!journal.Contains(a.collection, files[i])) todo.push_back(i);
  }
  const int64_t skipped = static_cast<int64_t>(files.size() - todo.size());
  if (files.empty()) std::fprintf(stderr, "note: no image files found under the given paths\n");
  if (skipped > 0) {
    std::fprintf(stderr, "resuming: %lld of %zu files already indexed (journal %s)\n",
                 static_cast<long long>(skipped), files.size(), journal_path.c_str());
  }

  std::vector<Failure> failures;
  int64_t done = 0, ok_count = 0;
  Status journal_error;
  ProgressBar bar(static_cast<int64_t>(todo.size()), "img", isatty(STDERR_FILENO) != 0);
  auto start = std::chrono::steady_clock::now();
  std::mutex mu;  // guards the counters and failures (reader thread + upload callbacks)

  {
    BulkUploadOptions options;
    options.concurrency = a.concurrency;
    options.batch_items = a.batch;
    options.batch_bytes = static_cast<int64_t>(a.batch_mib * 1024 * 1024);
    BulkUploader uploader(
        client, a.collection, options, [&](const std::vector<BulkItemResult>& results) {
          std::vector<JournalEntry> acked;
          std::lock_guard<std::mutex> lock(mu);
          for (const auto& r : results) {
            const InputFile& f = files[static_cast<size_t>(r.tag)];
            if (r.status.ok()) {
              acked.push_back({a.collection, f.abs_path, f.size, f.mtime_ns, r.id});
              ++ok_count;
            } else {
              failures.push_back({f.path, r.id, r.status});
            }
            ++done;
          }
          Status s = journal.Append(acked);
          if (!s.ok() && journal_error.ok()) journal_error = s;
          if (a.progress) bar.Update(done, static_cast<int64_t>(failures.size()));
        });
    for (size_t i : todo) {
      const InputFile& f = files[i];
      auto bytes = ReadFileBytes(f.path);
      if (!bytes.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        failures.push_back({f.path, f.id, bytes.status()});
        ++done;
        continue;
      }
      v1::Item item;
      item.set_id(f.id);
      item.set_image(std::move(*bytes));
      if (metadata) {
        if (const MetadataMap* m = metadata->Find(f)) {
          for (const auto& [k, v] : *m) (*item.mutable_metadata())[k] = v;
        }
      }
      uploader.Add(std::move(item), static_cast<int64_t>(i));
    }
    uploader.Finish();
  }
  if (a.progress && !todo.empty()) bar.Finish(done, static_cast<int64_t>(failures.size()));
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::sort(failures.begin(), failures.end(),
            [](const Failure& x, const Failure& y) { return x.path < y.path; });
  if (a.json) {
    json fj = json::array();
    for (const auto& f : failures) {
      fj.push_back({{"path", f.path},
                    {"id", f.id},
                    {"code", StatusCodeName(f.status.code())},
                    {"message", f.status.message()}});
    }
    PrintJson({{"collection", a.collection},
               {"files", files.size()},
               {"indexed", ok_count},
               {"skipped", skipped},
               {"failed", fj},
               {"seconds", elapsed},
               {"journal", journal_path}});
  } else {
    std::printf(
        "indexed %lld, already indexed %lld, failed %zu (of %zu files) in %.1f s (%.1f img/s)\n",
        static_cast<long long>(ok_count), static_cast<long long>(skipped), failures.size(),
        files.size(), elapsed, elapsed > 0 ? static_cast<double>(ok_count) / elapsed : 0.0);
  }
  if (!failures.empty()) {
    std::fprintf(stderr, "%zu file(s) failed:\n", failures.size());
    for (const auto& f : failures)
      std::fprintf(stderr, "  %s: %s\n", f.path.c_str(), f.status.ToString().c_str());
    std::fprintf(stderr,
                 "re-run the same command to retry them (acknowledged files are skipped)\n");
  }
  if (!journal_error.ok()) return Fail(journal_error.WithPrefix("journal"));
  return failures.empty() ? 0 : 1;
}

// ---------------------------------------------------------------- search ---

struct SearchArgs {
  std::string collection, image, text, id, vector;
  int k = 10;
  std::vector<std::string> filters;
  std::optional<float> min_score;
  bool json = false;
  bool vectors = false;
};

int RunSearch(const CommonFlags& flags, const SearchArgs& a) {
  int given = !a.image.empty() + !a.text.empty() + !a.id.empty() + !a.vector.empty();
  if (given != 1)
    return Fail(InvalidArgumentError("give exactly one of --image, --text, --id or --vector"));
  v1::SearchRequest request;
  request.set_collection(a.collection);
  request.set_k(a.k);
  request.set_include_metadata(true);
  request.set_include_vectors(a.vectors);
  if (a.min_score) request.set_min_score(*a.min_score);
  v1::Query* q = request.add_queries();
  if (!a.image.empty()) {
    auto bytes = ReadFileBytes(a.image);
    if (!bytes.ok()) return Fail(bytes.status());
    q->set_image(std::move(*bytes));
  } else if (!a.text.empty()) {
    q->set_text(a.text);
  } else if (!a.id.empty()) {
    q->set_id(a.id);
  } else {
    auto v = ParseVector(a.vector);
    if (!v.ok()) return Fail(v.status());
    for (float x : *v) q->mutable_vector()->add_values(x);
  }
  auto filters = ParseFilters(a.filters);
  if (!filters.ok()) return Fail(filters.status());
  for (const auto& [key, values] : *filters) {
    v1::FieldFilter* f = request.add_filter();
    f->set_key(key);
    for (const auto& v : values) f->add_values(v);
  }
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  auto response = (*client)->Search(request);
  if (!response.ok()) return Fail(response.status());
  if (response->results_size() != 1) {
    return Fail(InternalError("server returned " + std::to_string(response->results_size()) +
                              " result lists for 1 query"));
  }
  const auto& hits = response->results(0).hits();
  if (a.json) {
    json j = json::array();
    for (const auto& h : hits) {
      json hj = {{"id", h.id()}, {"score", h.score()}, {"metadata", MetadataJson(h.metadata())}};
      if (a.vectors) hj["vector"] = VectorJson(h.vector());
      j.push_back(std::move(hj));
    }
    PrintJson({{"hits", j}});
    return 0;
  }
  if (hits.empty()) {
    std::printf("(no results)\n");
    return 0;
  }
  size_t id_width = 4;
  for (const auto& h : hits) id_width = std::max(id_width, std::min<size_t>(h.id().size(), 60));
  std::printf("%4s  %8s  %-*s  %s\n", "RANK", "SCORE", static_cast<int>(id_width), "ID",
              "METADATA");
  int rank = 0;
  for (const auto& h : hits) {
    std::printf("%4d  %8.4f  %-*s  %s\n", ++rank, h.score(), static_cast<int>(id_width),
                h.id().c_str(), MetadataText(h.metadata()).c_str());
  }
  return 0;
}

// ------------------------------------------------------------ embed etc. ---

int RunEmbed(const CommonFlags& flags, const std::string& model,
             const std::vector<std::string>& files, const std::vector<std::string>& texts,
             bool as_json) {
  if (files.empty() == texts.empty()) {
    return Fail(InvalidArgumentError("give image FILEs or --text, not both"));
  }
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  // What each vector is printed with: the file, or the text.
  const bool by_text = !texts.empty();
  const std::vector<std::string>& inputs = by_text ? texts : files;
  json out = json::array();
  constexpr size_t kPerRequest = 16;
  for (size_t start = 0; start < inputs.size(); start += kPerRequest) {
    v1::EmbedRequest request;
    request.set_model(model);
    size_t end = std::min(inputs.size(), start + kPerRequest);
    for (size_t i = start; i < end; ++i) {
      if (by_text) {
        request.add_texts(inputs[i]);
        continue;
      }
      auto bytes = ReadFileBytes(inputs[i]);
      if (!bytes.ok()) return Fail(bytes.status());
      request.add_images(std::move(*bytes));
    }
    auto response = (*client)->Embed(request);
    if (!response.ok()) {
      const std::string what = by_text ? "\"" + inputs[start] + "\"" : inputs[start];
      return Fail(
          response.status().WithPrefix("embedding " + what + (end - start > 1 ? " ..." : "")));
    }
    if (response->vectors_size() != static_cast<int>(end - start)) {
      return Fail(InternalError("server returned " + std::to_string(response->vectors_size()) +
                                " vectors for " + std::to_string(end - start) +
                                (by_text ? " texts" : " images")));
    }
    for (size_t i = start; i < end; ++i) {
      const v1::Vector& v = response->vectors(static_cast<int>(i - start));
      if (as_json) {
        out.push_back({{by_text ? "text" : "file", inputs[i]},
                       {"model", response->model().name()},
                       {"vector", VectorJson(v)}});
        continue;
      }
      double norm = 0;
      for (float x : v.values()) norm += static_cast<double>(x) * x;
      const std::string label = by_text ? "\"" + inputs[i] + "\"" : inputs[i];
      std::printf("%s  model=%s dim=%d norm=%.4f  [", label.c_str(),
                  response->model().name().c_str(), v.values_size(), std::sqrt(norm));
      for (int j = 0; j < std::min(v.values_size(), 6); ++j)
        std::printf("%s%.5f", j ? ", " : "", v.values(j));
      std::printf("%s]\n", v.values_size() > 6 ? ", ..." : "");
    }
  }
  if (as_json) PrintJson(out);
  return 0;
}

int RunGet(const CommonFlags& flags, const std::string& collection,
           const std::vector<std::string>& ids, bool as_json, bool vectors) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  v1::GetRequest request;
  request.set_collection(collection);
  for (const auto& id : ids) request.add_ids(id);
  request.set_include_vectors(vectors || as_json);
  auto response = (*client)->Get(request);
  if (!response.ok()) return Fail(response.status());
  if (as_json) {
    json items = json::array();
    for (const auto& item : response->items()) {
      json ij = {{"id", item.id()}, {"metadata", MetadataJson(item.metadata())}};
      if (item.has_vector()) ij["vector"] = VectorJson(item.vector());
      items.push_back(std::move(ij));
    }
    PrintJson({{"items", items},
               {"missing_ids", std::vector<std::string>(response->missing_ids().begin(),
                                                        response->missing_ids().end())}});
  } else {
    for (const auto& item : response->items()) {
      std::printf("%s", item.id().c_str());
      if (item.has_vector()) std::printf("  dim=%d", item.vector().values_size());
      std::string md = MetadataText(item.metadata());
      if (!md.empty()) std::printf("  %s", md.c_str());
      std::printf("\n");
    }
  }
  if (response->missing_ids_size() > 0) {
    std::string list;
    for (const auto& id : response->missing_ids())
      list += (list.empty() ? "" : ", ") + ("\"" + id + "\"");
    return Fail(NotFoundError(std::to_string(response->missing_ids_size()) +
                              " id(s) not in collection \"" + collection + "\": " + list));
  }
  return 0;
}

int RunDelete(const CommonFlags& flags, const std::string& collection,
              const std::vector<std::string>& ids) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  auto deleted = (*client)->Delete(collection, ids);
  if (!deleted.ok()) return Fail(deleted.status());
  std::printf("deleted %lld of %zu id(s) from \"%s\"\n", static_cast<long long>(*deleted),
              ids.size(), collection.c_str());
  return 0;
}

// Writes the item's thumbnail to `out` ("-" = standard output).
int RunThumbnail(const CommonFlags& flags, const std::string& collection, const std::string& id,
                 const std::string& out) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  auto thumbnail = (*client)->GetThumbnail(collection, id);
  if (!thumbnail.ok()) return Fail(thumbnail.status());
  const std::string& jpeg = thumbnail->jpeg();
  if (out == "-") {
    if (std::fwrite(jpeg.data(), 1, jpeg.size(), stdout) != jpeg.size() ||
        std::fflush(stdout) != 0) {
      return Fail(UnavailableError(std::string("-o -: cannot write to standard output: ") +
                                   std::strerror(errno)));
    }
    return 0;
  }
  {
    std::ofstream file(out, std::ios::binary | std::ios::trunc);
    if (file) file.write(jpeg.data(), static_cast<std::streamsize>(jpeg.size()));
    if (file) file.close();
    if (!file) {
      const std::string why = std::strerror(errno);
      std::remove(out.c_str());
      return Fail(InvalidArgumentError("-o: cannot write \"" + out + "\": " + why));
    }
  }
  std::printf("wrote %zu bytes to %s (ETag %s)\n", jpeg.size(), out.c_str(),
              thumbnail->etag().c_str());
  return 0;
}

int RunModels(const CommonFlags& flags, bool as_json) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  auto models = (*client)->ListModels();
  if (!models.ok()) return Fail(models.status());
  if (as_json) {
    json j = json::array();
    for (const auto& m : *models) {
      j.push_back({{"name", m.name()},
                   {"preset", m.preset()},
                   {"dim", m.dim()},
                   {"l2_normalized", m.l2_normalized()},
                   {"input_height", m.input_height()},
                   {"input_width", m.input_width()},
                   {"backend", m.backend()},
                   {"has_text", m.has_text()}});
    }
    PrintJson(j);
    return 0;
  }
  std::printf("%-24s %-20s %6s %-9s %-8s %s\n", "NAME", "PRESET", "DIM", "INPUT", "BACKEND",
              "TEXT");
  for (const auto& m : *models) {
    std::string input = std::to_string(m.input_height()) + "x" + std::to_string(m.input_width());
    std::printf("%-24s %-20s %6d %-9s %-8s %s\n", m.name().c_str(), m.preset().c_str(), m.dim(),
                input.c_str(), m.backend().c_str(), m.has_text() ? "yes" : "no");
  }
  return 0;
}

// Exit 0 when the server reports SERVING; with --wait, polls until then.
int RunHealth(const CommonFlags& flags, double wait_s) {
  auto client = MakeClient(flags);
  if (!client.ok()) return Fail(client.status());
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000));
  for (;;) {
    auto serving = (*client)->CheckHealth();
    if (serving.ok() && *serving) {
      std::printf("SERVING (%s)\n", (*client)->server().c_str());
      return 0;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (!serving.ok()) return Fail(serving.status());
      return Fail(UnavailableError("server at " + (*client)->server() + " is not SERVING"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int Main(int argc, char** argv) {
  CLI::App app{
      "lookalike: command-line client of lookalike-server (image embeddings and similarity search)",
      "lookalike"};
  app.require_subcommand(1);
  CommonFlags flags;
  std::function<int()> run;

  // collections
  CLI::App* collections =
      app.add_subcommand("collections", "Create, list, describe and drop collections");
  collections->require_subcommand(1);
  CreateArgs create;
  CLI::App* c_create = collections->add_subcommand("create", "Create a collection");
  c_create->add_option("NAME", create.name, "Collection name, [A-Za-z0-9_-]{1,64}")->required();
  c_create->add_option("--model", create.model,
                       "Model that embeds its images (default: the server's default; \"none\" = "
                       "vectors only, needs --dim)");
  c_create->add_option("--dim", create.dim, "Vector dimension (default: the model's)")
      ->check(CLI::NonNegativeNumber);
  c_create->add_option("--metric", create.metric, "Similarity: cosine, ip (inner product) or l2")
      ->capture_default_str()
      ->check(CLI::IsMember({"cosine", "ip", "l2"}));
  c_create->add_option("--index", create.index, "FAISS index_factory string")
      ->capture_default_str();
  c_create
      ->add_option("--thumbnail-size", create.thumbnail_size,
                   "Keep a JPEG thumbnail of each image item, this many pixels on its longer "
                   "side (16..1024; served at /collections/NAME/items/ID/thumbnail on the "
                   "HTTP port); 0 = none")
      ->capture_default_str();
  c_create->add_flag("--json", create.json, "Print the collection as JSON");
  AddCommonFlags(c_create, &flags);
  c_create->callback([&] { run = [&] { return RunCreate(flags, create); }; });

  bool list_json = false;
  CLI::App* c_list = collections->add_subcommand("list", "List collections");
  c_list->add_flag("--json", list_json, "Print JSON");
  AddCommonFlags(c_list, &flags);
  c_list->callback([&] { run = [&] { return RunList(flags, list_json); }; });

  std::string describe_name;
  bool describe_json = false;
  CLI::App* c_describe =
      collections->add_subcommand("describe", "Show a collection's settings and size");
  c_describe->add_option("NAME", describe_name, "Collection name")->required();
  c_describe->add_flag("--json", describe_json, "Print JSON");
  AddCommonFlags(c_describe, &flags);
  c_describe->callback(
      [&] { run = [&] { return RunDescribe(flags, describe_name, describe_json); }; });

  std::string drop_name;
  CLI::App* c_drop = collections->add_subcommand("drop", "Delete a collection and all its items");
  c_drop->add_option("NAME", drop_name, "Collection name")->required();
  AddCommonFlags(c_drop, &flags);
  c_drop->callback([&] { run = [&] { return RunDrop(flags, drop_name); }; });

  // index
  IndexArgs index;
  CLI::App* c_index =
      app.add_subcommand("index",
                         "Upload image files (directories are walked for "
                         "jpg/jpeg/png/webp/bmp/tif/tiff/gif) into a collection. "
                         "Item id = path relative to the given directory. Acknowledged files are "
                         "recorded in a journal, so "
                         "re-running the command resumes and sends only what is missing.");
  c_index->add_option("COLLECTION", index.collection, "Collection name")->required();
  c_index->add_option("PATH", index.paths, "Image files or directories")->required();
  c_index->add_option("--metadata", index.metadata,
                      "CSV (header row) or JSONL file mapping id or path to metadata key/values");
  c_index->add_option("--concurrency", index.concurrency, "Requests in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  c_index->add_option("--batch", index.batch, "Images per request")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  c_index->add_option("--batch-mib", index.batch_mib, "Approximate payload per request, MiB")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1024.0));
  c_index->add_option(
      "--journal", index.journal,
      "Journal file (default ~/.cache/lookalike/journal/<server>__<collection>.jsonl)");
  c_index->add_flag("--no-resume", index.no_resume,
                    "Forget the journal of this collection and send everything");
  c_index->add_flag("--json", index.json, "Print the summary (and failures) as JSON");
  bool no_progress = false;
  c_index->add_flag("--no-progress", no_progress, "Do not draw a progress bar");
  AddCommonFlags(c_index, &flags);
  c_index->callback([&] {
    index.progress = !no_progress;
    run = [&] { return RunIndex(flags, index); };
  });

  // search
  SearchArgs search;
  CLI::App* c_search = app.add_subcommand(
      "search", "Find the items most similar to an image, words, an item or a vector");
  c_search->add_option("COLLECTION", search.collection, "Collection name")->required();
  auto* o_image = c_search->add_option("--image", search.image, "Query image file");
  auto* o_text = c_search->add_option(
      "--text", search.text, "Query words (the collection's model needs a text tower: CLIP)");
  auto* o_id = c_search->add_option("--id", search.id,
                                    "Query by an item of the collection (excluded from results)");
  auto* o_vector = c_search->add_option("--vector", search.vector, "Query vector \"a,b,c,...\"");
  o_image->excludes(o_text)->excludes(o_id)->excludes(o_vector);
  o_text->excludes(o_id)->excludes(o_vector);
  o_id->excludes(o_vector);
  c_search->add_option("--k", search.k, "Number of results")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  c_search->add_option(
      "--filter", search.filters,
      "Metadata condition key=value (repeat; the same key twice means either value)");
  c_search->add_option("--min-score", search.min_score, "Drop hits scoring below this");
  c_search->add_flag("--json", search.json, "Print JSON");
  c_search->add_flag("--vectors", search.vectors, "Also return each hit's vector (with --json)");
  AddCommonFlags(c_search, &flags);
  c_search->callback([&] { run = [&] { return RunSearch(flags, search); }; });

  // embed
  std::string embed_model;
  std::vector<std::string> embed_files;
  std::vector<std::string> embed_texts;
  bool embed_json = false;
  CLI::App* c_embed = app.add_subcommand(
      "embed", "Print the embedding vectors of image files or texts (stores nothing)");
  c_embed->add_option("FILE", embed_files, "Image files");
  c_embed->add_option("--text", embed_texts, "A text to embed (repeatable; CLIP models)");
  c_embed->add_option("--model", embed_model, "Model name (default: the server's default)");
  c_embed->add_flag("--json", embed_json, "Print full vectors as JSON");
  AddCommonFlags(c_embed, &flags);
  c_embed->callback([&] {
    run = [&] { return RunEmbed(flags, embed_model, embed_files, embed_texts, embed_json); };
  });

  // get
  std::string get_collection;
  std::vector<std::string> get_ids;
  bool get_json = false, get_vectors = false;
  CLI::App* c_get = app.add_subcommand("get", "Show items by id (exit 1 if any is missing)");
  c_get->add_option("COLLECTION", get_collection, "Collection name")->required();
  c_get->add_option("ID", get_ids, "Item ids")->required();
  c_get->add_flag("--json", get_json, "Print JSON (includes vectors)");
  c_get->add_flag("--vectors", get_vectors, "Fetch vectors (prints their dimension)");
  AddCommonFlags(c_get, &flags);
  c_get->callback(
      [&] { run = [&] { return RunGet(flags, get_collection, get_ids, get_json, get_vectors); }; });

  // delete
  std::string delete_collection;
  std::vector<std::string> delete_ids;
  CLI::App* c_delete = app.add_subcommand("delete", "Delete items by id");
  c_delete->add_option("COLLECTION", delete_collection, "Collection name")->required();
  c_delete->add_option("ID", delete_ids, "Item ids")->required();
  AddCommonFlags(c_delete, &flags);
  c_delete->callback(
      [&] { run = [&] { return RunDelete(flags, delete_collection, delete_ids); }; });

  // thumbnail
  std::string thumbnail_collection, thumbnail_id, thumbnail_out;
  CLI::App* c_thumbnail = app.add_subcommand(
      "thumbnail",
      "Save the JPEG thumbnail the server keeps of an item (collections created with "
      "--thumbnail-size)");
  c_thumbnail->add_option("COLLECTION", thumbnail_collection, "Collection name")->required();
  c_thumbnail->add_option("ID", thumbnail_id, "Item id")->required();
  c_thumbnail->add_option("-o,--output", thumbnail_out, "JPEG file to write (- = standard output)")
      ->required();
  AddCommonFlags(c_thumbnail, &flags);
  c_thumbnail->callback([&] {
    run = [&] { return RunThumbnail(flags, thumbnail_collection, thumbnail_id, thumbnail_out); };
  });

  // models
  bool models_json = false;
  CLI::App* c_models = app.add_subcommand("models", "List the models the server serves");
  c_models->add_flag("--json", models_json, "Print JSON");
  AddCommonFlags(c_models, &flags);
  c_models->callback([&] { run = [&] { return RunModels(flags, models_json); }; });

  // health
  double health_wait = 0;
  CLI::App* c_health =
      app.add_subcommand("health", "Check that the server is SERVING (grpc.health.v1)");
  c_health->add_option("--wait", health_wait, "Keep trying for up to this many seconds")
      ->check(CLI::NonNegativeNumber);
  AddCommonFlags(c_health, &flags);
  c_health->callback([&] { run = [&] { return RunHealth(flags, health_wait); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (!run) return 2;
  return run();
}

}  // namespace
}  // namespace lookalike

int main(int argc, char** argv) { return lookalike::Main(argc, argv); }
