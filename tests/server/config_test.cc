#include "server/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "index/types.h"

namespace lookalike {
namespace {

std::string ErrorOf(const std::string& yaml) {
  ServerConfig config;
  Status s = ApplyYamlConfig(yaml, "test.yaml", &config);
  if (s.ok()) s = ValidateConfig(config);
  return s.ok() ? "" : s.message();
}

TEST(ConfigTest, DefaultsAreValid) {
  ServerConfig config;
  EXPECT_TRUE(ValidateConfig(config).ok());
  EXPECT_EQ(config.listen, "127.0.0.1:50051");
  EXPECT_EQ(config.metrics_listen, "127.0.0.1:9090");
  ASSERT_EQ(config.models.size(), 1u);
  EXPECT_EQ(config.models[0].weights, "weights/efficientnet_lite0.safetensors");
}

// The shipped file documents the defaults: loading it must change nothing.
TEST(ConfigTest, ShippedYamlEqualsDefaults) {
  std::ifstream in(std::string(LOOKALIKE_SOURCE_DIR) + "/configs/lookalike.yaml");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  ServerConfig loaded;
  // Start from different values so every key in the file must be applied.
  loaded.listen = "x:1";
  loaded.limits.max_k = 5;
  loaded.batcher.max_delay_us = 7;
  loaded.models.clear();
  loaded.handler_threads = 3;
  loaded.storage = "postgresql://x/y";
  loaded.tls = {"c.pem", "k.pem", "ca.pem"};
  loaded.precision = "bf16";
  ASSERT_TRUE(ApplyYamlConfig(text.str(), "lookalike.yaml", &loaded).ok());
  ServerConfig defaults;
  EXPECT_EQ(loaded.listen, defaults.listen);
  EXPECT_EQ(loaded.metrics_listen, defaults.metrics_listen);
  EXPECT_EQ(loaded.http_listen, defaults.http_listen);
  EXPECT_EQ(loaded.data_dir, defaults.data_dir);
  EXPECT_EQ(loaded.storage, defaults.storage);
  EXPECT_EQ(loaded.device, defaults.device);
  EXPECT_EQ(loaded.index_device, defaults.index_device);
  EXPECT_EQ(loaded.precision, defaults.precision);
  EXPECT_EQ(loaded.engine_threads, defaults.engine_threads);
  EXPECT_EQ(loaded.handler_threads, defaults.handler_threads);
  EXPECT_EQ(loaded.snapshot_every_writes, defaults.snapshot_every_writes);
  EXPECT_EQ(loaded.follow_poll_ms, defaults.follow_poll_ms);
  EXPECT_EQ(loaded.log_level, defaults.log_level);
  EXPECT_EQ(loaded.default_model, defaults.default_model);
  ASSERT_EQ(loaded.models.size(), 1u);
  EXPECT_EQ(loaded.models[0].name, defaults.models[0].name);
  EXPECT_EQ(loaded.models[0].preset, defaults.models[0].preset);
  EXPECT_EQ(loaded.models[0].weights, defaults.models[0].weights);
  EXPECT_EQ(loaded.models[0].precision, defaults.models[0].precision);
  EXPECT_EQ(loaded.limits.max_message_bytes, defaults.limits.max_message_bytes);
  EXPECT_EQ(loaded.limits.max_images_per_request, defaults.limits.max_images_per_request);
  EXPECT_EQ(loaded.limits.max_items_per_upsert, defaults.limits.max_items_per_upsert);
  EXPECT_EQ(loaded.limits.max_queries_per_search, defaults.limits.max_queries_per_search);
  EXPECT_EQ(loaded.limits.max_k, defaults.limits.max_k);
  EXPECT_EQ(loaded.limits.max_image_pixels, defaults.limits.max_image_pixels);
  EXPECT_EQ(loaded.limits.decode_threads, defaults.limits.decode_threads);
  EXPECT_EQ(loaded.batcher.max_batch, defaults.batcher.max_batch);
  EXPECT_EQ(loaded.batcher.max_delay_us, defaults.batcher.max_delay_us);
  EXPECT_EQ(loaded.batcher.queue_capacity, defaults.batcher.queue_capacity);
  EXPECT_EQ(loaded.tls.cert, defaults.tls.cert);
  EXPECT_EQ(loaded.tls.key, defaults.tls.key);
  EXPECT_EQ(loaded.tls.client_ca, defaults.tls.client_ca);
}

TEST(ConfigTest, YamlOverridesNestedKeys) {
  ServerConfig config;
  ASSERT_TRUE(ApplyYamlConfig(R"(
listen: 0.0.0.0:6000
limits:
  max_k: 100
batcher:
  max_batch: 8
models:
  - name: a
    preset: resnet18
    weights: /w/a.safetensors
    tokenizer: /w/clip/vocab.json
    precision: bf16
  - name: b
    weights: /w/b.safetensors
default_model: b
)",
                              "t.yaml", &config)
                  .ok());
  EXPECT_EQ(config.listen, "0.0.0.0:6000");
  EXPECT_EQ(config.limits.max_k, 100);
  EXPECT_EQ(config.limits.max_items_per_upsert, 4096);  // untouched
  EXPECT_EQ(config.batcher.max_batch, 8);
  ASSERT_EQ(config.models.size(), 2u);
  EXPECT_EQ(config.models[1].preset, "b");  // preset defaults to the name
  EXPECT_EQ(config.models[0].tokenizer, "/w/clip/vocab.json");
  EXPECT_EQ(config.models[1].tokenizer, "");  // beside the weights
  EXPECT_EQ(config.models[0].precision, "bf16");
  EXPECT_EQ(config.models[1].precision, "");  // the server's `precision`
  EXPECT_EQ(config.precision, "auto");
  EXPECT_TRUE(ValidateConfig(config).ok());
}

TEST(ConfigTest, UnknownKeysAreErrors) {
  EXPECT_EQ(ErrorOf("listn: a:1\n"), "test.yaml:1: unknown key \"listn\"");
  EXPECT_EQ(ErrorOf("limits:\n  max_kk: 3\n"), "test.yaml:2: unknown key \"limits.max_kk\"");
  EXPECT_EQ(
      ErrorOf("models:\n  - name: a\n    weight: w\n"),
      "test.yaml:3: unknown key \"models[0].weight\" (expected name, preset, weights, tokenizer, "
      "precision)");
}

TEST(ConfigTest, PrecisionIsCheckedAtStartup) {
  EXPECT_EQ(ErrorOf("precision: fp8\n"),
            "precision: precision \"fp8\" is not one of fp32, fp16, bf16");
  EXPECT_EQ(ErrorOf("models:\n  - name: a\n    weights: w\n    precision: double\n"),
            "models[0].precision: precision \"double\" is not one of fp32, fp16, bf16");
  EXPECT_EQ(ErrorOf("precision: fp32\ndefault_model: a\nmodels:\n  - name: a\n    weights: w\n"
                    "    precision: bf16\n"),
            "");
}

TEST(ConfigTest, BadValuesNameKeyAndValue) {
  EXPECT_EQ(ErrorOf("limits:\n  max_k: lots\n"),
            "test.yaml:2: limits.max_k: expected an integer, got \"lots\"");
  EXPECT_EQ(ErrorOf("limits:\n  max_k: 4096\n"), "limits.max_k: " + std::to_string(kMaxK * 2) +
                                                     " is out of range [1, " +
                                                     std::to_string(kMaxK) + "]");
  EXPECT_EQ(ErrorOf("limits:\n  max_ids_per_request: 0\n"),
            "limits.max_ids_per_request: 0 is out of range [1, 1048576]");
  EXPECT_EQ(ErrorOf("device: tpu\n"),
            "device: unknown device 'tpu' (expected \"cpu\", \"cuda\", \"cuda:N\" with 0 <= N < "
            "1024 or \"auto\")");
  EXPECT_EQ(ErrorOf("index_device: auto\n"),
            "index_device: unknown device 'auto' (expected \"cpu\", \"cuda\", \"cuda:N\" with 0 "
            "<= N < 1024)");
  EXPECT_EQ(ErrorOf("listen: nowhere\n"), "listen: \"nowhere\" is not HOST:PORT or unix:PATH");
  EXPECT_EQ(ErrorOf("log_level: loud\n"),
            "log_level: \"loud\" is not one of trace, debug, info, warn, error, critical, off");
  EXPECT_EQ(ErrorOf("default_model: nope\n"),
            "default_model: \"nope\" is not one of the configured models");
  EXPECT_EQ(ErrorOf("batcher:\n  queue_capacity: 10\n"),
            "batcher.queue_capacity: 10 is below limits.max_images_per_request (256)");
  EXPECT_EQ(ErrorOf("limits: 3\n"), "test.yaml:1: limits: expected a map");
  // A URI may hold a password: only its scheme is repeated.
  EXPECT_EQ(ErrorOf("storage: mysql://u:secret@h/db\n"),
            "storage: unknown storage 'mysql://': expected sqlite or a "
            "postgresql://user@host:port/db URI");
  EXPECT_NE(ErrorOf("listen: [a\n").find("test.yaml: invalid YAML"), std::string::npos);
}

TEST(ConfigTest, FlagsOverrideYamlAndModelsRepeat) {
  const std::string path = testing::TempDir() + "/flags.yaml";
  {
    std::ofstream out(path);
    out << "listen: 127.0.0.1:1111\ndata_dir: /from/yaml\nlimits:\n  max_k: 50\n";
  }
  bool help = false;
  StatusOr<ServerConfig> config =
      LoadServerConfig({"--config", path, "--listen=0.0.0.0:2222", "--max-k", "60", "--model",
                        "a=resnet18:/w/a.safetensors", "--model", "b=vit_b16:C:/w/b.safetensors",
                        "--default-model", "b", "--device", "cuda:1"},
                       &help);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_FALSE(help);
  EXPECT_EQ(config->listen, "0.0.0.0:2222");
  EXPECT_EQ(config->data_dir, "/from/yaml");
  EXPECT_EQ(config->limits.max_k, 60);
  EXPECT_EQ(config->device, "cuda:1");
  ASSERT_EQ(config->models.size(), 2u);
  EXPECT_EQ(config->models[0].name, "a");
  EXPECT_EQ(config->models[0].preset, "resnet18");
  EXPECT_EQ(config->models[1].weights, "C:/w/b.safetensors");  // ':' kept after the first
}

TEST(ConfigTest, EveryFlagReachesItsKey) {
  bool help = false;
  StatusOr<ServerConfig> c = LoadServerConfig({"--metrics-listen",
                                               "",
                                               "--http-listen",
                                               "127.0.0.1:8080",
                                               "--data-dir",
                                               "/d",
                                               "--storage",
                                               "postgresql://u@h:5432/db",
                                               "--index-device",
                                               "cuda:0",
                                               "--precision",
                                               "bf16",
                                               "--log-level",
                                               "debug",
                                               "--engine-threads",
                                               "3",
                                               "--engine-replicas",
                                               "4",
                                               "--handler-threads",
                                               "5",
                                               "--snapshot-every-writes",
                                               "7",
                                               "--follow-poll-ms",
                                               "250",
                                               "--max-message-bytes",
                                               "2048",
                                               "--max-images-per-request",
                                               "9",
                                               "--max-items-per-upsert",
                                               "10",
                                               "--max-ids-per-request",
                                               "17",
                                               "--max-queries-per-search",
                                               "11",
                                               "--max-image-pixels",
                                               "12",
                                               "--max-texts-per-request",
                                               "6",
                                               "--max-text-bytes",
                                               "100",
                                               "--decode-threads",
                                               "13",
                                               "--max-batch",
                                               "14",
                                               "--max-delay-us",
                                               "15",
                                               "--queue-capacity",
                                               "16"},
                                              &help);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->metrics_listen, "");
  EXPECT_EQ(c->http_listen, "127.0.0.1:8080");
  EXPECT_EQ(c->data_dir, "/d");
  EXPECT_EQ(c->storage, "postgresql://u@h:5432/db");
  EXPECT_EQ(c->index_device, "cuda:0");
  EXPECT_EQ(c->precision, "bf16");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->engine_threads, 3);
  EXPECT_EQ(c->engine_replicas, 4);
  EXPECT_EQ(c->handler_threads, 5);
  EXPECT_EQ(c->snapshot_every_writes, 7);
  EXPECT_EQ(c->follow_poll_ms, 250);
  EXPECT_EQ(c->limits.max_message_bytes, 2048);
  EXPECT_EQ(c->limits.max_images_per_request, 9);
  EXPECT_EQ(c->limits.max_items_per_upsert, 10);
  EXPECT_EQ(c->limits.max_ids_per_request, 17);
  EXPECT_EQ(c->limits.max_queries_per_search, 11);
  EXPECT_EQ(c->limits.max_image_pixels, 12);
  EXPECT_EQ(c->limits.max_texts_per_request, 6);
  EXPECT_EQ(c->limits.max_text_bytes, 100);
  EXPECT_EQ(c->limits.decode_threads, 13);
  EXPECT_EQ(c->batcher.max_batch, 14);
  EXPECT_EQ(c->batcher.max_delay_us, 15);
  EXPECT_EQ(c->batcher.queue_capacity, 16);
}

