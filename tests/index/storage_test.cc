// The Storage contract (index/storage.h), run against SqliteStorage and
// PostgresStorage (a real PostgreSQL, tests/pg_harness.h): change sequence,
// tombstones, replacement ids, filters, bulk writes, commit order under
// concurrent writers; then what is particular to each.
#include "index/storage.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "index/collection.h"
#include "index/pg_database.h"
#include "index/postgres_storage.h"
#include "index/sqlite_storage.h"
#include "pg_harness.h"
#include "test_util.h"

namespace lookalike {
namespace {

using testing::StorageFor;
using testing::StorageKind;
using testing::TempDir;

CollectionSpec Spec(const std::string& name = "s") {
  CollectionSpec spec;
  spec.name = name;
  spec.dim = 2;
  spec.metric = Metric::kInnerProduct;
  spec.index_spec = "IVF4,Flat";
  return spec;
}

template <typename T>
StatusOr<std::unique_ptr<Storage>> AsStorage(StatusOr<std::unique_ptr<T>> s) {
  if (!s.ok()) return s.status();
  return std::unique_ptr<Storage>(std::move(s).value());
}

class StorageContractTest : public ::testing::TestWithParam<StorageKind> {
 protected:
  void SetUp() override {
    auto storage = StorageFor(GetParam());
    if (storage.status().code() == StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << storage.status().message();
    }
    ASSERT_TRUE(storage.ok()) << storage.status().ToString();
    uri_ = *storage;
    if (GetParam() == StorageKind::kPostgres) {
      auto db = PgDatabase::Connect(uri_);
      ASSERT_TRUE(db.ok()) << db.status().ToString();
      db_ = *db;
    }
  }

  StatusOr<std::unique_ptr<Storage>> Create(const CollectionSpec& spec) {
    if (!db_) return AsStorage(SqliteStorage::Create(Path(spec.name), spec));
    return AsStorage(PostgresStorage::Create(db_, spec));
  }

  // Opens the collection again, through new connections (for PostgreSQL: as
  // another server would).
  StatusOr<std::unique_ptr<Storage>> Reopen(const std::string& name) {
    if (!db_) return AsStorage(SqliteStorage::Open(Path(name)));
    ASSIGN_OR_RETURN(auto db, PgDatabase::Connect(uri_));
    ASSIGN_OR_RETURN(auto entry, db->FindCollection(name));
    return std::unique_ptr<Storage>(PostgresStorage::Open(db, std::move(entry)));
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name + ".db"; }

  TempDir dir_;
  std::string uri_;
  std::shared_ptr<PgDatabase> db_;  // PostgreSQL only
};

TEST_P(StorageContractTest, SequenceTombstonesAndReplacement) {
  auto s = Create(Spec());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Create(Spec()).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(*(*s)->LastSeq(), 0);
  Item a{"a", {1, 2}, {{"color", "red"}}};
  Item b{"b", {3, 4}, {{"color", "blue"}, {"size", "L"}}};
  auto w1 = (*s)->Upsert({&a, &b});
  ASSERT_TRUE(w1.ok()) << w1.status().ToString();
  EXPECT_EQ(w1->seq, 1);
  ASSERT_EQ(w1->internal_ids.size(), 2u);
  EXPECT_GT(w1->internal_ids[0], 0);
  EXPECT_TRUE(w1->replaced.empty());

  Item a2{"a", {5, 6}, {{"color", "blue"}}};
  auto w2 = (*s)->Upsert({&a2});
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(w2->seq, 2);
  ASSERT_EQ(w2->replaced, std::vector<int64_t>{w1->internal_ids[0]});
  EXPECT_GT(w2->internal_ids[0], w1->internal_ids[1]);  // never reused

  auto d = (*s)->Delete({"b", "zzz"});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->seq, 3);
  EXPECT_EQ(d->removed, std::vector<int64_t>{w1->internal_ids[1]});
  EXPECT_EQ(*(*s)->LastSeq(), 3);

  auto tomb = (*s)->TombstonesAfter(1);
  ASSERT_TRUE(tomb.ok());
  EXPECT_EQ(*tomb, (std::vector<int64_t>{w1->internal_ids[0], w1->internal_ids[1]}));
  std::vector<int64_t> scanned;
  ASSERT_TRUE((*s)->ScanItems(1,
                              [&](int64_t id, const float* v) {
                                scanned.push_back(id);
                                EXPECT_EQ(v[0], 5.f);
                                return Status::Ok();
                              })
                  .ok());
  EXPECT_EQ(scanned, std::vector<int64_t>{w2->internal_ids[0]});

