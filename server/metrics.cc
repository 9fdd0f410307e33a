#include "server/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>

#include "server/auth.h"

namespace lookalike {

const char* GrpcCodeName(int code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  return (code >= 0 && code <= 16) ? kNames[code] : "UNKNOWN";
}

struct Metrics::Impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("lookalike_requests_total")
          .Help("RPCs finished, by method and gRPC status code")
          .Register(registry);
  prometheus::Family<prometheus::Counter>& errors =
      prometheus::BuildCounter()
          .Name("lookalike_request_errors_total")
          .Help("RPCs finished with a non-OK status, by method and code")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram()
          .Name("lookalike_request_duration_seconds")
          .Help("RPC latency from arrival to reply, by method")
          .Register(registry);
  prometheus::Family<prometheus::Histogram>& batch_size =
      prometheus::BuildHistogram()
          .Name("lookalike_embed_batch_size")
          .Help("Images per engine Embed call, by model")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& queue_depth =
      prometheus::BuildGauge()
          .Name("lookalike_embed_queue_depth")
          .Help("Images waiting in the model's batching queue")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& collection_items = prometheus::BuildGauge()
                                                                .Name("lookalike_collection_items")
                                                                .Help("Live items per collection")
                                                                .Register(registry);

  // Followers of a shared PostgreSQL storage (index/follower.h).
  prometheus::Family<prometheus::Gauge>& lag_batches =
      prometheus::BuildGauge()
          .Name("lookalike_follow_lag_batches")
          .Help("Write batches committed to the shared storage, not yet in this server's index")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& lag_items =
      prometheus::BuildGauge()
          .Name("lookalike_follow_lag_items")
          .Help("Items upserted in the batches this server's index has not applied yet")
          .Register(registry);
  prometheus::Family<prometheus::Gauge>& lag_seconds =
      prometheus::BuildGauge()
          .Name("lookalike_follow_lag_seconds")
          .Help("Seconds since this server first saw the oldest batch it has not applied")
          .Register(registry);

  prometheus::Family<prometheus::Counter>& auth_failures =
      prometheus::BuildCounter()
          .Name("lookalike_auth_failures_total")
          .Help("Calls refused by API keys: missing_key, unknown_key, permission_denied")
          .Register(registry);

  std::mutex mu;  // guards samplers and the sampled gauges below
  Sampler queue_sampler;
  Sampler items_sampler;
  Sampler lag_batches_sampler;
  Sampler lag_items_sampler;
  Sampler lag_seconds_sampler;
  std::map<std::string, prometheus::Gauge*> queue_gauges;
  std::map<std::string, prometheus::Gauge*> item_gauges;
  std::map<std::string, prometheus::Gauge*> lag_batches_gauges;
  std::map<std::string, prometheus::Gauge*> lag_items_gauges;
  std::map<std::string, prometheus::Gauge*> lag_seconds_gauges;

  // Sets one gauge per sampled label; removes gauges whose label disappeared
  // (a dropped collection).
  static void Refresh(const Sampler& sampler, const char* label,
                      prometheus::Family<prometheus::Gauge>& family,
                      std::map<std::string, prometheus::Gauge*>& gauges) {
    if (!sampler) return;
    std::map<std::string, prometheus::Gauge*> next;
    for (const auto& [name, value] : sampler()) {
      auto it = gauges.find(name);
      prometheus::Gauge* g = it != gauges.end() ? it->second : &family.Add({{label, name}});
      g->Set(value);
      next[name] = g;
      if (it != gauges.end()) gauges.erase(it);
    }
    for (auto& [name, g] : gauges) family.Remove(g);
    gauges = std::move(next);
  }
};

Metrics::Metrics() : impl_(std::make_unique<Impl>()) {}
Metrics::~Metrics() = default;

void Metrics::ObserveRequest(const std::string& method, int code, double seconds) {
  const std::string code_name = GrpcCodeName(code);
  impl_->requests.Add({{"method", method}, {"code", code_name}}).Increment();
  if (code != 0) impl_->errors.Add({{"method", method}, {"code", code_name}}).Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  impl_->latency.Add({{"method", method}}, kBuckets).Observe(seconds);
}

