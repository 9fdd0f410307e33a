// libFuzzer target: the HTTP/JSON API from raw bytes. An input is either a
// raw HTTP/1.1 request, parsed by Boost.Beast's request parser with the
// server's limits (server/http_server.cc) and handed to HttpApi::Handle as
// the server hands it, or (first byte below 0x20) a JSON body for the
// service method that byte picks, POSTed to it. Behind the API: the real
// LookalikeService over the fake model and in-memory collections
// (service_harness.h). Contract checked: no crash, no sanitizer report, every
// answer meets CheckAnswer (no 500; JSON errors).
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/service_harness.h"

namespace {

namespace http = boost::beast::http;
using lookalike::HttpRequest;

lookalike::fuzz::ServiceHarness& Harness() {
  static auto* harness = new lookalike::fuzz::ServiceHarness();  // lives for the process
  return *harness;
}

// The request as the server's connection builds it (HttpConnection::OnRequest).
HttpRequest FromBeast(http::request<http::string_body>& message) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.path = request.target.substr(0, request.target.find('?'));
  for (const auto& field : message) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string& value = request.headers[name];
    if (!value.empty()) value += ", ";
    value += std::string(field.value());
  }
  request.body = std::move(message.body());
  return request;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lookalike::fuzz::ServiceHarness& harness = Harness();
  harness.Reset();
  if (size > 0 && data[0] < 0x20) {
    const google::protobuf::ServiceDescriptor* service =
        lookalike::v1::SearchRequest::descriptor()->file()->service(0);
    const std::string method = service->method(data[0] % service->method_count())->name();
    HttpRequest request;
    request.method = "POST";
    request.target = request.path = lookalike::HttpApi::MethodPrefix() + method;
    request.headers["content-type"] = "application/json";
    request.body.assign(reinterpret_cast<const char*>(data) + 1, size - 1);
    const lookalike::HttpResponse response = harness.Handle(request);
    lookalike::fuzz::CheckAnswer(request, response);
    return 0;
  }
  const lookalike::HttpServerOptions options = harness.api().ServerOptions();
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(options.max_head_bytes));
  parser.body_limit(static_cast<std::uint64_t>(options.max_body_bytes));
  parser.eager(true);
  boost::beast::error_code ec;
  size_t used = 0;
  while (used < size && !parser.is_done()) {
    const size_t n = parser.put(boost::asio::buffer(data + used, size - used), ec);
    if (ec == http::error::need_more) break;
    if (ec) return 0;  // the server answers 400/413/431 and closes
    if (n == 0) break;
    used += n;
  }
  if (!parser.is_done()) {
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;
  }
  http::request<http::string_body> message = parser.release();
  const HttpRequest request = FromBeast(message);
  const lookalike::HttpResponse response = harness.Handle(request);
  lookalike::fuzz::CheckAnswer(request, response);
  return 0;
}
