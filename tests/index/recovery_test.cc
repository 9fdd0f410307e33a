// Durability and recovery: reopen, snapshot + replay, corrupt snapshots,
// corrupt databases, and kill -9 during ingest.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "index/collection.h"
#include "index/derived_index.h"
#include "index/storage.h"
#include "pg_harness.h"
#include "test_util.h"

namespace lookalike {
namespace {

using testing::BruteForce;
using testing::MakeItems;
using testing::RandomVectors;
using testing::TempDir;

constexpr int kDim = 8;

std::unique_ptr<CollectionManager> OpenManager(const std::string& dir,
                                               int64_t snapshot_every = 1000000) {
  CollectionManagerOptions options;
  options.data_dir = dir;
  options.snapshot_every_writes = snapshot_every;
  auto m = CollectionManager::Open(options);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return m.ok() ? std::move(m).value() : nullptr;
}

std::shared_ptr<Collection> CreateCollection(CollectionManager& m, const std::string& index_spec,
                                             Metric metric = Metric::kL2) {
  CollectionSpec spec;
  spec.name = "c";
  spec.dim = kDim;
  spec.metric = metric;
  spec.index_spec = index_spec;
  auto c = m.Create(spec);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.ok() ? c.value() : nullptr;
}

void UpsertAll(Collection& c, const std::vector<Item>& items) {
  auto st = c.Upsert(items);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  for (const auto& s : *st) ASSERT_TRUE(s.ok()) << s.ToString();
}

// Search results as (id, score) lists for a fixed query set, filtered and not.
std::vector<std::vector<std::pair<std::string, float>>> Probe(Collection& c) {
  const auto queries = RandomVectors(4, kDim, 1234);
  std::vector<std::vector<std::pair<std::string, float>>> out;
  for (int f = 0; f < 2; ++f) {
    SearchParams p;
    p.k = 12;
    if (f == 1) p.filter.any_of = {{"color", {"red", "blue"}}};
    auto hits = c.Search(queries.data(), 4, p);
    EXPECT_TRUE(hits.ok()) << hits.status().ToString();
    if (!hits.ok()) return out;
    for (const auto& list : *hits) {
      std::vector<std::pair<std::string, float>> row;
      for (const auto& h : list) row.emplace_back(h.id, h.score);
      out.push_back(row);
    }
  }
  return out;
}

void ExpectSameProbe(const std::vector<std::vector<std::pair<std::string, float>>>& a,
                     const std::vector<std::vector<std::pair<std::string, float>>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size()) << "list " << i;
    for (size_t j = 0; j < a[i].size(); ++j) {
      EXPECT_EQ(a[i][j].first, b[i][j].first) << "list " << i << " rank " << j;
      EXPECT_NEAR(a[i][j].second, b[i][j].second, 1e-4f);
    }
  }
}

// Copies the files a crash would leave (database, WAL, snapshot), as of now.
void CopyCrashImage(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to + "/c");
  for (const char* f : {"items.db", "items.db-wal", "index.snap"}) {
    const std::string src = from + "/c/" + f;
    if (std::filesystem::exists(src)) std::filesystem::copy_file(src, to + "/c/" + f);
  }
}

int64_t SnapshotSeq(const std::string& dir, const CollectionSpec& spec) {
  int64_t seq = -1;
  auto d = DerivedIndex::LoadSnapshot(dir + "/c/index.snap", spec, &seq);
  return d.ok() ? seq : -1;
}

TEST(RecoveryTest, PersistsAcrossReopen) {
  TempDir dir;
  std::vector<std::vector<std::pair<std::string, float>>> before;
  const auto items = MakeItems(300, kDim, 1);
  {
    auto m = OpenManager(dir.path());
    auto c = CreateCollection(*m, "Flat", Metric::kCosine);
    UpsertAll(*c, items);
    ASSERT_TRUE(c->Delete({"item-3"}).ok());
    before = Probe(*c);
  }
  auto m = OpenManager(dir.path());
  ASSERT_EQ(m->List(), std::vector<std::string>{"c"});
  auto c = m->Get("c");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->spec().metric, Metric::kCosine);
  EXPECT_EQ((*c)->Stats().count, 299);
  ExpectSameProbe(before, Probe(**c));
  auto got = (*c)->Get({"item-5", "item-3"});
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_FALSE((*got)[1].has_value());
  EXPECT_EQ((*got)[0]->metadata.at("color"), "red");
}

class SnapshotReplayTest : public ::testing::TestWithParam<const char*> {};

