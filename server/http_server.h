// A small asynchronous HTTP/1.1 server (Boost.Beast on Boost.Asio): the one
// HTTP implementation of the server, under the JSON API and web page
// (server/http_api.h) and the metrics port (server/metrics.h).
//
//   HttpServer server(options, [](HttpRequest request, HttpServer::Respond respond) {
//     respond(HttpResponse{200, "text/plain", "hello\n"});
//   });
//   RETURN_IF_ERROR(server.Start("127.0.0.1:8080"));
//
// Connections are served by `io_threads` event-loop threads: no thread per
// connection and none blocked on a slow client. The handler runs on an I/O
// thread and must not block there; it may keep `respond` and call it later
// from any thread (exactly once), so long work goes to a worker pool.
// Keep-alive: a connection carries one request at a time, any number in turn.
//
// TLS (HttpServerOptions::tls): every connection starts with a TLS handshake
// (within `read_timeout`); a client that does not complete one, plain HTTP
// included, is closed without an answer. The handshake uses the store's
// current credentials: after a TlsCredentialStore::Reload() new connections
// get the new certificate, open ones keep theirs.
//
// Limits and timeouts, each answered with an error and the connection closed:
//   head (request line + headers) over `max_head_bytes`   431
//   body over `max_body_bytes`                              413
//   malformed HTTP                                          400
//   request not fully received within `read_timeout`        closed (408 if the head had arrived)
//   idle keep-alive connection after `idle_timeout`         closed
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "server/tls.h"

namespace lookalike {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as sent: "/v1/x?y=1"
  std::string path;    // target without the query
  // Header names lower-cased; repeated headers joined with ", ".
  std::map<std::string, std::string> headers;
  std::string body;

  // "" when absent.
  std::string Header(const std::string& lower_case_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra headers (Cache-Control, ETag, Allow, ...). Content-Type and
  // Content-Length are set from the fields above.
  std::vector<std::pair<std::string, std::string>> headers;
  bool head_only = false;  // answer to HEAD: headers (with the body's length), no body
};

struct HttpServerOptions {
  int io_threads = 2;
  int64_t max_head_bytes = 8192;
  int64_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds read_timeout{30000};  // one request's head and body
  std::chrono::milliseconds idle_timeout{60000};  // between keep-alive requests
  // How an error the server produces itself (413, 431, 400, 408) is
  // written; default: text/plain with `message`.
  std::function<HttpResponse(int status, const std::string& message)> error_response;
  // TLS only when set (server/tls.h). With `tls_verify_clients` and a client
  // CA in the store, a client certificate signed by it is required.
  std::shared_ptr<TlsCredentialStore> tls;
  bool tls_verify_clients = true;
};

class HttpConnection;
template <typename Stream>
class HttpSession;

class HttpServer {
 public:
  using Respond = std::function<void(HttpResponse response)>;
  using Handler = std::function<void(HttpRequest request, Respond respond)>;

  HttpServer(HttpServerOptions options, Handler handler);
  ~HttpServer();  // Stop()

  // address "HOST:PORT" (PORT 0 picks a free port; see port()). `what`
  // names the address in errors ("http_listen").
  Status Start(const std::string& address, const std::string& what);
  // Stops accepting, waits up to `grace` for requests being handled to be
  // answered, then closes every connection and joins the I/O threads.
  // A `respond` called later is dropped.
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000));
  int port() const { return port_; }

 private:
  friend class HttpConnection;
  template <typename Stream>
  friend class HttpSession;
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with connections and pending responders
  int port_ = 0;
};

// 405 (Allow: GET, HEAD) unless the request is a GET or a HEAD; nullopt
// for those. For resources that are only read.
std::optional<HttpResponse> RefuseUnlessGet(const HttpRequest& request);

// The HTTP reason phrase of a status ("Not Found"); "" when unknown.
const char* HttpReason(int status);

// One path segment, percent-decoded (RFC 3986: "%2F" -> "/"; "+" stays "+").
// INVALID_ARGUMENT for a "%" not followed by two hex digits.
StatusOr<std::string> PercentDecode(const std::string& segment);
// The inverse for a path segment: every byte outside RFC 3986's unreserved
// set (A-Z a-z 0-9 - . _ ~) as %XX.
std::string PercentEncode(const std::string& segment);

// Whether an If-None-Match header value ("*", or a list of entity tags,
// weak ones included) matches `etag` (quotes included), by RFC 9110's weak
// comparison, as If-None-Match asks.
bool IfNoneMatchMatches(const std::string& if_none_match, const std::string& etag);

}  // namespace lookalike
