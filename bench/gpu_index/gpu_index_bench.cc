// Benchmark of the GPU flat index (GpuFlatStore): exact inner-product k-NN,
// fp16 storage, over the configurations of docs/benchmarks/gpu_index.md.
//
// For each (database, batch, k): warm-up searches (not timed), then timed
// searches until --min-seconds have passed (at least --min-iters). Reports
//   latency_ms   mean device time per search (CUDA events on the store's
//                stream: first query upload to last result download)
//   wall_ms      mean host wall time per Search call
//   qps          queries / wall second
//   db_gbps      database bytes streamed / device time (rows x dim x 2 bytes,
//                once per query chunk); hbm_frac = db_gbps / device HBM peak
//   tc_frac      2 x nq x rows x dim flop / device time / fp16 tensor peak
// Data: uniform(-1, 1) from a fixed xorshift seed (the Python peer draws the
// same distribution with torch). Usage:
//   gpu_index_bench [--quick] [--json FILE] [--min-seconds S] [--peak-tflops T]
//                   [--workspace-mb M] [--no-fused]
// --workspace-mb sets the distance-tile workspace (GpuFlatStoreOptions::
// workspace_bytes; smaller tiles can stay in L2 at the cost of more launches);
// --no-fused sends small batches through the GEMM path too.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/common/uniform_rng.h"
#include "common/device.h"
#include "index/gpu/gpu_flat_store.h"

