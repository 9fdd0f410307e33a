#include "server/config.h"

#include <cstdio>

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/device.h"
#include "common/dtype.h"
#include "index/types.h"

namespace lookalike {
namespace {

// ---- scalar parsing shared by YAML and flags -------------------------------

Status ParseInt64(const std::string& key, const std::string& text, int64_t* out) {
  if (text.empty()) return InvalidArgumentError(key + ": expected an integer, got an empty value");
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end == text.c_str() || *end != '\0') {
    return InvalidArgumentError(key + ": expected an integer, got \"" + text + "\"");
  }
  *out = v;
  return Status::Ok();
}

Status ParseInt(const std::string& key, const std::string& text, int* out) {
  int64_t v = 0;
  RETURN_IF_ERROR(ParseInt64(key, text, &v));
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    return InvalidArgumentError(key + ": " + text + " is out of range");
  }
  *out = static_cast<int>(v);
  return Status::Ok();
}

Status ParseBool(const std::string& key, const std::string& text, bool* out) {
  if (text == "true") {
    *out = true;
  } else if (text == "false") {
    *out = false;
  } else {
    return InvalidArgumentError(key + ": expected true or false, got \"" + text + "\"");
  }
  return Status::Ok();
}

// One settable scalar key: how to parse a string into the config.
using Setter =
    std::function<Status(const std::string& key, const std::string& value, ServerConfig* config)>;

Setter StringField(std::string ServerConfig::*field) {
  return [field](const std::string&, const std::string& v, ServerConfig* c) {
    c->*field = v;
    return Status::Ok();
  };
}
template <typename Sub, typename T>
Setter IntField(Sub ServerConfig::*sub, T Sub::*field) {
  return [sub, field](const std::string& key, const std::string& v, ServerConfig* c) {
    if constexpr (std::is_same_v<T, int64_t>) {
      return ParseInt64(key, v, &(c->*sub.*field));
    } else {
      return ParseInt(key, v, &(c->*sub.*field));
    }
  };
}

Setter TlsField(std::string TlsConfig::*field) {
  return [field](const std::string&, const std::string& v, ServerConfig* c) {
    c->tls.*field = v;
    return Status::Ok();
  };
}

// Top-level scalar keys (YAML key -> setter). Section keys use "section.key".
const std::map<std::string, Setter>& ScalarKeys() {
  static const auto* keys = new std::map<std::string, Setter>{
      {"listen", StringField(&ServerConfig::listen)},
      {"metrics_listen", StringField(&ServerConfig::metrics_listen)},
      {"http_listen", StringField(&ServerConfig::http_listen)},
      {"data_dir", StringField(&ServerConfig::data_dir)},
      {"storage", StringField(&ServerConfig::storage)},
      {"device", StringField(&ServerConfig::device)},
      {"precision", StringField(&ServerConfig::precision)},
      {"index_device", StringField(&ServerConfig::index_device)},
      {"log_level", StringField(&ServerConfig::log_level)},
      {"default_model", StringField(&ServerConfig::default_model)},
      {"engine_threads", [](const std::string& k, const std::string& v,
                            ServerConfig* c) { return ParseInt(k, v, &c->engine_threads); }},
      {"engine_replicas", [](const std::string& k, const std::string& v,
                             ServerConfig* c) { return ParseInt(k, v, &c->engine_replicas); }},
      {"handler_threads", [](const std::string& k, const std::string& v,
                             ServerConfig* c) { return ParseInt(k, v, &c->handler_threads); }},
      {"snapshot_every_writes",
       [](const std::string& k, const std::string& v, ServerConfig* c) {
         return ParseInt64(k, v, &c->snapshot_every_writes);
       }},
      // Followers of a PostgreSQL storage (index/follower.h).
      {"follow_poll_ms", [](const std::string& k, const std::string& v,
                            ServerConfig* c) { return ParseInt64(k, v, &c->follow_poll_ms); }},
      {"limits.max_message_bytes",
       IntField(&ServerConfig::limits, &LimitsConfig::max_message_bytes)},
      {"limits.max_images_per_request",
       IntField(&ServerConfig::limits, &LimitsConfig::max_images_per_request)},
      {"limits.max_items_per_upsert",
       IntField(&ServerConfig::limits, &LimitsConfig::max_items_per_upsert)},
      {"limits.max_ids_per_request",
       IntField(&ServerConfig::limits, &LimitsConfig::max_ids_per_request)},
      {"limits.max_queries_per_search",
       IntField(&ServerConfig::limits, &LimitsConfig::max_queries_per_search)},
      {"limits.max_texts_per_request",
       IntField(&ServerConfig::limits, &LimitsConfig::max_texts_per_request)},
      {"limits.max_text_bytes", IntField(&ServerConfig::limits, &LimitsConfig::max_text_bytes)},
      {"limits.max_k", IntField(&ServerConfig::limits, &LimitsConfig::max_k)},
      {"limits.max_image_pixels", IntField(&ServerConfig::limits, &LimitsConfig::max_image_pixels)},
      {"limits.decode_threads", IntField(&ServerConfig::limits, &LimitsConfig::decode_threads)},
      {"limits.max_pending_requests",
       IntField(&ServerConfig::limits, &LimitsConfig::max_pending_requests)},
      {"batcher.max_batch", IntField(&ServerConfig::batcher, &BatcherConfig::max_batch)},
      {"batcher.max_delay_us", IntField(&ServerConfig::batcher, &BatcherConfig::max_delay_us)},
      {"batcher.queue_capacity", IntField(&ServerConfig::batcher, &BatcherConfig::queue_capacity)},
      // API keys (server/auth.h).
      {"api_keys", StringField(&ServerConfig::api_keys)},
      {"metrics_require_key",
       [](const std::string& k, const std::string& v, ServerConfig* c) {
         return ParseBool(k, v, &c->metrics_require_key);
       }},
      // TLS (server/tls.h): PEM file paths.
      {"tls_cert", TlsField(&TlsConfig::cert)},
      {"tls_key", TlsField(&TlsConfig::key)},
      {"tls_client_ca", TlsField(&TlsConfig::client_ca)},
  };
  return *keys;
}