TEST_P(SnapshotReplayTest, ReplaysWritesAfterTheSnapshot) {
  TempDir dir, crash;
  const auto items = MakeItems(900, kDim, 5);
  auto m = OpenManager(dir.path());
  auto c = CreateCollection(*m, GetParam());
  UpsertAll(*c, std::vector<Item>(items.begin(), items.begin() + 700));
  ASSERT_TRUE(c->Snapshot().ok());
  const int64_t snap_seq = SnapshotSeq(dir.path(), c->spec());
  ASSERT_GT(snap_seq, 0);
  // After the snapshot: more items, deletes (of snapshotted and new items)
  // and a replacement.
  UpsertAll(*c, std::vector<Item>(items.begin() + 700, items.end()));
  ASSERT_TRUE(c->Delete({"item-10", "item-800"}).ok());
  Item replaced = items[20];
  replaced.vector = RandomVectors(1, kDim, 77);
  replaced.metadata["color"] = "blue";
  UpsertAll(*c, {replaced});
  const auto before = Probe(*c);
  CopyCrashImage(dir.path(), crash.path());
  ASSERT_EQ(SnapshotSeq(crash.path(), c->spec()), snap_seq);  // stale snapshot in the image

  auto m2 = OpenManager(crash.path());
  auto c2 = m2->Get("c");
  ASSERT_TRUE(c2.ok()) << c2.status().ToString();
  EXPECT_EQ((*c2)->Stats().count, 898);
  ExpectSameProbe(before, Probe(**c2));
  auto got = (*c2)->Get({"item-20"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value());
  EXPECT_EQ((*got)[0]->vector, replaced.vector);
  // Recovery wrote a fresh snapshot covering the replayed writes.
  EXPECT_GT(SnapshotSeq(crash.path(), c->spec()), snap_seq);
}

INSTANTIATE_TEST_SUITE_P(Specs, SnapshotReplayTest, ::testing::Values("Flat", "IVF8,Flat"),
                         [](const auto& info) {
                           return std::string(info.param) == "Flat" ? "Flat" : "IVF";
                         });

TEST(RecoveryTest, CorruptOrTruncatedSnapshotIsRebuilt) {
  TempDir dir;
  const auto items = MakeItems(400, kDim, 9);
  std::vector<std::vector<std::pair<std::string, float>>> before;
  CollectionSpec spec;
  {
    auto m = OpenManager(dir.path());
    auto c = CreateCollection(*m, "Flat");
    UpsertAll(*c, items);
    before = Probe(*c);
    spec = c->spec();
  }
  const std::string snap = dir.path() + "/c/index.snap";
  ASSERT_TRUE(std::filesystem::exists(snap));
  const auto size = std::filesystem::file_size(snap);
  int64_t seq = 0;
  // Truncated.
  std::filesystem::resize_file(snap, size / 2);
  EXPECT_EQ(DerivedIndex::LoadSnapshot(snap, spec, &seq).status().code(), StatusCode::kDataLoss);
  {
    auto m = OpenManager(dir.path());
    auto c = m->Get("c");
    ASSERT_TRUE(c.ok());
    ExpectSameProbe(before, Probe(**c));
  }
  EXPECT_TRUE(DerivedIndex::LoadSnapshot(snap, spec, &seq).ok());  // rewritten
  // A flipped byte in the middle.
  {
    std::fstream f(snap, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(snap) / 2));
    char b = 0;
    f.read(&b, 1);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(snap) / 2));
    b = static_cast<char>(b ^ 0x5a);
    f.write(&b, 1);
  }
  auto bad = DerivedIndex::LoadSnapshot(snap, spec, &seq);
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("checksum"), std::string::npos);
  auto m = OpenManager(dir.path());
  auto c = m->Get("c");
  ASSERT_TRUE(c.ok());
  ExpectSameProbe(before, Probe(**c));
}

TEST(RecoveryTest, CorruptDatabaseIsDataLossNamingThePath) {
  TempDir dir;
  {
    auto m = OpenManager(dir.path());
    auto c = CreateCollection(*m, "Flat");
    UpsertAll(*c, MakeItems(50, kDim, 2));
  }
  const std::string db = dir.path() + "/c/items.db";
  std::filesystem::remove(db + "-wal");
  {
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    const char garbage[32] = "this is not an sqlite database!";
    f.write(garbage, sizeof(garbage));
  }
  CollectionManagerOptions options;
  options.data_dir = dir.path();
  auto m = CollectionManager::Open(options);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kDataLoss) << m.status().ToString();
  EXPECT_NE(m.status().message().find(db), std::string::npos) << m.status().ToString();
}

