// API keys (server/auth.h): the keys file parser and its errors, the rule
// (each role against each kind of method, collection scoping), bearer
// parsing, tools/make_api_key.py's output accepted as it is, and the rule
// enforced end to end on a real gRPC server and a real HTTP API port
// (fake model, collections in memory): UNAUTHENTICATED / PERMISSION_DENIED
// with their messages, health open, /metrics behind a key when configured,
// failures counted in lookalike_auth_failures_total.
#include "server/auth.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "client/lookalike_client.h"
#include "fake_model.h"
#include "http_test_client.h"
#include "memory_collections.h"
#include "server/grpc_server.h"
#include "server/http_api.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/service.h"

namespace lookalike {
namespace {

namespace pb = ::lookalike::v1;
using nlohmann::json;
using testing::Connection;
using testing::Reply;

// Keys of the tests (real keys are 256 random bits; the rule does not care).
constexpr char kAdminKey[] = "lk_admin_test_key";
constexpr char kWriteKey[] = "lk_write_test_key";
constexpr char kReadKey[] = "lk_read_test_key";
constexpr char kShoesKey[] = "lk_shoes_write_test_key";  // write, limited to shoes and hats

std::string KeysFile() {
  return "# test keys\n"
         "- {name: ops, role: admin, sha256: " +
         Sha256Hex(kAdminKey) +
         "}\n"
         "- {name: ingest, role: write, sha256: " +
         Sha256Hex(kWriteKey) +
         "}\n"
         "- {name: web, role: read, sha256: " +
         Sha256Hex(kReadKey) +
         "}\n"
         "- {name: shoes-team, role: write, collections: [shoes, hats], sha256: " +
         Sha256Hex(kShoesKey) + "}\n";
}

std::vector<ApiKey> TestKeys() {
  StatusOr<std::vector<ApiKey>> keys = ParseApiKeys(KeysFile(), "keys.yaml");
  EXPECT_TRUE(keys.ok()) << keys.status().ToString();
  return keys.ok() ? *keys : std::vector<ApiKey>{};
}

// ---- keys file -----------------------------------------------------------------

TEST(ApiKeysFileTest, ParsesEntries) {
  std::vector<ApiKey> keys = TestKeys();
  ASSERT_EQ(keys.size(), 4u);
  EXPECT_EQ(keys[0].name, "ops");
  EXPECT_EQ(keys[0].role, ApiRole::kAdmin);
  EXPECT_TRUE(keys[0].collections.empty());
  EXPECT_EQ(keys[2].role, ApiRole::kRead);
  EXPECT_EQ(keys[3].collections, (std::vector<std::string>{"shoes", "hats"}));
  // Block style works too, and a missing name becomes the entry's place.
  StatusOr<std::vector<ApiKey>> block =
      ParseApiKeys("-  role: read\n   sha256: " + Sha256Hex("x") + "\n", "k.yaml");
  ASSERT_TRUE(block.ok()) << block.status().ToString();
  EXPECT_EQ((*block)[0].name, "k.yaml:1");
}

TEST(ApiKeysFileTest, Sha256HexIsTheStandardDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiKeysFileTest, MalformedFilesNameFileLineAndProblem) {
  const std::string hash = Sha256Hex("k");
  const std::string ok = "- {role: read, sha256: " + hash + "}\n";
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {ok + "- {role: reader, sha256: " + Sha256Hex("j") + "}\n",
       "keys.yaml:2: role: \"reader\" is not one of admin, write, read"},
      {ok + ok, "keys.yaml:2: sha256: the same key as at keys.yaml:1"},
      {"- {role: read, sha256: abc}\n", "keys.yaml:1: sha256: expected 64 hex digits"},
      {"- {role: read, sha256: lk_0123}\n", "store its hash, never the key"},
      {"- {role: read}\n", "keys.yaml:1: sha256: missing"},
      {"- {sha256: " + hash + "}\n", "keys.yaml:1: role: missing"},
      {ok + "\n- {role: read, sha256: " + Sha256Hex("j") + ", colour: red}\n",
       "keys.yaml:3: unknown key \"colour\""},
      {"- {role: read, collections: shoes, sha256: " + hash + "}\n",
       "keys.yaml:1: collections: expected a list"},
      {"- {role: read, collections: [], sha256: " + hash + "}\n",
       "keys.yaml:1: collections: empty list"},
      {"- just a string\n", "keys.yaml:1: expected a map"},
      {"role: read\n", "keys.yaml:1: expected a list of keys"},
      {"", "keys.yaml: no keys"},
      {"- {role: read, sha256: " + hash + "\n", "keys.yaml: invalid YAML"},
  };
  for (const Case& c : cases) {
    StatusOr<std::vector<ApiKey>> keys = ParseApiKeys(c.text, "keys.yaml");
    ASSERT_FALSE(keys.ok()) << c.text;
    EXPECT_EQ(keys.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(keys.status().message().find(c.message), std::string::npos)
        << "text:\n"
        << c.text << "message: " << keys.status().message();
  }
  EXPECT_NE(LoadApiKeys("/nonexistent/keys.yaml").status().message().find("cannot read"),
            std::string::npos);
}

// The tool's output, as it is, is a keys file the server accepts, and the
// key it printed is recognised.
TEST(ApiKeysFileTest, MakeApiKeyOutputRoundTrips) {
  const std::string command = std::string("python3 ") + LOOKALIKE_SOURCE_DIR +
                              "/tools/make_api_key.py --role write --collections shoes "
                              "--name ci 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[512];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, n);
  ASSERT_EQ(pclose(pipe), 0) << out;
  std::smatch key;
  ASSERT_TRUE(std::regex_search(out, key, std::regex("\nlk_[0-9a-f]{64}\n"))) << out;
  const std::string the_key = key.str().substr(1, key.length() - 2);
  // The whole output: comment lines, the key (a plain scalar line would not
  // parse as a list), so keep the lines that start with "- ".
  std::string entries;
  for (size_t at = 0; at < out.size();) {
    size_t end = out.find('\n', at);
    if (end == std::string::npos) end = out.size();
    if (out.compare(at, 2, "- ") == 0) entries += out.substr(at, end - at) + "\n";
    at = end + 1;
  }
  StatusOr<std::vector<ApiKey>> keys = ParseApiKeys(entries, "made.yaml");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString() << "\n" << out;
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].name, "ci");
  EXPECT_EQ((*keys)[0].role, ApiRole::kWrite);
  EXPECT_EQ((*keys)[0].collections, std::vector<std::string>{"shoes"});
  Authenticator auth(*keys, nullptr, false);
  StatusOr<const ApiKey*> found = auth.Authenticate("Bearer " + the_key, "test");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ((*found)->name, "ci");
}

