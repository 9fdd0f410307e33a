#include "server/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace lookalike {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

HttpResponse DefaultError(int status, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = message + "\n";
  return r;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const char* HttpReason(int status) {
  switch (status) {
    case 499:
      return "Client Closed Request";  // not in Beast's table
    default: {
      const beast::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
      return reason.data();  // Beast's phrases are string literals
    }
  }
}

std::optional<HttpResponse> RefuseUnlessGet(const HttpRequest& request) {
  if (request.method == "GET" || request.method == "HEAD") return std::nullopt;
  HttpResponse r;
  r.status = 405;
  r.headers.emplace_back("Allow", "GET, HEAD");
  r.body = request.method + " " + request.path + ": only GET and HEAD\n";
  return r;
}

StatusOr<std::string> PercentDecode(const std::string& segment) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(segment.size());
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out.push_back(segment[i]);
      continue;
    }
    const bool two_follow = i + 2 < segment.size();
    const int hi = two_follow ? hex(segment[i + 1]) : -1;
    const int lo = two_follow ? hex(segment[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return InvalidArgumentError("malformed percent-encoding at byte " + std::to_string(i) +
                                  " of \"" + segment +
                                  "\" (\"%\" must be followed by two hex digits)");
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::string PercentEncode(const std::string& segment) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : segment) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool IfNoneMatchMatches(const std::string& if_none_match, const std::string& etag) {
  auto opaque = [](std::string tag) {
    if (tag.compare(0, 2, "W/") == 0) tag.erase(0, 2);
    return tag;
  };
  const std::string want = opaque(etag);
  size_t start = 0;
  while (start <= if_none_match.size()) {
    size_t end = if_none_match.find(',', start);
    if (end == std::string::npos) end = if_none_match.size();
    std::string tag = if_none_match.substr(start, end - start);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) tag.erase(0, 1);
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) tag.pop_back();
    if (tag == "*" || (!tag.empty() && opaque(tag) == want)) return true;
    start = end + 1;
  }
  return false;
}

std::string HttpRequest::Header(const std::string& lower_case_name) const {
  auto it = headers.find(lower_case_name);
  return it == headers.end() ? std::string() : it->second;
}

class HttpConnection;

struct HttpServer::Impl {
  Impl(HttpServerOptions o, Handler h)
      : options(std::move(o)), handler(std::move(h)), acceptor(io), work(io.get_executor()) {
    if (!options.error_response) options.error_response = DefaultError;
  }

  void Accept();

  HttpServerOptions options;
  Handler handler;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;

  std::mutex mu;
  bool stopped = false;  // guarded by mu: responses are no longer posted
  std::unordered_map<HttpConnection*, std::weak_ptr<HttpConnection>> connections;
  std::atomic<int> in_flight{0};  // requests handed to the handler, not yet answered
  std::weak_ptr<Impl> self_;      // guarded by mu; reset by Stop: no new connections
};