TEST(RecoveryTest, PeriodicSnapshotAfterNChangedItems) {
  TempDir dir;
  auto m = OpenManager(dir.path(), /*snapshot_every=*/100);
  auto c = CreateCollection(*m, "Flat");
  const auto items = MakeItems(250, kDim, 3);
  UpsertAll(*c, std::vector<Item>(items.begin(), items.begin() + 60));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/c/index.snap"));
  UpsertAll(*c, std::vector<Item>(items.begin() + 60, items.begin() + 120));  // 120 >= 100
  // The periodic snapshot is written by a thread of its own.
  EXPECT_TRUE(testing::Eventually([&] { return SnapshotSeq(dir.path(), c->spec()) == 2; }));
  UpsertAll(*c, std::vector<Item>(items.begin() + 120, items.end()));  // 130 more
  EXPECT_TRUE(testing::Eventually([&] { return SnapshotSeq(dir.path(), c->spec()) == 3; }));
}

TEST(RecoveryTest, SnapshotNewerThanStorageIsRebuilt) {
  TempDir dir, image;
  const auto items = MakeItems(300, kDim, 8);
  auto m = OpenManager(dir.path());
  auto c = CreateCollection(*m, "Flat");
  UpsertAll(*c, std::vector<Item>(items.begin(), items.begin() + 100));
  ASSERT_TRUE(c->Snapshot().ok());
  CopyCrashImage(dir.path(), image.path());  // storage at seq 1
  const auto expected = Probe(*c);
  UpsertAll(*c, std::vector<Item>(items.begin() + 100, items.end()));
  ASSERT_TRUE(c->Snapshot().ok());  // seq 2, covers items the image lacks
  std::filesystem::copy_file(dir.path() + "/c/index.snap", image.path() + "/c/index.snap",
                             std::filesystem::copy_options::overwrite_existing);
  auto m2 = OpenManager(image.path());
  auto c2 = m2->Get("c");
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ((*c2)->Stats().count, 100);
  ExpectSameProbe(expected, Probe(**c2));
  EXPECT_EQ(SnapshotSeq(image.path(), c->spec()), 1);  // rewritten from storage
}

TEST(RecoveryTest, MassDeleteCompactsAndStaysCorrect) {
  TempDir dir;
  auto m = OpenManager(dir.path());
  auto c = CreateCollection(*m, "Flat", Metric::kInnerProduct);
  auto items = MakeItems(3000, kDim, 12);
  UpsertAll(*c, items);
  const int64_t bytes_before = c->Stats().index_bytes;
  std::vector<std::string> doomed;
  for (int i = 0; i < 2500; ++i) doomed.push_back(items[static_cast<size_t>(i)].id);
  auto n = c->Delete(doomed);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2500);
  items.erase(items.begin(), items.begin() + 2500);
  EXPECT_EQ(c->Stats().count, 500);
  EXPECT_LT(c->Stats().index_bytes, bytes_before / 2);  // removed vectors are gone
  const auto queries = RandomVectors(3, kDim, 13);
  SearchParams p;
  p.k = 7;
  auto hits = c->Search(queries.data(), 3, p);
  ASSERT_TRUE(hits.ok());
  for (int q = 0; q < 3; ++q) {
    auto ref = BruteForce(items, queries.data() + q * kDim, kDim, Metric::kInnerProduct, 7);
    ASSERT_EQ((*hits)[q].size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_EQ((*hits)[q][i].id, ref[i].id);
      EXPECT_NEAR((*hits)[q][i].score, ref[i].score, 1e-4f);
    }
  }
}

TEST(RecoveryTest, UnfinishedCreateOrDropIsCleanedUpAtOpen) {
  TempDir dir;
  {
    auto m = OpenManager(dir.path());
    auto c = CreateCollection(*m, "Flat");
    UpsertAll(*c, MakeItems(10, kDim, 1));
  }
  // What a crash inside Create / Drop leaves behind.
  for (const char* leftover : {".creating-new", ".dropping-old"}) {
    const std::string path = dir.path() + "/" + leftover;
    std::filesystem::create_directories(path);
    std::ofstream(path + "/items.db") << "partial";
  }
  auto m = OpenManager(dir.path());
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->List(), std::vector<std::string>{"c"});
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/.creating-new"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/.dropping-old"));
  CollectionSpec spec;
  spec.name = "new";
  spec.dim = kDim;
  EXPECT_TRUE(m->Create(spec).ok());
}