// Flags map onto the same keys: --data-dir -> data_dir, --max-k -> limits.max_k.
const std::map<std::string, std::string>& FlagKeys() {
  static const auto* flags = new std::map<std::string, std::string>{
      {"listen", "listen"},
      {"metrics-listen", "metrics_listen"},
      {"http-listen", "http_listen"},
      {"data-dir", "data_dir"},
      {"storage", "storage"},
      {"device", "device"},
      {"precision", "precision"},
      {"index-device", "index_device"},
      {"log-level", "log_level"},
      {"default-model", "default_model"},
      {"engine-threads", "engine_threads"},
      {"engine-replicas", "engine_replicas"},
      {"handler-threads", "handler_threads"},
      {"snapshot-every-writes", "snapshot_every_writes"},
      {"follow-poll-ms", "follow_poll_ms"},
      {"max-message-bytes", "limits.max_message_bytes"},
      {"max-images-per-request", "limits.max_images_per_request"},
      {"max-items-per-upsert", "limits.max_items_per_upsert"},
      {"max-ids-per-request", "limits.max_ids_per_request"},
      {"max-queries-per-search", "limits.max_queries_per_search"},
      {"max-k", "limits.max_k"},
      {"max-texts-per-request", "limits.max_texts_per_request"},
      {"max-text-bytes", "limits.max_text_bytes"},
      {"max-image-pixels", "limits.max_image_pixels"},
      {"decode-threads", "limits.decode_threads"},
      {"max-pending-requests", "limits.max_pending_requests"},
      {"max-batch", "batcher.max_batch"},
      {"max-delay-us", "batcher.max_delay_us"},
      {"queue-capacity", "batcher.queue_capacity"},
      {"api-keys", "api_keys"},
      {"metrics-require-key", "metrics_require_key"},
      {"tls-cert", "tls_cert"},
      {"tls-key", "tls_key"},
      {"tls-client-ca", "tls_client_ca"},
  };
  return *flags;
}

std::string Where(const std::string& source, const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.line < 0) return source;
  return source + ":" + std::to_string(mark.line + 1);
}

Status ScalarOf(const std::string& source, const std::string& key, const YAML::Node& node,
                std::string* out) {
  if (!node.IsScalar() && !node.IsNull()) {
    return InvalidArgumentError(Where(source, node) + ": " + key + ": expected a scalar value");
  }
  *out = node.IsNull() ? "" : node.Scalar();
  return Status::Ok();
}

