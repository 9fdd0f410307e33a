// The HTTP/JSON API (server/http_api.h) on a real loopback port: every
// method of the service descriptor, Connect-style errors, HTTP-level errors
// (malformed JSON, wrong content type, oversized body, unknown method, wrong
// HTTP method), keep-alive and many concurrent connections. Collections in
// memory; the model is a fake embedding function (mean R, G, B and a
// constant), as in service_test.cc.
#include "server/http_api.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <boost/beast/core.hpp>
#include <boost/beast/core/detail/base64.hpp>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "fake_model.h"
#include "http_test_client.h"
#include "memory_collections.h"
#include "server/decode.h"
#include "server/http_server.h"
#include "server/http_thumbnails.h"

namespace lookalike {
namespace {

namespace pb = ::lookalike::v1;
namespace beast = boost::beast;
using nlohmann::json;

constexpr int64_t kMaxMessageBytes = 1 << 20;

using testing::Connection;
using testing::Png;
using testing::Reply;

std::string Base64(const std::string& bytes) {
  std::string out(beast::detail::base64::encoded_size(bytes.size()), '\0');
  out.resize(beast::detail::base64::encode(out.data(), bytes.data(), bytes.size()));
  return out;
}

class HttpApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    collections_ = std::make_unique<testing::MemoryCollectionManager>();
    ServiceOptions options;
    options.default_model = "fake";
    options.limits.max_message_bytes = kMaxMessageBytes;
    options.limits.max_k = 100;  // k 5000 is out of range
    options.handler_threads = 4;
    options.batcher.max_delay_us = 500;
    service_ = std::make_unique<LookalikeService>(
        options, collections_.get(), std::vector<ServedModel>(1, testing::FakeModel()), &metrics_);
    api_ = std::make_unique<HttpApi>(
        service_.get(), &metrics_, [] { return true; }, kMaxMessageBytes);
    server_ = std::make_unique<HttpServer>(
        api_->ServerOptions(), [this](HttpRequest request, HttpServer::Respond respond) {
          api_->Handle(std::move(request), std::move(respond));
        });
    ASSERT_TRUE(server_->Start("127.0.0.1:0", "http_listen").ok());
  }
  void TearDown() override {
    server_->Stop();
    service_.reset();
  }

  Reply Call(const std::string& method, const json& body) {
    return Connection(server_->port()).Send("POST", HttpApi::MethodPrefix() + method, body.dump());
  }
  Reply Raw(const std::string& verb, const std::string& target, const std::string& body,
            const std::string& content_type = "application/json") {
    return Connection(server_->port()).Send(verb, target, body, content_type);
  }
  // The server still answers a plain call.
  void ExpectServing() {
    Reply r = Call("ListModels", json::object());
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.Json()["models"][0]["name"], "fake");
  }
  // A Connect error with this HTTP status and code.
  static void ExpectError(const Reply& r, int status, const std::string& code,
                          const std::string& message_part = "") {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.content_type, "application/json");
    json j = r.Json();
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_EQ(j["code"], code) << r.body;
    EXPECT_NE(j["message"].get<std::string>().find(message_part), std::string::npos) << r.body;
  }

  Metrics metrics_;
  std::unique_ptr<CollectionManager> collections_;
  std::unique_ptr<LookalikeService> service_;
  std::unique_ptr<HttpApi> api_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpApiTest, EveryMethodOfTheDescriptorIsServed) {
  EXPECT_TRUE(api_->MethodsWithoutHandler().empty());
  const google::protobuf::ServiceDescriptor* svc =
      pb::EmbedRequest::descriptor()->file()->FindServiceByName("Lookalike");
  ASSERT_NE(svc, nullptr);
  for (int i = 0; i < svc->method_count(); ++i) {
    const auto* m = svc->method(i);
    Reply r = Call(m->name(), json::object());
    if (m->client_streaming() || m->server_streaming()) {
      ExpectError(r, 501, "unimplemented", "Upsert");
      continue;
    }
    // An empty request may be refused by the service (no collection named
    // ""), but never for being an unknown method.
    EXPECT_FALSE(r.status == 404 && r.Json().value("code", "") == "unimplemented") << m->name();
    EXPECT_TRUE(r.status == 200 || r.Json().contains("code")) << m->name() << ": " << r.body;
  }
}