// ---- the rule ---------------------------------------------------------------------

TEST(AuthRuleTest, EveryMethodOfTheServiceHasARule) {
  const google::protobuf::ServiceDescriptor* service =
      pb::EmbedRequest::descriptor()->file()->FindServiceByName("Lookalike");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    const google::protobuf::MethodDescriptor* m = service->method(i);
    std::unique_ptr<google::protobuf::Message> request(
        google::protobuf::MessageFactory::generated_factory()
            ->GetPrototype(m->input_type())
            ->New());
    StatusOr<AccessNeed> need = AccessNeeded(m->name(), *request);
    EXPECT_TRUE(need.ok()) << m->name() << ": " << need.status().ToString();
  }
  pb::ListModelsRequest any;
  EXPECT_EQ(AccessNeeded("Teleport", any).status().code(), StatusCode::kNotFound);
}

// One request of each method, naming collection `c` where it names one.
std::vector<std::pair<std::string, std::unique_ptr<google::protobuf::Message>>> Calls(
    const std::string& c) {
  std::vector<std::pair<std::string, std::unique_ptr<google::protobuf::Message>>> calls;
  auto add = [&](const char* method, google::protobuf::Message* m) {
    calls.emplace_back(method, std::unique_ptr<google::protobuf::Message>(m));
  };
  auto named = [&](auto* m) {
    m->set_name(c);
    return m;
  };
  auto in = [&](auto* m) {
    m->set_collection(c);
    return m;
  };
  add("Embed", new pb::EmbedRequest);
  add("ListModels", new pb::ListModelsRequest);
  add("ListCollections", new pb::ListCollectionsRequest);
  add("DescribeCollection", named(new pb::DescribeCollectionRequest));
  add("Search", in(new pb::SearchRequest));
  add("Get", in(new pb::GetRequest));
  add("GetThumbnail", in(new pb::GetThumbnailRequest));
  add("Upsert", in(new pb::UpsertRequest));
  add("UpsertStream", in(new pb::UpsertRequest));
  add("Delete", in(new pb::DeleteRequest));
  add("CreateCollection", named(new pb::CreateCollectionRequest));
  add("DropCollection", named(new pb::DropCollectionRequest));
  return calls;
}

