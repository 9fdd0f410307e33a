// Service tests through a real gRPC server on a loopback port with raw stubs.
// Every test runs twice: with collections in memory (memory_collections.h)
// and, when the build has the index library, with the real CollectionManager
// (SQLite + FAISS) in a temporary directory. The model is a fake embedding
// function (each image's mean R, G, B and a constant), so image paths
// (decode -> batcher -> service) are covered without model weights.
#include "server/service.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "fake_model.h"
#include "memory_collections.h"
#include "models/clip_tokenizer.h"
#include "server/grpc_server.h"
#include "server/grpc_status.h"

namespace lookalike {
namespace {

namespace pb = ::lookalike::v1;

constexpr int kFakeDim = 4;

using testing::FakeEmbed;
using testing::Png;

pb::Vector Vec(std::vector<float> values) {
  pb::Vector v;
  v.mutable_values()->Add(values.begin(), values.end());
  return v;
}

class ServiceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      collections_ = std::make_unique<testing::MemoryCollectionManager>();
    } else {
      const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
      data_dir_ = ::testing::TempDir() + "/lookalike_service_test_" + std::to_string(getpid()) +
                  "_" + test->name();
      std::filesystem::remove_all(data_dir_);
      CollectionManagerOptions options;
      options.data_dir = data_dir_;
      StatusOr<std::unique_ptr<CollectionManager>> manager = CollectionManager::Open(options);
      ASSERT_TRUE(manager.ok()) << manager.status().ToString();
      collections_ = std::move(manager).value();
    }
    ServiceOptions options;
    options.default_model = "fake";
    options.limits.max_images_per_request = 4;
    options.limits.max_queries_per_search = 5;
    options.limits.max_k = 100;
    options.limits.max_items_per_upsert = 16;
    options.limits.max_ids_per_request = 3;
    options.limits.max_image_pixels = 10000;
    options.limits.decode_threads = 2;
    options.batcher.max_batch = 8;
    options.batcher.max_delay_us = 500;
    options.handler_threads = 4;
    std::vector<ServedModel> models;
    models.push_back(testing::FakeModel());
    service_ = std::make_unique<LookalikeService>(options, collections_.get(), std::move(models),
                                                  &metrics_);
    StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start("127.0.0.1:0", 4 << 20, service_.get());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    server_->SetServing(true);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = pb::Lookalike::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::seconds(2));
    service_.reset();
    collections_.reset();
    if (!data_dir_.empty()) std::filesystem::remove_all(data_dir_);
  }

  void CreateVectors(const std::string& name, int dim, pb::Metric metric = pb::COSINE) {
    grpc::ClientContext ctx;
    pb::CreateCollectionRequest req;
    req.set_name(name);
    req.set_model(kVectorsOnly);
    req.set_dim(dim);
    req.set_metric(metric);
    pb::CollectionInfo info;
    grpc::Status s = stub_->CreateCollection(&ctx, req, &info);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  pb::UpsertResponse Upsert(const pb::UpsertRequest& req, grpc::Status* status) {
    grpc::ClientContext ctx;
    pb::UpsertResponse resp;
    *status = stub_->Upsert(&ctx, req, &resp);
    return resp;
  }

  pb::CollectionInfo Describe(const std::string& name) {
    grpc::ClientContext ctx;
    pb::DescribeCollectionRequest req;
    req.set_name(name);
    pb::CollectionInfo info;
    grpc::Status s = stub_->DescribeCollection(&ctx, req, &info);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return info;
  }

  pb::SearchResponse Search(const pb::SearchRequest& req, grpc::Status* status) {
    grpc::ClientContext ctx;
    pb::SearchResponse resp;
    *status = stub_->Search(&ctx, req, &resp);
    return resp;
  }

  // The GetThumbnail rpc.
  pb::GetThumbnailResponse Thumbnail(const std::string& collection, const std::string& id,
                                     grpc::Status* status) {
    grpc::ClientContext ctx;
    pb::GetThumbnailRequest req;
    req.set_collection(collection);
    req.set_id(id);
    pb::GetThumbnailResponse resp;
    *status = stub_->GetThumbnail(&ctx, req, &resp);
    return resp;
  }

  std::string data_dir_;
  std::unique_ptr<CollectionManager> collections_;
  Metrics metrics_;
  std::unique_ptr<LookalikeService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Lookalike::Stub> stub_;
};

