// lookalike-server: loads the configured models, opens the collections of the
// data directory and serves lookalike.v1 over gRPC (plus /metrics over HTTP,
// and the HTTP/JSON API and web page when http_listen is set)
// until SIGTERM or SIGINT, then drains calls and snapshots every collection.
// SIGHUP re-reads the TLS certificate, key and client CA (docs/security.md).
//
// Exit codes: 0 clean shutdown, 1 start-up failure, 2 bad configuration.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/device.h"
#include "index/collection.h"
#include "models/embedder.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/decode.h"
#include "server/grpc_server.h"
#include "server/http_api.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/service.h"
#include "server/tls.h"

namespace lookalike {
namespace {

// OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, when libopencv_imgcodecs is
// loaded, which is before main(). To apply limits.max_image_pixels to
// OpenCV's own check we set the variable and re-execute this binary once.
// The server's header check applies the limit either way.
void ApplyOpenCvPixelLimit(int64_t max_pixels, char** argv) {
  if (SetOpenCvPixelLimitEnv(max_pixels)) return;
  if (std::getenv("LOOKALIKE_SERVER_REEXEC") != nullptr) return;  // never loop
  setenv("LOOKALIKE_SERVER_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  // execv only returns on failure: carry on with the header check alone.
  std::fprintf(stderr,
               "lookalike-server: warning: could not re-execute to apply "
               "OPENCV_IO_MAX_IMAGE_PIXELS; relying on header checks\n");
}

int Run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  bool help = false;
  StatusOr<ServerConfig> loaded = LoadServerConfig(args, &help);
  if (help) {
    std::cout << ConfigUsage();
    return 0;
  }
  if (!loaded.ok()) {
    std::cerr << "lookalike-server: configuration error: " << loaded.status().message() << "\n";
    return 2;
  }
  const ServerConfig config = std::move(loaded).value();
  // API keys (server/auth.h): a bad keys file is a configuration error.
  std::vector<ApiKey> api_keys;
  if (!config.api_keys.empty()) {
    StatusOr<std::vector<ApiKey>> keys = LoadApiKeys(config.api_keys);
    if (!keys.ok()) {
      std::cerr << "lookalike-server: configuration error: " << keys.status().message() << "\n";
      return 2;
    }
    api_keys = std::move(keys).value();
  }
  ApplyOpenCvPixelLimit(config.limits.max_image_pixels, argv);

  spdlog::set_default_logger(spdlog::stderr_color_mt("lookalike"));
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // Signals are taken synchronously by this thread (sigwait below); every
  // thread started from here on inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // TLS files are read and checked before anything slow starts; a bad set
  // is a configuration error naming the file.
  std::shared_ptr<TlsCredentialStore> tls;
  if (config.tls.enabled()) {
    StatusOr<std::shared_ptr<TlsCredentialStore>> loaded_tls = TlsCredentialStore::Load(config.tls);
    if (!loaded_tls.ok()) {
      spdlog::critical("configuration error: {}", loaded_tls.status().message());
      return 2;
    }
    tls = *std::move(loaded_tls);
    spdlog::info("TLS: certificate {}{}", tls->current()->summary,
                 tls->mutual() ? "; client certificates required (tls_client_ca \"" +
                                     config.tls.client_ca + "\")"
                               : "");
  }

  // "auto" is resolved here, once (common/device.h); the config checked the syntax.
  StatusOr<Device> parsed_device = ParseDevice(config.device, AutoDevice::kResolve);
  if (!parsed_device.ok()) {
    spdlog::critical("device: {}", parsed_device.status().message());
    return 1;
  }
  const Device model_device = *parsed_device;
  const std::string device = model_device.ToString();
  if (config.device == "auto" && !model_device.is_cuda()) {
    spdlog::info("models run on {} ({})", device, CudaUnavailableReason());
  } else {
    spdlog::info("models run on {}", device);
  }

  std::vector<ServedModel> models;
  for (const ModelConfig& m : config.models) {
    EmbedderOptions options;
    options.preset = m.preset;
    options.weights_path = m.weights;
    options.device = device;
    options.num_threads = config.engine_threads;
    options.precision = m.precision.empty() ? config.precision : m.precision;
    options.max_batch = config.batcher.max_batch;
    const int replicas =
        config.engine_replicas > 0 ? config.engine_replicas : (model_device.is_cuda() ? 2 : 1);
    // CPU replicas share the cores: engine_threads 0 gives each cores / replicas
    // threads (at least 1) rather than every replica a thread per core.
    if (!model_device.is_cuda() && config.engine_threads == 0 && replicas > 1) {
      options.num_threads =
          std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / replicas);
    }
    ServedModel served;
    served.name = m.name;
    for (int r = 0; r < replicas; ++r) {
      StatusOr<std::unique_ptr<Embedder>> embedder = Embedder::Load(options);
      if (!embedder.ok()) {
        spdlog::critical("model \"{}\" (preset {}, weights {}), engine {} of {}: {}", m.name,
                         m.preset, m.weights, r + 1, replicas, embedder.status().ToString());
        return 1;
      }
      if (r == 0) {
        served.info = (*embedder)->info();
        served.embedder = std::shared_ptr<Embedder>(std::move(*embedder));
      } else {
        served.more_replicas.push_back(std::shared_ptr<Embedder>(std::move(*embedder)));
      }
    }
    StatusOr<std::shared_ptr<const ClipTokenizer>> tokenizer = LoadModelTokenizer(m, served.info);
    if (!tokenizer.ok()) {
      spdlog::critical("model \"{}\": {}", m.name, tokenizer.status().ToString());
      return 1;
    }
    served.tokenizer = *tokenizer;
    if (served.info.has_text && !served.tokenizer) {
      spdlog::warn(
          "model \"{}\": has a text tower but no tokenizer (set its tokenizer, or put "
          "vocab.json + merges.txt beside {}); serving images only",
          m.name, m.weights);
    }
    spdlog::info("model \"{}\": preset {}, dim {}, input {}x{}, backend {}, {} engine(s){}", m.name,
                 served.info.preset, served.info.dim, served.info.input_height,
                 served.info.input_width, served.info.backend, replicas,
                 served.tokenizer ? ", texts" : "");
    models.push_back(std::move(served));
  }

  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    spdlog::critical("data_dir \"{}\": {}", config.data_dir, ec.message());
    return 1;
  }
  CollectionManagerOptions manager_options;
  manager_options.data_dir = config.data_dir;
  manager_options.storage = config.storage;
  manager_options.index_device = config.index_device;
  manager_options.snapshot_every_writes = config.snapshot_every_writes;
  manager_options.follow_poll_ms = config.follow_poll_ms;
  StatusOr<std::unique_ptr<CollectionManager>> manager = CollectionManager::Open(manager_options);
  if (!manager.ok()) {
    spdlog::critical("data_dir \"{}\": {}", config.data_dir, manager.status().ToString());
    return 1;
  }
  spdlog::info("data_dir \"{}\": {} collection(s)", config.data_dir, (*manager)->List().size());