  ASSERT_TRUE((*s)->PruneTombstones(2).ok());
  EXPECT_EQ(*(*s)->PrunedThrough(), 2);
  ASSERT_TRUE((*s)->PruneTombstones(1).ok());  // never backwards
  EXPECT_EQ(*(*s)->PrunedThrough(), 2);
  EXPECT_EQ(*(*s)->TombstonesAfter(0), std::vector<int64_t>{w1->internal_ids[1]});

  Filter f;
  f.any_of = {{"color", {"blue", "red"}}};
  EXPECT_EQ(*(*s)->MatchFilter(f), std::vector<int64_t>{w2->internal_ids[0]});
  f.any_of["size"] = {"L"};
  EXPECT_TRUE((*s)->MatchFilter(f)->empty());
  EXPECT_EQ(*(*s)->Count(), 1);

  s = Reopen("s");  // reopen reads the spec back
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->spec().index_spec, "IVF4,Flat");
  EXPECT_EQ((*s)->spec().metric, Metric::kInnerProduct);
  EXPECT_EQ((*s)->spec().dim, 2);
  EXPECT_EQ((*s)->spec().model, kVectorsOnly);
  EXPECT_EQ(*(*s)->LastSeq(), 3);
  EXPECT_EQ(*(*s)->PrunedThrough(), 2);
  auto got = (*s)->Get({"a"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value());
  EXPECT_EQ((*got)[0]->vector, (std::vector<float>{5, 6}));
  EXPECT_EQ((*got)[0]->metadata, (Metadata{{"color", "blue"}}));
}

// An id twice in one batch: the later occurrence wins; the earlier one is
// reported as -1 and its internal id as replaced and tombstoned.
TEST_P(StorageContractTest, SameIdTwiceInOneBatch) {
  auto s = Create(Spec());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Item a1{"a", {1, 1}, {{"v", "1"}}};
  Item b{"b", {2, 2}, {}};
  Item a2{"a", {3, 3}, {{"v", "2"}}};
  auto w = (*s)->Upsert({&a1, &b, &a2});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_EQ(w->internal_ids.size(), 3u);
  EXPECT_EQ(w->internal_ids[0], -1);
  EXPECT_GT(w->internal_ids[2], w->internal_ids[1]);
  ASSERT_EQ(w->replaced.size(), 1u);
  EXPECT_EQ(*(*s)->TombstonesAfter(0), w->replaced);
  EXPECT_EQ(*(*s)->Count(), 2);
  auto got = (*s)->Get({"a"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value());
  EXPECT_EQ((*got)[0]->vector, (std::vector<float>{3, 3}));
  EXPECT_EQ((*got)[0]->metadata, (Metadata{{"v", "2"}}));
}

// Reads answer in the order asked, skip or mark what is missing, and ids
// survive any characters (quotes, backslashes, commas, braces, spaces, UTF-8).
TEST_P(StorageContractTest, ReadsKeepOrderAndAnyIdCharacters) {
  auto s = Create(Spec());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const std::vector<std::string> ids = {"plain", "with \"quotes\"",  "back\\slash",
                                        "a,b",   "{braces}",         " spaced ",
                                        "NULL",  "\xc3\xa9t\xc3\xa9"};
  std::vector<Item> items;
  for (size_t i = 0; i < ids.size(); ++i) {
    items.push_back({ids[i], {static_cast<float>(i), 0}, {{"k", ids[i]}}});
  }
  std::vector<const Item*> ptrs;
  for (const auto& item : items) ptrs.push_back(&item);
  auto w = (*s)->Upsert(ptrs);
  ASSERT_TRUE(w.ok()) << w.status().ToString();

  std::vector<std::string> asked(ids.rbegin(), ids.rend());
  asked.insert(asked.begin() + 2, "missing");
  auto got = (*s)->Get(asked);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), asked.size());
  for (size_t i = 0; i < asked.size(); ++i) {
    if (asked[i] == "missing") {
      EXPECT_FALSE((*got)[i].has_value());
      continue;
    }
    ASSERT_TRUE((*got)[i].has_value()) << asked[i];
    EXPECT_EQ((*got)[i]->id, asked[i]);
    EXPECT_EQ((*got)[i]->metadata, (Metadata{{"k", asked[i]}}));
  }

