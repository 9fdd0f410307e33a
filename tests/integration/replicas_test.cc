// Two real lookalike-server processes sharing one real PostgreSQL
// (tests/pg_harness.h), each on its own port and data directory: writes
// through one are searchable through the other within a bound; with the
// database stopped writes fail UNAVAILABLE naming it while searches keep
// answering, and both catch up once it returns; a server killed with
// kill -9 mid-ingest loses no acknowledged item and duplicates none, on
// either server; two servers writing the same ids concurrently converge.
// Commit-order replay under interleaved writers is proven at the storage
// level (StorageContractTest.ConcurrentWritersCommitInSequenceOrder).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "tests/integration/server_harness.h"
#include "tests/pg_harness.h"

namespace lookalike::testing {
namespace {

constexpr int kDim = 16;

std::vector<float> VectorOf(int seed, int salt = 0) {
  std::vector<float> v(kDim);
  for (int d = 0; d < kDim; ++d) {
    v[d] = static_cast<float>(((seed * 31 + d * 17 + salt * 7) % 23) - 11);
  }
  // Distinct directions for seeds below kDim * kDim.
  v[seed % kDim] += 40.f;
  v[(seed / kDim) % kDim] += 25.f;
  return v;
}

v1::UpsertRequest Batch(const std::string& collection, int first, int n, int salt = 0) {
  v1::UpsertRequest req;
  req.set_collection(collection);
  for (int i = first; i < first + n; ++i) {
    v1::Item* item = req.add_items();
    item->set_id("id" + std::to_string(i));
    for (float x : VectorOf(i, salt)) item->mutable_vector()->add_values(x);
    (*item->mutable_metadata())["salt"] = std::to_string(salt);
  }
  return req;
}

void SetQuery(v1::SearchRequest* req, const std::vector<float>& vector) {
  v1::Vector* q = req->add_queries()->mutable_vector();
  for (float x : vector) q->add_values(x);
}

int64_t Count(Client* client, const std::string& collection) {
  auto info = client->DescribeCollection(collection);
  return info.ok() ? info->count() : -1;
}

// Every id of the collection (a search with k = everything), duplicates kept.
std::multiset<std::string> AllIds(Client* client, const std::string& collection) {
  v1::SearchRequest req;
  req.set_collection(collection);
  req.set_k(2048);
  v1::Vector* q = req.add_queries()->mutable_vector();
  for (int d = 0; d < kDim; ++d) q->add_values(1.f);
  auto r = client->Search(req);
  std::multiset<std::string> ids;
  if (r.ok()) {
    for (const auto& h : r->results(0).hits()) ids.insert(h.id());
  }
  return ids;
}

// id -> (vector, metadata "salt") as stored.
std::map<std::string, std::pair<std::vector<float>, std::string>> Contents(Client* client,
                                                                           const std::string& c,
                                                                           int n) {
  v1::GetRequest get;
  get.set_collection(c);
  get.set_include_vectors(true);
  for (int i = 0; i < n; ++i) get.add_ids("id" + std::to_string(i));
  auto r = client->Get(get);
  std::map<std::string, std::pair<std::vector<float>, std::string>> out;
  if (!r.ok()) return out;
  for (const auto& item : r->items()) {
    out[item.id()] = {
        std::vector<float>(item.vector().values().begin(), item.vector().values().end()),
        item.metadata().count("salt") ? item.metadata().at("salt") : ""};
  }
  return out;
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    pg_ = PgHarness::Get(&why);
    if (pg_ == nullptr && !PgHarness::Installed()) GTEST_SKIP() << why;
    ASSERT_NE(pg_, nullptr) << why;
    auto uri = pg_->NewDatabase();
    ASSERT_TRUE(uri.ok()) << uri.status().ToString();
    uri_ = *uri;
    a_ = std::make_unique<ServerProcess>(dir_ / "a", Flags());
    b_ = std::make_unique<ServerProcess>(dir_ / "b", Flags());
    ASSERT_TRUE(a_->Start().ok()) << a_->LogTail();
    ASSERT_TRUE(b_->Start().ok()) << b_->LogTail();
    ca_ = a_->MakeClient();
    cb_ = b_->MakeClient();
  }

