// Client library against an in-process fake lookalike.v1 service: status
// conversion, retry policy, per-item retries and the bulk upload window.
#include "client/lookalike_client.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>

namespace lookalike {
namespace {

// Scripted behaviour: fails the first `fail_first` calls of any RPC with
// `fail_code`, then answers. Upsert records ids and the peak concurrency.
class FakeService final : public v1::Lookalike::Service {
 public:
  std::atomic<int> fail_first{0};
  grpc::StatusCode fail_code = grpc::StatusCode::UNAVAILABLE;
  std::atomic<int> calls{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> peak_in_flight{0};
  std::atomic<int> upsert_delay_ms{0};
  // Ids whose first upsert is answered per item with RESOURCE_EXHAUSTED.
  std::set<std::string> busy_once;
  // Ids always rejected per item with INVALID_ARGUMENT.
  std::set<std::string> bad_ids;

  std::mutex mu;
  std::multiset<std::string> upserted;  // ids answered OK (with repeats)

  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* r) override {
    if (auto s = MaybeFail(); !s.ok()) return s;
    auto* m = r->add_models();
    m->set_name("efficientnet_lite0");
    m->set_dim(1280);
    return grpc::Status::OK;
  }

  grpc::Status DescribeCollection(grpc::ServerContext*, const v1::DescribeCollectionRequest* req,
                                  v1::CollectionInfo* r) override {
    if (auto s = MaybeFail(); !s.ok()) return s;
    if (req->name() != "c")
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "collection \"" + req->name() + "\" not found");
    r->set_name("c");
    return grpc::Status::OK;
  }

  grpc::Status Upsert(grpc::ServerContext*, const v1::UpsertRequest* req,
                      v1::UpsertResponse* r) override {
    if (auto s = MaybeFail(); !s.ok()) return s;
    int now = ++in_flight;
    int peak = peak_in_flight.load();
    while (now > peak && !peak_in_flight.compare_exchange_weak(peak, now)) {
    }
    if (upsert_delay_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(upsert_delay_ms));
    {
      std::lock_guard<std::mutex> lock(mu);
      for (const auto& item : req->items()) {
        auto* st = r->add_statuses();
        st->set_id(item.id());
        if (bad_ids.count(item.id())) {
          st->set_code(3);
          st->set_message("items: id \"" + item.id() + "\": bad");
          r->set_failed(r->failed() + 1);
        } else if (busy_once.erase(item.id()) > 0) {
          st->set_code(8);
          st->set_message("queue full");
          r->set_failed(r->failed() + 1);
        } else {
          upserted.insert(item.id());
          r->set_upserted(r->upserted() + 1);
        }
      }
    }
    --in_flight;
    return grpc::Status::OK;
  }

 private:
  grpc::Status MaybeFail() {
    ++calls;
    if (fail_first.load() > 0) {
      --fail_first;
      return grpc::Status(fail_code, "scripted failure");
    }
    return grpc::Status::OK;
  }
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override { server_->Shutdown(); }

  std::unique_ptr<Client> MakeClient(int attempts = 4) {
    ClientOptions o;
    o.server = "127.0.0.1:" + std::to_string(port_);
    o.timeout = std::chrono::seconds(10);
    o.max_attempts = attempts;
    o.initial_backoff = std::chrono::milliseconds(5);
    o.max_backoff = std::chrono::milliseconds(20);
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok());
    return std::move(*c);
  }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST(ResolveServerAddress, FlagThenEnvThenDefault) {
  ::unsetenv(kServerEnvVar);
  EXPECT_EQ(ResolveServerAddress(""), "localhost:50051");
  ::setenv(kServerEnvVar, "10.0.0.1:1234", 1);
  EXPECT_EQ(ResolveServerAddress(""), "10.0.0.1:1234");
  EXPECT_EQ(ResolveServerAddress("h:1"), "h:1");
  ::unsetenv(kServerEnvVar);
}

// The server sends kVectorsOnly ("none") for a vectors-only collection, never "".
TEST(StoresVectorsOnly, IsModelNone) {
  v1::CollectionInfo info;
  info.set_model("none");
  EXPECT_TRUE(StoresVectorsOnly(info));
  info.set_model("efficientnet_lite0");
  EXPECT_FALSE(StoresVectorsOnly(info));
}

TEST(FromGrpcStatus, KeepsCodeAndMessage) {
  Status s = FromGrpcStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "items[3]: bad"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "items[3]: bad");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_TRUE(IsRetryable(StatusCode::kUnavailable));
  EXPECT_TRUE(IsRetryable(StatusCode::kResourceExhausted));
  EXPECT_FALSE(IsRetryable(StatusCode::kInvalidArgument));
  EXPECT_FALSE(IsRetryable(StatusCode::kDeadlineExceeded));
}

