// libFuzzer target: the CLI's metadata tables (client/cli/ingest_files.h):
// CSV with RFC 4180 quoting when the first byte is even, JSONL otherwise.
// Contract checked: no crash; errors are INVALID_ARGUMENT.
#include <cstddef>
#include <cstdint>
#include <string>

#include "client/cli/ingest_files.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char* suffix = (data[0] & 1) != 0 ? ".jsonl" : ".csv";
  const std::string path = lookalike::fuzz::WriteInput(data + 1, size - 1, suffix);
  auto table = lookalike::MetadataTable::Load(path);
  if (!table.ok() && table.status().code() != lookalike::StatusCode::kInvalidArgument) {
    __builtin_trap();
  }
  return 0;
}