// --model replaces the models; with no --default-model the first one given is
// the default (it used to stay "efficientnet_lite0", which refused to start).
TEST(ConfigTest, FirstModelFlagBecomesTheDefault) {
  bool help = false;
  StatusOr<ServerConfig> c = LoadServerConfig(
      {"--model", "r50=resnet50:r50.safetensors", "--model", "v=vit_b16:v"}, &help);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->default_model, "r50");
  c = LoadServerConfig(
      {"--model", "r50=resnet50:r50.safetensors", "--model", "v=vit_b16:v", "--default-model", "v"},
      &help);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->default_model, "v");
  // Order of flags does not matter.
  c = LoadServerConfig(
      {"--default-model", "v", "--model", "r50=resnet50:r", "--model", "v=vit_b16:v"}, &help);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->default_model, "v");
}

TEST(ConfigTest, FlagErrors) {
  bool help = false;
  auto error = [&](std::vector<std::string> args) {
    StatusOr<ServerConfig> c = LoadServerConfig(args, &help);
    return c.ok() ? std::string() : c.status().message();
  };
  EXPECT_EQ(error({"--nope", "1"}), "unknown flag --nope (see --help)");
  EXPECT_EQ(error({"--max-batch"}), "--max-batch: missing value");
  EXPECT_EQ(error({"--max-batch", "x"}), "--max-batch: expected an integer, got \"x\"");
  EXPECT_EQ(error({"--model", "resnet18"}),
            "--model: expected NAME=PRESET:WEIGHTS, got \"resnet18\"");
  EXPECT_EQ(error({"--config", "/does/not/exist.yaml"}),
            "--config: cannot read \"/does/not/exist.yaml\"");
  EXPECT_EQ(error({"stray"}), "unexpected argument \"stray\" (flags start with --)");
  EXPECT_EQ(error({"--engine-replicas", "17"}), "engine_replicas: 17 is out of range [0, 16]");
  EXPECT_EQ(error({"--model", "x=resnet18:w", "--default-model", "efficientnet_lite0"}),
            "default_model: \"efficientnet_lite0\" is not one of the configured models");
  StatusOr<ServerConfig> c = LoadServerConfig({"--help"}, &help);
  EXPECT_TRUE(help);
}