Status ApplyModels(const std::string& source, const YAML::Node& node, ServerConfig* config) {
  if (!node.IsSequence()) {
    return InvalidArgumentError(
        Where(source, node) +
        ": models: expected a list of {name, preset, weights[, tokenizer][, precision]}");
  }
  std::vector<ModelConfig> models;
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node& m = node[i];
    const std::string key = "models[" + std::to_string(i) + "]";
    if (!m.IsMap()) {
      return InvalidArgumentError(Where(source, m) + ": " + key +
                                  ": expected a map with name, preset, weights");
    }
    ModelConfig model;
    for (const auto& kv : m) {
      const std::string sub = kv.first.as<std::string>();
      std::string value;
      RETURN_IF_ERROR(ScalarOf(source, key + "." + sub, kv.second, &value));
      if (sub == "name") {
        model.name = value;
      } else if (sub == "preset") {
        model.preset = value;
      } else if (sub == "weights") {
        model.weights = value;
      } else if (sub == "tokenizer") {
        model.tokenizer = value;
      } else if (sub == "precision") {
        model.precision = value;
      } else {
        return InvalidArgumentError(Where(source, kv.first) + ": unknown key \"" + key + "." + sub +
                                    "\" (expected name, preset, weights, tokenizer, precision)");
      }
    }
    if (model.preset.empty()) model.preset = model.name;
    models.push_back(std::move(model));
  }
  config->models = std::move(models);
  return Status::Ok();
}

bool ValidAddress(const std::string& address) {
  // host:port, [v6]:port or unix:path (gRPC syntax).
  if (address.rfind("unix:", 0) == 0) return address.size() > 5;
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  const std::string port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5) return false;
  for (char ch : port) {
    if (ch < '0' || ch > '9') return false;
  }
  return std::stoi(port) <= 65535;
}

Status CheckRange(const std::string& key, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi) {
    return InvalidArgumentError(key + ": " + std::to_string(value) + " is out of range [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return Status::Ok();
}

}  // namespace

Status ApplyYamlConfig(const std::string& yaml_text, const std::string& source,
                       ServerConfig* config) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(source + ": invalid YAML: " + e.what());
  }
  if (root.IsNull()) return Status::Ok();  // empty file: defaults
  if (!root.IsMap()) return InvalidArgumentError(source + ": expected a map of settings");
  try {
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (key == "models") {
        RETURN_IF_ERROR(ApplyModels(source, kv.second, config));
        continue;
      }
      if (key == "limits" || key == "batcher") {
        if (!kv.second.IsMap()) {
          return InvalidArgumentError(Where(source, kv.second) + ": " + key + ": expected a map");
        }
        for (const auto& sub : kv.second) {
          const std::string full = key + "." + sub.first.as<std::string>();
          auto it = ScalarKeys().find(full);
          if (it == ScalarKeys().end()) {
            return InvalidArgumentError(Where(source, sub.first) + ": unknown key \"" + full +
                                        "\"");
          }
          std::string value;
          RETURN_IF_ERROR(ScalarOf(source, full, sub.second, &value));
          RETURN_IF_ERROR(it->second(full, value, config).WithPrefix(Where(source, sub.second)));
        }
        continue;
      }
      auto it = ScalarKeys().find(key);
      if (it == ScalarKeys().end() || key.find('.') != std::string::npos) {
        return InvalidArgumentError(Where(source, kv.first) + ": unknown key \"" + key + "\"");
      }
      std::string value;
      RETURN_IF_ERROR(ScalarOf(source, key, kv.second, &value));
      RETURN_IF_ERROR(it->second(key, value, config).WithPrefix(Where(source, kv.second)));
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgumentError(source + ": invalid YAML: " + e.what());
  }
  return Status::Ok();
}

StatusOr<ModelConfig> ParseModelFlag(const std::string& value) {
  // NAME=PRESET:WEIGHTS; the weights path may itself contain ':'.
  const size_t eq = value.find('=');
  const size_t colon = eq == std::string::npos ? std::string::npos : value.find(':', eq + 1);
  if (eq == std::string::npos || colon == std::string::npos || eq == 0 || colon == eq + 1 ||
      colon + 1 == value.size()) {
    return InvalidArgumentError("--model: expected NAME=PRESET:WEIGHTS, got \"" + value + "\"");
  }
  ModelConfig model;
  model.name = value.substr(0, eq);
  model.preset = value.substr(eq + 1, colon - eq - 1);
  model.weights = value.substr(colon + 1);
  return model;
}