  auto resolved = (*s)->ResolveIds({ids[3], "missing", ids[1]});
  ASSERT_TRUE(resolved.ok());
  EXPECT_EQ(*resolved, (std::vector<int64_t>{w->internal_ids[3], w->internal_ids[1]}));

  auto described = (*s)->Describe({w->internal_ids[2], 999999, w->internal_ids[0]});
  ASSERT_TRUE(described.ok());
  ASSERT_EQ(described->size(), 3u);
  EXPECT_EQ((*described)[0]->id, ids[2]);
  EXPECT_FALSE((*described)[1].has_value());
  EXPECT_EQ((*described)[2]->id, ids[0]);
  EXPECT_EQ((*described)[2]->metadata, (Metadata{{"k", ids[0]}}));

  std::vector<int64_t> found;
  std::vector<float> vectors;
  ASSERT_TRUE(
      (*s)->ReadVectors({w->internal_ids[5], 999999, w->internal_ids[4]}, &found, &vectors).ok());
  EXPECT_EQ(found, (std::vector<int64_t>{w->internal_ids[5], w->internal_ids[4]}));
  EXPECT_EQ(vectors, (std::vector<float>{5, 0, 4, 0}));

  Filter f;
  f.any_of = {{"k", {ids[1], ids[6], "nothing"}}};
  EXPECT_EQ(*(*s)->MatchFilter(f), (std::vector<int64_t>{w->internal_ids[1], w->internal_ids[6]}));

  auto d = (*s)->Delete({ids[4], ids[4], ids[2]});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->removed, (std::vector<int64_t>{w->internal_ids[4], w->internal_ids[2]}));
}

// One batch larger than a scan page, written in one transaction and read
// back in internal id order.
TEST_P(StorageContractTest, BulkBatchAndFullScan) {
  constexpr int kItems = 10000;
  auto s = Create(Spec());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::vector<Item> items;
  for (int i = 0; i < kItems; ++i) {
    items.push_back({"item-" + std::to_string(i),
                     {static_cast<float>(i), 1},
                     {{"parity", i % 2 ? "odd" : "even"}}});
  }
  std::vector<const Item*> ptrs;
  for (const auto& item : items) ptrs.push_back(&item);
  auto w = (*s)->Upsert(ptrs);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->seq, 1);
  EXPECT_EQ(*(*s)->Count(), kItems);
  int64_t previous = 0;
  int n = 0;
  ASSERT_TRUE((*s)->ScanItems(0,
                              [&](int64_t id, const float* v) {
                                EXPECT_GT(id, previous);
                                previous = id;
                                EXPECT_EQ(v[1], 1.f);
                                ++n;
                                return Status::Ok();
                              })
                  .ok());
  EXPECT_EQ(n, kItems);
  Filter f;
  f.any_of = {{"parity", {"odd"}}};
  EXPECT_EQ((*s)->MatchFilter(f)->size(), static_cast<size_t>(kItems / 2));
  // A callback error stops the scan and is returned.
  n = 0;
  Status st = (*s)->ScanItems(0, [&](int64_t, const float*) {
    return ++n == 5000 ? CancelledError("enough") : Status::Ok();
  });
  EXPECT_EQ(st.code(), StatusCode::kCancelled);
  EXPECT_EQ(n, 5000);
}