void Metrics::ObserveBatch(const std::string& model, int batch_size) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {1,  2,  4,   8,   16,
                                                                   32, 64, 128, 256, 512};
  impl_->batch_size.Add({{"model", model}}, kBuckets).Observe(batch_size);
}

void Metrics::ObserveAuthFailure(const std::string& reason) {
  impl_->auth_failures.Add({{"reason", reason}}).Increment();
}

void Metrics::SetQueueDepthSampler(Sampler sampler) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->queue_sampler = std::move(sampler);
}

void Metrics::SetCollectionItemsSampler(Sampler sampler) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->items_sampler = std::move(sampler);
}

void Metrics::SetFollowLagSamplers(Sampler batches, Sampler items, Sampler seconds) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->lag_batches_sampler = std::move(batches);
  impl_->lag_items_sampler = std::move(items);
  impl_->lag_seconds_sampler = std::move(seconds);
}

std::string Metrics::Render() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Impl::Refresh(impl_->queue_sampler, "model", impl_->queue_depth, impl_->queue_gauges);
    Impl::Refresh(impl_->items_sampler, "collection", impl_->collection_items, impl_->item_gauges);
    Impl::Refresh(impl_->lag_batches_sampler, "collection", impl_->lag_batches,
                  impl_->lag_batches_gauges);
    Impl::Refresh(impl_->lag_items_sampler, "collection", impl_->lag_items,
                  impl_->lag_items_gauges);
    Impl::Refresh(impl_->lag_seconds_sampler, "collection", impl_->lag_seconds,
                  impl_->lag_seconds_gauges);
  }
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

// ---- HTTP ---------------------------------------------------------------------

std::optional<HttpResponse> MetricsEndpoint(const HttpRequest& request, Metrics* metrics,
                                            const std::function<bool()>& healthy,
                                            const Authenticator* auth) {
  if (request.path != "/metrics" && request.path != "/healthz") return std::nullopt;
  if (std::optional<HttpResponse> refused = RefuseUnlessGet(request)) return refused;
  HttpResponse r;
  r.headers.emplace_back("Cache-Control", "no-store");
  r.head_only = request.method == "HEAD";
  if (request.path == "/healthz") {
    const bool serving = healthy && healthy();
    r.status = serving ? 200 : 503;
    r.body = serving ? "SERVING\n" : "NOT_SERVING\n";
    return r;
  }
  if (auth != nullptr) {
    const Status allowed = auth->CheckMetrics(request.Header("authorization"));
    if (!allowed.ok()) {
      r.status = allowed.code() == StatusCode::kUnauthenticated ? 401 : 403;
      if (r.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
      r.body = allowed.message() + "\n";
      return r;
    }
  }
  try {
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics->Render();
  } catch (const std::exception& e) {
    r.status = 500;
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::string(e.what()) + "\n";
  }
  return r;
}

MetricsHttpServer::MetricsHttpServer(Metrics* metrics, std::function<bool()> healthy,
                                     const Authenticator* auth,
                                     std::shared_ptr<TlsCredentialStore> tls) {
  HttpServerOptions options;
  // TLS with the server's certificate, but no client certificate asked for:
  // health probes and scrapers rarely carry one (docs/security.md#tls).
  options.tls = std::move(tls);
  options.tls_verify_clients = false;
  options.io_threads = 1;
  options.max_body_bytes = 0;  // GET and HEAD only
  options.read_timeout = std::chrono::milliseconds(2000);
  options.idle_timeout = std::chrono::milliseconds(2000);
  http_ =
      std::make_unique<HttpServer>(options, [metrics, healthy = std::move(healthy), auth](
                                                HttpRequest request, HttpServer::Respond respond) {
        std::optional<HttpResponse> answer = MetricsEndpoint(request, metrics, healthy, auth);
        if (!answer) {
          HttpResponse r;
          r.status = 404;
          r.body = "try /metrics or /healthz\n";
          r.head_only = request.method == "HEAD";
          answer = std::move(r);
        }
        respond(std::move(*answer));
      });
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

Status MetricsHttpServer::Start(const std::string& address) {
  return http_->Start(address, "metrics_listen");
}

void MetricsHttpServer::Stop() { http_->Stop(std::chrono::milliseconds(0)); }

int MetricsHttpServer::port() const { return http_->port(); }

}  // namespace lookalike
