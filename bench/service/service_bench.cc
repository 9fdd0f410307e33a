// Load generator for lookalike-server over gRPC: Upsert and Search throughput
// and latency (p50/p99) with vector payloads and with image payloads, each
// phase bounded by a request count and a time limit.
//
//   lookalike-service-bench --server 127.0.0.1:50051 --images DIR
//       [--concurrency 4] [--requests 400] [--seconds 20] [--batch 16] [--k 10]
//
// Phases (each on a fresh collection, dropped afterwards unless --keep):
//   upsert_vectors  Upsert of --batch random unit vectors per request
//   search_vectors  Search with one random vector per request
//   upsert_images   Upsert of --image-batch encoded images per request (the server embeds them)
//   search_images   Search with one encoded image per request
// With --http HOST:PORT (the server's http_listen) each search phase runs a
// second time over HTTP/JSON (search_vectors_http, search_images_http): the
// same requests, written and read in protobuf's JSON mapping, one keep-alive
// connection per worker. The client's JSON coding is the server's
// (server/proto_json.h), or protobuf's util with --http-json protobuf.
// CPU time per request, client and server apart (with --server-pids P,Q: the server processes, from
// /proc), is reported beside the wall-clock figures: on a shared machine it moves far less with the
// load than throughput does. With --server A,B (replicas sharing one PostgreSQL storage)
// collections are created and filled through A and the search phases wait until every server holds
// the preloaded items, then worker w sends to server w mod N.
// With --http, each phase also reports the server's embedding batches (engine calls and their
// mean images, from lookalike_embed_batch_size of its /metrics). Before the image search phases
// the engine is warmed with one Embed of n photos for every n up to --concurrency (--no-warmup:
// not), so that neither phase of a pair pays for the CPU engine's per-batch-size set-up.
// --slices N runs each gRPC / HTTP search pair as N alternating slices, so that both transports
// see the same load on a shared machine.
// --dim N makes the vector phases use a vectors-only collection of dimension N.
// Latency is per request, measured by the client from send to reply
// (includes loopback gRPC or HTTP, JSON or protobuf coding, queueing, decode
// and embedding), over the requests the server admitted; RESOURCE_EXHAUSTED answers (overload, see
// --max-attempts 1 and bench/service/overload.sh) are counted as "shed".
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <CLI/CLI.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "client/cli/ingest_files.h"
#include "client/lookalike_client.h"
#include "server/proto_json.h"

