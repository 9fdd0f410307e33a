// Followers (index/follower.h): two servers (collection managers on separate
// data directories) sharing one real PostgreSQL. Whatever one does reaches
// the other's index: creates, writes, deletes, drops; a restarted server
// catches up from its snapshot plus the tail; tombstones are pruned only as
// far as every server's snapshot.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "index/collection.h"
#include "index/pg_database.h"
#include "test_util.h"
#include "tests/pg_harness.h"

namespace lookalike {
namespace {

using testing::Eventually;
using testing::MakeItems;
using testing::StorageFor;
using testing::StorageKind;
using testing::TempDir;

// The id of the best hit for `vector` in `name` on `manager`, or "" when
// the collection or the hit is missing.
std::string TopHit(CollectionManager& manager, const std::string& name,
                   const std::vector<float>& vector) {
  auto c = manager.Get(name);
  if (!c.ok()) return "";
  SearchParams p;
  p.k = 1;
  auto hits = (*c)->Search(vector.data(), 1, p);
  if (!hits.ok() || (*hits)[0].empty()) return "";
  return (*hits)[0][0].id;
}

int64_t CountOn(CollectionManager& manager, const std::string& name) {
  auto c = manager.Get(name);
  return c.ok() ? (*c)->Stats().count : -1;
}

class FollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto uri = StorageFor(StorageKind::kPostgres);
    if (uri.status().code() == StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << uri.status().message();
    }
    ASSERT_TRUE(uri.ok()) << uri.status().ToString();
    uri_ = *uri;
  }

  // A server on `dir`. A long poll interval: only notifications can wake it
  // in time, so these tests prove LISTEN/NOTIFY (the polling test shortens it).
  std::unique_ptr<CollectionManager> Open(const TempDir& dir, int64_t poll_ms = 600000,
                                          int64_t snapshot_every = 10000) {
    CollectionManagerOptions options;
    options.data_dir = dir.path();
    options.storage = uri_;
    options.follow_poll_ms = poll_ms;
    options.snapshot_every_writes = snapshot_every;
    auto m = CollectionManager::Open(options);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? std::move(m).value() : nullptr;
  }

  static CollectionSpec Spec(const std::string& name) {
    CollectionSpec spec;
    spec.name = name;
    spec.dim = 8;
    return spec;
  }

  static void Write(CollectionManager& m, const std::string& name, const std::vector<Item>& items) {
    auto c = m.Get(name);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    auto st = (*c)->Upsert(items);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
  }

  std::string uri_;
};

TEST_F(FollowerTest, CreateWritesDeletesAndDropReachTheOtherServerByNotification) {
  TempDir dir_a, dir_b;
  auto a = Open(dir_a);
  auto b = Open(dir_b);
  ASSERT_TRUE(a && b);

  ASSERT_TRUE(a->Create(Spec("shop")).ok());
  ASSERT_TRUE(Eventually([&] { return b->Get("shop").ok(); })) << "create did not reach b";

  const auto items = MakeItems(30, 8, 11);
  Write(*a, "shop", items);
  ASSERT_TRUE(Eventually([&] { return CountOn(*b, "shop") == 30; })) << CountOn(*b, "shop");
  EXPECT_EQ(TopHit(*b, "shop", items[17].vector), "item-17");

  // Replacing an id on a: b drops the old vector (tombstone) and adds the new one.
  Item moved = items[3];
  moved.vector = items[20].vector;
  moved.vector[0] += 0.01f;
  Write(*a, "shop", {moved});
  ASSERT_TRUE(Eventually([&] {
    return TopHit(*b, "shop", items[3].vector) != "item-3" && CountOn(*b, "shop") == 30;
  }));

  auto ca = a->Get("shop");
  ASSERT_TRUE(ca.ok());
  ASSERT_TRUE((*ca)->Delete({"item-17", "item-18"}).ok());
  ASSERT_TRUE(Eventually([&] { return CountOn(*b, "shop") == 28; })) << CountOn(*b, "shop");
  EXPECT_NE(TopHit(*b, "shop", items[17].vector), "item-17");

  // Writes on b reach a the same way.
  Write(*b, "shop", MakeItems(35, 8, 11));  // item-0..34: 5 new, 30 replaced
  ASSERT_TRUE(Eventually([&] { return CountOn(*a, "shop") == 35; })) << CountOn(*a, "shop");
  EXPECT_EQ(TopHit(*a, "shop", items[17].vector), "item-17");

  ASSERT_TRUE(a->Drop("shop").ok());
  ASSERT_TRUE(Eventually([&] { return !b->Get("shop").ok(); })) << "drop did not reach b";
  // Created again under the same name: a new, empty collection on b.
  ASSERT_TRUE(a->Create(Spec("shop")).ok());
  ASSERT_TRUE(Eventually([&] { return CountOn(*b, "shop") == 0; }));
  Write(*a, "shop", MakeItems(2, 8, 3));
  ASSERT_TRUE(Eventually([&] { return CountOn(*b, "shop") == 2; }));
}

