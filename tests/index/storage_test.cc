// Storage: change sequence, tombstones, replacement ids, filters, errors.
#include "index/storage.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "index/collection.h"

#include "test_util.h"

namespace lookalike {
namespace {

using testing::TempDir;

CollectionSpec Spec() {
  CollectionSpec spec;
  spec.name = "s";
  spec.dim = 2;
  spec.metric = Metric::kInnerProduct;
  spec.index_spec = "IVF4,Flat";
  return spec;
}

TEST(StorageTest, SequenceTombstonesAndReplacement) {
  TempDir dir;
  const std::string path = dir.path() + "/items.db";
  auto s = Storage::Create(path, Spec());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Storage::Create(path, Spec()).status().code(), StatusCode::kAlreadyExists);
  Item a{"a", {1, 2}, {{"color", "red"}}};
  Item b{"b", {3, 4}, {{"color", "blue"}, {"size", "L"}}};
  auto w1 = (*s)->Upsert({&a, &b});
  ASSERT_TRUE(w1.ok());
  EXPECT_EQ(w1->seq, 1);
  ASSERT_EQ(w1->internal_ids.size(), 2u);
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
  EXPECT_EQ(*(*s)->TombstonesAfter(0), std::vector<int64_t>{w1->internal_ids[1]});

  Filter f;
  f.any_of = {{"color", {"blue", "red"}}};
  EXPECT_EQ(*(*s)->MatchFilter(f), std::vector<int64_t>{w2->internal_ids[0]});
  EXPECT_EQ(*(*s)->Count(), 1);

  s = Storage::Open(path);  // reopen reads the spec back
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->spec().index_spec, "IVF4,Flat");
  EXPECT_EQ((*s)->spec().metric, Metric::kInnerProduct);
  EXPECT_EQ((*s)->spec().dim, 2);
  auto got = (*s)->Get({"a"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value());
  EXPECT_EQ((*got)[0]->vector, (std::vector<float>{5, 6}));
  EXPECT_EQ((*got)[0]->metadata, (Metadata{{"color", "blue"}}));
}

// Databases written before kVectorsOnly stored "" as the model of a
// vectors-only collection; they open with model kVectorsOnly, and so does the
// collection on top of them.
TEST(StorageTest, OldEmptyModelReadsAsVectorsOnly) {
  TempDir dir;
  ASSERT_EQ(::mkdir((dir.path() + "/old").c_str(), 0755), 0);
  const std::string path = dir.path() + "/old/items.db";
  CollectionSpec spec = Spec();
  spec.name = "old";
  spec.index_spec = "Flat";
  {
    auto s = Storage::Create(path, spec);
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
    auto s = Storage::Open(path);
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

TEST(StorageTest, MissingDatabaseIsNotFound) {
  TempDir dir;
  EXPECT_EQ(Storage::Open(dir.path() + "/none.db").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace lookalike
