// libFuzzer target: the safetensors reader (header length, JSON header, dtype,
// shape and offset checks) and the typed reads of every tensor it accepts.
// Contract checked: no crash; Open fails only with INVALID_ARGUMENT.
#include <cstddef>
#include <cstdint>
#include <string>

#include "models/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = lookalike::fuzz::WriteInput(data, size, ".safetensors");
  auto file = lookalike::SafetensorsFile::Open(path);
  if (!file.ok()) {
    if (file.status().code() != lookalike::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  for (const std::string& name : (*file)->names()) {
    const lookalike::SafeTensorInfo* info = (*file)->Find(name);
    if (info == nullptr || info->nbytes > size) __builtin_trap();
    (void)(*file)->ReadF32(name);
    (void)(*file)->ReadU8(name);
    (void)(*file)->ReadInt(name);
  }
  return 0;
}
