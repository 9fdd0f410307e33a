#include "server/metrics.h"

#include <civetweb.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <cstring>

namespace lookalike {

const char* GrpcCodeName(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",       "DATA_LOSS",
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
  prometheus::Family<prometheus::Gauge>& collection_items =
      prometheus::BuildGauge()
          .Name("lookalike_collection_items")
          .Help("Live items per collection")
          .Register(registry);

  std::mutex mu;  // guards samplers and the sampled gauges below
  Sampler queue_sampler;
  Sampler items_sampler;
  std::map<std::string, prometheus::Gauge*> queue_gauges;
  std::map<std::string, prometheus::Gauge*> item_gauges;

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

void Metrics::SetQueueDepthSampler(Sampler sampler) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->queue_sampler = std::move(sampler);
}

void Metrics::SetCollectionItemsSampler(Sampler sampler) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->items_sampler = std::move(sampler);
}

std::string Metrics::Render() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Impl::Refresh(impl_->queue_sampler, "model", impl_->queue_depth, impl_->queue_gauges);
    Impl::Refresh(impl_->items_sampler, "collection", impl_->collection_items,
                  impl_->item_gauges);
  }
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

// ---- HTTP ---------------------------------------------------------------------

MetricsHttpServer::MetricsHttpServer(Metrics* metrics, std::function<bool()> healthy)
    : metrics_(metrics), healthy_(std::move(healthy)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

namespace {

bool IsGetOrHead(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  return info != nullptr && info->request_method != nullptr &&
         (std::strcmp(info->request_method, "GET") == 0 ||
          std::strcmp(info->request_method, "HEAD") == 0);
}

void Reply(mg_connection* conn, int code, const char* reason, const std::string& content_type,
           const std::string& body) {
  const mg_request_info* info = mg_get_request_info(conn);
  const bool head = info && info->request_method && std::strcmp(info->request_method, "HEAD") == 0;
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            code, reason, content_type.c_str(), body.size());
  if (!head) mg_write(conn, body.data(), body.size());
}

}  // namespace

int MetricsHttpServer::HandleMetrics(mg_connection* conn, void* self) {
  if (!IsGetOrHead(conn)) {
    Reply(conn, 405, "Method Not Allowed", "text/plain", "only GET\n");
    return 405;
  }
  try {
    const std::string body = static_cast<MetricsHttpServer*>(self)->metrics_->Render();
    Reply(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    return 200;
  } catch (const std::exception& e) {
    Reply(conn, 500, "Internal Server Error", "text/plain", std::string(e.what()) + "\n");
    return 500;
  }
}

int MetricsHttpServer::HandleHealth(mg_connection* conn, void* self) {
  if (!IsGetOrHead(conn)) {
    Reply(conn, 405, "Method Not Allowed", "text/plain", "only GET\n");
    return 405;
  }
  auto* server = static_cast<MetricsHttpServer*>(self);
  const bool ok = server->healthy_ && server->healthy_();
  if (ok) {
    Reply(conn, 200, "OK", "text/plain", "SERVING\n");
    return 200;
  }
  Reply(conn, 503, "Service Unavailable", "text/plain", "NOT_SERVING\n");
  return 503;
}

Status MetricsHttpServer::Start(const std::string& address) {
  if (ctx_ != nullptr) return FailedPreconditionError("metrics server already started");
  static const unsigned kInit = mg_init_library(0);
  (void)kInit;
  // civetweb takes "HOST:PORT" and "[V6]:PORT" listening specs.
  const char* options[] = {"listening_ports", address.c_str(),
                           "num_threads",     "2",
                           "request_timeout_ms", "10000",
                           "enable_keep_alive", "no",
                           nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  // Silence civetweb's own stderr logging; failures surface via mg_start.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  ctx_ = mg_start(&callbacks, this, options);
  if (ctx_ == nullptr) {
    return UnavailableError("metrics_listen: cannot listen on \"" + address + "\"");
  }
  mg_set_request_handler(ctx_, "/metrics$", &MetricsHttpServer::HandleMetrics, this);
  mg_set_request_handler(ctx_, "/healthz$", &MetricsHttpServer::HandleHealth, this);
  mg_server_port ports[4];
  const int n = mg_get_server_ports(ctx_, 4, ports);
  port_ = n > 0 ? ports[0].port : 0;
  return Status::Ok();
}

void MetricsHttpServer::Stop() {
  if (ctx_ != nullptr) {
    mg_stop(ctx_);
    ctx_ = nullptr;
  }
}

}  // namespace lookalike