TEST_P(ServiceTest, HealthIsServing) {
  // grpc.health.v1.Health/Check with an empty request ("" = the server);
  // the reply {status: SERVING} is the bytes 08 01.
  grpc::GenericStub generic(channel_);
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext ctx;
  std::promise<grpc::Status> done;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                    [&](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

TEST_P(ServiceTest, ListModels) {
  grpc::ClientContext ctx;
  pb::ListModelsResponse resp;
  ASSERT_TRUE(stub_->ListModels(&ctx, pb::ListModelsRequest(), &resp).ok());
  ASSERT_EQ(resp.models_size(), 1);
  EXPECT_EQ(resp.models(0).name(), "fake");
  EXPECT_EQ(resp.models(0).preset(), "fake_preset");
  EXPECT_EQ(resp.models(0).dim(), kFakeDim);
  EXPECT_EQ(resp.models(0).backend(), "cpu");
}

TEST_P(ServiceTest, EmbedDecodesAndEmbedsInOrder) {
  pb::EmbedRequest req;
  req.add_images(Png(255, 0, 0));
  req.add_images(Png(0, 51, 255));
  grpc::ClientContext ctx;
  pb::EmbedResponse resp;
  grpc::Status s = stub_->Embed(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.model().name(), "fake");
  ASSERT_EQ(resp.vectors_size(), 2);
  ASSERT_EQ(resp.vectors(0).values_size(), kFakeDim);
  EXPECT_FLOAT_EQ(resp.vectors(0).values(0), 1.f);
  EXPECT_FLOAT_EQ(resp.vectors(0).values(2), 0.f);
  EXPECT_FLOAT_EQ(resp.vectors(1).values(1), 0.2f);
  EXPECT_FLOAT_EQ(resp.vectors(1).values(2), 1.f);
}

TEST_P(ServiceTest, EmbedErrors) {
  auto call = [&](const pb::EmbedRequest& req) {
    grpc::ClientContext ctx;
    pb::EmbedResponse resp;
    return stub_->Embed(&ctx, req, &resp);
  };
  pb::EmbedRequest req;
  req.add_images(Png(1, 2, 3));
  req.add_images("");
  grpc::Status s = call(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "images[1]: image is empty");

  req.set_images(1, "not an image");
  s = call(req);
  EXPECT_EQ(s.error_message(), std::string("images[1]: ") + kImageUnsupportedMessage);

  req.set_images(1, Png(1, 2, 3, 200, 100));  // 20000 pixels > 10000
  s = call(req);
  EXPECT_EQ(s.error_message(),
            "images[1]: image is 200 x 100 = 20000 pixels, over the limit of 10000 pixels");

  pb::EmbedRequest many;
  for (int i = 0; i < 5; ++i) many.add_images(Png(1, 2, 3));
  s = call(many);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "images: 5 images is over the limit of 4");

  EXPECT_EQ(call(pb::EmbedRequest()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  pb::EmbedRequest unknown;
  unknown.set_model("nope");
  unknown.add_images(Png(1, 2, 3));
  s = call(unknown);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "model \"nope\" is not served (see ListModels)");
  // A call that fails on one image never reaches the engine.
  EXPECT_EQ(metrics_.Render().find("lookalike_embed_batch_size_count"), std::string::npos);
}

TEST_P(ServiceTest, CreateDescribeListDrop) {
  auto create = [&](const std::string& name, const std::string& model, int dim,
                    pb::CollectionInfo* info) {
    grpc::ClientContext ctx;
    pb::CreateCollectionRequest req;
    req.set_name(name);
    req.set_model(model);
    req.set_dim(dim);
    return stub_->CreateCollection(&ctx, req, info);
  };
  pb::CollectionInfo info;
  ASSERT_TRUE(create("photos", "", 0, &info).ok());
  EXPECT_EQ(info.model(), "fake");  // the default model
  EXPECT_EQ(info.dim(), kFakeDim);  // the model's dim
  EXPECT_EQ(info.metric(), pb::COSINE);
  EXPECT_EQ(info.index_spec(), "Flat");
  EXPECT_EQ(info.count(), 0);

  ASSERT_TRUE(create("raw", "", 8, &info).ok());  // dim differs: vectors only
  EXPECT_EQ(info.model(), kVectorsOnly);
  EXPECT_EQ(info.dim(), 8);

  grpc::Status s = create("photos", "", 0, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  s = create("x", "fake", 3, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "dim: 3 differs from model \"fake\"'s dim 4");
  s = create("y", kVectorsOnly, 0, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = create("z", "missing", 0, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  s = create("bad name!", "", 0, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  {
    grpc::ClientContext ctx;
    pb::ListCollectionsResponse list;
    ASSERT_TRUE(stub_->ListCollections(&ctx, pb::ListCollectionsRequest(), &list).ok());
    ASSERT_EQ(list.collections_size(), 2);
    EXPECT_EQ(list.collections(0).name(), "photos");
    EXPECT_EQ(list.collections(1).name(), "raw");
  }
  {
    grpc::ClientContext ctx;
    pb::DropCollectionRequest req;
    req.set_name("raw");
    pb::DropCollectionResponse resp;
    ASSERT_TRUE(stub_->DropCollection(&ctx, req, &resp).ok());
  }
  {
    grpc::ClientContext ctx;
    pb::DescribeCollectionRequest req;
    req.set_name("raw");
    s = stub_->DescribeCollection(&ctx, req, &info);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

TEST_P(ServiceTest, UpsertReportsEachItem) {
  CreateVectors("raw", 3);
  pb::UpsertRequest req;
  req.set_collection("raw");
  auto add = [&](const std::string& id) {
    pb::Item* item = req.add_items();
    item->set_id(id);
    return item;
  };
  *add("a")->mutable_vector() = Vec({1, 0, 0});
  *add("b")->mutable_vector() = Vec({1, 0});
  *add("c")->mutable_vector() = Vec({1, NAN, 0});
  add("d");
  pb::Item* e = add("e");
  *e->mutable_vector() = Vec({0, 1, 0});
  (*e->mutable_metadata())["color"] = "green";
  add("f")->set_image(Png(1, 2, 3));
  *add("")->mutable_vector() = Vec({0, 0, 1});
  grpc::Status s;
  pb::UpsertResponse resp = Upsert(req, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.statuses_size(), 7);
  EXPECT_EQ(resp.upserted(), 2);
  EXPECT_EQ(resp.failed(), 5);
  EXPECT_EQ(resp.statuses(0).code(), 0);
  EXPECT_EQ(resp.statuses(0).id(), "a");
  EXPECT_EQ(resp.statuses(1).code(), 3);
  EXPECT_EQ(resp.statuses(1).message(),
            "items[1] (id \"b\"): vector has 2 values; the collection's dim is 3");
  EXPECT_EQ(resp.statuses(2).message(),
            "items[2] (id \"c\"): vector has a non-finite value (NaN or Inf) at index 1");
  EXPECT_EQ(resp.statuses(3).message(),
            "items[3] (id \"d\"): item has neither an image nor a vector");
  EXPECT_EQ(resp.statuses(4).code(), 0);
  EXPECT_EQ(
      resp.statuses(5).message(),
      "items[5] (id \"f\"): collection \"raw\" stores vectors only (no model); send a vector");
  EXPECT_EQ(resp.statuses(6).code(), 3);  // the collection refuses an empty id
  EXPECT_EQ(resp.statuses(6).message().rfind("items[6] (id \"\"): ", 0), 0u);

  grpc::ClientContext ctx;
  pb::GetRequest get;
  get.set_collection("raw");
  get.add_ids("e");
  get.add_ids("b");
  get.add_ids("a");
  get.set_include_vectors(true);
  pb::GetResponse got;
  ASSERT_TRUE(stub_->Get(&ctx, get, &got).ok());
  ASSERT_EQ(got.items_size(), 2);
  EXPECT_EQ(got.items(0).id(), "e");
  EXPECT_EQ(got.items(0).metadata().at("color"), "green");
  ASSERT_EQ(got.items(0).vector().values_size(), 3);
  EXPECT_FLOAT_EQ(got.items(0).vector().values(1), 1.f);
  EXPECT_EQ(got.items(1).id(), "a");
  ASSERT_EQ(got.missing_ids_size(), 1);
  EXPECT_EQ(got.missing_ids(0), "b");

  pb::UpsertRequest missing;
  missing.set_collection("nope");
  Upsert(missing, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_P(ServiceTest, ImageItemsAndImageQueries) {
  pb::CollectionInfo info;
  {
    grpc::ClientContext ctx;
    pb::CreateCollectionRequest req;
    req.set_name("photos");
    ASSERT_TRUE(stub_->CreateCollection(&ctx, req, &info).ok());
  }
  pb::UpsertRequest req;
  req.set_collection("photos");
  const int colors[3][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
  const char* ids[3] = {"red", "green", "blue"};
  for (int i = 0; i < 3; ++i) {
    pb::Item* item = req.add_items();
    item->set_id(ids[i]);
    item->set_image(Png(colors[i][0], colors[i][1], colors[i][2]));
  }
  pb::Item* bad = req.add_items();
  bad->set_id("broken.jpg");
  bad->set_image(std::string("\xFF\xD8\xFF\xE0\x00\x10JFIF", 10));
  grpc::Status s;
  pb::UpsertResponse resp = Upsert(req, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.upserted(), 3);
  ASSERT_EQ(resp.statuses_size(), 4);
  EXPECT_EQ(resp.statuses(3).code(), 3);
  EXPECT_EQ(resp.statuses(3).message(),
            std::string("items[3] (id \"broken.jpg\"): ") + kImageUnsupportedMessage);

  pb::SearchRequest search;
  search.set_collection("photos");
  search.add_queries()->set_image(Png(10, 0, 240));  // bluish
  search.set_k(2);
  pb::SearchResponse found = Search(search, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(found.results_size(), 1);
  ASSERT_EQ(found.results(0).hits_size(), 2);
  EXPECT_EQ(found.results(0).hits(0).id(), "blue");

  search.mutable_queries(0)->set_image("garbage");
  Search(search, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), std::string("queries[0]: ") + kImageUnsupportedMessage);
}

TEST_P(ServiceTest, SearchByVectorIdFiltersScoresAndExtras) {
  CreateVectors("raw", 2);
  pb::UpsertRequest req;
  req.set_collection("raw");
  const std::vector<std::pair<std::string, std::vector<float>>> points = {
      {"east", {1, 0}}, {"northeast", {1, 1}}, {"north", {0, 1}}, {"west", {-1, 0}}};
  for (const auto& [id, v] : points) {
    pb::Item* item = req.add_items();
    item->set_id(id);
    *item->mutable_vector() = Vec(v);
    (*item->mutable_metadata())["half"] = v[0] >= 0 ? "right" : "left";
  }
  grpc::Status s;
  ASSERT_EQ(Upsert(req, &s).upserted(), 4);

  pb::SearchRequest search;
  search.set_collection("raw");
  *search.add_queries()->mutable_vector() = Vec({2, 0});
  search.add_queries()->set_id("north");
  search.set_k(3);
  search.set_include_metadata(true);
  search.set_include_vectors(true);
  pb::SearchResponse resp = Search(search, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 2);
  ASSERT_EQ(resp.results(0).hits_size(), 3);
  EXPECT_EQ(resp.results(0).hits(0).id(), "east");
  EXPECT_NEAR(resp.results(0).hits(0).score(), 1.f, 1e-5);
  EXPECT_EQ(resp.results(0).hits(1).id(), "northeast");
  EXPECT_EQ(resp.results(0).hits(0).metadata().at("half"), "right");
  ASSERT_EQ(resp.results(0).hits(0).vector().values_size(), 2);
  // By id: "north" itself is excluded.
  ASSERT_EQ(resp.results(1).hits_size(), 3);
  EXPECT_EQ(resp.results(1).hits(0).id(), "northeast");
  for (const pb::Hit& hit : resp.results(1).hits()) EXPECT_NE(hit.id(), "north");

  // Filter + min_score, no extras.
  pb::SearchRequest filtered;
  filtered.set_collection("raw");
  *filtered.add_queries()->mutable_vector() = Vec({0, 1});
  pb::FieldFilter* f = filtered.add_filter();
  f->set_key("half");
  f->add_values("right");
  filtered.set_min_score(0.5f);
  resp = Search(filtered, &s);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(resp.results(0).hits_size(), 2);  // north 1.0, northeast 0.707; east 0 dropped
  EXPECT_EQ(resp.results(0).hits(0).id(), "north");
  EXPECT_EQ(resp.results(0).hits(1).id(), "northeast");
  EXPECT_TRUE(resp.results(0).hits(0).metadata().empty());
  EXPECT_EQ(resp.results(0).hits(0).vector().values_size(), 0);

  // Errors name the query or field.
  pb::SearchRequest bad = filtered;
  bad.set_k(101);
  Search(bad, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "k: 101 is out of range [1, 100]");
  bad = filtered;
  *bad.add_queries()->mutable_vector() = Vec({INFINITY, 0});
  Search(bad, &s);
  EXPECT_EQ(s.error_message(), "queries[1]: vector has a non-finite value (NaN or Inf) at index 0");
  bad = filtered;
  bad.add_queries()->set_id("nobody");
  Search(bad, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "queries[1]: id \"nobody\" is not in collection \"raw\"");
  bad = filtered;
  bad.clear_queries();
  Search(bad, &s);
  EXPECT_EQ(s.error_message(), "queries: at least one query is required");
  bad = filtered;
  for (int i = 0; i < 5; ++i) *bad.add_queries()->mutable_vector() = Vec({1, 1});
  Search(bad, &s);
  EXPECT_EQ(s.error_message(), "queries: 6 queries is over the limit of 5");
  bad = filtered;
  bad.add_queries();
  Search(bad, &s);
  EXPECT_EQ(s.error_message(), "queries[1]: set one of image, vector, id or text");
}

TEST_P(ServiceTest, UpsertStreamWritesEveryBatch) {
  CreateVectors("raw", 2);
  grpc::ClientContext ctx;
  pb::UpsertResponse resp;
  auto writer = stub_->UpsertStream(&ctx, &resp);
  for (int batch = 0; batch < 3; ++batch) {
    pb::UpsertRequest req;
    if (batch == 0) req.set_collection("raw");
    for (int i = 0; i < 2; ++i) {
      pb::Item* item = req.add_items();
      item->set_id("b" + std::to_string(batch) + "_" + std::to_string(i));
      *item->mutable_vector() = (batch == 1 && i == 1) ? Vec({1}) : Vec({1, float(i)});
    }
    ASSERT_TRUE(writer->Write(req));
  }
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.upserted(), 5);
  EXPECT_EQ(resp.failed(), 1);
  ASSERT_EQ(resp.statuses_size(), 6);
  EXPECT_EQ(resp.statuses(3).message(),
            "items[3] (id \"b1_1\"): vector has 1 values; the collection's dim is 2");
  EXPECT_EQ(resp.statuses(5).id(), "b2_1");

  pb::DescribeCollectionRequest describe;
  describe.set_name("raw");
  pb::CollectionInfo info;
  grpc::ClientContext ctx2;
  ASSERT_TRUE(stub_->DescribeCollection(&ctx2, describe, &info).ok());
  EXPECT_EQ(info.count(), 5);
  // The in-memory fake has no storage; the real collections say where theirs is.
  EXPECT_EQ(info.storage(), GetParam() == "memory" ? "" : "sqlite");

  // A stream that names no collection fails as a whole.
  grpc::ClientContext ctx3;
  pb::UpsertResponse resp3;
  auto unnamed = stub_->UpsertStream(&ctx3, &resp3);
  pb::UpsertRequest req;
  req.add_items()->set_id("x");
  unnamed->Write(req);
  unnamed->WritesDone();
  s = unnamed->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "collection: the first message must name the collection");
}

TEST_P(ServiceTest, DeleteAndMetrics) {
  CreateVectors("raw", 2);
  pb::UpsertRequest req;
  req.set_collection("raw");
  for (const char* id : {"a", "b"}) {
    pb::Item* item = req.add_items();
    item->set_id(id);
    *item->mutable_vector() = Vec({1, 2});
  }
  grpc::Status s;
  Upsert(req, &s);
  ASSERT_TRUE(s.ok());
  grpc::ClientContext ctx;
  pb::DeleteRequest del;
  del.set_collection("raw");
  del.add_ids("a");
  del.add_ids("zzz");
  pb::DeleteResponse deleted;
  ASSERT_TRUE(stub_->Delete(&ctx, del, &deleted).ok());
  EXPECT_EQ(deleted.deleted(), 1);

  const std::string text = metrics_.Render();
  EXPECT_NE(text.find("lookalike_requests_total{code=\"OK\",method=\"Upsert\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("lookalike_requests_total{code=\"OK\",method=\"Delete\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("lookalike_request_duration_seconds_count{method=\"CreateCollection\"} 1"),
            std::string::npos);
}

// Many clients at once: every Embed gets its own image's vector back (batches
// mix requests), and concurrent writes all land.
TEST_P(ServiceTest, ConcurrentClientsGetTheirOwnResults) {
  CreateVectors("raw", 2);
  constexpr int kThreads = 8;
  constexpr int kItems = 10;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto stub = pb::Lookalike::NewStub(channel_);
      for (int round = 0; round < 3; ++round) {
        pb::EmbedRequest embed;
        const int red = 10 * t + round;
        embed.add_images(Png(red, 0, 0));
        grpc::ClientContext ctx;
        pb::EmbedResponse resp;
        if (!stub->Embed(&ctx, embed, &resp).ok() || resp.vectors_size() != 1 ||
            std::abs(resp.vectors(0).values(0) - red / 255.f) > 1e-6) {
          ++failures;
        }
      }
      pb::UpsertRequest upsert;
      upsert.set_collection("raw");
      for (int i = 0; i < kItems; ++i) {
        pb::Item* item = upsert.add_items();
        item->set_id("t" + std::to_string(t) + "_" + std::to_string(i));
        *item->mutable_vector() = Vec({float(t + 1), float(i)});
      }
      grpc::ClientContext ctx;
      pb::UpsertResponse resp;
      if (!stub->Upsert(&ctx, upsert, &resp).ok() || resp.upserted() != kItems) ++failures;
      pb::SearchRequest search;
      search.set_collection("raw");
      *search.add_queries()->mutable_vector() = Vec({1, 0});
      grpc::ClientContext sctx;
      pb::SearchResponse found;
      if (!stub->Search(&sctx, search, &found).ok() || found.results_size() != 1) ++failures;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(Describe("raw").count(), kThreads * kItems);
}

// Get and Delete are bounded by limits.max_ids_per_request (they used to be
// bounded by limits.max_items_per_upsert).
TEST_P(ServiceTest, GetAndDeleteHaveTheirOwnIdLimit) {
  CreateVectors("raw", 2);
  pb::UpsertRequest req;
  req.set_collection("raw");
  for (int i = 0; i < 5; ++i) {  // over max_ids_per_request, within max_items_per_upsert
    pb::Item* item = req.add_items();
    item->set_id("i" + std::to_string(i));
    *item->mutable_vector() = Vec({1, float(i)});
  }
  grpc::Status s;
  EXPECT_EQ(Upsert(req, &s).upserted(), 5);
  ASSERT_TRUE(s.ok()) << s.error_message();

  pb::GetRequest get;
  get.set_collection("raw");
  for (int i = 0; i < 3; ++i) get.add_ids("i" + std::to_string(i));
  {
    grpc::ClientContext ctx;
    pb::GetResponse got;
    ASSERT_TRUE(stub_->Get(&ctx, get, &got).ok());
    EXPECT_EQ(got.items_size(), 3);
  }
  get.add_ids("i3");
  {
    grpc::ClientContext ctx;
    pb::GetResponse got;
    s = stub_->Get(&ctx, get, &got);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(), "ids: 4 ids is over the limit of 3");
  }
  pb::DeleteRequest del;
  del.set_collection("raw");
  for (int i = 0; i < 4; ++i) del.add_ids("i" + std::to_string(i));
  {
    grpc::ClientContext ctx;
    pb::DeleteResponse deleted;
    s = stub_->Delete(&ctx, del, &deleted);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.error_message(), "ids: 4 ids is over the limit of 3");
  }
  // The upsert limit still holds for upserts.
  for (int i = 5; i < 17; ++i) {
    pb::Item* item = req.add_items();
    item->set_id("i" + std::to_string(i));
    *item->mutable_vector() = Vec({1, float(i)});
  }
  Upsert(req, &s);
  EXPECT_EQ(s.error_message(), "items: 17 items is over the limit of 16");
}

// Vectors-only collections are "none" on the wire; image items and image
// queries are refused for them, vectors are not.
TEST_P(ServiceTest, VectorsOnlyCollectionRefusesImages) {
  CreateVectors("raw", kFakeDim);
  {
    grpc::ClientContext ctx;
    pb::DescribeCollectionRequest req;
    req.set_name("raw");
    pb::CollectionInfo info;
    ASSERT_TRUE(stub_->DescribeCollection(&ctx, req, &info).ok());
    EXPECT_EQ(info.model(), kVectorsOnly);
  }
  pb::SearchRequest search;
  search.set_collection("raw");
  *search.add_queries()->mutable_vector() = Vec({1, 0, 0, 0});
  search.add_queries()->set_image(Png(1, 2, 3));
  grpc::Status s;
  Search(search, &s);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "queries[1]: collection \"raw\" stores vectors only (no model); send a vector");
}

// A collection created with thumbnail_size keeps a JPEG thumbnail of each
// image item: its longer side at most that size, the aspect kept; replaced
// with the item, deleted with it; raw-vector items have none.
TEST_P(ServiceTest, ImageItemsKeepThumbnails) {
  {
    grpc::ClientContext ctx;
    pb::CreateCollectionRequest req;
    req.set_name("thumbs");
    req.set_thumbnail_size(32);
    pb::CollectionInfo info;
    grpc::Status s = stub_->CreateCollection(&ctx, req, &info);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(info.thumbnail_size(), 32);
  }
  EXPECT_EQ(Describe("thumbs").thumbnail_size(), 32);
  pb::UpsertRequest up;
  up.set_collection("thumbs");
  auto* wide = up.add_items();
  wide->set_id("wide");
  wide->set_image(Png(200, 30, 30, 90, 30));  // 3:1, larger than 32
  auto* small = up.add_items();
  small->set_id("small");
  small->set_image(Png(10, 200, 10, 12, 20));  // smaller than 32: never enlarged
  auto* raw = up.add_items();
  raw->set_id("raw");
  *raw->mutable_vector() = Vec({1, 0, 0, 0});
  grpc::Status s;
  pb::UpsertResponse resp = Upsert(up, &s);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.upserted(), 3) << resp.DebugString();

  // Through the GetThumbnail rpc: the JPEG and its ETag.
  std::map<std::string, std::string> etags;
  auto thumbnail = [&](const std::string& id) -> StatusOr<DecodedImage> {
    grpc::Status s;
    pb::GetThumbnailResponse r = Thumbnail("thumbs", id, &s);
    RETURN_IF_ERROR(FromGrpcStatus(s));
    EXPECT_EQ(SniffImageFormat(r.jpeg()), ImageFormat::kJpeg);
    EXPECT_EQ(r.etag().size(), 18u) << r.etag();  // "<16 hex digits>"
    etags[id] = r.etag();
    return DecodeImage(r.jpeg(), 1 << 20);
  };
  StatusOr<DecodedImage> t = thumbnail("wide");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->width, 32);
  EXPECT_EQ(t->height, 11);  // 30 * 32 / 90 = 10.67, rounded
  // The colour survives (JPEG is lossy; the fake photo is one flat colour).
  EXPECT_NEAR(t->rgb[0], 200, 8);
  EXPECT_NEAR(t->rgb[1], 30, 8);
  t = thumbnail("small");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->width, 12);
  EXPECT_EQ(t->height, 20);
  EXPECT_NE(etags["wide"], etags["small"]);
  // The same call, transport-free (what GET .../thumbnail runs): the same bytes and tag.
  pb::GetThumbnailRequest direct_request;
  direct_request.set_collection("thumbs");
  direct_request.set_id("wide");
  pb::GetThumbnailResponse direct;
  ASSERT_TRUE(service_->DoGetThumbnail(direct_request, &direct).ok());
  EXPECT_EQ(direct.etag(), etags["wide"]);

  // Missing things: NOT_FOUND naming which.
  StatusOr<DecodedImage> missing = thumbnail("raw");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("has no thumbnail"), std::string::npos)
      << missing.status().ToString();
  missing = thumbnail("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos)
      << missing.status().ToString();
  grpc::Status s_missing;
  Thumbnail("no_such", "wide", &s_missing);
  EXPECT_EQ(s_missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s_missing.error_message().find("no_such"), std::string::npos)
      << s_missing.error_message();
  Thumbnail("thumbs", "", &s_missing);
  EXPECT_EQ(s_missing.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s_missing.error_message();

  // A collection that keeps no thumbnails: FAILED_PRECONDITION saying so, for any id.
  {
    grpc::ClientContext ctx;
    pb::CreateCollectionRequest req;
    req.set_name("plain");
    pb::CollectionInfo info;
    ASSERT_TRUE(stub_->CreateCollection(&ctx, req, &info).ok());
  }
  pb::UpsertRequest plain;
  plain.set_collection("plain");
  plain.add_items()->set_id("photo");
  plain.mutable_items(0)->set_image(Png(200, 30, 30, 90, 30));
  ASSERT_EQ(Upsert(plain, &s).upserted(), 1) << s.error_message();
  for (const char* id : {"photo", "nope"}) {
    grpc::Status kept;
    Thumbnail("plain", id, &kept);
    EXPECT_EQ(kept.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << id;
    EXPECT_EQ(kept.error_message(),
              "collection \"plain\" keeps no thumbnails (it was created without "
              "thumbnail_size)");
  }

  // Re-upserted as a vector: the old thumbnail goes with the old version.
  pb::UpsertRequest again;
  again.set_collection("thumbs");
  again.add_items()->set_id("wide");
  *again.mutable_items(0)->mutable_vector() = Vec({0, 1, 0, 0});
  resp = Upsert(again, &s);
  ASSERT_TRUE(s.ok() && resp.upserted() == 1) << s.error_message() << resp.DebugString();
  EXPECT_EQ(thumbnail("wide").status().code(), StatusCode::kNotFound);

  {
    grpc::ClientContext ctx;
    pb::DeleteRequest req;
    req.set_collection("thumbs");
    req.add_ids("small");
    pb::DeleteResponse del;
    ASSERT_TRUE(stub_->Delete(&ctx, req, &del).ok());
  }
  EXPECT_EQ(thumbnail("small").status().code(), StatusCode::kNotFound);
}

// thumbnail_size is 0 or 16..1024, and only for a collection with a model.
TEST_P(ServiceTest, ThumbnailSizeIsChecked) {
  if (GetParam() == "memory") GTEST_SKIP() << "the spec is checked by the real CollectionManager";
  auto create = [&](const std::string& model, int size) {
    grpc::ClientContext ctx;
    pb::CreateCollectionRequest req;
    req.set_name("t" + std::to_string(size < 0 ? 0 : size));
    req.set_model(model);
    if (model == kVectorsOnly) req.set_dim(4);
    req.set_thumbnail_size(size);
    pb::CollectionInfo info;
    return stub_->CreateCollection(&ctx, req, &info);
  };
  for (int bad : {-1, 8, 15, 1025, 100000}) {
    grpc::Status s = create("", bad);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_NE(s.error_message().find("thumbnail_size must be 0 (no thumbnails) or in 16..1024"),
              std::string::npos)
        << s.error_message();
  }
  grpc::Status s = create(kVectorsOnly, 64);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("stores vectors only"), std::string::npos) << s.error_message();
  EXPECT_TRUE(create("", 16).ok());
  EXPECT_TRUE(create("", 1024).ok());
}

std::vector<std::string> Managers() { return {"memory", "index"}; }

INSTANTIATE_TEST_SUITE_P(Collections, ServiceTest, ::testing::ValuesIn(Managers()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// One fake model (the default) behind a real gRPC server on a loopback port,
// for the ServiceAsyncTest cases; shut down when it goes out of scope.
struct OneModelServer {
  testing::MemoryCollectionManager collections;
  std::unique_ptr<LookalikeService> service;
  std::unique_ptr<GrpcServer> server;
  std::unique_ptr<pb::Lookalike::Stub> stub;
  ~OneModelServer() {
    if (server) server->Shutdown(std::chrono::seconds(2));
  }
};

void StartOneModelServer(ServiceOptions options, ServedModel model, OneModelServer* out) {
  options.default_model = model.name;
  std::vector<ServedModel> models;
  models.push_back(std::move(model));
  out->service =
      std::make_unique<LookalikeService>(options, &out->collections, std::move(models), nullptr);
  StatusOr<std::unique_ptr<GrpcServer>> server =
      GrpcServer::Start("127.0.0.1:0", 4 << 20, out->service.get());
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  out->server = std::move(server).value();
  out->server->SetServing(true);
  out->stub = pb::Lookalike::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(out->server->port()), grpc::InsecureChannelCredentials()));
}

// Embedding completes asynchronously: with 2 handler threads, 32 requests in
// flight at once still share one batch of 32 images, and each gets its own
// vector back. (When a handler thread waited for its batch, two requests
// filled the handler pool; their batch of 2 then waited for max_delay, far
// longer than the deadline.)
TEST(ServiceAsyncTest, ManyEmbedsInFlightWithTwoHandlerThreads) {
  constexpr int kRequests = 32;
  std::mutex mu;
  std::vector<int> batches;
  ServedModel model;
  model.name = "fake";
  model.info.dim = kFakeDim;
  model.embed = [&](const std::vector<ImageView>& images, std::vector<float>* out) {
    {
      std::lock_guard<std::mutex> lock(mu);
      batches.push_back(static_cast<int>(images.size()));
    }
    return FakeEmbed(images, out);
  };
  ServiceOptions options;
  options.limits.decode_threads = 1;
  options.batcher.max_batch = kRequests;
  options.batcher.max_delay_us = 60'000'000;  // a batch runs when full, not on a timer
  options.batcher.queue_capacity = 2 * kRequests;
  options.handler_threads = 2;
  OneModelServer served;
  ASSERT_NO_FATAL_FAILURE(StartOneModelServer(options, std::move(model), &served));
  auto& stub = served.stub;

  std::vector<std::string> images;
  for (int i = 0; i < kRequests; ++i) images.push_back(Png(i * 7, 0, 0));
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
      pb::EmbedRequest req;
      req.add_images(images[i]);
      pb::EmbedResponse resp;
      grpc::Status s = stub->Embed(&ctx, req, &resp);
      if (s.ok() && resp.vectors_size() == 1 &&
          std::abs(resp.vectors(0).values(0) - i * 7 / 255.f) < 1e-6) {
        ++ok;
      } else {
        ADD_FAILURE() << "request " << i << ": " << s.error_code() << " " << s.error_message();
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(ok.load(), kRequests);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(batches, std::vector<int>{kRequests});
  }
}

// ---- texts ------------------------------------------------------------------------

// Texts through the service: a model with a text tower ("clip": a toy
// tokenizer and a fake text embedding) and one without ("images"). The fake
// text vector of a text counts its 'r', 'g' and 'b' letters (toy vocabulary:
// printable ASCII c is id c - 33 inside a word, + 256 at its end), so "red"
// lands next to the red image (FakeEmbed: mean R, G, B and a constant).
class ServiceTextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string vocab =
        ::testing::TempDir() + "/service_text_test_" + std::to_string(getpid()) + "_bpe.txt";
    std::ofstream(vocab) << "#version: 0.2\nx y";
    StatusOr<ClipTokenizer> tokenizer = ClipTokenizer::Load(vocab);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
    end_token_ = tokenizer->end_token();
    ServedModel clip;
    clip.name = "clip";
    clip.info.preset = "clip_fake";
    clip.info.dim = kFakeDim;
    clip.info.has_text = true;
    clip.info.text_context_length = 8;
    clip.embed = FakeEmbed;
    clip.tokenizer = std::make_shared<const ClipTokenizer>(*std::move(tokenizer));
    clip.embed_texts = [this](const std::vector<TokenIds>& texts, std::vector<float>* out) {
      out->clear();
      std::lock_guard<std::mutex> lock(mu_);
      batches_.push_back(texts);
      for (const TokenIds& ids : texts) {
        float rgb[3] = {0, 0, 0};
        for (int32_t id : ids) {
          const int32_t c = (id >= 256 && id < 512 ? id - 256 : id) + 33;
          if (id < 512 && c == 'r') rgb[0] += 1;
          if (id < 512 && c == 'g') rgb[1] += 1;
          if (id < 512 && c == 'b') rgb[2] += 1;
        }
        out->insert(out->end(), {rgb[0], rgb[1], rgb[2], 0.4f});
      }
      return Status::Ok();
    };
    ServedModel images;
    images.name = "images";
    images.info.preset = "images_preset";
    images.info.dim = kFakeDim;
    images.info.has_text = true;  // a text tower but no tokenizer: served without texts
    images.embed = FakeEmbed;
    ServiceOptions options;
    options.default_model = "clip";
    options.limits.max_texts_per_request = 3;
    options.limits.max_text_bytes = 64;
    options.batcher.max_batch = 8;
    options.batcher.max_delay_us = 20'000;
    options.handler_threads = 4;
    std::vector<ServedModel> models;
    models.push_back(std::move(clip));
    models.push_back(std::move(images));
    service_ =
        std::make_unique<LookalikeService>(options, &collections_, std::move(models), nullptr);
    StatusOr<std::unique_ptr<GrpcServer>> server =
        GrpcServer::Start("127.0.0.1:0", 4 << 20, service_.get());
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    server_->SetServing(true);
    stub_ = pb::Lookalike::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::seconds(2));
  }

  grpc::Status Embed(const pb::EmbedRequest& req, pb::EmbedResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->Embed(&ctx, req, resp);
  }
  grpc::Status Search(const pb::SearchRequest& req, pb::SearchResponse* resp) {
    grpc::ClientContext ctx;
    return stub_->Search(&ctx, req, resp);
  }
  void CreatePhotos(const std::string& name, const std::string& model) {
    grpc::ClientContext ctx;
    pb::CreateCollectionRequest req;
    req.set_name(name);
    req.set_model(model);
    pb::CollectionInfo info;
    ASSERT_TRUE(stub_->CreateCollection(&ctx, req, &info).ok());
    grpc::ClientContext uctx;
    pb::UpsertRequest up;
    up.set_collection(name);
    const int colors[3][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    const char* ids[3] = {"red", "green", "blue"};
    for (int i = 0; i < 3; ++i) {
      pb::Item* item = up.add_items();
      item->set_id(ids[i]);
      item->set_image(Png(colors[i][0], colors[i][1], colors[i][2]));
      (*item->mutable_metadata())["kind"] = i == 2 ? "cool" : "warm";
    }
    pb::UpsertResponse resp;
    ASSERT_TRUE(stub_->Upsert(&uctx, up, &resp).ok());
    ASSERT_EQ(resp.upserted(), 3);
  }

  testing::MemoryCollectionManager collections_;
  std::unique_ptr<LookalikeService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<pb::Lookalike::Stub> stub_;
  int32_t end_token_ = 0;
  std::mutex mu_;
  std::vector<std::vector<TokenIds>> batches_;
};

TEST_F(ServiceTextTest, ListModelsReportsTexts) {
  grpc::ClientContext ctx;
  pb::ListModelsResponse resp;
  ASSERT_TRUE(stub_->ListModels(&ctx, pb::ListModelsRequest(), &resp).ok());
  ASSERT_EQ(resp.models_size(), 2);
  EXPECT_EQ(resp.models(0).name(), "clip");
  EXPECT_TRUE(resp.models(0).has_text());
  EXPECT_EQ(resp.models(0).text_context_length(), 8);
  EXPECT_EQ(resp.models(1).name(), "images");
  EXPECT_FALSE(resp.models(1).has_text());
  EXPECT_EQ(resp.models(1).text_context_length(), 0);
}

TEST_F(ServiceTextTest, EmbedTextsInOrderPaddedToTheBatchsLongest) {
  pb::EmbedRequest req;
  req.add_texts("rrr");
  req.add_texts("bg");
  req.add_texts("rr rr rr rr rr");  // 10 letters: truncated to 6, not refused
  pb::EmbedResponse resp;
  grpc::Status s = Embed(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.model().name(), "clip");
  ASSERT_EQ(resp.vectors_size(), 3);
  EXPECT_EQ(resp.vectors(0).values(0), 3.f);
  EXPECT_EQ(resp.vectors(1).values(1), 1.f);
  EXPECT_EQ(resp.vectors(1).values(2), 1.f);
  EXPECT_EQ(resp.vectors(2).values(0), 6.f);  // start, 6 of its letters, end
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(batches_.size(), 1u);
  const std::vector<TokenIds>& batch = batches_[0];
  ASSERT_EQ(batch.size(), 3u);
  // "rrr" = start, r, r, r</w>, end: 5 ids, then padding to the truncated
  // text's 8; "bg" = start, b, g</w>, end.
  for (const TokenIds& ids : batch) ASSERT_EQ(ids.size(), 8u);
  EXPECT_EQ(batch[0][4], end_token_);
  EXPECT_EQ(batch[0][5], 0);
  EXPECT_EQ(batch[1][3], end_token_);
  EXPECT_EQ(batch[2][7], end_token_);
}

TEST_F(ServiceTextTest, ShortBatchesArePaddedOnlyToTheirLongest) {
  pb::EmbedRequest req;
  req.add_texts("r");
  req.add_texts("b b");
  pb::EmbedResponse resp;
  ASSERT_TRUE(Embed(req, &resp).ok());
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_EQ(batches_.size(), 1u);
  for (const TokenIds& ids : batches_[0]) EXPECT_EQ(ids.size(), 4u);  // start b</w> b</w> end
}

TEST_F(ServiceTextTest, EmbedTextErrorsNameTheItem) {
  struct Case {
    std::vector<std::string> texts;
    grpc::StatusCode code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"ok", ""}, grpc::StatusCode::INVALID_ARGUMENT, "texts[1]: text is empty"},
      {{std::string(65, 'a')},
       grpc::StatusCode::INVALID_ARGUMENT,
       "texts[0]: text of 65 bytes is over the limit of 64"},
      {{"a", "b", "c", "d"},
       grpc::StatusCode::INVALID_ARGUMENT,
       "texts: 4 texts is over the limit of 3"},
  };
  for (const Case& c : cases) {
    pb::EmbedRequest req;
    for (const std::string& t : c.texts) req.add_texts(t);
    pb::EmbedResponse resp;
    grpc::Status s = Embed(req, &resp);
    EXPECT_EQ(s.error_code(), c.code) << c.message;
    EXPECT_EQ(s.error_message(), c.message);
  }
  pb::EmbedRequest both;
  both.add_texts("red");
  both.add_images(Png(1, 2, 3));
  pb::EmbedResponse resp;
  grpc::Status s = Embed(both, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "set images or texts, not both");

  pb::EmbedRequest images_only;
  images_only.set_model("images");
  images_only.add_texts("red");
  s = Embed(images_only, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("model \"images\" (preset images_preset) has no text tower"),
            std::string::npos)
      << s.error_message();
}

TEST_F(ServiceTextTest, InvalidUtf8IsRefusedNamingTheItem) {
  // Through the service directly: protobuf's parser would refuse the request
  // before it reached the service (a proto3 string must be UTF-8), but the
  // HTTP/JSON path and in-process callers reach this check.
  pb::EmbedRequest req;
  req.add_texts("fine");
  req.add_texts(std::string("caf\xC3", 4));
  pb::EmbedResponse resp;
  std::promise<Status> done;
  service_->DoEmbed(req, &resp, [&](Status s) { done.set_value(s); });
  const Status s = done.get_future().get();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().rfind("texts[1]: ", 0), 0u) << s.message();
  EXPECT_NE(s.message().find("UTF-8"), std::string::npos) << s.message();
}

TEST_F(ServiceTextTest, TextQueriesSearchImagesWithFiltersScoresAndK) {
  CreatePhotos("photos", "");
  pb::SearchRequest req;
  req.set_collection("photos");
  req.add_queries()->set_text("Red");  // lower-cased by the tokenizer
  req.add_queries()->set_image(Png(0, 10, 240));
  req.add_queries()->set_text("bbb");
  req.set_k(3);
  pb::SearchResponse resp;
  grpc::Status s = Search(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results_size(), 3);
  ASSERT_EQ(resp.results(0).hits_size(), 3);
  EXPECT_EQ(resp.results(0).hits(0).id(), "red");
  EXPECT_EQ(resp.results(1).hits(0).id(), "blue");
  EXPECT_EQ(resp.results(2).hits(0).id(), "blue");

  // Filters, k and min_score apply to text queries as to the others.
  req.clear_queries();
  req.add_queries()->set_text("red");
  req.set_k(1);
  pb::FieldFilter* filter = req.add_filter();
  filter->set_key("kind");
  filter->add_values("cool");
  resp.Clear();
  s = Search(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.results(0).hits_size(), 1);
  EXPECT_EQ(resp.results(0).hits(0).id(), "blue");
  req.set_min_score(0.99f);
  resp.Clear();
  s = Search(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.results(0).hits_size(), 0);
}

TEST_F(ServiceTextTest, TextQueryErrorsNameTheQuery) {
  CreatePhotos("photos", "");
  CreatePhotos("plain", "images");
  pb::SearchRequest req;
  req.set_collection("plain");
  req.add_queries()->set_image(Png(1, 2, 3));
  req.add_queries()->set_text("red");
  pb::SearchResponse resp;
  grpc::Status s = Search(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message().rfind("queries[1]: collection \"plain\"'s model \"images\"", 0), 0u)
      << s.error_message();

  req.set_collection("photos");
  req.mutable_queries(1)->set_text("");
  s = Search(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "queries[1]: text is empty");

  // A bad image next to a good text: the image's error, nothing searched.
  req.mutable_queries(0)->set_image("garbage");
  req.mutable_queries(1)->set_text("red");
  s = Search(req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("queries[0]: ", 0), 0u) << s.error_message();
  EXPECT_EQ(resp.results_size(), 0);
}

// Overload: past limits.max_pending_requests a request fails at once with
// RESOURCE_EXHAUSTED instead of queueing, and the count frees as requests
// finish.
TEST(ServiceAsyncTest, RequestsPastThePendingLimitAreShed) {
  constexpr int kLimit = 4;
  std::promise<void> entered, release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> first{true};
  ServedModel model;
  model.name = "fake";
  model.info.dim = kFakeDim;
  model.embed = [&](const std::vector<ImageView>& images, std::vector<float>* out) {
    if (first.exchange(false)) {
      entered.set_value();
      released.wait();  // the first batch holds kLimit requests pending
    }
    return FakeEmbed(images, out);
  };
  ServiceOptions options;
  options.limits.max_pending_requests = kLimit;
  options.batcher.max_batch = kLimit;
  options.batcher.max_delay_us = 60'000'000;  // the batch runs when full
  options.handler_threads = 2;
  OneModelServer served;
  ASSERT_NO_FATAL_FAILURE(StartOneModelServer(options, std::move(model), &served));
  auto& stub = served.stub;
  auto embed = [&](int i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    pb::EmbedRequest req;
    req.add_images(Png(i, 0, 0));
    pb::EmbedResponse resp;
    return stub->Embed(&ctx, req, &resp);
  };
  std::vector<std::future<grpc::Status>> held;
  for (int i = 0; i < kLimit; ++i) held.push_back(std::async(std::launch::async, embed, i));
  entered.get_future().wait();  // all kLimit admitted and embedding

  const grpc::Status shed = embed(99);
  EXPECT_EQ(shed.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(shed.error_message().find("4 requests pending (limits.max_pending_requests)"),
            std::string::npos)
      << shed.error_message();

  release.set_value();
  for (auto& f : held) EXPECT_TRUE(f.get().ok());
  // Their slots are free again (a batch of one waits for max_delay: send kLimit).
  std::vector<std::future<grpc::Status>> after;
  for (int i = 0; i < kLimit; ++i) after.push_back(std::async(std::launch::async, embed, i));
  for (auto& f : after) EXPECT_TRUE(f.get().ok());
}

}  // namespace
}  // namespace lookalike
