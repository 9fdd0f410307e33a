// How many of the backend's threads an op gets: its work, not the thread
// setting alone. Each parallel op wakes the OpenMP team and joins it at a
// barrier; for a small op (a batch-1 layer of a small ConvNet) that costs
// more than the second thread saves, and on a busy machine the barrier waits
// for whichever team member the scheduler has parked. So an op runs on one
// thread per `MinFlopsPerThread()` of work, at most the backend's setting;
// below that it runs on the calling thread alone, with no team at all.
// docs/benchmarks/cpu.md records the measurement behind the default.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include <omp.h>

namespace lookalike {
namespace cpu {

// Floating-point operations (multiply and add count one each) an op needs
// per thread it uses. LOOKALIKE_CPU_MIN_FLOPS_PER_THREAD overrides it (0 =
// every op on all threads, the behaviour before this rule: the A/B switch for
// the measurement).
inline double MinFlopsPerThread() {
  static const double value = [] {
    const char* v = std::getenv("LOOKALIKE_CPU_MIN_FLOPS_PER_THREAD");
    if (v != nullptr && *v != '\0') {
      char* end = nullptr;
      const double parsed = std::strtod(v, &end);
      if (end != v && parsed >= 0) return parsed;
    }
    return 2e6;
  }();
  return value;
}

// Threads for an op of `flops` work when the backend may use `max_threads`:
// 1 .. max_threads.
inline int ThreadsFor(double flops, int max_threads) {
  const double per = MinFlopsPerThread();
  if (max_threads <= 1) return 1;
  if (per <= 0) return max_threads;
  const double fit = flops / per;
  return fit >= max_threads ? max_threads : std::max(1, static_cast<int>(fit));
}

// Sets the calling thread's OpenMP thread count (what oneDNN primitives are
// created and run with) for one op, restoring the previous count on exit.
class ScopedThreads {
 public:
  explicit ScopedThreads(int threads) : previous_(omp_get_max_threads()) {
    if (threads != previous_) omp_set_num_threads(threads);
  }
  ~ScopedThreads() {
    if (omp_get_max_threads() != previous_) omp_set_num_threads(previous_);
  }
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int previous_;
};

}  // namespace cpu
}  // namespace lookalike
