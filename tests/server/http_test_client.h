// A blocking HTTP/1.1 client for server tests (Boost.Beast): one keep-alive
// connection to 127.0.0.1:port, one request at a time.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace lookalike::testing {

struct Reply {
  int status = 0;  // 0: no reply
  std::string content_type;
  std::string body;
  std::map<std::string, std::string> headers;
  nlohmann::json Json() const {
    return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  }
};

class Connection {
 public:
  explicit Connection(int port) : socket_(io_) {
    socket_.connect(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  }
  // `headers`: extra request headers (Authorization, ...).
  Reply Send(const std::string& method, const std::string& target, const std::string& body,
             const std::string& content_type = "application/json",
             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    namespace beast = boost::beast;
    namespace http = boost::beast::http;
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1");
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    // The server may answer (413) and close before the whole body is sent:
    // the write then fails with a broken pipe, and the reply is still read.
    beast::error_code write_ec;
    http::write(socket_, req, write_ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    parser.skip(method == "HEAD");  // a HEAD reply has the headers of a body it does not send
    beast::error_code ec;
    http::read(socket_, buffer_, parser, ec);
    Reply r;
    if (ec) return r;
    auto& res = parser.get();
    r.status = static_cast<int>(res.result_int());
    r.content_type = std::string(res[http::field::content_type]);
    for (const auto& f : res) r.headers[std::string(f.name_string())] = std::string(f.value());
    r.body = res.body();
    return r;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
};

}  // namespace lookalike::testing
