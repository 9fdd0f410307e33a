// Crash loop: concurrent bulk ingest (raw vectors and images), deletes and
// searches against the real lookalike-server, which is killed with SIGKILL at
// a random moment of every cycle and restarted. After each restart it checks:
//   * every acknowledged write is present, with the vector that was sent
//     (raw vectors) and exactly once (the collection's count equals the
//     number of present ids, and no search returns an id twice);
//   * every acknowledged delete is gone;
//   * self-search (the stored vector as query) finds each item first.
// An acknowledgement is recorded only after the server answered OK for that
// item. An operation the kill interrupted (no answer) may or may not have
// landed: the id is "in doubt" between its old and new states until the next
// check resolves it to whichever of them the server shows; anything else is a
// violation.
//
//   lookalike_crashloop --cycles N [--seed S] [--min-ms A] [--max-ms B] [--keep]
// Environment as for the integration suite (LOOKALIKE_SERVER_BIN,
// LOOKALIKE_WEIGHTS, LOOKALIKE_PHOTOS, ...; tools/crashloop.sh sets them).
// Prints one line per cycle and a summary; exit 1 on the first violation.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/lookalike_client.h"
#include "tests/integration/server_harness.h"

namespace lookalike::testing {
namespace {

constexpr int kDim = 16;
constexpr char kVectors[] = "crash_vectors";
constexpr char kImages[] = "crash_images";

// What the checker knows about one id. `present` candidates: the states the
// server may show. Each candidate is nullopt (absent) or the vector sent (an
// empty vector for image items: presence is what is checked).
using Version = std::optional<std::vector<float>>;
struct IdState {
  std::vector<Version> candidates = {std::nullopt};  // starts absent, certainly
};

struct Counters {
  std::atomic<int64_t> acked_writes{0};
  std::atomic<int64_t> acked_deletes{0};
  std::atomic<int64_t> in_doubt{0};
  std::atomic<int64_t> searches{0};
};

// The ids one worker owns: no other thread writes them, so its own order of
// operations is the order the server saw.
class Partition {
 public:
  Partition(std::string prefix, int n) {
    for (int i = 0; i < n; ++i) ids_.push_back(prefix + std::to_string(i));
    states_.resize(n);
  }
  const std::string& id(int i) const { return ids_[i]; }
  int size() const { return static_cast<int>(ids_.size()); }
  IdState& state(int i) { return states_[i]; }