Status ApplyFlags(const std::vector<std::string>& args, ServerConfig* config) {
  std::vector<ModelConfig> flag_models;
  bool default_model_flag = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      return InvalidArgumentError("unexpected argument \"" + arg + "\" (flags start with --)");
    }
    std::string name = arg.substr(2);
    std::string value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (name != "help") {
      if (i + 1 >= args.size()) return InvalidArgumentError("--" + name + ": missing value");
      value = args[++i];
    }
    if (name == "config" || name == "help") continue;  // handled by LoadServerConfig
    if (name == "model") {
      ASSIGN_OR_RETURN(ModelConfig model, ParseModelFlag(value));
      flag_models.push_back(std::move(model));
      continue;
    }
    auto flag = FlagKeys().find(name);
    if (flag == FlagKeys().end()) {
      return InvalidArgumentError("unknown flag --" + name + " (see --help)");
    }
    if (flag->second == "default_model") default_model_flag = true;
    RETURN_IF_ERROR(ScalarKeys().at(flag->second)("--" + name, value, config));
  }
  // --model replaces the configured model list (repeat it to serve several);
  // unless --default-model names one, the first given becomes the default.
  if (!flag_models.empty()) {
    const bool default_listed =
        std::any_of(flag_models.begin(), flag_models.end(),
                    [&](const ModelConfig& m) { return m.name == config->default_model; });
    if (!default_model_flag && !default_listed) config->default_model = flag_models.front().name;
    config->models = std::move(flag_models);
  }
  return Status::Ok();
}