// One client connection: read a request, hand it to the handler, write its
// response, and (keep-alive) read the next. Lives as long as an operation or
// a pending responder holds it; every step runs on its strand.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(std::shared_ptr<HttpServer::Impl> server, tcp::socket socket)
      : server_(std::move(server)), stream_(std::move(socket)) {}

  ~HttpConnection() {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->connections.erase(this);
  }

  void Start() {
    {
      std::lock_guard<std::mutex> lock(server_->mu);
      server_->connections[this] = weak_from_this();
    }
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadHead(); });
  }

  void Close() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      self->stream_.close();
    });
  }

 private:
  // The head within idle_timeout of the previous response (or of the
  // connection), then the body within read_timeout.
  void ReadHead() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_head_bytes));
    parser_->body_limit(static_cast<std::uint64_t>(server_->options.max_body_bytes));
    stream_.expires_after(server_->options.idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec) {
    if (ec) return OnReadError(ec, /*head_read=*/false);
    stream_.expires_after(server_->options.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->OnReadError(ec, /*head_read=*/true);
                       self->OnRequest();
                     });
  }

  void OnReadError(beast::error_code ec, bool head_read) {
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || ec == asio::error::eof) {
      return Shutdown();
    }
    if (ec == beast::error::timeout) {
      if (!head_read) return Shutdown();  // an idle keep-alive connection
      return WriteError(408, "the request was not received within " +
                                 std::to_string(server_->options.read_timeout.count()) + " ms");
    }
    if (ec == http::error::header_limit) {
      return WriteError(
          431, "request head over " + std::to_string(server_->options.max_head_bytes) + " bytes");
    }
    if (ec == http::error::body_limit) {
      return WriteError(
          413, "request body over " + std::to_string(server_->options.max_body_bytes) + " bytes");
    }
    if (ec.category() == http::make_error_code(http::error::bad_method).category() ||
        ec == http::error::partial_message) {
      return WriteError(400, "malformed HTTP request: " + ec.message());
    }
    Shutdown();  // a socket error: nobody to answer
  }

  void OnRequest() {
    http::request<http::string_body> message = parser_->release();
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    request.path = request.target.substr(0, request.target.find('?'));
    for (const auto& field : message) {
      std::string& value = request.headers[Lower(std::string(field.name_string()))];
      if (!value.empty()) value += ", ";
      value += std::string(field.value());
    }
    request.body = std::move(message.body());
    keep_alive_ = message.keep_alive();
    stream_.expires_never();  // the handler has its own pace; the client may wait

    server_->in_flight.fetch_add(1);
    auto once = std::make_shared<std::atomic<bool>>(false);
    HttpServer::Respond respond = [self = shared_from_this(), once](HttpResponse response) {
      if (once->exchange(true)) return;
      self->PostResponse(std::move(response));
    };
    try {
      server_->handler(std::move(request), respond);
    } catch (const std::exception& e) {
      respond(server_->options.error_response(500, std::string("internal error: ") + e.what()));
    }
  }

  // Any thread: the handler's answer goes back to the connection's strand.
  void PostResponse(HttpResponse response) {
    std::lock_guard<std::mutex> lock(server_->mu);
    if (server_->stopped) {
      server_->in_flight.fetch_sub(1);
      return;
    }
    asio::post(stream_.get_executor(),
               [self = shared_from_this(), response = std::move(response)]() mutable {
                 self->Write(std::move(response), self->keep_alive_, /*counted=*/true);
               });
  }

  void WriteError(int status, const std::string& message) {
    Write(server_->options.error_response(status, message), /*keep_alive=*/false,
          /*counted=*/false);
  }

  void Write(HttpResponse response, bool keep_alive, bool counted) {
    auto out = std::make_shared<http::response<http::string_body>>();
    out->version(11);
    out->result(static_cast<unsigned>(response.status));
    if (response.status == 499) out->reason(HttpReason(499));
    out->set(http::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) out->set(name, value);
    out->keep_alive(keep_alive);
    if (response.head_only) {
      out->content_length(response.body.size());
    } else {
      out->body() = std::move(response.body);
      out->prepare_payload();
    }
    stream_.expires_after(server_->options.read_timeout);  // a client that does not read
    http::async_write(
        stream_, *out,
        [self = shared_from_this(), out, keep_alive, counted](beast::error_code ec, size_t) {
          if (counted) self->server_->in_flight.fetch_sub(1);
          if (ec || !keep_alive) return self->Shutdown();
          self->ReadHead();
        });
  }

  void Shutdown() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  std::shared_ptr<HttpServer::Impl> server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
};

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      // Connections keep the server state (and so the io_context) alive.
      std::shared_ptr<Impl> self;
      {
        std::lock_guard<std::mutex> lock(mu);
        self = self_.lock();
      }
      if (self) std::make_shared<HttpConnection>(self, std::move(socket))->Start();
    }
    Accept();  // also after a failed accept (e.g. the client gave up)
  });
}

HttpServer::HttpServer(HttpServerOptions options, Handler handler)
    : impl_(std::make_shared<Impl>(std::move(options), std::move(handler))) {
  impl_->self_ = impl_;
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start(const std::string& address, const std::string& what) {
  if (!impl_->threads.empty()) return FailedPreconditionError(what + ": already started");
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return InvalidArgumentError(what + ": \"" + address + "\" is not HOST:PORT");
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  beast::error_code ec;
  tcp::resolver resolver(impl_->io);
  const auto endpoints =
      resolver.resolve(host.empty() ? "0.0.0.0" : host, port,
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return InvalidArgumentError(what + ": cannot resolve \"" + address + "\"");
  }
  tcp::acceptor& acceptor = impl_->acceptor;
  for (const auto& entry : endpoints) {
    ec = {};
    acceptor.open(entry.endpoint().protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(entry.endpoint(), ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) break;
    beast::error_code ignored;
    acceptor.close(ignored);
  }
  if (ec) {
    return UnavailableError(what + ": cannot listen on \"" + address + "\" (" + ec.message() + ")");
  }
  port_ = acceptor.local_endpoint().port();
  impl_->Accept();
  const int n = std::max(1, impl_->options.io_threads);
  for (int i = 0; i < n; ++i) {
    impl_->threads.emplace_back([impl = impl_.get()] { impl->io.run(); });
  }
  return Status::Ok();
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  Impl& impl = *impl_;
  if (impl.threads.empty()) return;
  asio::post(impl.io, [&impl] {
    beast::error_code ignored;
    impl.acceptor.close(ignored);
  });
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (impl.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<std::shared_ptr<HttpConnection>> open;
  {
    std::lock_guard<std::mutex> lock(impl.mu);
    impl.stopped = true;
    impl.self_.reset();
    for (auto& [ptr, weak] : impl.connections) {
      if (auto c = weak.lock()) open.push_back(std::move(c));
    }
  }
  for (auto& c : open) c->Close();
  open.clear();
  impl.work.reset();  // run() returns once the closed connections have unwound
  for (std::thread& t : impl.threads) t.join();
  impl.threads.clear();
}

}  // namespace lookalike