ApiRole RoleOf(const std::string& method) {
  if (method == "CreateCollection" || method == "DropCollection") return ApiRole::kAdmin;
  if (method == "Upsert" || method == "UpsertStream" || method == "Delete") return ApiRole::kWrite;
  return ApiRole::kRead;
}

TEST(AuthRuleTest, EachRoleAgainstEachMethod) {
  for (ApiRole role : {ApiRole::kRead, ApiRole::kWrite, ApiRole::kAdmin}) {
    ApiKey key;
    key.name = "k";
    key.role = role;
    for (const auto& [method, request] : Calls("shoes")) {
      StatusOr<AccessNeed> need = AccessNeeded(method, *request);
      ASSERT_TRUE(need.ok()) << method;
      Status s = CheckAccess(key, method, *need);
      const bool allowed = role >= RoleOf(method);
      EXPECT_EQ(s.ok(), allowed) << ApiRoleName(role) << " " << method << ": " << s.ToString();
      if (!allowed) {
        EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
        const std::string want = method + " needs the " + ApiRoleName(RoleOf(method)) + " right";
        EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
        EXPECT_NE(s.message().find(std::string("key \"k\" has ") + ApiRoleName(role)),
                  std::string::npos)
            << s.message();
      }
    }
  }
}

TEST(AuthRuleTest, KeysLimitedToCollections) {
  ApiKey key;
  key.name = "shoes-team";
  key.role = ApiRole::kAdmin;
  key.collections = {"shoes", "hats"};
  for (const std::string& c : {std::string("shoes"), std::string("hats")}) {
    for (const auto& [method, request] : Calls(c)) {
      Status s = CheckAccess(key, method, *AccessNeeded(method, *request));
      // ListCollections names every collection: never for a limited key.
      EXPECT_EQ(s.ok(), method != "ListCollections") << method << " " << c << ": " << s.ToString();
    }
  }
  for (const auto& [method, request] : Calls("bags")) {
    Status s = CheckAccess(key, method, *AccessNeeded(method, *request));
    const bool names_none = method == "Embed" || method == "ListModels";
    EXPECT_EQ(s.ok(), names_none) << method << ": " << s.ToString();
    if (!names_none && method != "ListCollections") {
      EXPECT_NE(s.message().find("right on collection \"bags\"; key \"shoes-team\" is limited to "
                                 "shoes, hats"),
                std::string::npos)
          << s.message();
    }
  }
  // An empty collection name is not one of the key's.
  pb::SearchRequest unnamed;
  EXPECT_FALSE(CheckAccess(key, "Search", *AccessNeeded("Search", unnamed)).ok());
  EXPECT_NE(CheckAccess(key, "/metrics", MetricsAccess()).message().find("every collection"),
            std::string::npos);
  key.collections.clear();
  EXPECT_TRUE(CheckAccess(key, "/metrics", MetricsAccess()).ok());
}