Status ValidateConfig(const ServerConfig& c) {
  if (!ValidAddress(c.listen)) {
    return InvalidArgumentError("listen: \"" + c.listen + "\" is not HOST:PORT or unix:PATH");
  }
  if (!c.metrics_listen.empty() && !ValidAddress(c.metrics_listen)) {
    return InvalidArgumentError("metrics_listen: \"" + c.metrics_listen +
                                "\" is not HOST:PORT (or empty to disable)");
  }
  if (!c.http_listen.empty() && !ValidAddress(c.http_listen)) {
    return InvalidArgumentError("http_listen: \"" + c.http_listen +
                                "\" is not HOST:PORT (or empty to disable)");
  }
  // Whether the TLS files can be read and match is checked when the server
  // loads them (server/tls.h), naming the file.
  if (c.tls.cert.empty() != c.tls.key.empty()) {
    return InvalidArgumentError(c.tls.cert.empty()
                                    ? "tls_key: \"" + c.tls.key + "\" is set but tls_cert is not"
                                    : "tls_cert: \"" + c.tls.cert + "\" is set but tls_key is not");
  }
  if (!c.tls.client_ca.empty() && c.tls.cert.empty()) {
    return InvalidArgumentError("tls_client_ca: \"" + c.tls.client_ca +
                                "\" needs tls_cert and tls_key (mutual TLS is TLS first)");
  }
  if (c.data_dir.empty()) return InvalidArgumentError("data_dir: must not be empty");
  RETURN_IF_ERROR(ValidateStorage(c.storage).WithPrefix("storage"));
  // Whether GPU N exists is for the engine or index that opens it to say.
  if (StatusOr<Device> device = ParseDevice(c.device, AutoDevice::kResolve); !device.ok()) {
    return InvalidArgumentError("device: " + device.status().message());
  }
  if (StatusOr<Device> device = ParseDevice(c.index_device, AutoDevice::kReject); !device.ok()) {
    return InvalidArgumentError("index_device: " + device.status().message());
  }
  static const std::set<std::string> levels = {"trace", "debug",    "info", "warn",
                                               "error", "critical", "off"};
  if (!levels.count(c.log_level)) {
    return InvalidArgumentError("log_level: \"" + c.log_level +
                                "\" is not one of trace, debug, info, warn, error, critical, off");
  }
  if (c.precision != "auto")
    RETURN_IF_ERROR(ParseDType(c.precision).status().WithPrefix("precision"));
  RETURN_IF_ERROR(CheckRange("engine_threads", c.engine_threads, 0, 1024));
  RETURN_IF_ERROR(CheckRange("engine_replicas", c.engine_replicas, 0, 16));
  RETURN_IF_ERROR(CheckRange("handler_threads", c.handler_threads, 0, 4096));
  RETURN_IF_ERROR(CheckRange("snapshot_every_writes", c.snapshot_every_writes, 1,
                             std::numeric_limits<int64_t>::max()));
  RETURN_IF_ERROR(CheckRange("follow_poll_ms", c.follow_poll_ms, 1, 3600 * 1000));
  static const std::regex model_name("[A-Za-z0-9_.-]{1,64}");
  std::set<std::string> names;
  for (size_t i = 0; i < c.models.size(); ++i) {
    const ModelConfig& m = c.models[i];
    const std::string key = "models[" + std::to_string(i) + "]";
    if (!std::regex_match(m.name, model_name)) {
      return InvalidArgumentError(key + ".name: \"" + m.name +
                                  "\" must match [A-Za-z0-9_.-]{1,64}");
    }
    if (!names.insert(m.name).second) {
      return InvalidArgumentError(key + ".name: \"" + m.name + "\" is listed twice");
    }
    if (m.preset.empty()) return InvalidArgumentError(key + ".preset: must not be empty");
    if (m.weights.empty()) return InvalidArgumentError(key + ".weights: must not be empty");
    if (!m.precision.empty()) {
      RETURN_IF_ERROR(ParseDType(m.precision).status().WithPrefix(key + ".precision"));
    }
  }
  if (!c.models.empty() && !names.count(c.default_model)) {
    return InvalidArgumentError("default_model: \"" + c.default_model +
                                "\" is not one of the configured models");
  }
  const LimitsConfig& l = c.limits;
  // gRPC takes an int for message sizes.
  RETURN_IF_ERROR(CheckRange("limits.max_message_bytes", l.max_message_bytes, 1024,
                             std::numeric_limits<int>::max()));
  RETURN_IF_ERROR(
      CheckRange("limits.max_images_per_request", l.max_images_per_request, 1, 1 << 20));
  RETURN_IF_ERROR(CheckRange("limits.max_items_per_upsert", l.max_items_per_upsert, 1, 1 << 20));
  RETURN_IF_ERROR(
      CheckRange("limits.max_queries_per_search", l.max_queries_per_search, 1, 1 << 16));
  RETURN_IF_ERROR(CheckRange("limits.max_ids_per_request", l.max_ids_per_request, 1, 1 << 20));
  RETURN_IF_ERROR(CheckRange("limits.max_k", l.max_k, 1, kMaxK));
  RETURN_IF_ERROR(CheckRange("limits.max_texts_per_request", l.max_texts_per_request, 1, 1 << 20));
  RETURN_IF_ERROR(CheckRange("limits.max_text_bytes", l.max_text_bytes, 1, 1 << 24));
  RETURN_IF_ERROR(CheckRange("limits.max_image_pixels", l.max_image_pixels, 1, 1ll << 32));
  RETURN_IF_ERROR(CheckRange("limits.decode_threads", l.decode_threads, 0, 1024));
  RETURN_IF_ERROR(CheckRange("limits.max_pending_requests", l.max_pending_requests, 1, 1 << 20));
  const BatcherConfig& b = c.batcher;
  RETURN_IF_ERROR(CheckRange("batcher.max_batch", b.max_batch, 1, 4096));
  RETURN_IF_ERROR(CheckRange("batcher.max_delay_us", b.max_delay_us, 0, 10'000'000));
  RETURN_IF_ERROR(CheckRange("batcher.queue_capacity", b.queue_capacity, 1, 1 << 24));
  // A request's images are queued all at once, so one request must fit.
  if (b.queue_capacity < l.max_images_per_request) {
    return InvalidArgumentError("batcher.queue_capacity: " + std::to_string(b.queue_capacity) +
                                " is below limits.max_images_per_request (" +
                                std::to_string(l.max_images_per_request) + ")");
  }
  if (b.queue_capacity < l.max_texts_per_request) {
    return InvalidArgumentError("batcher.queue_capacity: " + std::to_string(b.queue_capacity) +
                                " is below limits.max_texts_per_request (" +
                                std::to_string(l.max_texts_per_request) + ")");
  }
  if (c.metrics_require_key && c.api_keys.empty()) {
    return InvalidArgumentError("metrics_require_key: true needs api_keys (a keys file)");
  }
  return Status::Ok();
}

StatusOr<ServerConfig> LoadServerConfig(const std::vector<std::string>& args, bool* help) {
  *help = false;
  ServerConfig config;
  std::string config_path;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      *help = true;
      return config;
    }
    if (args[i] == "--config") {
      if (i + 1 >= args.size()) return InvalidArgumentError("--config: missing value");
      config_path = args[i + 1];
    } else if (args[i].rfind("--config=", 0) == 0) {
      config_path = args[i].substr(9);
    }
  }
  if (!config_path.empty()) {
    std::ifstream in(config_path, std::ios::binary);
    if (!in) return InvalidArgumentError("--config: cannot read \"" + config_path + "\"");
    std::stringstream text;
    text << in.rdbuf();
    RETURN_IF_ERROR(ApplyYamlConfig(text.str(), config_path, &config));
  }
  RETURN_IF_ERROR(ApplyFlags(args, &config));
  RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