// The follow lag is 0 once caught up, and visible in batches, items and
// seconds while b is behind.
TEST_F(FollowerTest, StatsShowStorageAndLagInBatchesItemsAndSeconds) {
  TempDir dir_a, dir_b;
  auto a = Open(dir_a);
  auto b = Open(dir_b);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Create(Spec("lag")).ok());
  Write(*a, "lag", MakeItems(10, 8, 1));
  ASSERT_TRUE(Eventually([&] { return CountOn(*b, "lag") == 10; }));
  auto cb = b->Get("lag");
  ASSERT_TRUE(cb.ok());
  const CollectionStats stats = (*cb)->Stats();
  EXPECT_EQ(stats.follow_lag_batches, 0);
  EXPECT_EQ(stats.follow_lag_items, 0);
  EXPECT_EQ(stats.follow_lag_seconds, 0);
  EXPECT_EQ(stats.storage.rfind("postgresql://", 0), 0u) << stats.storage;
  EXPECT_EQ(stats.storage, StorageDisplayName(uri_));

  // A batch b cannot apply (written by hand: three items, one with a vector
  // of the wrong length) stays behind: one batch, three items.
  auto db = PgDatabase::Connect(uri_);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto conn = (*db)->Borrow();
  ASSERT_TRUE(conn.ok());
  const Status st = (*conn)->InTransaction(PgConnection::Txn::kWrite, [&]() -> Status {
    RETURN_IF_ERROR((*conn)->Execute(
        "WITH c AS (UPDATE lookalike_collections SET last_seq = last_seq + 1, "
        "last_internal_id = last_internal_id + 3 WHERE name = 'lag' "
        "RETURNING id, last_seq, last_internal_id) "
        "INSERT INTO lookalike_items(collection_id, internal_id, external_id, vector, seq) "
        "SELECT id, last_internal_id - k, 'bad-' || k, "
        "decode(repeat('0000803f', CASE WHEN k = 0 THEN 7 ELSE 8 END), 'hex'), last_seq "
        "FROM c, generate_series(0, 2) k"));
    return NotifyChange(**conn, "lag");
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_TRUE(Eventually([&] { return (*cb)->Stats().follow_lag_batches == 1; }));
  const CollectionStats behind = (*cb)->Stats();
  EXPECT_EQ(behind.follow_lag_items, 3);
  EXPECT_GT(behind.follow_lag_seconds, 0);
  EXPECT_EQ(behind.count, 10);
}

// A change that sends no notification (written here by hand, as a lost
// notification would look) still reaches b, by polling.
TEST_F(FollowerTest, PollingFallbackCatchesUpWithoutNotification) {
  TempDir dir_a, dir_b;
  auto a = Open(dir_a);
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Create(Spec("poll")).ok());
  Write(*a, "poll", MakeItems(5, 8, 2));
  auto b = Open(dir_b, /*poll_ms=*/50);
  ASSERT_TRUE(b);
  ASSERT_EQ(CountOn(*b, "poll"), 5);

  auto db = PgDatabase::Connect(uri_);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto conn = (*db)->Borrow();
  ASSERT_TRUE(conn.ok());
  // One batch as PostgresStorage writes it (counter row first), minus NOTIFY.
  const Status st = (*conn)->InTransaction(PgConnection::Txn::kWrite, [&]() -> Status {
    return (*conn)->Execute(
        "WITH c AS (UPDATE lookalike_collections SET last_seq = last_seq + 1, "
        "last_internal_id = last_internal_id + 1 WHERE name = 'poll' "
        "RETURNING id, last_seq, last_internal_id) "
        "INSERT INTO lookalike_items(collection_id, internal_id, external_id, vector, seq) "
        "SELECT id, last_internal_id, 'silent', decode(repeat('0000803f', 8), 'hex'), "
        "last_seq FROM c");
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(Eventually([&] { return CountOn(*b, "poll") == 6; }, std::chrono::seconds(5)))
      << CountOn(*b, "poll");
}

// b stops; a writes, replaces and deletes; b restarts from its snapshot and
// replays the tail (the deletes included).
TEST_F(FollowerTest, RestartedServerCatchesUpFromSnapshotPlusTail) {
  TempDir dir_a, dir_b;
  auto a = Open(dir_a, 600000, /*snapshot_every=*/1);
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Create(Spec("r")).ok());
  const auto items = MakeItems(20, 8, 4);
  Write(*a, "r", std::vector<Item>(items.begin(), items.begin() + 10));
  {
    auto b = Open(dir_b);
    ASSERT_TRUE(b);
    ASSERT_TRUE(Eventually([&] { return CountOn(*b, "r") == 10; }));
  }  // b closes, snapshotting at sequence 1
  Write(*a, "r", std::vector<Item>(items.begin() + 10, items.end()));
  auto ca = a->Get("r");
  ASSERT_TRUE(ca.ok());
  ASSERT_TRUE((*ca)->Delete({"item-2", "item-12"}).ok());  // a snapshots and prunes after each
  auto b = Open(dir_b);
  ASSERT_TRUE(b);
  EXPECT_EQ(CountOn(*b, "r"), 18);
  EXPECT_EQ(TopHit(*b, "r", items[15].vector), "item-15");
  EXPECT_NE(TopHit(*b, "r", items[2].vector), "item-2");
  EXPECT_NE(TopHit(*b, "r", items[12].vector), "item-12");
}

// a snapshots (and prunes) after every write while b's snapshot stays at an
// older sequence: tombstones b still needs are kept.
TEST_F(FollowerTest, TombstonesArePrunedOnlyBelowEveryReplicasSnapshot) {
  TempDir dir_a, dir_b;
  auto a = Open(dir_a, 600000, /*snapshot_every=*/1);
  ASSERT_TRUE(a);
  ASSERT_TRUE(a->Create(Spec("t")).ok());
  Write(*a, "t", MakeItems(10, 8, 5));  // sequence 1
  {
    auto b = Open(dir_b);  // builds, snapshots at 1 and records it
    ASSERT_TRUE(b);
  }
  auto ca = a->Get("t");
  ASSERT_TRUE(ca.ok());
  ASSERT_TRUE((*ca)->Delete({"item-1"}).ok());  // sequence 2, a snapshots at 2
  ASSERT_TRUE((*ca)->Delete({"item-2"}).ok());  // sequence 3

  auto db = PgDatabase::Connect(uri_);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto conn = (*db)->Borrow();
  ASSERT_TRUE(conn.ok());
  auto pruning = [&] {
    return (*conn)->Query(
        "SELECT c.pruned_through, (SELECT count(*) FROM lookalike_tombstones t "
        "WHERE t.collection_id = c.id) FROM lookalike_collections c WHERE name = 't'");
  };
  // a's periodic snapshot (and its pruning) is written by a thread of its own.
  ASSERT_TRUE(Eventually([&] {
    auto r = pruning();
    return r.ok() && r->Int64(0, 0) >= 1;
  }));
  ca->reset();
  a.reset();  // waits for a's last snapshot
  auto r = pruning();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->Int64(0, 0), 1) << "pruned past b's snapshot";
  EXPECT_EQ(r->Int64(0, 1), 2);

  auto b = Open(dir_b);  // replays both deletes from the kept tombstones
  ASSERT_TRUE(b);
  EXPECT_EQ(CountOn(*b, "t"), 8);
}