  // A test that stopped PostgreSQL and failed before resuming it leaves it
  // running for the next one.
  void TearDown() override {
    if (pg_ != nullptr) (void)pg_->Resume();
  }

  std::vector<std::string> Flags() const { return {"--storage", uri_, "--follow-poll-ms", "200"}; }

  void CreateOnA(const std::string& name) {
    v1::CreateCollectionRequest create;
    create.set_name(name);
    create.set_model("none");
    create.set_dim(kDim);
    auto info = ca_->CreateCollection(create);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    ASSERT_TRUE(Eventually([&] { return Count(cb_.get(), name) == 0; })) << "create not on b";
  }

  TempDir dir_;
  PgHarness* pg_ = nullptr;
  std::string uri_;
  std::unique_ptr<ServerProcess> a_, b_;
  std::unique_ptr<Client> ca_, cb_;
};

TEST_F(ReplicasTest, WritesThroughOneServerAreSearchableOnTheOtherWithinASecond) {
  CreateOnA("shop");
  auto info = cb_->DescribeCollection("shop");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->storage().rfind("postgresql://", 0), 0u) << info->storage();
  EXPECT_NE(info->storage().find("127.0.0.1:" + std::to_string(pg_->port()) + "/"),
            std::string::npos)
      << info->storage();

  ASSERT_TRUE(ca_->Upsert(Batch("shop", 0, 50)).ok());
  const auto written = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually([&] { return Count(cb_.get(), "shop") == 50; }, std::chrono::seconds(1)))
      << "b has " << Count(cb_.get(), "shop") << " of 50 after 1 s";
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - written).count();
  RecordProperty("follow_ms", std::to_string(static_cast<int>(ms)));

  v1::SearchRequest q;
  q.set_collection("shop");
  q.set_k(1);
  SetQuery(&q, VectorOf(17));
  auto r = cb_->Search(q);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->results(0).hits(0).id(), "id17");

  ASSERT_TRUE(ca_->Delete("shop", {"id17"}).ok());
  ASSERT_TRUE(Eventually([&] { return Count(cb_.get(), "shop") == 49; }, std::chrono::seconds(1)));
  r = cb_->Search(q);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->results(0).hits(0).id(), "id17");

  ASSERT_TRUE(ca_->DropCollection("shop").ok());
  ASSERT_TRUE(Eventually([&] { return Count(cb_.get(), "shop") == -1; }, std::chrono::seconds(2)));
}

TEST_F(ReplicasTest, DatabaseStoppedWritesFailSearchesAnswerThenBothCatchUp) {
  CreateOnA("down");
  ASSERT_TRUE(ca_->Upsert(Batch("down", 0, 20)).ok());
  ASSERT_TRUE(Eventually([&] { return Count(cb_.get(), "down") == 20; }));

  ASSERT_TRUE(pg_->Stop().ok());
  auto failed = ca_->Upsert(Batch("down", 20, 5));
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().ToString();
  EXPECT_NE(failed.status().message().find("postgresql://"), std::string::npos)
      << failed.status().ToString();
  EXPECT_NE(failed.status().message().find(std::to_string(pg_->port())), std::string::npos)
      << failed.status().ToString();
  v1::SearchRequest q;
  q.set_collection("down");
  q.set_k(3);
  SetQuery(&q, VectorOf(4));
  for (Client* c : {ca_.get(), cb_.get()}) {
    auto r = c->Search(q);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->results(0).hits_size(), 3);
    EXPECT_EQ(r->results(0).hits(0).id(), "id4");
  }

  ASSERT_TRUE(pg_->Resume().ok());
  ASSERT_TRUE(Eventually([&] { return ca_->Upsert(Batch("down", 20, 5)).ok(); }));
  ASSERT_TRUE(Eventually([&] { return Count(cb_.get(), "down") == 25; }))
      << Count(cb_.get(), "down") << "\n"
      << b_->LogTail();
}

