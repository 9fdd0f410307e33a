// CPU time of the whole process (all threads), for the benchmarks that report
// CPU time per call beside wall time.
#pragma once

#include <time.h>

namespace lookalike::bench {

inline double ProcessCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

}  // namespace lookalike::bench
