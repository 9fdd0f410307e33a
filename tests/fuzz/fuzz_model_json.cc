// libFuzzer target: the JSON reader (models/json.h) that reads safetensors
// headers, model configs and the tokenizer vocabulary. Contract checked: no
// crash; an accepted document dumps to text that parses again to the same dump.
#include <cstddef>
#include <cstdint>
#include <string>

#include "models/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto value = lookalike::ParseJson(reinterpret_cast<const char*>(data), size);
  if (!value.ok()) {
    if (value.status().code() != lookalike::StatusCode::kInvalidArgument) __builtin_trap();
    return 0;
  }
  const std::string dumped = value->Dump();
  auto again = lookalike::ParseJson(dumped);
  if (!again.ok() || again->Dump() != dumped) __builtin_trap();
  return 0;
}
