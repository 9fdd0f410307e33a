// libFuzzer target: the JSON reader (models/json.h) that reads safetensors
// headers, model configs and the tokenizer vocabulary. Contract checked: no
// crash; an accepted document dumps to JSON text that reads back to the same dump.
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
  // The dump is JSON again, and stable from its first re-read on ("-0" as a
  // double dumps as -0 and re-reads as the integer 0: equal values).
  auto again = lookalike::ParseJson(value->Dump());
  if (!again.ok()) __builtin_trap();
  const std::string dumped = again->Dump();
  auto third = lookalike::ParseJson(dumped);
  if (!third.ok() || third->Dump() != dumped) __builtin_trap();
  return 0;
}
