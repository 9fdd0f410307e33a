// Metrics: Prometheus counters, gauges and histograms (prometheus-cpp core),
// exposed as text on an HTTP port at GET /metrics, with GET
// /healthz answering 200 "SERVING" or 503 "NOT_SERVING".
//
// Families:
//   lookalike_requests_total{method,code}          RPCs finished, by gRPC code name
//   lookalike_request_errors_total{method,code}    the non-OK subset
//   lookalike_request_duration_seconds{method}     histogram
//   lookalike_embed_batch_size{model}              histogram of images per engine call
//   lookalike_embed_queue_depth{model}             images waiting (sampled at scrape)
//   lookalike_collection_items{collection}         live items (sampled at scrape)
//   lookalike_follow_lag_batches{collection}       PostgreSQL storage: write batches committed
//                                                  through other servers, not yet in this
//                                                  server's index (sampled at scrape)
//   lookalike_follow_lag_items{collection}         ... the items upserted in them
//   lookalike_follow_lag_seconds{collection}       ... and seconds since the oldest was seen
//   lookalike_auth_failures_total{reason}          calls refused by API keys (server/auth.h):
//                                                  missing_key, unknown_key, permission_denied
//
// The metrics port is an HttpServer (server/http_server.h) with one I/O
// thread of its own; it never touches gRPC's. Malformed HTTP gets a 4xx and
// the connection is closed. The same two paths are also served on the HTTP
// API port (server/http_api.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "server/http_server.h"

namespace prometheus {
class Registry;
class Gauge;
template <typename T>
class Family;
}  // namespace prometheus

namespace lookalike {

class Authenticator;  // server/auth.h

class Metrics {
 public:
  Metrics();
  ~Metrics();

  // One finished RPC. `code` is the gRPC status code number (0 = OK).
  void ObserveRequest(const std::string& method, int code, double seconds);
  void ObserveBatch(const std::string& model, int batch_size);
  // One call refused by API keys; `reason` as in lookalike_auth_failures_total.
  void ObserveAuthFailure(const std::string& reason);

  // Sampled just before each scrape: (label value, value) pairs.
  using Sampler = std::function<std::vector<std::pair<std::string, double>>()>;
  void SetQueueDepthSampler(Sampler sampler);
  void SetCollectionItemsSampler(Sampler sampler);
  // Follower lag per collection (CollectionStats::follow_lag_*).
  void SetFollowLagSamplers(Sampler batches, Sampler items, Sampler seconds);

  // The text exposition format (version 0.0.4).
  std::string Render();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// GET/HEAD /metrics and /healthz (`healthy` may be null: not serving);
// nullopt for any other path. /metrics is checked by `auth`
// (Authenticator::CheckMetrics) when given: 401 or 403 in plain text.
// /healthz is always open.
std::optional<HttpResponse> MetricsEndpoint(const HttpRequest& request, Metrics* metrics,
                                            const std::function<bool()>& healthy,
                                            const Authenticator* auth = nullptr);

// Serves MetricsEndpoint on its own port (metrics_listen); 404 elsewhere.
class MetricsHttpServer {
 public:
  // `healthy` answers /healthz; `auth` (may be null) guards /metrics; all
  // must outlive the server. With `tls` the port speaks TLS only, without
  // asking for client certificates.
  MetricsHttpServer(Metrics* metrics, std::function<bool()> healthy,
                    const Authenticator* auth = nullptr,
                    std::shared_ptr<TlsCredentialStore> tls = nullptr);
  ~MetricsHttpServer();

  // address "HOST:PORT" (PORT 0 picks a free port; see port()).
  Status Start(const std::string& address);
  void Stop();
  int port() const;

 private:
  std::unique_ptr<HttpServer> http_;
};

// "OK", "INVALID_ARGUMENT", ... for gRPC code numbers 0..16.
const char* GrpcCodeName(int code);

}  // namespace lookalike