// The child upserts batches and reports each acknowledged batch number on a
// pipe; the parent SIGKILLs it mid-ingest, then checks every acknowledged
// item is present exactly once with the right vector.
TEST(RecoveryTest, SurvivesKillDashNineDuringIngest) {
  TempDir dir;
  constexpr int kBatch = 25;
  constexpr int kMaxBatches = 100000;
  {
    auto m = OpenManager(dir.path());
    ASSERT_NE(CreateCollection(*m, "Flat"), nullptr);
  }
  auto batch_items = [](int b) {
    std::vector<Item> items;
    const auto v = RandomVectors(kBatch, kDim, 1000 + static_cast<uint32_t>(b));
    for (int i = 0; i < kBatch; ++i) {
      Item item;
      item.id = "b" + std::to_string(b) + "-" + std::to_string(i);
      item.vector.assign(v.begin() + i * kDim, v.begin() + (i + 1) * kDim);
      item.metadata["batch"] = std::to_string(b);
      items.push_back(std::move(item));
    }
    // Every batch also replaces one shared id (latest acknowledged batch wins).
    Item shared;
    shared.id = "shared";
    shared.vector.assign(kDim, static_cast<float>(b + 1));
    items.push_back(shared);
    return items;
  };
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    // Snapshots every few batches so the kill can land mid-snapshot too.
    auto m = OpenManager(dir.path(), /*snapshot_every=*/60);
    auto c = m ? m->Get("c") : StatusOr<std::shared_ptr<Collection>>(InternalError("no manager"));
    if (!c.ok()) _exit(2);
    for (int b = 0; b < kMaxBatches; ++b) {
      auto st = (*c)->Upsert(batch_items(b));
      if (!st.ok()) _exit(3);
      if (b % 7 == 6) {
        if (!(*c)->Delete({"b" + std::to_string(b - 3) + "-0"}).ok()) _exit(4);
      }
      const int32_t ack = b;
      if (write(fds[1], &ack, sizeof(ack)) != sizeof(ack)) _exit(5);
    }
    _exit(0);
  }
  close(fds[1]);
  int32_t last_ack = -1, ack = 0;
  while (read(fds[0], &ack, sizeof(ack)) == sizeof(ack)) {
    last_ack = ack;
    if (ack >= 40) break;
  }
  kill(pid, SIGKILL);
  while (read(fds[0], &ack, sizeof(ack)) == sizeof(ack)) last_ack = ack;  // acks sent before death
  close(fds[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  ASSERT_TRUE(WIFSIGNALED(wstatus)) << "child exited early with " << WEXITSTATUS(wstatus);
  ASSERT_GE(last_ack, 40);

  auto m = OpenManager(dir.path());
  auto c = m->Get("c");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  int64_t expected = 1;  // "shared"
  for (int b = 0; b <= last_ack; ++b) {
    auto items = batch_items(b);
    items.pop_back();
    std::vector<std::string> ids;
    for (const auto& i : items) ids.push_back(i.id);
    auto got = (*c)->Get(ids);
    ASSERT_TRUE(got.ok());
    for (int i = 0; i < kBatch; ++i) {
      const bool deleted_later = i == 0 && (b + 3) % 7 == 6 && b + 3 <= last_ack;
      if (deleted_later) {
        EXPECT_FALSE((*got)[i].has_value()) << ids[i];
        continue;
      }
      ++expected;
      ASSERT_TRUE((*got)[i].has_value()) << "acknowledged item " << ids[i] << " lost";
      EXPECT_EQ((*got)[i]->vector, items[i].vector) << ids[i];
    }
  }
  // The batch in flight at the kill may have committed without its ack.
  const int64_t count = (*c)->Stats().count;
  EXPECT_GE(count, expected);
  EXPECT_LE(count, expected + kBatch);
  auto shared = (*c)->Get({"shared"});
  ASSERT_TRUE(shared.ok() && (*shared)[0].has_value());
  const float v = (*shared)[0]->vector[0];
  EXPECT_TRUE(v == last_ack + 1 || v == last_ack + 2) << v;
  // Each acknowledged item is in the index exactly once: searching for its
  // own vector returns it first and not twice.
  auto items = batch_items(last_ack / 2);
  SearchParams p;
  p.k = 3;
  auto hits = (*c)->Search(items[1].vector.data(), 1, p);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ((*hits)[0].size(), 3u);
  EXPECT_EQ((*hits)[0][0].id, items[1].id);
  EXPECT_NE((*hits)[0][1].id, items[1].id);
}

}  // namespace
}  // namespace lookalike
