// Server configuration: one schema, read from YAML (configs/lookalike.yaml
// documents every key) and overridden by command-line flags.
//
//   bool help = false;
//   ASSIGN_OR_RETURN(ServerConfig config, LoadServerConfig({argv + 1, argv + argc}, &help));
//
// Precedence: built-in defaults < the YAML file named by --config < flags.
// Everything is validated once at start-up; errors name the key (or flag) and
// the bad value. Unknown YAML keys and unknown flags are errors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/tls.h"

namespace lookalike {

// One served model: `name` is what requests and collections use.
struct ModelConfig {
  std::string name;     // [A-Za-z0-9_.-]{1,64}
  std::string preset;   // a models/ preset, e.g. "efficientnet_lite0"
  std::string weights;  // .safetensors path (relative paths are relative to the working directory)
  // CLIP text tokenizer (models/clip_tokenizer.h): OpenCLIP's bpe file, or a
  // Hugging Face vocab.json / merges.txt (or their directory). "" = the
  // vocab.json + merges.txt beside `weights`, when present.
  std::string tokenizer;
  // The precision the model computes in (EmbedderOptions::precision): "" =
  // ServerConfig::precision; "fp32" | "bf16" on the CPU (bf16 needs
  // avx512_bf16 or amx_bf16), "fp16" | "bf16" on CUDA.
  std::string precision;
};

// Request limits. Requests over a limit fail with INVALID_ARGUMENT.
struct LimitsConfig {
  int64_t max_message_bytes = 64ll << 20;  // gRPC receive/send limit per message
  int max_images_per_request = 256;        // Embed images, and image items/queries per request
  int max_items_per_upsert = 4096;         // items per Upsert request or stream message
  int max_ids_per_request = 4096;          // ids per Get or Delete request
  int max_queries_per_search = 256;
  int max_texts_per_request = 256;        // Embed texts, and text queries per Search
  int max_text_bytes = 4096;              // UTF-8 bytes of one text
  int max_k = 2048;                       // <= kMaxK (index/types.h), the index's limit
  int64_t max_image_pixels = 50'000'000;  // width * height of one decoded image
  int decode_threads = 0;                 // 0 = number of cores
  // Unary RPCs accepted and not yet answered (decoding, queued, embedding,
  // searching); beyond it a request fails at once with RESOURCE_EXHAUSTED.
  // With batcher.queue_capacity this bounds memory under overload: each
  // pending request holds at most max_message_bytes plus its decoded images
  // (docs/reliability.md).
  int max_pending_requests = 512;
};

// Dynamic batching of embedding work, per model.
struct BatcherConfig {
  int max_batch = 32;         // images per Embed call on the engine
  int max_delay_us = 2000;    // how long the first queued image may wait for company
  int queue_capacity = 1024;  // queued images per model; beyond it: RESOURCE_EXHAUSTED
};

struct ServerConfig {
  std::string listen = "127.0.0.1:50051";         // gRPC address
  std::string metrics_listen = "127.0.0.1:9090";  // HTTP /metrics, /healthz; "" = off
  // HTTP/JSON API, web page, /metrics and /healthz (server/http_api.h); "" = off
  std::string http_listen;
  std::string data_dir = "data";  // collections live here
  // "sqlite" (embedded, in data_dir) or a PostgreSQL URI shared by several
  // servers (postgresql://user@host:port/db); data_dir then keeps snapshots.
  std::string storage = "sqlite";
  std::string device = "auto";       // auto | cpu | cuda | cuda:N (models)
  std::string index_device = "cpu";  // cpu | cuda | cuda:N (search indexes)
  int engine_threads = 0;  // CPU backend threads per engine; 0 = cores / engine_replicas (>= 1)
  // Models' precision where models[].precision is not set: auto (the
  // device's default: fp32 on cpu, fp16 on cuda) | fp32 | fp16 | bf16.
  std::string precision = "auto";
  int engine_replicas =
      0;  // engines (own weights, own CUDA stream) per model; 0 = auto: 2 on cuda, 1 on cpu
  int handler_threads = 0;  // RPC worker threads (not held while embedding); 0 = max(32, 4 x cores)
  int64_t snapshot_every_writes = 10000;  // index snapshot after this many changed items
  // PostgreSQL storage: followers poll the database this often when no
  // notification arrives (CollectionManagerOptions::follow_poll_ms).
  int64_t follow_poll_ms = 1000;
  std::string log_level = "info";  // trace|debug|info|warn|error|critical|off
  std::string default_model = "efficientnet_lite0";
  std::vector<ModelConfig> models = {
      {"efficientnet_lite0", "efficientnet_lite0", "weights/efficientnet_lite0.safetensors"}};
  LimitsConfig limits;
  BatcherConfig batcher;

  // API keys (server/auth.h, docs/security.md): the keys file; "" = no keys,
  // every call allowed.
  std::string api_keys;
  // /metrics answers only with a key valid on every collection (needs api_keys).
  bool metrics_require_key = false;
  // TLS on every listener: top-level keys tls_cert, tls_key, tls_client_ca
  // (server/tls.h, docs/security.md). Off when tls_cert is "".
  TlsConfig tls;
};

// Parses YAML text over `config` (keys not present keep their value).
// `source` names the text in errors (a file path).
Status ApplyYamlConfig(const std::string& yaml_text, const std::string& source,
                       ServerConfig* config);

// Applies flags (argv[1..]) over `config`, except --config which the caller
// handles. Both "--key value" and "--key=value" are accepted.
Status ApplyFlags(const std::vector<std::string>& args, ServerConfig* config);

// Checks every value; the first problem is returned naming key and value.
Status ValidateConfig(const ServerConfig& config);

// Defaults, then --config FILE (if given), then the other flags, then
// validation. `help` is set (and an OK config returned) for --help.
StatusOr<ServerConfig> LoadServerConfig(const std::vector<std::string>& args, bool* help);

// Text for --help.
std::string ConfigUsage();

// True for an address only this machine can reach: 127.0.0.0/8, ::1,
// localhost, a unix: socket. "0.0.0.0:50051", "[::]:50051", ":50051" and any
// other host are reachable from the network.
bool IsLoopbackAddress(const std::string& address);

// One line per client listener (listen, http_listen) that is reachable from
// the network while the server has no TLS, or no API keys: what is exposed
// and the setting that closes it. Empty when every such listener is on
// loopback or both TLS and keys are on. The server logs them at start.
std::vector<std::string> ExposureWarnings(const ServerConfig& config);

// Parses "NAME=PRESET:WEIGHTS" (the --model flag).
StatusOr<ModelConfig> ParseModelFlag(const std::string& value);

}  // namespace lookalike