// Sequence order is commit order. Writers on separate connections (for
// PostgreSQL: separate pools, as separate servers) write concurrently while a
// follower replays incrementally: read LastSeq() = L, read every item with
// seq > S, set S = L. If a batch numbered <= L could commit after L was
// read, the follower would skip it for good. Also: the numbers are exactly
// 1..batches, with no gaps and no duplicates.
TEST_P(StorageContractTest, ConcurrentWritersCommitInSequenceOrder) {
  constexpr int kWriters = 4;
  constexpr int kBatches = 40;
  constexpr int kItemsPerBatch = 5;
  {
    auto s = Create(Spec());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
  }
  std::vector<std::unique_ptr<Storage>> writers;
  for (int w = 0; w < kWriters; ++w) {
    auto s = Reopen("s");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    writers.push_back(std::move(s).value());
  }
  auto follower = Reopen("s");
  ASSERT_TRUE(follower.ok()) << follower.status().ToString();

  std::atomic<int> running{kWriters};
  std::vector<std::vector<int64_t>> seqs(kWriters);
  std::vector<std::vector<int64_t>> written(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      struct Done {
        std::atomic<int>* running;
        ~Done() { --*running; }
      } done{&running};  // also when an assertion returns early
      for (int b = 0; b < kBatches; ++b) {
        // Batches of different sizes, so transactions take different times.
        std::vector<Item> items;
        const int n = kItemsPerBatch * (1 + (w + b) % 3);
        for (int i = 0; i < n; ++i) {
          items.push_back(
              {"w" + std::to_string(w) + "-" + std::to_string(b) + "-" + std::to_string(i),
               {static_cast<float>(w), static_cast<float>(b)},
               {}});
        }
        std::vector<const Item*> ptrs;
        for (const auto& item : items) ptrs.push_back(&item);
        auto r = writers[w]->Upsert(ptrs);
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        seqs[w].push_back(r->seq);
        written[w].insert(written[w].end(), r->internal_ids.begin(), r->internal_ids.end());
      }
    });
  }
  std::set<int64_t> seen;
  int64_t followed = 0;
  int rounds = 0;
  auto follow = [&]() {
    auto last = (*follower)->LastSeq();
    ASSERT_TRUE(last.ok()) << last.status().ToString();
    ASSERT_TRUE((*follower)
                    ->ScanItems(followed,
                                [&](int64_t id, const float*) {
                                  seen.insert(id);
                                  return Status::Ok();
                                })
                    .ok());
    followed = *last;
    ++rounds;
  };
  while (running > 0) follow();
  for (auto& t : threads) t.join();
  follow();

  std::vector<int64_t> all_seqs;
  std::set<int64_t> all_ids;
  for (int w = 0; w < kWriters; ++w) {
    EXPECT_TRUE(std::is_sorted(seqs[w].begin(), seqs[w].end()));
    all_seqs.insert(all_seqs.end(), seqs[w].begin(), seqs[w].end());
    all_ids.insert(written[w].begin(), written[w].end());
  }
  std::sort(all_seqs.begin(), all_seqs.end());
  ASSERT_EQ(all_seqs.size(), static_cast<size_t>(kWriters * kBatches));
  for (size_t i = 0; i < all_seqs.size(); ++i) ASSERT_EQ(all_seqs[i], static_cast<int64_t>(i + 1));
  EXPECT_EQ(followed, kWriters * kBatches);
  EXPECT_EQ(seen, all_ids) << "the follower skipped rows (" << rounds << " rounds)";
}

// Thumbnails (Item::thumbnail) are written with their item, read one at a
// time, replaced and deleted with it; Get leaves them out; the spec keeps
// thumbnail_size across a reopen.
TEST_P(StorageContractTest, ThumbnailsLiveAndDieWithTheirItem) {
  CollectionSpec spec = Spec();
  spec.model = "m";
  spec.thumbnail_size = 128;
  auto s = Create(spec);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const std::string jpeg_a(3000, '\xd8');  // any bytes: storage does not look inside
  const std::string jpeg_b = std::string("\xff\xd8\0\x01", 4) + "b";  // a NUL byte too
  Item a{"a", {1, 2}, {{"color", "red"}}, jpeg_a};
  Item b{"b/with slash", {3, 4}, {}, jpeg_b};
  Item v{"v", {5, 6}, {}};  // a raw vector: no thumbnail
  ASSERT_TRUE((*s)->Upsert({&a, &b, &v}).ok());
  auto thumb = [&](const std::string& id) {
    auto t = (*s)->ReadThumbnail(id);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : std::optional<std::string>("<error>");
  };
  EXPECT_EQ(thumb("a"), jpeg_a);
  EXPECT_EQ(thumb("b/with slash"), jpeg_b);
  EXPECT_EQ(thumb("v"), std::string());   // exists, no thumbnail
  EXPECT_EQ(thumb("zzz"), std::nullopt);  // no such item
  auto got = (*s)->Get({"a"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value());
  EXPECT_TRUE((*got)[0]->thumbnail.empty());

  // Replaced with the item: a new thumbnail, or none when the new version has none.
  Item a2{"a", {1, 3}, {}, "new"};
  ASSERT_TRUE((*s)->Upsert({&a2}).ok());
  EXPECT_EQ(thumb("a"), std::string("new"));
  Item b2{"b/with slash", {3, 5}, {}};
  ASSERT_TRUE((*s)->Upsert({&b2}).ok());
  EXPECT_EQ(thumb("b/with slash"), std::string());
  // The same id twice in one batch: the later occurrence's thumbnail.
  Item c1{"c", {1, 1}, {}, "first"};
  Item c2{"c", {2, 2}, {}, "second"};
  ASSERT_TRUE((*s)->Upsert({&c1, &c2}).ok());
  EXPECT_EQ(thumb("c"), std::string("second"));

  s = Reopen("s");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->spec().thumbnail_size, 128);
  EXPECT_EQ(thumb("a"), std::string("new"));  // durable

  // Deleted with the item, in the same transaction.
  ASSERT_TRUE((*s)->Delete({"a", "c"}).ok());
  EXPECT_EQ(thumb("a"), std::nullopt);
  EXPECT_EQ(thumb("c"), std::nullopt);
  if (db_) {  // no thumbnail row is left behind either
    auto conn = db_->Borrow();
    ASSERT_TRUE(conn.ok());
    auto rows = (*conn)->Query("SELECT count(*)::int8 FROM lookalike_thumbnails");
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    EXPECT_EQ(rows->Int64(0, 0), 0);
    // Dropping the collection removes its thumbnails too.
    Item d{"d", {1, 1}, {}, "jpeg"};
    ASSERT_TRUE((*s)->Upsert({&d}).ok());
    ASSERT_TRUE(db_->DropCollection("s").ok());
    rows = (*conn)->Query("SELECT count(*)::int8 FROM lookalike_thumbnails");
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    EXPECT_EQ(rows->Int64(0, 0), 0);
  }
}

