// Benchmark of exact k-NN on the CPU: lookalike::CpuIndexFlat (BLAS search)
// against faiss::IndexFlat::search (the FAISS build on this machine) on the
// same vectors in the same run. Both search one copy of the data: the FAISS
// figure calls the base-class search of the same object.
//
// For each (database, batch, k): one warm-up search (not timed), then timed
// searches until --min-seconds have passed (at least one). Reports ms per
// search, queries/s, the database bytes read per second (rows x dim x 4 per
// search; a lower bound, as a batch may read the database more than once),
// and GFLOP/s (2 x nq x rows x dim per search). Data: uniform(-1, 1) from a
// fixed xorshift seed, inner product. The results of both are compared: the
// run fails if any query's top-k labels differ beyond score ties.
// Usage: cpu_index_bench [--quick] [--min-seconds S] [--json FILE]
//                        [--database 0|1] [--batch N]   (one database / batch size)
#include <faiss/IndexFlat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/uniform_rng.h"
#include "index/cpu_index_flat.h"

namespace {

using Clock = std::chrono::steady_clock;
using idx_t = faiss::Index::idx_t;

using Rng = lookalike::bench::UniformRng;

struct Dataset {
  const char* name;
  int64_t rows;
  int dim;
};

template <typename F>
double MsPerCall(F&& f, double min_seconds) {
  f();  // warm-up
  int iters = 0;
  const auto t0 = Clock::now();
  double elapsed = 0;
  do {
    f();
    ++iters;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (elapsed < min_seconds);
  return elapsed * 1e3 / iters;
}

// Same top-k up to ties: each label of ours scores like FAISS's at that rank.
bool SameUpToTies(const std::vector<float>& da, const std::vector<float>& db) {
  for (size_t i = 0; i < da.size(); ++i) {
    if (std::abs(da[i] - db[i]) > 1e-3f * std::max(1.f, std::abs(db[i]))) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  double min_seconds = 2.0;
  std::string json_path;
  int only_database = -1;  // index into the database list; -1 = all
  int only_batch = 0;      // 0 = all batch sizes
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--min-seconds" && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
    } else if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--database" && i + 1 < argc) {
      only_database = std::atoi(argv[++i]);
    } else if (a == "--batch" && i + 1 < argc) {
      only_batch = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--min-seconds S] [--json FILE] [--database 0|1] "
                   "[--batch N]\n",
                   argv[0]);
      return 2;
    }
  }
  std::vector<Dataset> datasets = {{"1M x 768", 1000000, 768}, {"10M x 128", 10000000, 128}};
  if (quick) datasets = {{"100k x 768", 100000, 768}, {"1M x 128", 1000000, 128}};
  if (only_database >= 0) {
    if (only_database >= static_cast<int>(datasets.size())) return 2;
    datasets = {datasets[static_cast<size_t>(only_database)]};
  }
  std::vector<int> batches = {1, 16, 256, 1024};
  if (only_batch > 0) batches = {only_batch};
  const int ks[] = {10, 100};
  FILE* json = json_path.empty() ? nullptr : std::fopen(json_path.c_str(), "w");
  std::printf("hardware threads: %u\n", std::thread::hardware_concurrency());
  std::printf(
      "| database | batch | k | ours ms | FAISS ms | ours QPS | FAISS QPS | ratio | "
      "ours GB/s | ours GFLOP/s |\n|---|---|---|---|---|---|---|---|---|---|\n");
  std::fflush(stdout);
  bool all_same = true;
  for (const Dataset& ds : datasets) {
    lookalike::CpuIndexFlat index(ds.dim, faiss::METRIC_INNER_PRODUCT);
    Rng rng{0x9E3779B97F4A7C15ull};
    const int64_t chunk = 65536;
    std::vector<float> buf(static_cast<size_t>(chunk) * ds.dim);
    for (int64_t done = 0; done < ds.rows; done += chunk) {
      const int64_t n = std::min(chunk, ds.rows - done);
      for (int64_t i = 0; i < n * ds.dim; ++i) buf[static_cast<size_t>(i)] = rng.Next();
      index.add(n, buf.data());
    }
    std::vector<float> queries(static_cast<size_t>(1024) * ds.dim);
    for (auto& q : queries) q = rng.Next();
    for (int nq : batches) {
      for (int k : ks) {
        std::vector<float> d_ours(static_cast<size_t>(nq) * k), d_faiss(d_ours.size());
        std::vector<idx_t> l_ours(d_ours.size()), l_faiss(d_ours.size());
        const double ours_ms =
            MsPerCall([&] { index.search(nq, queries.data(), k, d_ours.data(), l_ours.data()); },
                      min_seconds);
        const double faiss_ms = MsPerCall(
            [&] {
              index.faiss::IndexFlat::search(nq, queries.data(), k, d_faiss.data(), l_faiss.data());
            },
            min_seconds);
        const bool same = SameUpToTies(d_ours, d_faiss);
        all_same = all_same && same;
        const double bytes = static_cast<double>(ds.rows) * ds.dim * 4;
        const double flop = 2.0 * nq * ds.rows * ds.dim;
        std::printf("| %s | %d | %d | %.2f | %.2f | %.1f | %.1f | %.2fx | %.1f | %.1f |%s\n",
                    ds.name, nq, k, ours_ms, faiss_ms, nq * 1e3 / ours_ms, nq * 1e3 / faiss_ms,
                    faiss_ms / ours_ms, bytes / ours_ms / 1e6, flop / ours_ms / 1e6,
                    same ? "" : " RESULTS DIFFER");
        std::fflush(stdout);
        if (json != nullptr) {
          std::fprintf(json,
                       "{\"database\":\"%s\",\"batch\":%d,\"k\":%d,\"ours_ms\":%.4f,"
                       "\"faiss_ms\":%.4f,\"same\":%s}\n",
                       ds.name, nq, k, ours_ms, faiss_ms, same ? "true" : "false");
        }
      }
    }
  }
  if (json != nullptr) std::fclose(json);
  if (!all_same) {
    std::fprintf(stderr, "cpu_index_bench: results differ from faiss::IndexFlat\n");
    return 1;
  }
  return 0;
}