TEST(AuthRuleTest, BearerToken) {
  EXPECT_EQ(BearerToken("Bearer lk_abc"), "lk_abc");
  EXPECT_EQ(BearerToken("bearer   lk_abc  "), "lk_abc");
  EXPECT_EQ(BearerToken("BEARER\tlk_abc"), "lk_abc");
  EXPECT_EQ(BearerToken(""), "");
  EXPECT_EQ(BearerToken("Bearer"), "");
  EXPECT_EQ(BearerToken("Bearer "), "");
  EXPECT_EQ(BearerToken("Basic dXNlcjpwYXNz"), "");
  EXPECT_EQ(BearerToken("Bearerlk_abc"), "");
  EXPECT_EQ(BearerToken("lk_abc"), "");
}

TEST(AuthRuleTest, AuthenticatorRecognisesKeysAndCountsFailures) {
  Metrics metrics;
  Authenticator auth(TestKeys(), &metrics, /*metrics_require_key=*/true);
  StatusOr<const ApiKey*> key = auth.Authenticate(std::string("Bearer ") + kWriteKey, "x");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ((*key)->name, "ingest");
  EXPECT_EQ(auth.Authenticate("", "x").status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(auth.Authenticate("", "x").status().message().find("missing API key"),
            std::string::npos);
  Status unknown = auth.Authenticate("Bearer lk_nope", "x").status();
  EXPECT_EQ(unknown.code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(unknown.message().find("lk_nope"), std::string::npos);  // never echoed
  // A key differing from a known one by its last character.
  std::string near = kWriteKey;
  near.back() ^= 1;
  EXPECT_FALSE(auth.Authenticate("Bearer " + near, "x").ok());
  pb::DropCollectionRequest drop;
  drop.set_name("shoes");
  EXPECT_EQ(auth.Check(std::string("Bearer ") + kWriteKey, "DropCollection", drop).code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(auth.Check(std::string("Bearer ") + kAdminKey, "DropCollection", drop).ok());
  EXPECT_TRUE(auth.CheckMetrics(std::string("Bearer ") + kReadKey).ok());
  EXPECT_EQ(auth.CheckMetrics(std::string("Bearer ") + kShoesKey).code(),
            StatusCode::kPermissionDenied);
  const std::string text = metrics.Render();
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"missing_key\"} 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"unknown_key\"} 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"permission_denied\"} 2"),
            std::string::npos)
      << text;
}

// ---- over gRPC and HTTP ----------------------------------------------------------

class AuthServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    collections_ = std::make_unique<testing::MemoryCollectionManager>();
    auth_ = std::make_unique<Authenticator>(TestKeys(), &metrics_, /*metrics_require_key=*/true);
    ServiceOptions options;
    options.default_model = "fake";
    options.handler_threads = 4;
    options.batcher.max_delay_us = 500;
    options.auth = auth_.get();
    service_ = std::make_unique<LookalikeService>(
        options, collections_.get(), std::vector<ServedModel>(1, testing::FakeModel()), &metrics_);
    StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start("127.0.0.1:0", 4 << 20, service_.get());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    grpc_ = std::move(server).value();
    grpc_->SetServing(true);
    api_ = std::make_unique<HttpApi>(
        service_.get(), &metrics_, [] { return true; }, 4 << 20);
    http_ = std::make_unique<HttpServer>(api_->ServerOptions(),
                                         [this](HttpRequest request, HttpServer::Respond respond) {
                                           api_->Handle(std::move(request), std::move(respond));
                                         });
    ASSERT_TRUE(http_->Start("127.0.0.1:0", "http_listen").ok());
  }
  void TearDown() override {
    http_->Stop();
    grpc_->Shutdown(std::chrono::seconds(2));
    service_.reset();
  }

  // A client of the gRPC port sending `key` ("" = none).
  std::unique_ptr<Client> ClientWith(const std::string& key) {
    ClientOptions options;
    options.server = "127.0.0.1:" + std::to_string(grpc_->port());
    options.max_attempts = 1;
    options.api_key = key;
    auto channel = grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
    return std::make_unique<Client>(channel, options);
  }

  Reply Http(const std::string& method, const json& body, const std::string& key) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!key.empty()) headers.emplace_back("Authorization", "Bearer " + key);
    return Connection(http_->port())
        .Send("POST", HttpApi::MethodPrefix() + method, body.dump(), "application/json", headers);
  }
  Reply HttpGet(const std::string& path, const std::string& key) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!key.empty()) headers.emplace_back("Authorization", "Bearer " + key);
    return Connection(http_->port()).Send("GET", path, "", "", headers);
  }

  static pb::CreateCollectionRequest Create(const std::string& name) {
    pb::CreateCollectionRequest r;
    r.set_name(name);
    r.set_model(kVectorsOnly);
    r.set_dim(2);
    return r;
  }
  static pb::UpsertRequest OneItem(const std::string& collection) {
    pb::UpsertRequest r;
    r.set_collection(collection);
    pb::Item* item = r.add_items();
    item->set_id("a");
    item->mutable_vector()->add_values(1);
    item->mutable_vector()->add_values(0);
    return r;
  }

  Metrics metrics_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<CollectionManager> collections_;
  std::unique_ptr<LookalikeService> service_;
  std::unique_ptr<GrpcServer> grpc_;
  std::unique_ptr<HttpApi> api_;
  std::unique_ptr<HttpServer> http_;
};

