// The benchmarks' data: uniform(-1, 1) floats from a fixed xorshift64 seed,
// fast enough to fill 10M x 128 databases (the Python peers draw the same
// distribution with torch).
#pragma once

#include <cstdint>

namespace lookalike::bench {

struct UniformRng {
  uint64_t s;
  float Next() {  // uniform in [-1, 1)
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<float>(s >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }
};

}  // namespace lookalike::bench