TEST_F(ClientTest, RetriesUnavailableThenSucceeds) {
  auto client = MakeClient(4);
  service_.fail_first = 3;
  auto models = client->ListModels();
  ASSERT_TRUE(models.ok()) << models.status().ToString();
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].dim(), 1280);
  EXPECT_EQ(service_.calls.load(), 4);
  EXPECT_EQ(client->retries(), 3);
}

TEST_F(ClientTest, GivesUpAfterMaxAttempts) {
  auto client = MakeClient(3);
  service_.fail_first = 10;
  service_.fail_code = grpc::StatusCode::RESOURCE_EXHAUSTED;
  auto models = client->ListModels();
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(service_.calls.load(), 3);
}

TEST_F(ClientTest, DoesNotRetryNonTransientErrors) {
  auto client = MakeClient(4);
  auto info = client->DescribeCollection("nope");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(info.status().message(), "collection \"nope\" not found");
  EXPECT_EQ(service_.calls.load(), 1);
}

TEST_F(ClientTest, UnimplementedRpcIsReported) {
  auto client = MakeClient(4);
  auto r = client->Search(v1::SearchRequest());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
}

// A text that is not UTF-8 is refused before it is sent, naming it (the
// server's parser would refuse the whole message); valid texts go out.
TEST_F(ClientTest, TextsMustBeUtf8) {
  auto client = MakeClient(4);
  v1::EmbedRequest embed;
  embed.add_texts("caf\xC3\xA9");
  embed.add_texts(std::string("caf\xC3", 4));
  auto e = client->Embed(embed);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.status().message(), "texts[1]: text is not valid UTF-8");
  v1::SearchRequest search;
  search.add_queries()->set_id("x");
  search.add_queries()->set_text("\xFF");
  auto r = client->Search(search);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "queries[1]: text is not valid UTF-8");
  EXPECT_EQ(service_.calls.load(), 0);
  search.mutable_queries(1)->set_text("caf\xC3\xA9");
  r = client->Search(search);
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);  // sent: the fake has no Search
}

TEST_F(ClientTest, HealthCheckReportsServing) {
  auto client = MakeClient();
  auto serving = client->CheckHealth();
  ASSERT_TRUE(serving.ok()) << serving.status().ToString();
  EXPECT_TRUE(*serving);
  server_->GetHealthCheckService()->SetServingStatus(false);
  serving = client->CheckHealth();
  ASSERT_TRUE(serving.ok());
  EXPECT_FALSE(*serving);
}

TEST(ClientNoServer, UnreachableServerIsUnavailableNamingIt) {
  ClientOptions o;
  o.server = "127.0.0.1:1";
  o.max_attempts = 2;
  o.initial_backoff = std::chrono::milliseconds(1);
  o.timeout = std::chrono::seconds(5);
  auto client = Client::Connect(o);
  ASSERT_TRUE(client.ok());
  auto models = (*client)->ListModels();
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(models.status().message().find("127.0.0.1:1"), std::string::npos);
  EXPECT_FALSE((*client)->WaitForConnected(std::chrono::milliseconds(50)).ok());
}