TEST_F(AuthServerTest, GrpcRefusesMissingUnknownAndInsufficientKeys) {
  Status none = ClientWith("")->CreateCollection(Create("shoes")).status();
  EXPECT_EQ(none.code(), StatusCode::kUnauthenticated) << none.ToString();
  EXPECT_NE(none.message().find("missing API key"), std::string::npos) << none.ToString();
  Status unknown = ClientWith("lk_wrong")->ListModels().status();
  EXPECT_EQ(unknown.code(), StatusCode::kUnauthenticated) << unknown.ToString();
  EXPECT_NE(unknown.message().find("unknown API key"), std::string::npos);

  Status denied = ClientWith(kWriteKey)->CreateCollection(Create("shoes")).status();
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(),
            "CreateCollection needs the admin right on collection \"shoes\"; key \"ingest\" has "
            "write");
  ASSERT_TRUE(ClientWith(kAdminKey)->CreateCollection(Create("shoes")).ok());
  ASSERT_TRUE(ClientWith(kAdminKey)->CreateCollection(Create("bags")).ok());

  // read: search and get, not upsert.
  Status read_upsert = ClientWith(kReadKey)->Upsert(OneItem("shoes")).status();
  EXPECT_EQ(read_upsert.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(read_upsert.message().find("Upsert needs the write right"), std::string::npos);
  StatusOr<pb::UpsertResponse> upserted = ClientWith(kWriteKey)->Upsert(OneItem("shoes"));
  ASSERT_TRUE(upserted.ok()) << upserted.status().ToString();
  EXPECT_EQ(upserted->upserted(), 1);
  pb::GetRequest get;
  get.set_collection("shoes");
  get.add_ids("a");
  StatusOr<pb::GetResponse> got = ClientWith(kReadKey)->Get(get);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->items_size(), 1);

  // Limited to shoes and hats.
  EXPECT_TRUE(ClientWith(kShoesKey)->Upsert(OneItem("shoes")).ok());
  Status other = ClientWith(kShoesKey)->Upsert(OneItem("bags")).status();
  EXPECT_EQ(other.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(other.message().find("on collection \"bags\""), std::string::npos) << other.message();
  EXPECT_EQ(ClientWith(kShoesKey)->ListCollections().status().code(),
            StatusCode::kPermissionDenied);
  EXPECT_TRUE(ClientWith(kReadKey)->ListCollections().ok());

  // The stream: the key once, its right on the stream's collection.
  EXPECT_EQ(ClientWith("")->UpsertStream("shoes", {OneItem("shoes")}).status().code(),
            StatusCode::kUnauthenticated);
  Status stream_other = ClientWith(kShoesKey)->UpsertStream("bags", {OneItem("bags")}).status();
  EXPECT_EQ(stream_other.code(), StatusCode::kPermissionDenied) << stream_other.ToString();
  EXPECT_NE(stream_other.message().find("UpsertStream needs the write right on collection "
                                        "\"bags\""),
            std::string::npos);
  StatusOr<pb::UpsertResponse> streamed =
      ClientWith(kShoesKey)->UpsertStream("shoes", {OneItem("shoes"), OneItem("")});
  ASSERT_TRUE(streamed.ok()) << streamed.status().ToString();
  EXPECT_EQ(streamed->upserted(), 2);

  const std::string text = metrics_.Render();
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"missing_key\"} 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"unknown_key\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"permission_denied\"} 5"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("lookalike_requests_total{code=\"UNAUTHENTICATED\",method=\"CreateCollection\"} 1"),
      std::string::npos)
      << text;
}

