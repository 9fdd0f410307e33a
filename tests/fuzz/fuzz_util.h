// Helpers shared by the libFuzzer targets in tests/fuzz.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace lookalike::fuzz {

// Writes the input to a file of this process (in /dev/shm when present, so
// the many small writes stay in memory) and returns its path: for the parsers
// whose public entry point takes a path (safetensors, snapshots, metadata).
inline std::string WriteInput(const uint8_t* data, size_t size, const std::string& suffix) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = dir + "/lookalike_fuzz_" + std::to_string(getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace lookalike::fuzz