 private:
  std::vector<std::string> ids_;
  std::vector<IdState> states_;
};

std::vector<std::string> ListPhotos(const std::string& root, size_t max) {
  std::vector<std::string> out;
  std::vector<std::string> dirs = {root};
  while (!dirs.empty() && out.size() < 4 * max) {
    std::string dir = dirs.back();
    dirs.pop_back();
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      std::string path = dir + "/" + name;
      if (e->d_type == DT_DIR) {
        dirs.push_back(path);
      } else if (name.size() > 4 && name.substr(name.size() - 4) == ".jpg") {
        out.push_back(path);
      }
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  if (out.size() > max) out.resize(max);
  return out;
}

class CrashLoop {
 public:
  CrashLoop(uint64_t seed, int min_ms, int max_ms) : rng_(seed), min_ms_(min_ms), max_ms_(max_ms) {
    for (int w = 0; w < 2; ++w) vectors_.emplace_back("v" + std::to_string(w) + "-", 150);
    for (const std::string& path : ListPhotos(GetPaths().photos, 40)) {
      std::ifstream in(path, std::ios::binary);
      photos_.push_back(std::string(std::istreambuf_iterator<char>(in), {}));
    }
    images_.emplace_back("img-", static_cast<int>(photos_.size()));
  }

  Status Setup(ServerProcess* server) {
    auto client = server->MakeClient();
    v1::CreateCollectionRequest vectors;
    vectors.set_name(kVectors);
    vectors.set_model(kVectorsOnly);
    vectors.set_dim(kDim);
    vectors.set_metric(v1::L2);  // stored as sent: compared exactly
    RETURN_IF_ERROR(client->CreateCollection(vectors).status());
    if (photos_.empty()) return NotFoundError("no .jpg photos under " + GetPaths().photos);
    v1::CreateCollectionRequest images;
    images.set_name(kImages);
    return client->CreateCollection(images).status();
  }

  // One cycle: load, SIGKILL at a random moment, restart, check.
  Status Cycle(ServerProcess* server, int cycle) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    const std::string address = server->address();
    for (size_t w = 0; w < vectors_.size(); ++w) {
      threads.emplace_back([&, w, seed = rng_()] {
        Writer(address, kVectors, &vectors_[w], /*images=*/false, seed, &stop);
      });
    }
    threads.emplace_back([&, seed = rng_()] {
      Writer(address, kImages, &images_[0], /*images=*/true, seed, &stop);
    });
    threads.emplace_back([&, seed = rng_()] { Searcher(address, seed, &stop); });
    std::uniform_int_distribution<int> delay(min_ms_, max_ms_);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay(rng_)));
    server->Kill9();
    stop = true;
    for (auto& t : threads) t.join();
    const auto restart = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(server->Start());
    const auto check = std::chrono::steady_clock::now();
    restart_ms_ = std::chrono::duration<double, std::milli>(check - restart).count();
    Status st = Check(server);
    check_ms_ =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - check).count();
    if (!st.ok()) {
      return Status(st.code(), "cycle " + std::to_string(cycle) + ": " + st.message());
    }
    return Status::Ok();
  }

  const Counters& counters() const { return counters_; }
  int64_t live_items() const { return live_items_; }
  double restart_ms() const { return restart_ms_; }
  double check_ms() const { return check_ms_; }

 private:
  static std::unique_ptr<Client> Connect(const std::string& address) {
    ClientOptions options;
    options.server = address;
    options.max_attempts = 1;  // a kill must surface, not be retried away
    options.timeout = std::chrono::milliseconds(10000);
    auto client = Client::Connect(options);
    return client.ok() ? std::move(*client) : nullptr;
  }

  void Writer(const std::string& address, const std::string& collection, Partition* part,
              bool images, uint64_t seed, const std::atomic<bool>* stop) {
    std::mt19937_64 rng(seed);
    auto client = Connect(address);
    std::uniform_real_distribution<float> value(-1.f, 1.f);
    while (!*stop) {
      const bool remove = rng() % 4 == 0;
      const int n = 1 + static_cast<int>(rng() % (images ? 3 : 8));
      std::set<int> picked;
      while (static_cast<int>(picked.size()) < std::min(n, part->size()))
        picked.insert(static_cast<int>(rng() % part->size()));
      std::vector<int> slots(picked.begin(), picked.end());
      std::vector<Version> next(slots.size());
      if (remove) {
        std::vector<std::string> ids;
        for (int s : slots) ids.push_back(part->id(s));
        // In doubt until answered.
        for (int s : slots) part->state(s).candidates.push_back(std::nullopt);
        auto deleted = client->Delete(collection, ids);
        if (!deleted.ok()) {
          counters_.in_doubt += static_cast<int64_t>(slots.size());
          return;  // the server is gone (or refused): the cycle's check resolves it
        }
        for (int s : slots) part->state(s).candidates = {std::nullopt};
        counters_.acked_deletes += static_cast<int64_t>(slots.size());
        continue;
      }
      v1::UpsertRequest request;
      request.set_collection(collection);
      for (size_t i = 0; i < slots.size(); ++i) {
        v1::Item* item = request.add_items();
        item->set_id(part->id(slots[i]));
        (*item->mutable_metadata())["writer"] = collection;
        if (images) {
          item->set_image(photos_[slots[i]]);
          next[i] = std::vector<float>();
        } else {
          std::vector<float> v(kDim);
          for (float& x : v) x = value(rng);
          for (float x : v) item->mutable_vector()->add_values(x);
          next[i] = std::move(v);
        }
        part->state(slots[i]).candidates.push_back(next[i]);
      }
      auto response = client->Upsert(request);
      if (!response.ok()) {
        counters_.in_doubt += static_cast<int64_t>(slots.size());
        return;
      }
      for (size_t i = 0; i < slots.size(); ++i) {
        IdState& state = part->state(slots[i]);
        if (i < static_cast<size_t>(response->statuses_size()) &&
            response->statuses(static_cast<int>(i)).code() == 0) {
          state.candidates = {next[i]};  // acknowledged: durable from here on
          ++counters_.acked_writes;
        } else {
          state.candidates.pop_back();  // refused: the old state stands
        }
      }
    }
  }

  void Searcher(const std::string& address, uint64_t seed, const std::atomic<bool>* stop) {
    std::mt19937_64 rng(seed);
    auto client = Connect(address);
    std::uniform_real_distribution<float> value(-1.f, 1.f);
    while (!*stop) {
      v1::SearchRequest request;
      request.set_collection(kVectors);
      request.set_k(5);
      auto* vec = request.add_queries()->mutable_vector();
      for (int i = 0; i < kDim; ++i) vec->add_values(value(rng));
      if (!client->Search(request).ok()) return;
      ++counters_.searches;
    }
  }

  static bool SameVector(const v1::Item& item, const std::vector<float>& want) {
    if (item.vector().values_size() != static_cast<int>(want.size())) return false;
    for (size_t i = 0; i < want.size(); ++i) {
      if (item.vector().values(static_cast<int>(i)) != want[i]) return false;
    }
    return true;
  }

  Status CheckCollection(Client* client, const std::string& collection,
                         std::vector<Partition>* parts, bool images) {
    int64_t present = 0;
    std::vector<std::pair<std::string, std::vector<float>>> stored;
    for (Partition& part : *parts) {
      v1::GetRequest get;
      get.set_collection(collection);
      get.set_include_vectors(true);
      for (int i = 0; i < part.size(); ++i) get.add_ids(part.id(i));
      ASSIGN_OR_RETURN(v1::GetResponse got, client->Get(get));
      std::map<std::string, const v1::Item*> found;
      for (const v1::Item& item : got.items()) {
        if (!found.emplace(item.id(), &item).second) {
          return DataLossError(collection + ": id \"" + item.id() + "\" returned twice by Get");
        }
      }
      for (int i = 0; i < part.size(); ++i) {
        IdState& state = part.state(i);
        auto it = found.find(part.id(i));
        std::optional<Version> match;
        for (const Version& candidate : state.candidates) {
          if (!candidate.has_value()) {
            if (it == found.end()) match = candidate;
          } else if (it != found.end() && (images || SameVector(*it->second, *candidate))) {
            match = candidate;
          }
        }
        if (!match.has_value()) {
          const bool acked_absent =
              state.candidates.size() == 1 && !state.candidates[0].has_value();
          return DataLossError(
              collection + ": id \"" + part.id(i) + "\" is " +
              (it == found.end() ? "missing" : "present with another vector") + " after restart" +
              (state.candidates.size() == 1 ? (acked_absent ? " (its delete was acknowledged)"
                                                            : " (its write was acknowledged)")
                                            : " (in doubt, but matching none of its states)"));
        }
        state.candidates = {*match};
        if (it != found.end()) {
          ++present;
          std::vector<float> v(it->second->vector().values().begin(),
                               it->second->vector().values().end());
          stored.emplace_back(part.id(i), std::move(v));
        }
      }
    }
    ASSIGN_OR_RETURN(v1::CollectionInfo info, client->DescribeCollection(collection));
    if (info.count() != present) {
      return DataLossError(collection + ": count " + std::to_string(info.count()) + " but " +
                           std::to_string(present) + " ids present (an item stored twice?)");
    }
    // Self-search, every item in one request per 64.
    for (size_t begin = 0; begin < stored.size(); begin += 64) {
      const size_t end = std::min(stored.size(), begin + 64);
      v1::SearchRequest search;
      search.set_collection(collection);
      search.set_k(3);
      for (size_t i = begin; i < end; ++i) {
        auto* vec = search.add_queries()->mutable_vector();
        for (float x : stored[i].second) vec->add_values(x);
      }
      ASSIGN_OR_RETURN(v1::SearchResponse found, client->Search(search));
      for (size_t i = begin; i < end; ++i) {
        const v1::QueryResult& result = found.results(static_cast<int>(i - begin));
        std::set<std::string> seen;
        for (const v1::Hit& hit : result.hits()) {
          if (!seen.insert(hit.id()).second) {
            return DataLossError(collection + ": search returned \"" + hit.id() + "\" twice");
          }
        }
        if (result.hits_size() == 0 || result.hits(0).id() != stored[i].first) {
          return DataLossError(
              collection + ": self-search of \"" + stored[i].first + "\" found " +
              (result.hits_size() ? "\"" + result.hits(0).id() + "\"" : "nothing") + " first");
        }
      }
    }
    live_items_ += present;
    return Status::Ok();
  }

  Status Check(ServerProcess* server) {
    auto client = server->MakeClient();
    live_items_ = 0;
    RETURN_IF_ERROR(CheckCollection(client.get(), kVectors, &vectors_, false));
    return CheckCollection(client.get(), kImages, &images_, true);
  }

  std::mt19937_64 rng_;
  int min_ms_, max_ms_;
  std::vector<Partition> vectors_;
  std::vector<Partition> images_;
  std::vector<std::string> photos_;
  Counters counters_;
  int64_t live_items_ = 0;
  double restart_ms_ = 0, check_ms_ = 0;
};