v1::Item VectorItem(const std::string& id) {
  v1::Item item;
  item.set_id(id);
  item.mutable_vector()->add_values(1.f);
  return item;
}

TEST_F(ClientTest, BulkUploaderBoundsInFlightAndReportsEveryItem) {
  auto client = MakeClient();
  service_.upsert_delay_ms = 20;
  service_.bad_ids = {"id7"};
  std::vector<BulkItemResult> results;
  int batches = 0;
  {
    BulkUploadOptions o;
    o.concurrency = 3;
    o.batch_items = 4;
    BulkUploader up(client.get(), "c", o, [&](const std::vector<BulkItemResult>& r) {
      ++batches;
      results.insert(results.end(), r.begin(), r.end());
    });
    for (int i = 0; i < 50; ++i) up.Add(VectorItem("id" + std::to_string(i)), i);
    up.Finish();
  }
  ASSERT_EQ(results.size(), 50u);
  EXPECT_EQ(batches, 13);  // ceil(50 / 4)
  EXPECT_LE(service_.peak_in_flight.load(), 3);
  EXPECT_GE(service_.peak_in_flight.load(), 2);  // it does overlap requests
  std::set<int64_t> tags;
  for (const auto& r : results) {
    tags.insert(r.tag);
    EXPECT_EQ(r.id, "id" + std::to_string(r.tag));
    if (r.id == "id7") {
      EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
      EXPECT_NE(r.status.message().find("id7"), std::string::npos);
    } else {
      EXPECT_TRUE(r.status.ok()) << r.id << ": " << r.status.ToString();
    }
  }
  EXPECT_EQ(tags.size(), 50u);
  EXPECT_EQ(service_.upserted.size(), 49u);
}

TEST_F(ClientTest, BulkUploaderRetriesItemsRejectedAsBusy) {
  auto client = MakeClient();
  service_.busy_once = {"a", "c"};
  std::vector<BulkItemResult> results;
  {
    BulkUploadOptions o;
    o.concurrency = 1;
    o.batch_items = 8;
    BulkUploader up(client.get(), "c", o, [&](const std::vector<BulkItemResult>& r) {
      results.insert(results.end(), r.begin(), r.end());
    });
    for (const char* id : {"a", "b", "c"}) up.Add(VectorItem(id), 0);
  }
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) EXPECT_TRUE(r.status.ok()) << r.id << ": " << r.status.ToString();
  // b once, a and c once each after their retry: no duplicates.
  EXPECT_EQ(service_.upserted, (std::multiset<std::string>{"a", "b", "c"}));
}

TEST_F(ClientTest, BulkUploaderReportsWholeBatchFailures) {
  auto client = MakeClient(2);
  service_.fail_first = 1000;
  std::vector<BulkItemResult> results;
  {
    BulkUploader up(client.get(), "c", BulkUploadOptions(),
                    [&](const std::vector<BulkItemResult>& r) {
                      results.insert(results.end(), r.begin(), r.end());
                    });
    for (int i = 0; i < 5; ++i) up.Add(VectorItem("x" + std::to_string(i)), i);
  }
  ASSERT_EQ(results.size(), 5u);
  for (const auto& r : results) EXPECT_EQ(r.status.code(), StatusCode::kUnavailable);
}

TEST_F(ClientTest, BulkUploaderSplitsByBytes) {
  auto client = MakeClient();
  int batches = 0;
  {
    BulkUploadOptions o;
    o.batch_items = 100;
    o.batch_bytes = 2500;
    BulkUploader up(client.get(), "c", o, [&](const std::vector<BulkItemResult>&) { ++batches; });
    for (int i = 0; i < 6; ++i) {
      v1::Item item;
      item.set_id("big" + std::to_string(i));
      item.set_image(std::string(1000, 'x'));
      up.Add(std::move(item), i);
    }
  }
  EXPECT_EQ(batches, 3);  // two ~1 KB items per 2.5 KB request
  EXPECT_EQ(service_.upserted.size(), 6u);
}

}  // namespace
}  // namespace lookalike