TEST_F(AuthServerTest, GrpcHealthNeedsNoKey) {
  StatusOr<bool> serving = ClientWith("")->CheckHealth();
  ASSERT_TRUE(serving.ok()) << serving.status().ToString();
  EXPECT_TRUE(*serving);
}

TEST_F(AuthServerTest, HttpRefusesMissingUnknownAndInsufficientKeys) {
  Reply none = Http("ListModels", json::object(), "");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_EQ(none.headers["WWW-Authenticate"], "Bearer");
  EXPECT_EQ(none.Json()["code"], "unauthenticated") << none.body;
  EXPECT_NE(none.Json()["message"].get<std::string>().find("missing API key"), std::string::npos);
  Reply unknown = Http("ListModels", json::object(), "lk_wrong");
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(unknown.body.find("lk_wrong"), std::string::npos);
  Reply basic = Connection(http_->port())
                    .Send("POST", HttpApi::MethodPrefix() + "ListModels", "{}", "application/json",
                          {{"Authorization", "Basic dXNlcjpwYXNz"}});
  EXPECT_EQ(basic.status, 401);
  EXPECT_NE(basic.body.find("expected \\\"Bearer <key>\\\""), std::string::npos) << basic.body;

  Reply denied =
      Http("CreateCollection", {{"name", "shoes"}, {"model", "none"}, {"dim", 2}}, kReadKey);
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_EQ(denied.Json()["code"], "permission_denied");
  EXPECT_EQ(denied.Json()["message"],
            "CreateCollection needs the admin right on collection \"shoes\"; key \"web\" has read");
  Reply created =
      Http("CreateCollection", {{"name", "shoes"}, {"model", "none"}, {"dim", 2}}, kAdminKey);
  EXPECT_EQ(created.status, 200) << created.body;
  Reply other = Http("Search", {{"collection", "bags"}, {"queries", {{{"id", "a"}}}}}, kShoesKey);
  EXPECT_EQ(other.status, 403) << other.body;
  EXPECT_NE(other.body.find("on collection \\\"bags\\\""), std::string::npos) << other.body;
  Reply listed = Http("ListModels", json::object(), kShoesKey);
  EXPECT_EQ(listed.status, 200) << listed.body;
  // Transport errors are answered first; the key is checked before the body.
  EXPECT_EQ(Http("Nope", json::object(), "").status, 404);
  Reply garbage =
      Connection(http_->port())
          .Send("POST", HttpApi::MethodPrefix() + "Search", "not json", "application/json", {});
  EXPECT_EQ(garbage.status, 401) << garbage.body;

  const std::string text = metrics_.Render();
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"missing_key\"} 3"), std::string::npos)
      << text;
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"unknown_key\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("lookalike_auth_failures_total{reason=\"permission_denied\"} 2"),
            std::string::npos)
      << text;
}