TEST_F(HttpApiTest, EveryMethodWorksEndToEnd) {
  Reply r = Call("ListModels", json::object());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.Json()["models"][0]["dim"], 4);

  r = Call("CreateCollection", {{"name", "vec"}, {"model", "none"}, {"dim", 3}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["dim"], 3);
  EXPECT_EQ(r.Json()["metric"], "COSINE");
  r = Call("CreateCollection", {{"name", "img"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["model"], "fake");

  r = Call("ListCollections", json::object());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["collections"].size(), 2u);

  r = Call("Upsert",
           {{"collection", "vec"},
            {"items",
             {{{"id", "a"}, {"vector", {{"values", {1, 0, 0}}}}, {"metadata", {{"c", "x"}}}},
              {{"id", "b"}, {"vector", {{"values", {0, 1, 0}}}}, {"metadata", {{"c", "y"}}}},
              {{"id", "bad"}, {"vector", {{"values", {1, 2}}}}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["upserted"], "2");  // int64 is a string in JSON
  EXPECT_EQ(r.Json()["failed"], "1");
  EXPECT_EQ(r.Json()["statuses"][2]["code"], 3);

  r = Call("Upsert", {{"collection", "img"},
                      {"items",
                       {{{"id", "red"}, {"image", Base64(Png(250, 10, 10))}},
                        {{"id", "blue"}, {"image", Base64(Png(10, 10, 250))}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["upserted"], "2");

  r = Call("Search", {{"collection", "vec"},
                      {"queries", {{{"vector", {{"values", {0.9, 0.1, 0}}}}}}},
                      {"k", 2},
                      {"includeMetadata", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  json hits = r.Json()["results"][0]["hits"];
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0]["id"], "a");
  EXPECT_EQ(hits[0]["metadata"]["c"], "x");
  EXPECT_GT(hits[0]["score"].get<double>(), hits[1]["score"].get<double>());

  // snake_case field names are accepted too; filter and by-id query.
  r = Call("Search", {{"collection", "vec"},
                      {"queries", {{{"id", "a"}}}},
                      {"filter", {{{"key", "c"}, {"values", {"y"}}}}},
                      {"include_metadata", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  hits = r.Json()["results"][0]["hits"];
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0]["id"], "b");

  r = Call("Search", {{"collection", "img"}, {"queries", {{{"image", Base64(Png(240, 20, 20))}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["results"][0]["hits"][0]["id"], "red");

  r = Call("Embed", {{"images", {Base64(Png(255, 0, 0))}}});
  ASSERT_EQ(r.status, 200) << r.body;
  json values = r.Json()["vectors"][0]["values"];
  ASSERT_EQ(values.size(), 4u);
  EXPECT_NEAR(values[0].get<double>(), 1.0, 1e-5);

  r = Call("Get", {{"collection", "vec"}, {"ids", {"a", "zz"}}, {"includeVectors", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["items"][0]["id"], "a");
  EXPECT_EQ(r.Json()["items"][0]["vector"]["values"].size(), 3u);
  EXPECT_EQ(r.Json()["missingIds"][0], "zz");

  r = Call("Delete", {{"collection", "vec"}, {"ids", {"a", "zz"}}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["deleted"], "1");

  r = Call("DescribeCollection", {{"name", "vec"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["count"], "1");

  r = Call("DropCollection", {{"name", "vec"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, "{}");
  ExpectError(Call("DescribeCollection", {{"name", "vec"}}), 404, "not_found", "vec");
}

TEST_F(HttpApiTest, ServiceErrorsMapToConnectCodesAndStatuses) {
  ExpectError(Call("DescribeCollection", {{"name", "nope"}}), 404, "not_found", "nope");
  ASSERT_EQ(Call("CreateCollection", {{"name", "c"}, {"model", "none"}, {"dim", 2}}).status, 200);
  ExpectError(Call("CreateCollection", {{"name", "c"}, {"model", "none"}, {"dim", 2}}), 409,
              "already_exists");
  ExpectError(
      Call("Search",
           {{"collection", "c"}, {"queries", {{{"vector", {{"values", {1, 0}}}}}}}, {"k", 5000}}),
      400, "invalid_argument", "k: 5000");
  ExpectError(Call("Embed", {{"images", {Base64("not an image")}}}), 400, "invalid_argument",
              "images[0]");
  ExpectError(
      Call("Search", {{"collection", "c"}, {"queries", {{{"image", Base64(Png(1, 2, 3))}}}}}), 400,
      "invalid_argument", "queries[0]");
  ExpectServing();

  EXPECT_EQ(ConnectCodeName(StatusCode::kCancelled), "canceled");
  EXPECT_EQ(ConnectHttpStatus(StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(ConnectHttpStatus(StatusCode::kUnavailable), 503);
}

TEST_F(HttpApiTest, BadRequestsGetClearErrorsAndTheServerKeepsServing) {
  const std::string path = HttpApi::MethodPrefix() + "ListCollections";
  ExpectError(Raw("POST", path, "{not json"), 400, "invalid_argument",
              "lookalike.v1.ListCollectionsRequest");
  ExpectServing();
  ExpectError(Call("Search", {{"collection", "c"}, {"nonsense", 1}}), 400, "invalid_argument",
              "nonsense");
  ExpectError(Call("Search", {{"collection", "c"}, {"k", "many"}}), 400, "invalid_argument");
  ExpectError(Call("Embed", {{"images", {"%%% not base64 %%%"}}}), 400, "invalid_argument");
  ExpectServing();

  Reply r = Raw("POST", path, "{}", "text/plain");
  ExpectError(r, 415, "unimplemented", "application/json");
  ExpectServing();
  r = Raw("POST", path, "{}", "application/json; charset=utf-8");
  EXPECT_EQ(r.status, 200) << r.body;

  r = Raw("GET", path, "", "");
  ExpectError(r, 405, "unimplemented", "POST");
  EXPECT_EQ(r.headers["Allow"], "POST");
  ExpectServing();

  ExpectError(Raw("POST", HttpApi::MethodPrefix() + "Frobnicate", "{}"), 404, "unimplemented",
              "Frobnicate");
  ExpectError(Raw("POST", "/lookalike.v2.Other/Search", "{}"), 404, "not_found");
  ExpectServing();

  // Over the body limit: refused before the body is read in full.
  const std::string huge(kMaxMessageBytes * 2, 'x');
  r = Raw("POST", path, huge);
  if (r.status != 0) ExpectError(r, 413, "resource_exhausted", "body");  // or reset mid-send
  ExpectServing();
  // Under the body limit but over max_message_bytes once decoded.
  const std::string big(kMaxMessageBytes + 1000, 'y');
  ExpectError(Call("Embed", {{"images", {Base64(big)}}}), 429, "resource_exhausted",
              "max_message_bytes");
  ExpectServing();
}

TEST_F(HttpApiTest, KeepAliveManyConnectionsAndMetricsOnTheSamePort) {
  Connection one(server_->port());
  for (int i = 0; i < 5; ++i) {
    Reply r = one.Send("POST", HttpApi::MethodPrefix() + "ListModels", "{}");
    ASSERT_EQ(r.status, 200) << "request " << i << " on one connection";
  }
  // 64 connections open at once, each with a request in flight, on a
  // server with 2 I/O threads.
  std::vector<std::unique_ptr<Connection>> open;
  for (int i = 0; i < 64; ++i) open.push_back(std::make_unique<Connection>(server_->port()));
  std::vector<std::future<int>> replies;
  for (auto& c : open) {
    replies.push_back(std::async(std::launch::async, [&c] {
      return c->Send("POST", HttpApi::MethodPrefix() + "ListCollections", "{}").status;
    }));
  }
  for (auto& f : replies) EXPECT_EQ(f.get(), 200);

  Reply r = Raw("GET", "/healthz", "", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "SERVING\n");
  r = Raw("GET", "/metrics", "", "");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("lookalike_requests_total{code=\"OK\",method=\"ListModels\"} 5"),
            std::string::npos)
      << r.body;
}

}  // namespace
}  // namespace lookalike

namespace lookalike {
namespace {

// GET /collections/{name}/items/{id}/thumbnail: the JPEG with a strong ETag
// and Cache-Control, 304 for a matching If-None-Match, HEAD, Connect 404s
// for what is missing, percent-decoded ids.
TEST_F(HttpApiTest, ThumbnailsAreServedWithEtagsAndRevalidation) {
  Reply r = Call("CreateCollection", {{"name", "shop"}, {"thumbnailSize", 64}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["thumbnailSize"], 64);
  EXPECT_EQ(Call("DescribeCollection", {{"name", "shop"}}).Json()["thumbnailSize"], 64);
  const std::string id = "shoes/red 1?%.jpg";  // needs percent-encoding
  r = Call("Upsert", {{"collection", "shop"},
                      {"items",
                       {{{"id", id}, {"image", Base64(Png(200, 10, 10, 160, 80))}},
                        {{"id", "vec"}, {"vector", {{"values", {1, 0, 0, 0}}}}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(r.Json()["upserted"], "2") << r.body;

  const std::string path = ThumbnailPath("shop", id);
  EXPECT_EQ(path, "/collections/shop/items/shoes%2Fred%201%3F%25.jpg/thumbnail");
  r = Raw("GET", path, "", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "image/jpeg");
  EXPECT_EQ(r.headers["Cache-Control"], "no-cache");
  const std::string etag = r.headers["ETag"];
  ASSERT_EQ(etag.size(), 18u) << etag;  // "<16 hex digits>", strong (no W/)
  EXPECT_EQ(etag.front(), '"');
  StatusOr<DecodedImage> image = DecodeImage(r.body, 1 << 20);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->width, 64);
  EXPECT_EQ(image->height, 32);
  const std::string jpeg = r.body;

  // Revalidation: the same ETag (alone, in a list, or weak) is 304 without a body.
  for (const std::string& tag :
       std::vector<std::string>{etag, "\"0000000000000000\", " + etag, "W/" + etag, "*"}) {
    Reply again = Connection(server_->port()).Send("GET", path, "", "", {{"If-None-Match", tag}});
    EXPECT_EQ(again.status, 304) << tag;
    EXPECT_EQ(again.headers["ETag"], etag);
    EXPECT_TRUE(again.body.empty());
  }
  Reply other =
      Connection(server_->port()).Send("GET", path, "", "", {{"If-None-Match", "\"abc\""}});
  EXPECT_EQ(other.status, 200);
  EXPECT_EQ(other.body, jpeg);
  Reply head = Raw("HEAD", path, "", "");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["Content-Length"], std::to_string(jpeg.size()));
  EXPECT_EQ(head.headers["ETag"], etag);

  // A new picture under the same id: a new ETag, so the old one no longer matches.
  r = Call("Upsert", {{"collection", "shop"},
                      {"items", {{{"id", id}, {"image", Base64(Png(10, 10, 200, 80, 160))}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  Reply changed = Connection(server_->port()).Send("GET", path, "", "", {{"If-None-Match", etag}});
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(changed.headers["ETag"], etag);
  image = DecodeImage(changed.body, 1 << 20);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_EQ(image->width, 32);
  EXPECT_EQ(image->height, 64);

  // Missing things: Connect JSON 404s naming them.
  ExpectError(Raw("GET", ThumbnailPath("nope", id), "", ""), 404, "not_found", "nope");
  ExpectError(Raw("GET", ThumbnailPath("shop", "missing"), "", ""), 404, "not_found", "missing");
  ExpectError(Raw("GET", ThumbnailPath("shop", "vec"), "", ""), 404, "not_found",
              "has no thumbnail");
  ExpectError(Raw("GET", "/collections/shop/items/x", "", ""), 404, "not_found",
              "GET /collections/{name}/items/{id}/thumbnail");
  ExpectError(Raw("GET", "/collections/shop/items/%zz/thumbnail", "", ""), 400, "invalid_argument",
              "percent-encoding");
  Reply post = Raw("POST", path, "{}");
  ExpectError(post, 405, "unimplemented", "GET");
  EXPECT_EQ(post.headers["Allow"], "GET, HEAD");

  // The GetThumbnail method of the JSON API is the same call: the route's
  // bytes (base64) and ETag, and the same errors.
  const std::string current = Raw("GET", path, "", "").body;
  r = Call("GetThumbnail", {{"collection", "shop"}, {"id", id}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["jpeg"], Base64(current));
  EXPECT_EQ(r.Json()["etag"], changed.headers["ETag"]);
  ExpectError(Call("GetThumbnail", {{"collection", "shop"}, {"id", "vec"}}), 404, "not_found",
              "has no thumbnail");
  // A collection that keeps none: failed_precondition on both, saying so.
  ASSERT_EQ(Call("CreateCollection", {{"name", "plain"}}).status, 200);
  ExpectError(Raw("GET", ThumbnailPath("plain", "a"), "", ""), 400, "failed_precondition",
              "keeps no thumbnails");
  ExpectError(Call("GetThumbnail", {{"collection", "plain"}, {"id", "a"}}), 400,
              "failed_precondition", "keeps no thumbnails");

  // Deleted with its item.
  r = Call("Delete", {{"collection", "shop"}, {"ids", {id}}});
  ASSERT_EQ(r.status, 200) << r.body;
  ExpectError(Raw("GET", path, "", ""), 404, "not_found");
  ExpectServing();
}

TEST(PercentCodingTest, RoundTripsEveryByteAndRefusesMalformedEscapes) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string encoded = PercentEncode(all);
  EXPECT_EQ(encoded.find_first_not_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%"),
            std::string::npos);
  EXPECT_EQ(*PercentDecode(encoded), all);
  EXPECT_EQ(*PercentDecode("a+b%2fc"), "a+b/c");
  for (const char* bad : {"%", "%2", "%G0", "a%2"}) {
    EXPECT_EQ(PercentDecode(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace lookalike