// A database written before thumbnails existed (no thumbnail_size in the
// spec, no thumbnails table) opens with thumbnail_size 0 and gains the table.
TEST_P(StorageContractTest, OlderDatabaseGainsThumbnailsAtOpen) {
  {
    auto s = Create(Spec());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Item a{"a", {1, 2}, {}};
    ASSERT_TRUE((*s)->Upsert({&a}).ok());
  }
  if (db_) {
    auto conn = db_->Borrow();
    ASSERT_TRUE(conn.ok());
    ASSERT_TRUE((*conn)
                    ->Execute("ALTER TABLE lookalike_collections DROP COLUMN thumbnail_size; "
                              "DROP TABLE lookalike_thumbnails")
                    .ok());
  } else {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(Path("s").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "DELETE FROM collection WHERE key = 'thumbnail_size'; "
                           "DROP TABLE thumbnails",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = Reopen("s");  // PostgreSQL: a new server connecting adds the schema
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->spec().thumbnail_size, 0);
  auto old = (*s)->ReadThumbnail("a");
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(*old, std::string());
  Item b{"b", {3, 4}, {}, "jpeg"};
  ASSERT_TRUE((*s)->Upsert({&b}).ok());
  EXPECT_EQ(*(*s)->ReadThumbnail("b"), std::string("jpeg"));
}

TEST_P(StorageContractTest, MissingCollectionIsNotFound) {
  EXPECT_EQ(Reopen("none").status().code(), StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Storages, StorageContractTest,
                         ::testing::Values(StorageKind::kSqlite, StorageKind::kPostgres),
                         [](const ::testing::TestParamInfo<StorageKind>& info) {
                           return testing::StorageKindName(info.param);
                         });

// --- SQLite only ---

// Databases written before kVectorsOnly stored "" as the model of a
// vectors-only collection; they open with model kVectorsOnly, and so does the
// collection on top of them.
TEST(SqliteStorageTest, OldEmptyModelReadsAsVectorsOnly) {
  TempDir dir;
  ASSERT_EQ(::mkdir((dir.path() + "/old").c_str(), 0755), 0);
  const std::string path = dir.path() + "/old/items.db";
  CollectionSpec spec = Spec();
  spec.name = "old";
  spec.index_spec = "Flat";
  {
    auto s = SqliteStorage::Create(path, spec);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Item a{"a", {1, 2}, {}};
    ASSERT_TRUE((*s)->Upsert({&a}).ok());
  }
  // Rewrite the stored model the way older versions wrote it.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE collection SET value = '' WHERE key = 'model'", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT value FROM collection WHERE key = 'model'", -1, &stmt,
                               nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "");
  sqlite3_finalize(stmt);
  sqlite3_close(db);

  {
    auto s = SqliteStorage::Open(path);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ((*s)->spec().model, kVectorsOnly);
  }

  CollectionManagerOptions options;
  options.data_dir = dir.path();
  auto manager = CollectionManager::Open(options);
  ASSERT_TRUE(manager.ok()) << manager.status().ToString();
  auto c = (*manager)->Get("old");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)->spec().model, kVectorsOnly);
  EXPECT_EQ((*c)->Stats().spec.model, kVectorsOnly);
  EXPECT_EQ((*c)->Stats().count, 1);
}