// A thumbnail is read like Get: the read right on its collection, one rule
// for the GetThumbnail rpc and GET .../thumbnail.
TEST_F(AuthServerTest, ThumbnailsNeedTheReadRightOnTheirCollection) {
  EXPECT_EQ(HttpGet("/collections/bags/items/a/thumbnail", "").status, 401);
  EXPECT_EQ(HttpGet("/collections/bags/items/a/thumbnail", "lk_wrong").status, 401);
  Reply other = HttpGet("/collections/bags/items/a/thumbnail", kShoesKey);
  EXPECT_EQ(other.status, 403) << other.body;
  EXPECT_NE(other.body.find("on collection \\\"bags\\\""), std::string::npos) << other.body;
  // Past the key check: the collection does not exist.
  Reply missing = HttpGet("/collections/shoes/items/a/thumbnail", kShoesKey);
  EXPECT_EQ(missing.status, 404) << missing.body;

  // The rpc: the same answers, the same message.
  EXPECT_EQ(ClientWith("")->GetThumbnail("bags", "a").status().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(ClientWith("lk_wrong")->GetThumbnail("bags", "a").status().code(),
            StatusCode::kUnauthenticated);
  Status denied = ClientWith(kShoesKey)->GetThumbnail("bags", "a").status();
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(),
            "GetThumbnail needs the read right on collection \"bags\"; key \"shoes-team\" is "
            "limited to shoes, hats");
  EXPECT_EQ(other.Json()["message"], denied.message());
  EXPECT_EQ(ClientWith(kShoesKey)->GetThumbnail("shoes", "a").status().code(),
            StatusCode::kNotFound);
  // Counted as the method, whichever the transport.
  EXPECT_NE(metrics_.Render().find(
                "lookalike_requests_total{code=\"PERMISSION_DENIED\",method=\"GetThumbnail\"} 2"),
            std::string::npos)
      << metrics_.Render();
}

TEST_F(AuthServerTest, HealthzOpenMetricsBehindAKey) {
  Reply health = HttpGet("/healthz", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "SERVING\n");
  Reply none = HttpGet("/metrics", "");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_EQ(none.headers["WWW-Authenticate"], "Bearer");
  EXPECT_EQ(none.body.find("lookalike_"), std::string::npos);
  Reply limited = HttpGet("/metrics", kShoesKey);
  EXPECT_EQ(limited.status, 403) << limited.body;
  Reply ok = HttpGet("/metrics", kReadKey);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(ok.body.find("lookalike_auth_failures_total{reason=\"missing_key\"} 1"),
            std::string::npos)
      << ok.body;

  // The metrics port: the same check.
  MetricsHttpServer port(
      &metrics_, [] { return true; }, auth_.get());
  ASSERT_TRUE(port.Start("127.0.0.1:0").ok());
  EXPECT_EQ(Connection(port.port()).Send("GET", "/metrics", "", "").status, 401);
  EXPECT_EQ(Connection(port.port()).Send("GET", "/healthz", "", "").status, 200);
  EXPECT_EQ(
      Connection(port.port())
          .Send("GET", "/metrics", "", "", {{"Authorization", std::string("Bearer ") + kReadKey}})
          .status,
      200);
  port.Stop();

  // Open by default.
  Authenticator open(TestKeys(), &metrics_, /*metrics_require_key=*/false);
  EXPECT_TRUE(open.CheckMetrics("").ok());
}

}  // namespace
}  // namespace lookalike