  Metrics metrics;
  std::unique_ptr<Authenticator> auth;
  if (!api_keys.empty()) {
    spdlog::info("API keys: {} key(s) from {}; /metrics {}", api_keys.size(), config.api_keys,
                 config.metrics_require_key ? "needs a key" : "open");
    auth =
        std::make_unique<Authenticator>(std::move(api_keys), &metrics, config.metrics_require_key);
  }
  ServiceOptions service_options;
  service_options.auth = auth.get();
  service_options.limits = config.limits;
  service_options.batcher = config.batcher;
  service_options.handler_threads = config.handler_threads;
  service_options.default_model = config.models.empty() ? "" : config.default_model;
  LookalikeService service(service_options, manager->get(), std::move(models), &metrics);
  metrics.SetQueueDepthSampler([&service] { return service.QueueDepths(); });
  CollectionManager* collections = manager->get();
  // One sampler per gauge family, each reading CollectionStats.
  auto per_collection = [collections](double (*value)(const CollectionStats&)) {
    return [collections, value] {
      std::vector<std::pair<std::string, double>> out;
      for (const std::string& name : collections->List()) {
        StatusOr<std::shared_ptr<Collection>> c = collections->Get(name);
        if (c.ok()) out.emplace_back(name, value((*c)->Stats()));
      }
      return out;
    };
  };
  metrics.SetCollectionItemsSampler(
      per_collection([](const CollectionStats& s) { return static_cast<double>(s.count); }));
  metrics.SetFollowLagSamplers(
      per_collection(
          [](const CollectionStats& s) { return static_cast<double>(s.follow_lag_batches); }),
      per_collection(
          [](const CollectionStats& s) { return static_cast<double>(s.follow_lag_items); }),
      per_collection([](const CollectionStats& s) { return s.follow_lag_seconds; }));

