#include "server/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

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
  prometheus::Family<prometheus::Gauge>& lag_seconds =
      prometheus::BuildGauge()
          .Name("lookalike_follow_lag_seconds")
          .Help("Seconds since this server first saw the oldest batch it has not applied")
          .Register(registry);

  std::mutex mu;  // guards samplers and the sampled gauges below
  Sampler queue_sampler;
  Sampler items_sampler;
  Sampler lag_batches_sampler;
  Sampler lag_seconds_sampler;
  std::map<std::string, prometheus::Gauge*> queue_gauges;
  std::map<std::string, prometheus::Gauge*> item_gauges;
  std::map<std::string, prometheus::Gauge*> lag_batches_gauges;
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

void Metrics::SetQueueDepthSampler(Sampler sampler) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->queue_sampler = std::move(sampler);
}

void Metrics::SetCollectionItemsSampler(Sampler sampler) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->items_sampler = std::move(sampler);
}

void Metrics::SetFollowLagSamplers(Sampler batches, Sampler seconds) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->lag_batches_sampler = std::move(batches);
  impl_->lag_seconds_sampler = std::move(seconds);
}

std::string Metrics::Render() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    Impl::Refresh(impl_->queue_sampler, "model", impl_->queue_depth, impl_->queue_gauges);
    Impl::Refresh(impl_->items_sampler, "collection", impl_->collection_items, impl_->item_gauges);
    Impl::Refresh(impl_->lag_batches_sampler, "collection", impl_->lag_batches,
                  impl_->lag_batches_gauges);
    Impl::Refresh(impl_->lag_seconds_sampler, "collection", impl_->lag_seconds,
                  impl_->lag_seconds_gauges);
  }
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

// ---- HTTP ---------------------------------------------------------------------
//
// A deliberately small HTTP/1.1 responder: one thread accepts connections and
// answers each (GET or HEAD of /metrics or /healthz) before the next, then
// closes it. Every socket read has a deadline, request heads are capped at
// 8 KiB, and anything malformed gets a 4xx, so a bad client can delay a
// scrape by at most the deadline and never reaches gRPC. (civetweb was the
// first choice, but its worker threads use a small fixed stack that cannot
// hold this process's static TLS once CUDA and BLAS libraries are linked.)

namespace {

constexpr size_t kMaxRequestHead = 8192;
constexpr int kReadDeadlineMs = 2000;

void SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;
    }
    sent += static_cast<size_t>(n);
  }
}

std::string Response(int code, const char* reason, const std::string& content_type,
                     const std::string& body, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(code) + " " + reason +
                    "\r\nContent-Type: " + content_type +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

// Reads the request head (up to the blank line). False on timeout, close,
// or a head over the cap (then *too_large is set).
bool ReadHead(int fd, std::string* head, bool* too_large) {
  *too_large = false;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kReadDeadlineMs);
  char buf[2048];
  while (head->find("\r\n\r\n") == std::string::npos && head->find("\n\n") == std::string::npos) {
    if (head->size() > kMaxRequestHead) {
      *too_large = true;
      return false;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    head->append(buf, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

MetricsHttpServer::MetricsHttpServer(Metrics* metrics, std::function<bool()> healthy)
    : metrics_(metrics), healthy_(std::move(healthy)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

std::string MetricsHttpServer::Answer(const std::string& head) {
  // Request line: METHOD SP TARGET SP HTTP/1.x
  const size_t eol = head.find_first_of("\r\n");
  const std::string line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos ||
      line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    return Response(400, "Bad Request", "text/plain", "malformed request line\n", false);
  }
  const std::string method = line.substr(0, sp1);
  std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  const bool head_only = method == "HEAD";
  if (path != "/metrics" && path != "/healthz") {
    return Response(404, "Not Found", "text/plain", "try /metrics or /healthz\n", head_only);
  }
  if (method != "GET" && method != "HEAD") {
    return Response(405, "Method Not Allowed", "text/plain", "only GET\n", false);
  }
  if (path == "/healthz") {
    if (healthy_ && healthy_()) {
      return Response(200, "OK", "text/plain", "SERVING\n", head_only);
    }
    return Response(503, "Service Unavailable", "text/plain", "NOT_SERVING\n", head_only);
  }
  try {
    return Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", metrics_->Render(),
                    head_only);
  } catch (const std::exception& e) {
    return Response(500, "Internal Server Error", "text/plain", std::string(e.what()) + "\n",
                    head_only);
  }
}

void MetricsHttpServer::Serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    const int r = poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // e.g. the client gave up already
    std::string head;
    bool too_large = false;
    if (ReadHead(fd, &head, &too_large)) {
      SendAll(fd, Answer(head));
    } else if (too_large) {
      SendAll(fd, Response(431, "Request Header Fields Too Large", "text/plain",
                           "request head over 8 KiB\n", false));
    } else if (!head.empty()) {
      SendAll(fd, Response(400, "Bad Request", "text/plain", "incomplete request\n", false));
    }
    close(fd);
  }
}

Status MetricsHttpServer::Start(const std::string& address) {
  if (listen_fd_ >= 0) return FailedPreconditionError("metrics server already started");
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgumentError("metrics_listen: \"" + address + "\" is not HOST:PORT");
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found) != 0 ||
      found == nullptr) {
    return InvalidArgumentError("metrics_listen: cannot resolve \"" + address + "\"");
  }
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return UnavailableError("metrics_listen: cannot listen on \"" + address +
                            "\" (address in use or not valid)");
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  if (pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    close(fd);
    return InternalError("metrics server: cannot create a pipe");
  }
  listen_fd_ = fd;
  thread_ = std::thread([this] { Serve(); });
  return Status::Ok();
}

void MetricsHttpServer::Stop() {
  if (listen_fd_ < 0) return;
  const char byte = 1;
  (void)!write(stop_pipe_[1], &byte, 1);
  thread_.join();
  close(listen_fd_);
  close(stop_pipe_[0]);
  close(stop_pipe_[1]);
  listen_fd_ = -1;
}

}  // namespace lookalike
