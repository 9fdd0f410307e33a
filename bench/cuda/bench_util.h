// Timing helpers for the CUDA benchmarks: CUDA events around a batch of
// launches, warm-up separate from timing, and input rotation over enough
// buffers that each timed launch reads inputs that are not in L2.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

namespace lookalike {
namespace bench {

#define BENCH_CUDA_CHECK(expr)                                          \
  do {                                                                  \
    const cudaError_t bench_err_ = (expr);                              \
    if (bench_err_ != cudaSuccess) {                                    \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, \
                   cudaGetErrorString(bench_err_));                     \
      std::exit(2);                                                     \
    }                                                                   \
  } while (0)

// How many copies of a `bytes`-sized input rotate so that the set is at least
// 3x the L2 cache (at least 2, at most 64).
inline int RotationCount(size_t bytes) {
  int dev = 0;
  cudaGetDevice(&dev);
  int l2 = 0;
  cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev);
  const size_t want = 3 * static_cast<size_t>(l2);
  int n = static_cast<int>((want + bytes - 1) / std::max<size_t>(bytes, 1));
  return std::min(std::max(n, 2), 64);
}

// Runs fn(i) `warmup` times, then times `iters` calls with CUDA events on
// `stream`; returns the median of `reps` repetitions in ms per call.
inline double TimeMs(cudaStream_t stream, const std::function<void(int)>& fn, int warmup = 10,
                     int iters = 50, int reps = 5) {
  for (int i = 0; i < warmup; ++i) fn(i);
  BENCH_CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  BENCH_CUDA_CHECK(cudaEventCreate(&start));
  BENCH_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> samples;
  int call = 0;
  for (int r = 0; r < reps; ++r) {
    BENCH_CUDA_CHECK(cudaEventRecord(start, stream));
    for (int i = 0; i < iters; ++i) fn(call++);
    BENCH_CUDA_CHECK(cudaEventRecord(stop, stream));
    BENCH_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.f;
    BENCH_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    samples.push_back(ms / iters);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

inline void FillRandomHalf(void* dst, size_t n, unsigned seed) {
  // Uniform in [-1, 1) as fp16 bits, generated on the host once.
  std::vector<unsigned short> h(n);
  unsigned s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    const float f = (static_cast<float>(s >> 8) / 16777216.f) * 2.f - 1.f;
    // fp16 of f, truncating (benchmark data only)
    unsigned u;
    std::memcpy(&u, &f, 4);
    const unsigned sign = (u >> 16) & 0x8000u;
    const int e = static_cast<int>((u >> 23) & 0xff) - 127 + 15;
    unsigned short v = static_cast<unsigned short>(sign);
    if (e > 0 && e < 31) v = static_cast<unsigned short>(sign | (e << 10) | ((u >> 13) & 0x3ffu));
    h[i] = v;
  }
  BENCH_CUDA_CHECK(cudaMemcpy(dst, h.data(), n * 2, cudaMemcpyHostToDevice));
}

}  // namespace bench
}  // namespace lookalike