  StatusOr<std::unique_ptr<GrpcServer>> grpc_server =
      GrpcServer::Start(config.listen, config.limits.max_message_bytes, &service, tls);
  if (!grpc_server.ok()) {
    spdlog::critical("{}", grpc_server.status().message());
    return 1;
  }
  GrpcServer* server = grpc_server->get();
  MetricsHttpServer http(
      &metrics, [server] { return server->serving(); }, auth.get(), tls);
  // The API port serves /metrics and /healthz too: one port when both name it.
  if (!config.metrics_listen.empty() && config.metrics_listen != config.http_listen) {
    Status s = http.Start(config.metrics_listen);
    if (!s.ok()) {
      spdlog::critical("{}", s.message());
      return 1;
    }
    const std::string host = config.metrics_listen.substr(0, config.metrics_listen.rfind(':'));
    spdlog::info("metrics on {}://{}:{}/metrics", tls ? "https" : "http", host, http.port());
  }
  HttpApi http_api(
      &service, &metrics, [server] { return server->serving(); }, config.limits.max_message_bytes);
  HttpServerOptions api_options = http_api.ServerOptions();
  api_options.tls = tls;
  HttpServer api_server(api_options, [&http_api](HttpRequest request, HttpServer::Respond respond) {
    http_api.Handle(std::move(request), std::move(respond));
  });
  if (!config.http_listen.empty()) {
    Status s = api_server.Start(config.http_listen, "http_listen");
    if (!s.ok()) {
      spdlog::critical("{}", s.message());
      return 1;
    }
    const std::string host = config.http_listen.substr(0, config.http_listen.rfind(':'));
    spdlog::info("HTTP/JSON API and web page on {}://{}:{}/", tls ? "https" : "http", host,
                 api_server.port());
  }
  for (const std::string& warning : ExposureWarnings(config)) spdlog::warn("{}", warning);
  server->SetServing(true);
  const size_t colon = config.listen.rfind(':');
  spdlog::info("serving lookalike.v1 on {}:{}{}", config.listen.substr(0, colon), server->port(),
               tls ? " (TLS)" : "");

  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) {
    // New handshakes take the new files; open connections keep theirs.
    if (!tls) {
      spdlog::info("SIGHUP: no TLS configured, nothing to reload");
    } else if (Status s = tls->Reload(); !s.ok()) {
      spdlog::error("SIGHUP: TLS files refused, keeping the current ones: {}", s.message());
    } else {
      spdlog::info("SIGHUP: TLS reloaded: certificate {}", tls->current()->summary);
    }
  }
  spdlog::info("signal {}: draining calls", signal_number);
  server->Shutdown(std::chrono::seconds(10));
  api_server.Stop(std::chrono::seconds(10));  // answers its calls in progress first
  service.Shutdown();
  http.Stop();
  int failures = 0;
  for (const std::string& name : collections->List()) {
    StatusOr<std::shared_ptr<Collection>> c = collections->Get(name);
    if (!c.ok()) continue;
    Status s = (*c)->Snapshot();
    if (!s.ok()) {
      ++failures;
      spdlog::error("collection \"{}\": snapshot failed: {}", name, s.ToString());
    }
  }
  spdlog::info("stopped ({} snapshot failure(s))", failures);
  return 0;
}

}  // namespace
}  // namespace lookalike

int main(int argc, char** argv) { return lookalike::Run(argc, argv); }