// PostgreSQL stopped: writes fail UNAVAILABLE naming the database; b keeps
// answering searches (plain, filtered, excluding ids) from its own index and
// descriptions. Once it is back, a write made before b's follower has
// reconnected (its notification lost to b) still reaches b.
TEST_F(FollowerTest, DatabaseDownSearchesAnswerWritesFailThenFollowersReplay) {
  std::string why;
  testing::PgHarness* pg = testing::PgHarness::Get(&why);
  ASSERT_NE(pg, nullptr) << why;
  TempDir dir_a, dir_b;
  auto a = Open(dir_a);
  auto b = Open(dir_b, /*poll_ms=*/100);
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->Create(Spec("down")).ok());
  const auto items = MakeItems(20, 8, 9);
  Write(*a, "down", items);
  ASSERT_TRUE(Eventually([&] { return CountOn(*b, "down") == 20; }));
  auto cb = b->Get("down");
  ASSERT_TRUE(cb.ok());

  ASSERT_TRUE(pg->Stop().ok());
  auto ca = a->Get("down");
  ASSERT_TRUE(ca.ok());
  auto failed = (*ca)->Upsert(MakeItems(1, 8, 99));
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().ToString();
  EXPECT_NE(failed.status().message().find(StorageDisplayName(uri_)), std::string::npos)
      << failed.status().ToString();

  SearchParams p;
  p.k = 3;
  auto hits = (*cb)->Search(items[7].vector.data(), 1, p);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  ASSERT_EQ((*hits)[0].size(), 3u);
  EXPECT_EQ((*hits)[0][0].id, "item-7");
  EXPECT_EQ((*hits)[0][0].metadata, items[7].metadata);
  p.exclude_ids = {"item-7"};
  p.filter = Filter{{{items[7].metadata.begin()->first, {items[7].metadata.begin()->second}}}};
  hits = (*cb)->Search(items[7].vector.data(), 1, p);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  for (const auto& h : (*hits)[0]) {
    EXPECT_NE(h.id, "item-7");
    EXPECT_EQ(h.metadata.at(items[7].metadata.begin()->first), items[7].metadata.begin()->second);
  }

  ASSERT_TRUE(pg->Resume().ok());
  // a's pool reconnects on its own; b's follower only at its next attempt.
  ASSERT_TRUE(Eventually([&] {
    auto st = (*ca)->Upsert(MakeItems(25, 8, 9));  // item-20..24 new
    return st.ok();
  }));
  ASSERT_TRUE(Eventually([&] { return CountOn(*b, "down") == 25; })) << CountOn(*b, "down");
}

}  // namespace
}  // namespace lookalike
