// FNV-1a, 64 bit: a fast, stable (same on every build and machine) hash of a
// byte string. Not cryptographic: it detects truncation and flipped bytes
// (snapshot checksums) and tells contents apart (thumbnail ETags); it does
// not resist deliberate collisions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lookalike {

inline uint64_t Fnv1a64(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace lookalike
