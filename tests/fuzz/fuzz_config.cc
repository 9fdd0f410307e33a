// libFuzzer target: the server's YAML configuration (server/config.h):
// ApplyYamlConfig over the defaults, then ValidateConfig. Contract checked: no
// crash and no exception out of yaml-cpp; errors are INVALID_ARGUMENT.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lookalike::ServerConfig config;
  lookalike::Status st = lookalike::ApplyYamlConfig(text, "fuzz.yaml", &config);
  if (st.ok()) st = lookalike::ValidateConfig(config);
  if (!st.ok() && st.code() != lookalike::StatusCode::kInvalidArgument) __builtin_trap();
  return 0;
}