// API keys (server/auth.h): the file path and whether /metrics needs a key.
TEST(ConfigTest, ApiKeysSettings) {
  bool help = false;
  StatusOr<ServerConfig> c =
      LoadServerConfig({"--api-keys", "/etc/keys.yaml", "--metrics-require-key", "true"}, &help);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->api_keys, "/etc/keys.yaml");
  EXPECT_TRUE(c->metrics_require_key);
  ServerConfig yaml;
  ASSERT_TRUE(
      ApplyYamlConfig("api_keys: k.yaml\nmetrics_require_key: true\n", "x.yaml", &yaml).ok());
  EXPECT_EQ(yaml.api_keys, "k.yaml");
  EXPECT_TRUE(yaml.metrics_require_key);
  // The shipped file documents the defaults: no keys, /metrics open.
  std::ifstream in(std::string(LOOKALIKE_SOURCE_DIR) + "/configs/lookalike.yaml");
  std::stringstream text;
  text << in.rdbuf();
  ASSERT_TRUE(ApplyYamlConfig(text.str(), "lookalike.yaml", &yaml).ok());
  EXPECT_EQ(yaml.api_keys, "");
  EXPECT_FALSE(yaml.metrics_require_key);

  Status bad = ApplyFlags({"--metrics-require-key", "yes"}, &yaml);
  EXPECT_NE(bad.message().find("--metrics-require-key: expected true or false, got \"yes\""),
            std::string::npos)
      << bad.ToString();
  c = LoadServerConfig({"--metrics-require-key", "true"}, &help);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("metrics_require_key: true needs api_keys"),
            std::string::npos);
}