std::string ConfigUsage() {
  return R"(Usage: lookalike-server [--config FILE] [flags]

Settings come from built-in defaults, then the YAML file (configs/lookalike.yaml
documents every key), then these flags:
  --config FILE                 YAML configuration file
  --listen HOST:PORT            gRPC address (default 127.0.0.1:50051)
  --metrics-listen HOST:PORT    HTTP /metrics and /healthz ("" disables; default 127.0.0.1:9090)
  --http-listen HOST:PORT       HTTP/JSON API, web page, /metrics, /healthz (default "": off)
  --data-dir DIR                collections (SQLite) and index snapshots (default data)
  --storage sqlite|URI          sqlite (default) or postgresql://user@host:port/db, shared by servers
  --device auto|cpu|cuda[:N]    where models run (auto: cuda when available)
  --index-device cpu|cuda[:N]   where search indexes live (default cpu)
  --precision auto|fp32|fp16|bf16  models' precision where models[].precision is unset (auto: fp32
                                on cpu, fp16 on cuda; bf16 on cpu needs avx512_bf16 or amx_bf16)
  --model NAME=PRESET:WEIGHTS   serve a model (repeatable; replaces the configured list; the
                                first one is the default unless --default-model names another)
  --default-model NAME          model for requests and collections that name none
  --engine-threads N            CPU backend threads per model (0 = all cores)
  --engine-replicas N           engines per model, each with its own weights and CUDA stream
                                (0 = auto: 2 on cuda, 1 on cpu)
  --handler-threads N           RPC worker threads (0 = max(32, 4 x cores))
  --snapshot-every-writes N     index snapshot after N changed items
  --follow-poll-ms N            PostgreSQL storage: poll for other servers' changes every N ms
                                when no notification came (default 1000)
  --log-level LEVEL             trace|debug|info|warn|error|critical|off
  --max-message-bytes N         --max-images-per-request N   --max-items-per-upsert N
  --max-ids-per-request N       --max-queries-per-search N   --max-k N (<= 2048)
  --max-image-pixels N          --max-texts-per-request N    --max-text-bytes N
  --decode-threads N            --max-batch N                --max-delay-us N
  --queue-capacity N            --max-pending-requests N
  --api-keys FILE               API keys file (docs/security.md); calls then need
                                "authorization: Bearer <key>" (default "": no keys)
  --metrics-require-key true    /metrics needs a key too (default false: open)
  --tls-cert FILE               TLS on every listener: the server's PEM certificate chain
  --tls-key FILE                ... and its PEM private key (both or neither)
  --tls-client-ca FILE          mutual TLS: clients must present a certificate signed by
                                these PEM CA certificates (gRPC and http_listen)
                                SIGHUP re-reads the three files (docs/security.md)
)";
}

bool IsLoopbackAddress(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) return true;
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost" || host == "::1") return true;
  // 127.0.0.0/8, written as four dotted numbers.
  unsigned a = 0, b = 0, c = 0, d = 0;
  char rest = 0;
  return std::sscanf(host.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &rest) == 4 && a == 127 &&
         b < 256 && c < 256 && d < 256;
}

std::vector<std::string> ExposureWarnings(const ServerConfig& config) {
  std::vector<std::string> out;
  const bool tls = config.tls.enabled();
  const bool keys = !config.api_keys.empty();
  if (tls && keys) return out;
  for (const auto& [name, address] :
       {std::pair<const char*, const std::string*>{"listen", &config.listen},
        {"http_listen", &config.http_listen}}) {
    if (address->empty() || IsLoopbackAddress(*address)) continue;
    std::string line = std::string(name) + " \"" + *address + "\" is reachable from the network";
    if (!keys) {
      line += "; without api_keys anyone who reaches it can read, write and drop every collection";
    }
    if (!tls) {
      line += std::string("; without tls_cert/tls_key requests") + (keys ? ", API keys" : "") +
              " and results cross the network in clear text";
    }
    out.push_back(line + " (docs/security.md)");
  }
  return out;
}

}  // namespace lookalike