int Main(int argc, char** argv) {
  int cycles = 5, min_ms = 150, max_ms = 1500;
  uint64_t seed = std::random_device{}();
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--cycles") {
      cycles = std::stoi(next());
    } else if (arg == "--seed") {
      seed = std::stoull(next());
    } else if (arg == "--min-ms") {
      min_ms = std::stoi(next());
    } else if (arg == "--max-ms") {
      max_ms = std::stoi(next());
    } else if (arg == "--keep") {
      keep = true;
    } else {
      std::fprintf(stderr,
                   "usage: lookalike_crashloop --cycles N [--seed S] [--min-ms A] [--max-ms B] "
                   "[--keep]\n");
      return 2;
    }
  }
  std::printf("crash loop: %d cycles, seed %llu, kill after %d..%d ms of load\n", cycles,
              static_cast<unsigned long long>(seed), min_ms, max_ms);
  TempDir dir;
  ServerProcess server(dir / "data", {"--snapshot-every-writes", "50"});
  CrashLoop loop(seed, min_ms, max_ms);
  Status st = server.Start();
  if (st.ok()) st = loop.Setup(&server);
  const auto start = std::chrono::steady_clock::now();
  int done = 0;
  for (int c = 1; st.ok() && c <= cycles; ++c) {
    st = loop.Cycle(&server, c);
    if (st.ok()) done = c;
    const Counters& k = loop.counters();
    std::printf(
        "cycle %d %s: acked writes %lld, acked deletes %lld, in doubt %lld, live %lld "
        "(restart %.0f ms, check %.0f ms)\n",
        c, st.ok() ? "ok" : "FAILED", static_cast<long long>(k.acked_writes.load()),
        static_cast<long long>(k.acked_deletes.load()), static_cast<long long>(k.in_doubt.load()),
        static_cast<long long>(loop.live_items()), loop.restart_ms(), loop.check_ms());
    std::fflush(stdout);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Counters& k = loop.counters();
  std::printf(
      "summary: cycles survived %d of %d in %.0f s; acknowledged writes %lld, acknowledged "
      "deletes %lld, lost 0 checked after every cycle; in doubt (interrupted, resolved) %lld; "
      "searches %lld\n",
      done, cycles, secs, static_cast<long long>(k.acked_writes.load()),
      static_cast<long long>(k.acked_deletes.load()), static_cast<long long>(k.in_doubt.load()),
      static_cast<long long>(k.searches.load()));
  if (!st.ok()) {
    std::fprintf(stderr, "FAILED: %s\nserver log tail:\n%s\n", st.ToString().c_str(),
                 server.LogTail().c_str());
    if (keep) {
      const std::string kept = "/tmp/lookalike_crashloop_" + std::to_string(getpid());
      std::rename((dir / "data").c_str(), kept.c_str());
      std::fprintf(stderr, "data directory kept at %s\n", kept.c_str());
    }
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace lookalike::testing

int main(int argc, char** argv) { return lookalike::testing::Main(argc, argv); }
