#include "server/http_server.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
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
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

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

// What the server needs of any connection, plain or TLS.
class HttpConnection {
 public:
  virtual ~HttpConnection() = default;
  // Closes the socket (from any thread).
  virtual void Close() = 0;
};

struct HttpServer::Impl {
  Impl(HttpServerOptions o, Handler h)
      : options(std::move(o)), handler(std::move(h)), acceptor(io), work(io.get_executor()) {
    if (!options.error_response) options.error_response = DefaultError;
  }

  void Accept();
  // The TLS context for a new connection: rebuilt when the store's
  // credentials changed since the last one was built.
  StatusOr<std::shared_ptr<ssl::context>> TlsContext();

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

  std::mutex tls_mu;
  std::shared_ptr<ssl::context> tls_context;  // guarded by tls_mu
  uint64_t tls_generation = 0;                // guarded by tls_mu: what tls_context was built from
};

StatusOr<std::shared_ptr<ssl::context>> HttpServer::Impl::TlsContext() {
  uint64_t generation = 0;
  std::shared_ptr<const TlsCredentials> credentials = options.tls->current(&generation);
  std::lock_guard<std::mutex> lock(tls_mu);
  if (generation != tls_generation || !tls_context) {
    StatusOr<std::shared_ptr<ssl::context>> built =
        MakeServerSslContext(*credentials, options.tls_verify_clients);
    // The store checked the files, so this is OpenSSL refusing what it
    // accepted before: keep serving with the last context that worked.
    if (!built.ok() && !tls_context) return built.status();
    if (built.ok()) tls_context = *std::move(built);
    tls_generation = generation;
  }
  return tls_context;
}

// One client connection: (TLS: handshake,) read a request, hand it to the
// handler, write its response, and (keep-alive) read the next. Lives as long
// as an operation or a pending responder holds it; every step runs on its
// strand. `Stream` is beast::tcp_stream (plain) or TlsStream.
template <typename Stream>
class HttpSession final : public HttpConnection,
                          public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  HttpSession(std::shared_ptr<HttpServer::Impl> server, tcp::socket socket)
      : server_(std::move(server)), stream_(std::move(socket)) {}
  // The context is held for as long as the session: its SSL refers to it.
  HttpSession(std::shared_ptr<HttpServer::Impl> server, tcp::socket socket,
              std::shared_ptr<ssl::context> context)
      : server_(std::move(server)),
        context_(std::move(context)),
        stream_(std::move(socket), *context_) {}

  ~HttpSession() override {
    std::lock_guard<std::mutex> lock(server_->mu);
    server_->connections.erase(this);
  }

  void Start() {
    {
      std::lock_guard<std::mutex> lock(server_->mu);
      server_->connections[this] = this->weak_from_this();
    }
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Tcp().expires_after(self->server_->options.read_timeout);
        self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
          // A failed handshake (plain HTTP, an untrusted or
          // missing client certificate) has nobody to answer.
          if (ec) return self->CloseTcp();
          self->ReadHead();
        });
      } else {
        self->ReadHead();
      }
    });
  }

  void Close() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->CloseTcp(); });
  }

 private:
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  void CloseTcp() {
    beast::error_code ignored;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().close();
  }

  // The head within idle_timeout of the previous response (or of the
  // connection), then the body within read_timeout.
  void ReadHead() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_head_bytes));
    parser_->body_limit(static_cast<std::uint64_t>(server_->options.max_body_bytes));
    Tcp().expires_after(server_->options.idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec) {
    if (ec) return OnReadError(ec, /*head_read=*/false);
    Tcp().expires_after(server_->options.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) {
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
    Tcp().expires_never();  // the handler has its own pace; the client may wait

    server_->in_flight.fetch_add(1);
    auto once = std::make_shared<std::atomic<bool>>(false);
    HttpServer::Respond respond = [self = this->shared_from_this(), once](HttpResponse response) {
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
               [self = this->shared_from_this(), response = std::move(response)]() mutable {
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
    Tcp().expires_after(server_->options.read_timeout);  // a client that does not read
    http::async_write(
        stream_, *out,
        [self = this->shared_from_this(), out, keep_alive, counted](beast::error_code ec, size_t) {
          if (counted) self->server_->in_flight.fetch_sub(1);
          if (ec || !keep_alive) return self->Shutdown();
          self->ReadHead();
        });
  }

  // The end of a connection: TLS sends its close_notify first (within a
  // second), then the socket closes.
  void Shutdown() {
    if constexpr (kTls) {
      Tcp().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->Tcp().close(); });
    } else {
      beast::error_code ignored;
      Tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
      Tcp().close();
    }
  }

  std::shared_ptr<HttpServer::Impl> server_;
  std::shared_ptr<ssl::context> context_;  // TLS only
  Stream stream_;
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
      if (self && !options.tls) {
        std::make_shared<HttpSession<beast::tcp_stream>>(self, std::move(socket))->Start();
      } else if (self) {
        // Fails only when no context was ever built (Start() builds one).
        StatusOr<std::shared_ptr<ssl::context>> context = TlsContext();
        if (context.ok()) {
          std::make_shared<HttpSession<TlsStream>>(self, std::move(socket), *std::move(context))
              ->Start();
        }
      }
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
  if (impl_->options.tls) {
    StatusOr<std::shared_ptr<ssl::context>> context = impl_->TlsContext();
    if (!context.ok()) return context.status().WithPrefix(what);
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