namespace lookalike {
namespace {

struct Config {
  std::string server;
  std::string images_dir;
  std::string model;
  int concurrency = 4;
  int requests = 400;     // per phase, upper bound
  double seconds = 20.0;  // per phase, upper bound
  int batch = 64;         // vectors per Upsert
  int image_batch = 8;    // images per Upsert
  int k = 10;
  int preload = 5000;  // vectors stored before search_vectors
  std::string phases = "upsert_vectors,search_vectors,upsert_images,search_images";
  std::string json_out;
  std::string http;                     // HOST:PORT of the HTTP/JSON API; "" = gRPC only
  std::string http_json = "lookalike";  // the client's JSON coding: "lookalike" or "protobuf"
  bool keep = false;
  int max_attempts = 6;     // 1: a shed request (RESOURCE_EXHAUSTED) is counted, not retried
  bool http_first = false;  // run each HTTP search phase before its gRPC twin
  std::string server_pids;  // comma-separated: report their CPU time per request
  int dim = 0;              // > 0: vector phases on a vectors-only collection of this dim
  bool no_warmup = false;   // skip the engine warm-up before the image search phases
  int slices = 1;           // > 1: each search pair alternates gRPC and HTTP in this many slices
};

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

// CPU seconds (user + system) used so far by the processes `pids`.
double ProcessCpuSeconds(const std::vector<std::string>& pids) {
  double total = 0;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (const auto& pid : pids) {
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t end = line.rfind(')');  // the command name may hold spaces
    if (end == std::string::npos) continue;
    std::istringstream fields(line.substr(end + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    total += static_cast<double>(utime + stime) / tick;
  }
  return total;
}

double SelfCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// One keep-alive HTTP/1.1 connection calling the JSON API.
class HttpCaller {
 public:
  HttpCaller(const std::string& address, bool protobuf_json)
      : protobuf_json_(protobuf_json), socket_(io_) {
    const size_t colon = address.rfind(':');
    boost::asio::ip::tcp::resolver resolver(io_);
    auto endpoints = resolver.resolve(address.substr(0, colon), address.substr(colon + 1));
    boost::asio::connect(socket_, endpoints);
    host_ = address;
  }
  // POST /lookalike.v1.Lookalike/<method> with `request` as JSON; `response`
  // parsed from the reply's JSON.
  Status Call(const std::string& method, const google::protobuf::Message& request,
              google::protobuf::Message* response) {
    namespace http = boost::beast::http;
    http::request<http::string_body> req{http::verb::post, "/lookalike.v1.Lookalike/" + method, 11};
    req.set(http::field::host, host_);
    req.set(http::field::content_type, "application/json");
    const bool written =
        protobuf_json_ ? google::protobuf::util::MessageToJsonString(request, &req.body()).ok()
                       : MessageToJson(request, &req.body()).ok();
    if (!written) return InternalError("cannot write the request as JSON");
    req.prepare_payload();
    boost::beast::error_code ec;
    http::write(socket_, req, ec);
    if (ec) return UnavailableError("HTTP write: " + ec.message());
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 << 20);
    http::read(socket_, buffer_, parser, ec);
    if (ec) return UnavailableError("HTTP read: " + ec.message());
    const auto& res = parser.get();
    if (res.result_int() != 200) {
      return Status(StatusCode::kUnknown,
                    "HTTP " + std::to_string(res.result_int()) + ": " + res.body());
    }
    const bool read = protobuf_json_
                          ? google::protobuf::util::JsonStringToMessage(res.body(), response).ok()
                          : JsonToMessage(res.body(), response).ok();
    if (!read) return InternalError("cannot read the response JSON");
    return Status::Ok();
  }
  // GET `target`; the body of a 200 answer.
  StatusOr<std::string> Get(const std::string& target) {
    namespace http = boost::beast::http;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host_);
    boost::beast::error_code ec;
    http::write(socket_, req, ec);
    if (ec) return UnavailableError("HTTP write: " + ec.message());
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read(socket_, buffer_, parser, ec);
    if (ec) return UnavailableError("HTTP read: " + ec.message());
    if (parser.get().result_int() != 200) {
      return Status(StatusCode::kUnknown,
                    "GET " + target + ": HTTP " + std::to_string(parser.get().result_int()));
    }
    return parser.release().body();
  }

 private:
  const bool protobuf_json_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::string host_;
};

// The server's embedding batches so far (lookalike_embed_batch_size from
// its /metrics, every model together): how many engine calls, how many
// images in them.
struct BatchTotals {
  double batches = 0;
  double images = 0;
};

// Reads BatchTotals from the /metrics of the HTTP/JSON API at `address`.
StatusOr<BatchTotals> ScrapeBatchTotals(const std::string& address) {
  StatusOr<std::string> text = UnavailableError("cannot connect to " + address);
  try {
    text = HttpCaller(address, false).Get("/metrics");
  } catch (const std::exception& e) {
    return UnavailableError("GET /metrics from " + address + ": " + e.what());
  }
  if (!text.ok()) return text.status();
  BatchTotals totals;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    double* into = nullptr;
    if (line.rfind("lookalike_embed_batch_size_count", 0) == 0) into = &totals.batches;
    if (line.rfind("lookalike_embed_batch_size_sum", 0) == 0) into = &totals.images;
    const size_t space = line.rfind(' ');
    if (into != nullptr && space != std::string::npos) *into += std::atof(line.c_str() + space + 1);
  }
  return totals;
}

struct PhaseResult {
  std::string name;
  int64_t requests = 0;
  int64_t items = 0;  // vectors or images carried
  int64_t errors = 0;
  int64_t shed = 0;  // RESOURCE_EXHAUSTED answers (overload), not counted in errors
  double seconds = 0;
  double p50_ms = 0, p99_ms = 0, mean_ms = 0;
  std::string first_error;
  int64_t collection_items = -1;  // items in the collection searched (search phases)
  double client_cpu_ms = 0;       // per admitted request
  double server_cpu_ms = -1;      // per admitted request; -1 without --server-pids
  // Engine calls during the phase and their mean images (lookalike_embed_batch_size
  // of the server's /metrics; -1 without --http or when none ran).
  int64_t batches = -1;
  double mean_batch = -1;
  std::vector<double> latencies_ms;  // each admitted request's
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double rank = p / 100.0 * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(rank)), hi = static_cast<size_t>(std::ceil(rank));
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

// p50, p99 and mean from r->latencies_ms.
void SetLatencyFigures(PhaseResult* r) {
  r->p50_ms = Percentile(r->latencies_ms, 50);
  r->p99_ms = Percentile(r->latencies_ms, 99);
  double sum = 0;
  for (double x : r->latencies_ms) sum += x;
  r->mean_ms = r->latencies_ms.empty() ? 0 : sum / static_cast<double>(r->latencies_ms.size());
}

// Adds the slice `part` of a phase to `total` (per-request figures weighted
// by requests, batch means by batches).
void AddSlice(const PhaseResult& part, PhaseResult* total) {
  if (total->name.empty()) {
    *total = part;
    return;
  }
  const double n0 = static_cast<double>(total->requests), n1 = static_cast<double>(part.requests);
  const double n = std::max(1.0, n0 + n1);
  total->client_cpu_ms = (total->client_cpu_ms * n0 + part.client_cpu_ms * n1) / n;
  if (total->server_cpu_ms >= 0 && part.server_cpu_ms >= 0) {
    total->server_cpu_ms = (total->server_cpu_ms * n0 + part.server_cpu_ms * n1) / n;
  }
  if (part.batches > 0) {
    const double b0 = static_cast<double>(std::max<int64_t>(0, total->batches));
    const double b1 = static_cast<double>(part.batches);
    total->mean_batch = (std::max(0.0, total->mean_batch) * b0 + part.mean_batch * b1) / (b0 + b1);
    total->batches = static_cast<int64_t>(b0 + b1);
  }
  total->requests += part.requests;
  total->items += part.items;
  total->errors += part.errors;
  total->shed += part.shed;
  total->seconds += part.seconds;
  if (total->first_error.empty()) total->first_error = part.first_error;
  total->latencies_ms.insert(total->latencies_ms.end(), part.latencies_ms.begin(),
                             part.latencies_ms.end());
  SetLatencyFigures(total);
}

// Runs `one(worker, seq)` (returns items carried or an error) from
// `concurrency` threads until `requests` calls or `seconds` elapsed.
PhaseResult RunPhase(const std::string& name, const Config& cfg,
                     const std::function<StatusOr<int>(int worker, int64_t seq)>& one) {
  PhaseResult r;
  r.name = name;
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::vector<double> latencies;
  const std::vector<std::string> pids = SplitCommas(cfg.server_pids);
  StatusOr<BatchTotals> batches0 = cfg.http.empty()
                                       ? StatusOr<BatchTotals>(UnavailableError("no --http"))
                                       : ScrapeBatchTotals(cfg.http);
  const double server_cpu0 = ProcessCpuSeconds(pids), client_cpu0 = SelfCpuSeconds();
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::milliseconds(static_cast<int64_t>(cfg.seconds * 1000));
  std::vector<std::thread> threads;
  for (int w = 0; w < cfg.concurrency; ++w) {
    threads.emplace_back([&, w] {
      std::vector<double> local;
      int64_t items = 0, errors = 0, shed = 0;
      std::string first_error;
      for (;;) {
        int64_t seq = next.fetch_add(1);
        if (seq >= cfg.requests || std::chrono::steady_clock::now() >= deadline) break;
        auto t0 = std::chrono::steady_clock::now();
        auto n = one(w, seq);
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count();
        if (n.ok()) {
          local.push_back(ms);
          items += *n;
        } else if (n.status().code() == StatusCode::kResourceExhausted) {
          ++shed;
        } else {
          ++errors;
          if (first_error.empty()) first_error = n.status().ToString();
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      latencies.insert(latencies.end(), local.begin(), local.end());
      r.items += items;
      r.errors += errors;
      r.shed += shed;
      if (r.first_error.empty()) r.first_error = first_error;
    });
  }
  for (auto& t : threads) t.join();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.requests = static_cast<int64_t>(latencies.size());
  const double per_request = r.requests > 0 ? 1000.0 / static_cast<double>(r.requests) : 0;
  r.client_cpu_ms = (SelfCpuSeconds() - client_cpu0) * per_request;
  if (!pids.empty()) r.server_cpu_ms = (ProcessCpuSeconds(pids) - server_cpu0) * per_request;
  if (batches0.ok()) {
    StatusOr<BatchTotals> batches1 = ScrapeBatchTotals(cfg.http);
    if (batches1.ok() && batches1->batches > batches0->batches) {
      r.batches = static_cast<int64_t>(batches1->batches - batches0->batches);
      r.mean_batch = (batches1->images - batches0->images) / static_cast<double>(r.batches);
    }
  }
  r.latencies_ms = std::move(latencies);
  SetLatencyFigures(&r);
  return r;
}

// RunPhase over the HTTP/JSON API: each worker keeps one connection.
PhaseResult RunHttpSearch(const std::string& name, const Config& cfg,
                          const std::function<v1::SearchRequest(int worker, int64_t seq)>& make) {
  std::vector<std::unique_ptr<HttpCaller>> callers;
  for (int w = 0; w < cfg.concurrency; ++w) {
    callers.push_back(std::make_unique<HttpCaller>(cfg.http, cfg.http_json == "protobuf"));
  }
  return RunPhase(name, cfg, [&](int w, int64_t seq) -> StatusOr<int> {
    v1::SearchResponse response;
    RETURN_IF_ERROR(callers[w]->Call("Search", make(w, seq), &response));
    return 1;
  });
}

// A search phase over gRPC and (with --http) the same over HTTP/JSON, in
// the order --http-first says; with --slices N, in N alternating slices of
// 1/N of the phase each (so that both see the same load on a shared machine).
using PhaseFn = std::function<PhaseResult(const Config& slice)>;
void RunSearchPair(const Config& cfg, const PhaseFn& grpc, const PhaseFn& http,
                   int64_t collection_items, std::vector<PhaseResult>* results) {
  std::vector<const PhaseFn*> order = {&grpc};
  if (!cfg.http.empty()) order.insert(cfg.http_first ? order.begin() : order.end(), &http);
  Config slice = cfg;
  slice.seconds = cfg.seconds / cfg.slices;
  slice.requests = (cfg.requests + cfg.slices - 1) / cfg.slices;
  std::vector<PhaseResult> totals(order.size());
  for (int s = 0; s < cfg.slices; ++s) {
    for (size_t i = 0; i < order.size(); ++i) {
      // Odd slices reverse the order: neither transport always goes first.
      const size_t k = s % 2 == 0 ? i : order.size() - 1 - i;
      AddSlice((*order[k])(slice), &totals[k]);
    }
  }
  for (PhaseResult& total : totals) {
    total.collection_items = collection_items;
    results->push_back(std::move(total));
  }
}

std::vector<float> RandomUnit(std::mt19937& rng, int dim) {
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(dim));
  double norm = 0;
  for (float& x : v) {
    x = n(rng);
    norm += static_cast<double>(x) * x;
  }
  for (float& x : v) x = static_cast<float>(x / std::sqrt(norm));
  return v;
}

void SetVector(v1::Vector* out, const std::vector<float>& v) {
  out->mutable_values()->Reserve(static_cast<int>(v.size()));
  for (float x : v) out->add_values(x);
}

Status Check(const StatusOr<v1::UpsertResponse>& r) {
  if (!r.ok()) return r.status();
  if (r->failed() > 0) {
    for (const auto& s : r->statuses()) {
      if (s.code() != 0)
        return Status(static_cast<StatusCode>(s.code()), s.id() + ": " + s.message());
    }
  }
  return Status::Ok();
}

int Main(int argc, char** argv) {
  Config cfg;
  CLI::App app{"Load generator for lookalike-server: Upsert/Search throughput and latency",
               "lookalike-service-bench"};
  app.add_option("--server", cfg.server,
                 "HOST:PORT (default $LOOKALIKE_SERVER or localhost:50051); A,B: replicas on "
                 "one PostgreSQL, searches spread over them");
  app.add_option("--server-pids", cfg.server_pids,
                 "Comma-separated server process ids: report their CPU time per request");
  app.add_option("--dim", cfg.dim, "Vector phases on a vectors-only collection of this dim")
      ->check(CLI::Range(0, 65536));
  app.add_option("--images", cfg.images_dir, "Folder of images for the image phases")
      ->check(CLI::ExistingDirectory);
  app.add_option("--model", cfg.model, "Model of the collections (default: the server's default)");
  app.add_option("--concurrency", cfg.concurrency, "Requests in flight")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--requests", cfg.requests, "Requests per phase (upper bound)")
      ->capture_default_str();
  app.add_option("--seconds", cfg.seconds, "Seconds per phase (upper bound)")
      ->capture_default_str();
  app.add_option("--batch", cfg.batch, "Vectors per Upsert request")->capture_default_str();
  app.add_option("--image-batch", cfg.image_batch, "Images per Upsert request")
      ->capture_default_str();
  app.add_option("--k", cfg.k, "Results per search")->capture_default_str();
  app.add_option("--preload", cfg.preload, "Vectors stored before search_vectors")
      ->capture_default_str();
  app.add_option("--phases", cfg.phases, "Comma-separated phases to run")->capture_default_str();
  app.add_option("--json", cfg.json_out, "Also write the results to this JSON file");
  app.add_flag("--keep", cfg.keep, "Keep the bench collections");
  app.add_option("--http", cfg.http,
                 "HOST:PORT of the server's HTTP/JSON API: also run each search phase over it");
  app.add_option("--http-json", cfg.http_json,
                 "The client's JSON coding over HTTP: lookalike (server/proto_json.h) or "
                 "protobuf (protobuf's util)")
      ->capture_default_str()
      ->check(CLI::IsMember({"lookalike", "protobuf"}));
  app.add_flag("--http-first", cfg.http_first,
               "Run each HTTP/JSON search phase before its gRPC twin (to rotate the order)");
  app.add_option("--slices", cfg.slices,
                 "Run each gRPC / HTTP search pair as this many alternating slices (1: one "
                 "phase after the other)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_flag("--no-warmup", cfg.no_warmup,
               "Skip the engine warm-up (every batch size up to --concurrency) before the image "
               "search phases");
  app.add_option("--max-attempts", cfg.max_attempts,
                 "Attempts per request (1: shed requests are counted, not retried)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  std::vector<std::unique_ptr<Client>> clients;
  for (const std::string& server :
       cfg.server.empty() ? std::vector<std::string>{""} : SplitCommas(cfg.server)) {
    ClientOptions copts;
    copts.server = server;
    copts.timeout = std::chrono::seconds(120);
    copts.max_attempts = cfg.max_attempts;
    auto client_or = Client::Connect(copts);
    if (!client_or.ok()) {
      std::fprintf(stderr, "%s\n", client_or.status().ToString().c_str());
      return 1;
    }
    clients.push_back(std::move(client_or).value());
  }
  Client& client = *clients[0];  // creates, fills and drops the collections
  // The server worker w searches, and a wait until every server holds
  // `count` items of `name` (replicas follow the storage).
  auto searcher = [&](int w) -> Client& {
    return *clients[static_cast<size_t>(w) % clients.size()];
  };
  auto wait_for_replicas = [&](const std::string& name, int64_t count) {
    for (const auto& c : clients) {
      for (int tries = 0; tries < 6000; ++tries) {
        auto info = c->DescribeCollection(name);
        if (info.ok() && info->count() >= count) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  };
  auto models = client.ListModels();
  if (!models.ok() || models->empty()) {
    std::fprintf(stderr, "cannot list models: %s\n",
                 models.ok() ? "none served" : models.status().ToString().c_str());
    return 1;
  }
  v1::ModelInfo model = (*models)[0];
  for (const auto& m : *models) {
    if (m.name() == cfg.model) model = m;
  }
  const int dim = cfg.dim > 0 ? cfg.dim : model.dim();
  auto want = [&](const std::string& phase) {
    return ("," + cfg.phases + ",").find("," + phase + ",") != std::string::npos;
  };

  std::vector<std::string> images;
  if (want("upsert_images") || want("search_images")) {
    if (cfg.images_dir.empty()) {
      std::fprintf(stderr, "--images DIR is required for the image phases (or pass --phases)\n");
      return 1;
    }
    auto files = CollectImageFiles({cfg.images_dir});
    if (!files.ok() || files->empty()) {
      std::fprintf(stderr, "no images under %s\n", cfg.images_dir.c_str());
      return 1;
    }
    for (const auto& f : *files) {
      auto bytes = ReadFileBytes(f.path);
      if (bytes.ok()) images.push_back(std::move(*bytes));
    }
  }
  double mean_image_kib = 0;
  for (const auto& im : images) mean_image_kib += static_cast<double>(im.size()) / 1024.0;
  if (!images.empty()) mean_image_kib /= static_cast<double>(images.size());

  const std::string suffix = std::to_string(::getpid());
  const std::string vec_coll = "bench_vectors_" + suffix, img_coll = "bench_images_" + suffix;
  auto create = [&](const std::string& name) -> Status {
    v1::CreateCollectionRequest req;
    req.set_name(name);
    const bool vectors_only = cfg.dim > 0 && name == vec_coll;
    req.set_model(vectors_only ? "none" : model.name());
    req.set_dim(vectors_only ? cfg.dim : model.dim());
    req.set_metric(v1::COSINE);
    auto r = client.CreateCollection(req);
    return r.ok() ? Status::Ok() : r.status();
  };

  std::vector<PhaseResult> results;
  std::vector<std::mt19937> rngs;
  for (int w = 0; w < cfg.concurrency; ++w) rngs.emplace_back(1234 + w);

  if (want("upsert_vectors") || want("search_vectors")) {
    if (Status s = create(vec_coll); !s.ok()) {
      std::fprintf(stderr, "create %s: %s\n", vec_coll.c_str(), s.ToString().c_str());
      return 1;
    }
    if (want("upsert_vectors")) {
      results.push_back(RunPhase("upsert_vectors", cfg, [&](int w, int64_t seq) -> StatusOr<int> {
        v1::UpsertRequest req;
        req.set_collection(vec_coll);
        for (int i = 0; i < cfg.batch; ++i) {
          v1::Item* item = req.add_items();
          item->set_id("v" + std::to_string(seq) + "_" + std::to_string(i));
          SetVector(item->mutable_vector(), RandomUnit(rngs[w], dim));
        }
        RETURN_IF_ERROR(Check(client.Upsert(req)));
        return cfg.batch;
      }));
    }
    if (want("search_vectors")) {
      // Bring the collection to --preload items so searches scan a known size.
      auto info = client.DescribeCollection(vec_coll);
      int64_t have = info.ok() ? info->count() : 0;
      std::mt19937 rng(99);
      for (int64_t i = have; i < cfg.preload; i += 256) {
        v1::UpsertRequest req;
        req.set_collection(vec_coll);
        for (int64_t j = i; j < std::min<int64_t>(cfg.preload, i + 256); ++j) {
          v1::Item* item = req.add_items();
          item->set_id("pre" + std::to_string(j));
          SetVector(item->mutable_vector(), RandomUnit(rng, dim));
        }
        if (Status s = Check(client.Upsert(req)); !s.ok()) {
          std::fprintf(stderr, "preload: %s\n", s.ToString().c_str());
          return 1;
        }
      }
      auto searched = client.DescribeCollection(vec_coll);
      if (searched.ok()) wait_for_replicas(vec_coll, searched->count());
      auto request = [&](int w) {
        v1::SearchRequest req;
        req.set_collection(vec_coll);
        req.set_k(cfg.k);
        SetVector(req.add_queries()->mutable_vector(), RandomUnit(rngs[w], dim));
        return req;
      };
      RunSearchPair(
          cfg,
          [&](const Config& slice) {
            return RunPhase("search_vectors", slice, [&](int w, int64_t) -> StatusOr<int> {
              auto r = searcher(w).Search(request(w));
              if (!r.ok()) return r.status();
              return 1;
            });
          },
          [&](const Config& slice) {
            return RunHttpSearch("search_vectors_http", slice,
                                 [&](int w, int64_t) { return request(w); });
          },
          searched.ok() ? searched->count() : -1, &results);
    }
    if (!cfg.keep) (void)client.DropCollection(vec_coll);
  }

  if (!images.empty()) {
    if (Status s = create(img_coll); !s.ok()) {
      std::fprintf(stderr, "create %s: %s\n", img_coll.c_str(), s.ToString().c_str());
      return 1;
    }
    if (want("upsert_images")) {
      results.push_back(RunPhase("upsert_images", cfg, [&](int, int64_t seq) -> StatusOr<int> {
        v1::UpsertRequest req;
        req.set_collection(img_coll);
        for (int i = 0; i < cfg.image_batch; ++i) {
          size_t idx = static_cast<size_t>(seq * cfg.image_batch + i) % images.size();
          v1::Item* item = req.add_items();
          item->set_id("i" + std::to_string(seq) + "_" + std::to_string(i));
          item->set_image(images[idx]);
        }
        RETURN_IF_ERROR(Check(client.Upsert(req)));
        return cfg.image_batch;
      }));
    }
    if (want("search_images")) {
      auto searched = client.DescribeCollection(img_coll);
      if (searched.ok()) wait_for_replicas(img_coll, searched->count());
      if (!cfg.no_warmup) {
        // The CPU engine builds its primitives per batch size the first time it
        // sees one (oneDNN JIT, about 0.1 s each): without this, whichever
        // transport runs first pays for the batch sizes its phase produces.
        const auto t0 = std::chrono::steady_clock::now();
        for (const auto& c : clients) {
          for (int n = 1; n <= cfg.concurrency; ++n) {
            v1::EmbedRequest req;
            req.set_model(model.name());
            for (int i = 0; i < n; ++i) {
              req.add_images(images[static_cast<size_t>(i) % images.size()]);
            }
            auto r = c->Embed(req);
            if (!r.ok()) {
              std::fprintf(stderr, "warm-up: %s\n", r.status().ToString().c_str());
              return 1;
            }
          }
        }
        std::printf("engine warm-up: batch sizes 1..%d in %.2f s\n", cfg.concurrency,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
      auto request = [&](int64_t seq) {
        v1::SearchRequest req;
        req.set_collection(img_coll);
        req.set_k(cfg.k);
        req.add_queries()->set_image(images[static_cast<size_t>(seq) % images.size()]);
        return req;
      };
      RunSearchPair(
          cfg,
          [&](const Config& slice) {
            return RunPhase("search_images", slice, [&](int w, int64_t seq) -> StatusOr<int> {
              auto r = searcher(w).Search(request(seq));
              if (!r.ok()) return r.status();
              return 1;
            });
          },
          [&](const Config& slice) {
            return RunHttpSearch("search_images_http", slice,
                                 [&](int, int64_t seq) { return request(seq); });
          },
          searched.ok() ? searched->count() : -1, &results);
    }
    if (!cfg.keep) (void)client.DropCollection(img_coll);
  }

  std::printf(
      "server %s, model %s (dim %d, backend %s), concurrency %d, vector batch %d, image batch %d, "
      "k %d, %zu images (mean %.1f KiB)\n",
      client.server().c_str(), model.name().c_str(), dim, model.backend().c_str(), cfg.concurrency,
      cfg.batch, cfg.image_batch, cfg.k, images.size(), mean_image_kib);
  std::printf("%-19s %9s %9s %12s %12s %10s %10s %10s %7s %7s %11s %11s\n", "phase", "requests",
              "seconds", "requests/s", "items/s", "p50 ms", "p99 ms", "mean ms", "shed", "errors",
              "cli cpu ms", "srv cpu ms");
  nlohmann::json j = nlohmann::json::array();
  int rc = 0;
  for (const auto& r : results) {
    std::printf("%-19s %9lld %9.2f %12.1f %12.1f %10.2f %10.2f %10.2f %7lld %7lld %11.3f %11.3f\n",
                r.name.c_str(), static_cast<long long>(r.requests), r.seconds,
                static_cast<double>(r.requests) / r.seconds,
                static_cast<double>(r.items) / r.seconds, r.p50_ms, r.p99_ms, r.mean_ms,
                static_cast<long long>(r.shed), static_cast<long long>(r.errors), r.client_cpu_ms,
                r.server_cpu_ms);
    if (r.collection_items >= 0) {
      std::printf("  (searched a Flat index of %lld items)\n",
                  static_cast<long long>(r.collection_items));
    }
    if (r.requests > 0) {
      std::printf("  CPU per request: client %.3f ms", r.client_cpu_ms);
      if (r.server_cpu_ms >= 0) std::printf(", servers %.3f ms", r.server_cpu_ms);
      std::printf("\n");
    }
    if (r.batches > 0) {
      std::printf("  embedding batches: %lld, mean %.2f images\n",
                  static_cast<long long>(r.batches), r.mean_batch);
    }
    if (!r.first_error.empty()) {
      std::printf("  first error: %s\n", r.first_error.c_str());
      rc = 1;
    }
    j.push_back({{"phase", r.name},
                 {"requests", r.requests},
                 {"items", r.items},
                 {"seconds", r.seconds},
                 {"p50_ms", r.p50_ms},
                 {"p99_ms", r.p99_ms},
                 {"mean_ms", r.mean_ms},
                 {"errors", r.errors},
                 {"shed", r.shed},
                 {"collection_items", r.collection_items},
                 {"client_cpu_ms", r.client_cpu_ms},
                 {"server_cpu_ms", r.server_cpu_ms},
                 {"batches", r.batches},
                 {"mean_batch", r.mean_batch}});
  }
  if (!cfg.json_out.empty()) {
    std::FILE* f = std::fopen(cfg.json_out.c_str(), "w");
    if (f) {
      std::fprintf(f, "%s\n", j.dump(2).c_str());
      std::fclose(f);
    }
  }
  return rc;
}

}  // namespace
}  // namespace lookalike

int main(int argc, char** argv) { return lookalike::Main(argc, argv); }