namespace {

using lookalike::GpuFlatStore;
using lookalike::GpuFlatStoreOptions;
using lookalike::Metric;
using lookalike::SearchTiming;
using lookalike::StorageType;

using Rng = lookalike::bench::UniformRng;

struct Dataset {
  const char* name;
  int64_t rows;
  int dim;
};

double HbmPeakGBps(int device) {
  int clock_khz = 0;
  int bus_bits = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  return 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
}

double TensorPeakTflops(const std::string& name) {
  // Dense fp16 tensor-core peaks from the vendor data sheets.
  if (name.find("H100") != std::string::npos && name.find("PCIe") != std::string::npos)
    return 756.0;
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos)
    return 989.4;
  if (name.find("A100") != std::string::npos) return 312.0;
  return 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string json_path;
  double min_seconds = 1.0;
  int min_iters = 5;
  double peak_tflops_flag = 0.0;
  int64_t workspace_mb = 0;
  bool fused = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      quick = true;
    } else if (a == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else if (a == "--min-seconds" && i + 1 < argc) {
      min_seconds = std::atof(argv[++i]);
    } else if (a == "--peak-tflops" && i + 1 < argc) {
      peak_tflops_flag = std::atof(argv[++i]);
    } else if (a == "--workspace-mb" && i + 1 < argc) {
      workspace_mb = std::atoll(argv[++i]);
    } else if (a == "--no-fused") {
      fused = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--json FILE] [--min-seconds S] [--peak-tflops T] "
                   "[--workspace-mb M] [--no-fused]\n",
                   argv[0]);
      return 2;
    }
  }
  if (lookalike::CudaDeviceCount() == 0) {
    std::fprintf(stderr, "gpu_index_bench: %s; nothing measured\n",
                 lookalike::CudaUnavailableReason().c_str());
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double hbm_peak = HbmPeakGBps(0);
  const double tc_peak = peak_tflops_flag > 0 ? peak_tflops_flag : TensorPeakTflops(prop.name);
  std::printf("device: %s, HBM peak %.0f GB/s, fp16 tensor peak %.1f TFLOP/s\n", prop.name,
              hbm_peak, tc_peak);

  std::vector<Dataset> datasets = {{"1M x 768", 1000000, 768}, {"10M x 128", 10000000, 128}};
  if (quick) datasets = {{"100k x 768", 100000, 768}, {"1M x 128", 1000000, 128}};
  const int batches[] = {1, 16, 256, 1024};
  const int ks[] = {10, 100};

  FILE* json = json_path.empty() ? nullptr : std::fopen(json_path.c_str(), "w");
  std::printf(
      "| database | batch | k | path | latency ms | wall ms | QPS | DB GB/s | HBM frac | TC frac "
      "|\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Dataset& ds : datasets) {
    GpuFlatStoreOptions o;
    o.dim = ds.dim;
    o.metric = Metric::kInnerProduct;
    o.storage = StorageType::kFloat16;
    o.fused_small_batch = fused;
    if (workspace_mb > 0) o.workspace_bytes = workspace_mb << 20;
    auto created = GpuFlatStore::Create(o);
    if (!created.ok()) {
      std::fprintf(stderr, "create: %s\n", created.status().ToString().c_str());
      return 1;
    }
    std::unique_ptr<GpuFlatStore> store = std::move(created).value();
    Rng rng{0x9E3779B97F4A7C15ull};
    const int64_t chunk = 65536;
    std::vector<float> buf(static_cast<size_t>(chunk) * ds.dim);
    for (int64_t done = 0; done < ds.rows; done += chunk) {
      const int64_t m = std::min(chunk, ds.rows - done);
      for (int64_t i = 0; i < m * ds.dim; ++i) buf[i] = rng.Next();
      const lookalike::Status st = store->Add(m, buf.data());
      if (!st.ok()) {
        std::fprintf(stderr, "add: %s\n", st.ToString().c_str());
        return 1;
      }
    }
    for (int nq : batches) {
      std::vector<float> q(static_cast<size_t>(nq) * ds.dim);
      for (float& v : q) v = rng.Next();
      for (int k : ks) {
        std::vector<float> dist(static_cast<size_t>(nq) * k);
        std::vector<int64_t> lab(dist.size());
        SearchTiming t;
        for (int w = 0; w < 3; ++w) {  // warm-up: workspace, cuBLAS heuristics, clocks
          const lookalike::Status st =
              store->Search(nq, q.data(), ds.dim, k, dist.data(), lab.data(), nullptr, &t);
          if (!st.ok()) {
            std::fprintf(stderr, "search: %s\n", st.ToString().c_str());
            return 1;
          }
        }
        double device_ms = 0.0;
        int iters = 0;
        const auto t0 = std::chrono::steady_clock::now();
        double elapsed = 0.0;
        while (iters < min_iters || elapsed < min_seconds) {
          const lookalike::Status st =
              store->Search(nq, q.data(), ds.dim, k, dist.data(), lab.data(), nullptr, &t);
          if (!st.ok()) {
            std::fprintf(stderr, "search: %s\n", st.ToString().c_str());
            return 1;
          }
          device_ms += t.device_ms;
          ++iters;
          elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        const double lat = device_ms / iters;
        const double wall = 1e3 * elapsed / iters;
        const double qps = nq / (wall / 1e3);
        const double db_bytes = static_cast<double>(ds.rows) * ds.dim * 2.0 * t.query_chunks;
        const double gbps = db_bytes / (lat / 1e3) / 1e9;
        const double tflops = 2.0 * nq * static_cast<double>(ds.rows) * ds.dim / (lat / 1e3) / 1e12;
        const double hbm_frac = hbm_peak > 0 ? gbps / hbm_peak : 0.0;
        const double tc_frac = tc_peak > 0 ? tflops / tc_peak : 0.0;
        const std::string path =
            t.tile_rows == 0 ? "fused" : "gemm tile " + std::to_string(t.tile_rows);
        std::printf("| %s | %d | %d | %s | %.3f | %.3f | %.0f | %.0f | %.2f | %.3f |\n", ds.name,
                    nq, k, path.c_str(), lat, wall, qps, gbps, hbm_frac, tc_frac);
        std::fflush(stdout);
        if (json) {
          std::fprintf(json,
                       "{\"impl\": \"lookalike\", \"rows\": %lld, \"dim\": %d, \"batch\": %d, "
                       "\"k\": %d, \"tile_rows\": %lld, \"latency_ms\": %.4f, \"wall_ms\": %.4f, "
                       "\"qps\": %.1f, "
                       "\"db_gbps\": %.1f, \"hbm_frac\": %.3f, \"tc_frac\": %.4f, \"iters\": %d}\n",
                       static_cast<long long>(ds.rows), ds.dim, nq, k,
                       static_cast<long long>(t.tile_rows), lat, wall, qps, gbps, hbm_frac, tc_frac,
                       iters);
        }
      }
    }
  }
  if (json) std::fclose(json);
  return 0;
}