TEST(SqliteStorageTest, MissingDatabaseIsNotFound) {
  TempDir dir;
  EXPECT_EQ(SqliteStorage::Open(dir.path() + "/none.db").status().code(), StatusCode::kNotFound);
}

// --- PostgreSQL only ---

TEST(PostgresStorageTest, UnreachableDatabaseIsUnavailableNamingIt) {
  // Port 1 on loopback: nothing listens there.
  auto db = PgDatabase::Connect("postgresql://someone:secret@127.0.0.1:1/shop?connect_timeout=5");
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), StatusCode::kUnavailable) << db.status().ToString();
  EXPECT_NE(db.status().message().find("postgresql://someone@127.0.0.1:1/shop"), std::string::npos)
      << db.status().ToString();
  EXPECT_EQ(db.status().message().find("secret"), std::string::npos) << db.status().ToString();
}

// The database going away: calls fail with UNAVAILABLE naming it (never
// another code, never a crash); once it is back, the pool replaces its dead
// connections and nothing acknowledged is lost.
TEST(PostgresStorageTest, ServerRestartIsUnavailableThenRecovers) {
  auto uri = StorageFor(StorageKind::kPostgres);
  if (uri.status().code() == StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << uri.status().message();
  }
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  std::string why;
  testing::PgHarness* pg = testing::PgHarness::Get(&why);
  ASSERT_NE(pg, nullptr) << why;
  auto db = PgDatabase::Connect(*uri);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto s = PostgresStorage::Create(*db, Spec());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Item a{"a", {1, 2}, {}};
  ASSERT_TRUE((*s)->Upsert({&a}).ok());

  ASSERT_TRUE(pg->Stop().ok());
  Item b{"b", {3, 4}, {}};
  auto down = (*s)->Upsert({&b});
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status().ToString();
  EXPECT_NE(down.status().message().find("127.0.0.1:" + std::to_string(pg->port())),
            std::string::npos)
      << down.status().ToString();
  EXPECT_EQ((*s)->LastSeq().status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(pg->Resume().ok());

  auto up = (*s)->Upsert({&b});
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  EXPECT_EQ(up->seq, 2);  // the failed write took no number
  auto got = (*s)->Get({"a", "b"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE((*got)[0].has_value());
  EXPECT_TRUE((*got)[1].has_value());
}

// The catalog: create, list, find, drop (rows included); a dropped
// collection refuses writes with NOT_FOUND; a new one under the same name is
// a new collection (new id, sequence from 0).
TEST(PostgresStorageTest, CatalogLifecycle) {
  auto uri = StorageFor(StorageKind::kPostgres);
  if (uri.status().code() == StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << uri.status().message();
  }
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  auto db = PgDatabase::Connect(*uri);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto again = PgDatabase::Connect(*uri);  // the schema exists: fine
  ASSERT_TRUE(again.ok()) << again.status().ToString();

  auto s = PostgresStorage::Create(*db, Spec("b"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE(PostgresStorage::Create(*db, Spec("a")).ok());
  auto list = (*db)->ListCollections();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].spec.name, "a");
  EXPECT_EQ((*list)[1].spec.name, "b");
  EXPECT_EQ((*list)[1].id, (*s)->collection_id());
  EXPECT_EQ((*db)->FindCollection("zzz").status().code(), StatusCode::kNotFound);

  Item x{"x", {1, 2}, {{"k", "v"}}};
  ASSERT_TRUE((*s)->Upsert({&x}).ok());
  ASSERT_TRUE((*db)->DropCollection("b").ok());
  EXPECT_EQ((*db)->DropCollection("b").code(), StatusCode::kNotFound);
  EXPECT_EQ((*s)->Upsert({&x}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*s)->LastSeq().status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*(*s)->Count(), 0);  // its rows went with it

  auto fresh = PostgresStorage::Create(*db, Spec("b"));
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_GT((*fresh)->collection_id(), (*s)->collection_id());
  EXPECT_EQ(*(*fresh)->LastSeq(), 0);
}

}  // namespace
}  // namespace lookalike