TEST_F(ReplicasTest, Kill9MidIngestLosesNoAcknowledgedItemOnEitherServer) {
  CreateOnA("bulk");
  std::mutex mu;
  std::set<std::string> acked;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto client = a_->MakeClient(1);
    for (int first = 0; !stop && first < 1500; first += 10) {
      auto r = client->Upsert(Batch("bulk", first, 10));
      if (!r.ok()) break;  // the server is gone
      std::lock_guard<std::mutex> lock(mu);
      for (int i = first; i < first + 10; ++i) acked.insert("id" + std::to_string(i));
    }
  });
  ASSERT_TRUE(Eventually([&] {
    std::lock_guard<std::mutex> lock(mu);
    return acked.size() >= 200;
  }));
  a_->Kill9();
  stop = true;
  writer.join();
  std::set<std::string> acknowledged;
  {
    std::lock_guard<std::mutex> lock(mu);
    acknowledged = acked;
  }

  ASSERT_TRUE(a_->Start().ok()) << a_->LogTail();
  ca_ = a_->MakeClient();
  std::multiset<std::string> on_a, on_b;
  ASSERT_TRUE(Eventually([&] {
    on_a = AllIds(ca_.get(), "bulk");
    on_b = AllIds(cb_.get(), "bulk");
    return on_a == on_b && on_a.size() >= acknowledged.size();
  })) << "a has "
      << on_a.size() << ", b has " << on_b.size();
  for (const auto& id : acknowledged) {
    EXPECT_EQ(on_a.count(id), 1u) << id;
    EXPECT_EQ(on_b.count(id), 1u) << id;
  }
  for (const auto& id : on_a) EXPECT_EQ(on_a.count(id), 1u) << id << " twice";
  EXPECT_EQ(Count(ca_.get(), "bulk"), static_cast<int64_t>(on_a.size()));
  EXPECT_EQ(Count(cb_.get(), "bulk"), static_cast<int64_t>(on_b.size()));
}

TEST_F(ReplicasTest, TwoServersWritingTheSameIdsConverge) {
  CreateOnA("race");
  constexpr int kIds = 40;
  auto write_rounds = [&](ServerProcess* server, int salt0) {
    auto client = server->MakeClient();
    for (int round = 0; round < 15; ++round) {
      auto r = client->Upsert(Batch("race", 0, kIds, salt0 + round));
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      auto d = client->Delete("race", {"id" + std::to_string((round * 7 + salt0) % kIds)});
      EXPECT_TRUE(d.ok()) << d.status().ToString();
    }
  };
  std::thread ta([&] { write_rounds(a_.get(), 0); });
  std::thread tb([&] { write_rounds(b_.get(), 100); });
  ta.join();
  tb.join();

  std::map<std::string, std::pair<std::vector<float>, std::string>> on_a, on_b;
  std::multiset<std::string> ids_a, ids_b;
  ASSERT_TRUE(Eventually([&] {
    on_a = Contents(ca_.get(), "race", kIds);
    on_b = Contents(cb_.get(), "race", kIds);
    ids_a = AllIds(ca_.get(), "race");
    ids_b = AllIds(cb_.get(), "race");
    return on_a == on_b && ids_a == ids_b && ids_a.size() == on_a.size();
  })) << "a: "
      << ids_a.size() << " searchable / " << on_a.size() << " stored; b: " << ids_b.size() << " / "
      << on_b.size();
  // Each searchable id is found by its own stored vector, on both servers.
  for (const auto& [id, content] : on_a) {
    for (Client* c : {ca_.get(), cb_.get()}) {
      v1::SearchRequest q;
      q.set_collection("race");
      q.set_k(1);
      q.set_include_metadata(true);
      SetQuery(&q, content.first);
      auto r = c->Search(q);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->results(0).hits(0).id(), id);
      EXPECT_EQ(r->results(0).hits(0).metadata().at("salt"), content.second);
    }
  }
}

}  // namespace
}  // namespace lookalike::testing
