// The service behind the HTTP/JSON API for the fuzz targets fuzz_http_api
// and fuzz_service_requests: a real LookalikeService and HttpApi (the
// server's code from the JSON body on) over the test fake model "fake"
// (dim 4) and in-memory collections (tests/server/), no sockets. Every call
// starts from the same state: collections "vec" (vectors only, dim 4) and
// "img" (model "fake") holding item "a".
#pragma once

#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "server/http_api.h"
#include "server/metrics.h"
#include "server/service.h"
#include "tests/server/fake_model.h"
#include "tests/server/memory_collections.h"

namespace lookalike::fuzz {

class ServiceHarness {
 public:
  static constexpr int64_t kMaxMessageBytes = 1 << 20;

  ServiceHarness() {
    ServiceOptions options;
    options.default_model = "fake";
    options.limits.max_message_bytes = kMaxMessageBytes;
    options.handler_threads = 2;
    options.batcher.max_delay_us = 0;
    service_ = std::make_unique<LookalikeService>(
        options, &collections_, std::vector<ServedModel>(1, testing::FakeModel()), &metrics_);
    api_ = std::make_unique<HttpApi>(
        service_.get(), &metrics_, [] { return true; }, kMaxMessageBytes);
  }

  HttpApi& api() { return *api_; }

  // Collections back to the starting state.
  void Reset() {
    for (const std::string& name : collections_.List()) (void)collections_.Drop(name);
    Post("CreateCollection", R"({"name":"vec","model":"none","dim":4})");
    Post("CreateCollection", R"({"name":"img"})");
    Post(
        "Upsert",
        R"({"collection":"vec","items":[{"id":"a","vector":{"values":[1,0,0,0]},"metadata":{"k":"v"}}]})");
  }

  // HttpApi::Handle as the HTTP server calls it; waits for the answer.
  HttpResponse Handle(HttpRequest request) {
    auto answer = std::make_shared<std::promise<HttpResponse>>();
    std::future<HttpResponse> reply = answer->get_future();
    api_->Handle(std::move(request),
                 [answer](HttpResponse response) { answer->set_value(std::move(response)); });
    return reply.get();
  }

  HttpResponse Post(const std::string& method, std::string body) {
    HttpRequest request;
    request.method = "POST";
    request.target = request.path = HttpApi::MethodPrefix() + method;
    request.headers["content-type"] = "application/json";
    request.body = std::move(body);
    return Handle(std::move(request));
  }

 private:
  Metrics metrics_;
  testing::MemoryCollectionManager collections_;
  std::unique_ptr<LookalikeService> service_;
  std::unique_ptr<HttpApi> api_;
};

// The contract every answer meets (traps otherwise): a status the API
// documents, never 500 (an INTERNAL or UNKNOWN answer to a request is a bug);
// an answer on a method's path is JSON: a Connect error object or, for 200,
// the response message in canonical JSON, which reads back to itself.
inline void CheckAnswer(const HttpRequest& request, const HttpResponse& response) {
  switch (response.status) {
    case 200:
    case 304:
    case 400:
    case 403:
    case 404:
    case 405:
    case 409:
    case 413:
    case 415:
    case 429:
    case 499:
    case 501:
    case 503:
    case 504:
      break;
    default:
      std::fprintf(stderr, "HTTP %d: %s\n", response.status, response.body.c_str());
      __builtin_trap();
  }
  if (request.path.rfind(HttpApi::MethodPrefix(), 0) != 0) return;
  if (response.content_type != "application/json") __builtin_trap();
  const nlohmann::json body =
      nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) __builtin_trap();
  if (response.status != 200 && (!body.contains("code") || !body["code"].is_string() ||
                                 !body.contains("message") || !body["message"].is_string())) {
    __builtin_trap();
  }
}

}  // namespace lookalike::fuzz