// TLS keys and flags: the file contents are checked by the server at start
// (tests/server/tls_test.cc); here only their presence.
TEST(ConfigTest, TlsKeysAndFlags) {
  bool help = false;
  StatusOr<ServerConfig> c = LoadServerConfig(
      {"--tls-cert", "/c.pem", "--tls-key=/k.pem", "--tls-client-ca", "/ca.pem"}, &help);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->tls.cert, "/c.pem");
  EXPECT_EQ(c->tls.key, "/k.pem");
  EXPECT_EQ(c->tls.client_ca, "/ca.pem");
  EXPECT_TRUE(c->tls.enabled());
  EXPECT_FALSE(ServerConfig().tls.enabled());

  ServerConfig yaml;
  ASSERT_TRUE(ApplyYamlConfig("tls_cert: a.pem\ntls_key: b.pem\n", "t.yaml", &yaml).ok());
  EXPECT_EQ(yaml.tls.cert, "a.pem");
  EXPECT_EQ(yaml.tls.key, "b.pem");
  EXPECT_TRUE(ValidateConfig(yaml).ok());

  EXPECT_EQ(ErrorOf("tls_cert: a.pem\n"), "tls_cert: \"a.pem\" is set but tls_key is not");
  EXPECT_EQ(ErrorOf("tls_key: b.pem\n"), "tls_key: \"b.pem\" is set but tls_cert is not");
  EXPECT_EQ(ErrorOf("tls_client_ca: ca.pem\n"),
            "tls_client_ca: \"ca.pem\" needs tls_cert and tls_key (mutual TLS is TLS first)");
  EXPECT_EQ(ErrorOf("tls:\n  cert: a\n"), "test.yaml:1: unknown key \"tls\"");
}

}  // namespace
// Loopback listeners never warn; a network-reachable one warns for each of
// TLS and API keys that is missing.
TEST(ConfigTest, ExposureWarnings) {
  for (const char* a :
       {"127.0.0.1:50051", "127.1.2.3:1", "localhost:50051", "[::1]:50051", "unix:/tmp/l.sock"}) {
    EXPECT_TRUE(IsLoopbackAddress(a)) << a;
  }
  for (const char* a :
       {"0.0.0.0:50051", "[::]:50051", ":50051", "10.0.0.5:50051", "search.example.com:443",
        "128.0.0.1:1", "127.0.0.1.example.com:1", "127.0.0.300:1"}) {
    EXPECT_FALSE(IsLoopbackAddress(a)) << a;
  }
  ServerConfig c;  // defaults: loopback only
  EXPECT_TRUE(ExposureWarnings(c).empty());
  c.listen = "0.0.0.0:50051";
  c.http_listen = "127.0.0.1:8080";
  std::vector<std::string> w = ExposureWarnings(c);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("listen \"0.0.0.0:50051\" is reachable from the network"), std::string::npos);
  EXPECT_NE(w[0].find("without api_keys"), std::string::npos);
  EXPECT_NE(w[0].find("without tls_cert/tls_key"), std::string::npos);
  c.http_listen = "0.0.0.0:8080";
  c.api_keys = "keys.yaml";
  w = ExposureWarnings(c);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[1].find("without api_keys"), std::string::npos) << w[1];
  EXPECT_NE(w[1].find("API keys and results cross the network in clear text"), std::string::npos)
      << w[1];
  c.tls.cert = "c.pem";
  c.tls.key = "k.pem";
  EXPECT_TRUE(ExposureWarnings(c).empty());
  c.api_keys.clear();
  w = ExposureWarnings(c);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].find("clear text"), std::string::npos) << w[0];
}

}  // namespace lookalike
