// Collection behaviour through the public API: CRUD, validation, exact search
// against a brute-force reference, filters, min_score, exclude_ids, trainable
// specs, concurrency and the manager.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "index/collection.h"
#include "test_util.h"

namespace lookalike {
namespace {

using testing::BruteForce;
using testing::MakeItems;
using testing::RandomVectors;
using testing::RefHit;
using testing::StorageFor;
using testing::StorageKind;
using testing::TempDir;

constexpr float kTol = 1e-4f;

// Hits equal the reference: same length, scores within kTol, ids equal
// unless the reference has a tie at that score.
void ExpectSameHits(const std::vector<SearchHit>& hits, const std::vector<RefHit>& ref) {
  ASSERT_EQ(hits.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_NEAR(hits[i].score, ref[i].score, kTol) << "rank " << i;
    if (hits[i].id != ref[i].id) {
      // Allowed only when another reference hit has the same score.
      bool tie = false;
      for (const auto& r : ref)
        tie = tie || (r.id == hits[i].id && std::fabs(r.score - ref[i].score) < kTol);
      EXPECT_TRUE(tie) << "rank " << i << ": got " << hits[i].id << ", want " << ref[i].id;
    }
  }
}

// Collections on SQLite storage unless a test calls UseStorage.
class CollectionTestBase : public ::testing::Test {
 protected:
  // Skips the test when `kind` is PostgreSQL and it is not installed.
  void UseStorage(StorageKind kind) {
    kind_ = kind;
    auto storage = StorageFor(kind);
    if (storage.status().code() == StatusCode::kFailedPrecondition) {
      GTEST_SKIP() << storage.status().message();
    }
    ASSERT_TRUE(storage.ok()) << storage.status().ToString();
    storage_ = *storage;
  }

  CollectionManagerOptions Options() const {
    CollectionManagerOptions options;
    options.data_dir = dir_.path();
    options.storage = storage_;
    return options;
  }

  std::shared_ptr<Collection> Make(int dim, Metric metric, const std::string& index_spec = "Flat",
                                   const std::string& name = "c") {
    if (!manager_) {
      auto m = CollectionManager::Open(Options());
      EXPECT_TRUE(m.ok()) << m.status().ToString();
      manager_ = std::move(m).value();
    }
    CollectionSpec spec;
    spec.name = name;
    spec.dim = dim;
    spec.metric = metric;
    spec.index_spec = index_spec;
    auto c = manager_->Create(spec);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? c.value() : nullptr;
  }

  static void UpsertAll(Collection& c, const std::vector<Item>& items) {
    auto st = c.Upsert(items);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    for (const auto& s : *st) ASSERT_TRUE(s.ok()) << s.ToString();
  }

  TempDir dir_;
  StorageKind kind_ = StorageKind::kSqlite;
  std::string storage_ = kSqliteStorage;  // CollectionManagerOptions::storage
  std::unique_ptr<CollectionManager> manager_;
};

// Runs against SQLite and PostgreSQL storage (a real server, tests/pg_harness.h).
class CollectionTest : public CollectionTestBase,
                       public ::testing::WithParamInterface<StorageKind> {
 protected:
  void SetUp() override { UseStorage(GetParam()); }
};

TEST_P(CollectionTest, UpsertGetDeleteReplace) {
  auto c = Make(4, Metric::kL2);
  ASSERT_NE(c, nullptr);
  UpsertAll(*c, {{"a", {1, 2, 3, 4}, {{"k", "v"}}}, {"b", {0, 0, 0, 1}, {}}});
  auto got = c->Get({"a", "missing", "b"});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 3u);
  ASSERT_TRUE((*got)[0].has_value());
  EXPECT_EQ((*got)[0]->vector, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ((*got)[0]->metadata, (Metadata{{"k", "v"}}));
  EXPECT_FALSE((*got)[1].has_value());
  EXPECT_EQ(c->Stats().count, 2);

  // Replace "a": new vector and metadata, still one item.
  UpsertAll(*c, {{"a", {9, 9, 9, 9}, {{"k2", "v2"}}}});
  got = c->Get({"a"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value());
  EXPECT_EQ((*got)[0]->vector, (std::vector<float>{9, 9, 9, 9}));
  EXPECT_EQ((*got)[0]->metadata, (Metadata{{"k2", "v2"}}));
  EXPECT_EQ(c->Stats().count, 2);
  const float q[4] = {9, 9, 9, 9};
  SearchParams p;
  p.k = 5;
  auto hits = c->Search(q, 1, p);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ((*hits)[0].size(), 2u);
  EXPECT_EQ((*hits)[0][0].id, "a");
  EXPECT_NEAR((*hits)[0][0].score, 0.f, kTol);
  EXPECT_EQ((*hits)[0][0].metadata, (Metadata{{"k2", "v2"}}));

  // Same id twice in a batch: the later one wins.
  UpsertAll(*c, {{"d", {1, 1, 1, 1}, {}}, {"d", {2, 2, 2, 2}, {}}});
  got = c->Get({"d"});
  ASSERT_TRUE(got.ok() && (*got)[0].has_value());
  EXPECT_EQ((*got)[0]->vector, (std::vector<float>{2, 2, 2, 2}));
  EXPECT_EQ(c->Stats().count, 3);

  auto deleted = c->Delete({"a", "nope", "d"});
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(*deleted, 2);
  EXPECT_EQ(c->Stats().count, 1);
  hits = c->Search(q, 1, p);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ((*hits)[0].size(), 1u);
  EXPECT_EQ((*hits)[0][0].id, "b");
}

TEST_P(CollectionTest, ValidationNamesTheProblem) {
  auto c = Make(3, Metric::kCosine);
  ASSERT_NE(c, nullptr);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<Item> items = {
      {"ok", {1, 0, 0}, {}},
      {"", {1, 0, 0}, {}},
      {std::string(513, 'x'), {1, 0, 0}, {}},
      {"short", {1, 0}, {}},
      {"nan", {1, nan, 0}, {}},
      {"inf", {1, 0, std::numeric_limits<float>::infinity()}, {}},
      {"zero", {0, 0, 0}, {}},
      {"bigkey", {1, 0, 0}, {{std::string(200, 'k'), "v"}}},
      {"bigvalue", {1, 0, 0}, {{"k", std::string(5000, 'v')}}},
      {std::string("nul\0id", 6), {1, 0, 0}, {}},
      {"nulvalue", {1, 0, 0}, {{"k", std::string("a\0b", 3)}}},
  };
  auto st = c->Upsert(items);
  ASSERT_TRUE(st.ok());
  ASSERT_EQ(st->size(), items.size());
  EXPECT_TRUE((*st)[0].ok());
  for (size_t i = 1; i < items.size(); ++i) {
    EXPECT_EQ((*st)[i].code(), StatusCode::kInvalidArgument) << i;
  }
  EXPECT_NE((*st)[1].message().find("empty"), std::string::npos);
  EXPECT_NE((*st)[2].message().find("513"), std::string::npos);
  EXPECT_NE((*st)[3].message().find("dimension 2"), std::string::npos) << (*st)[3].message();
  EXPECT_NE((*st)[3].message().find("dimension is 3"), std::string::npos) << (*st)[3].message();
  EXPECT_NE((*st)[4].message().find("component 1 is NaN"), std::string::npos) << (*st)[4].message();
  EXPECT_NE((*st)[5].message().find("component 2 is infinite"), std::string::npos);
  EXPECT_NE((*st)[6].message().find("zeros"), std::string::npos);
  EXPECT_NE((*st)[7].message().find("metadata key"), std::string::npos);
  EXPECT_NE((*st)[8].message().find("value of metadata key"), std::string::npos);
  EXPECT_NE((*st)[9].message().find("NUL"), std::string::npos);
  EXPECT_NE((*st)[10].message().find("NUL"), std::string::npos);
  // Only the valid item was written; cosine stores it normalized.
  EXPECT_EQ(c->Stats().count, 1);
  auto got = c->Get({"ok", "nan"});
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE((*got)[0].has_value());
  EXPECT_FALSE((*got)[1].has_value());

  // Search validation.
  const float q[3] = {1, 0, 0};
  SearchParams p;
  p.k = 0;
  EXPECT_EQ(c->Search(q, 1, p).status().code(), StatusCode::kInvalidArgument);
  p.k = kMaxK + 1;
  EXPECT_EQ(c->Search(q, 1, p).status().code(), StatusCode::kInvalidArgument);
  p.k = 1;
  const float bad[3] = {1, nan, 0};
  auto r = c->Search(bad, 1, p);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("component 1"), std::string::npos);
  EXPECT_EQ(c->Search(nullptr, 1, p).status().code(), StatusCode::kInvalidArgument);
}

class ExactSearchTest : public CollectionTestBase, public ::testing::WithParamInterface<Metric> {};

TEST_P(ExactSearchTest, MatchesBruteForce) {
  const Metric metric = GetParam();
  const int dim = 16, n = 500, nq = 5, k = 10;
  auto c = Make(dim, metric);
  ASSERT_NE(c, nullptr);
  const auto items = MakeItems(n, dim, 7);
  UpsertAll(*c, items);
  const auto queries = RandomVectors(nq, dim, 99);
  SearchParams p;
  p.k = k;
  auto hits = c->Search(queries.data(), nq, p);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  ASSERT_EQ(hits->size(), static_cast<size_t>(nq));
  for (int q = 0; q < nq; ++q) {
    ExpectSameHits((*hits)[q], BruteForce(items, queries.data() + q * dim, dim, metric, k));
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, ExactSearchTest,
                         ::testing::Values(Metric::kCosine, Metric::kInnerProduct, Metric::kL2),
                         [](const auto& info) { return std::string(MetricName(info.param)); });

// Reference restricted to items passing `keep`.
template <typename Pred>
std::vector<RefHit> FilteredRef(const std::vector<Item>& items, const float* q, int dim, Metric m,
                                int k, Pred keep) {
  std::vector<Item> subset;
  for (const auto& item : items) {
    if (keep(item)) subset.push_back(item);
  }
  return BruteForce(subset, q, dim, m, k);
}

void CheckFilters(Collection& c, const std::vector<Item>& items, int dim, Metric metric) {
  const auto queries = RandomVectors(3, dim, 5);
  for (int q = 0; q < 3; ++q) {
    const float* query = queries.data() + q * dim;
    SearchParams p;
    p.k = 10;
    // Equality.
    p.filter.any_of = {{"color", {"red"}}};
    auto hits = c.Search(query, 1, p);
    ASSERT_TRUE(hits.ok()) << hits.status().ToString();
    ExpectSameHits((*hits)[0], FilteredRef(items, query, dim, metric, 10, [](const Item& i) {
                     return i.metadata.at("color") == "red";
                   }));
    for (const auto& h : (*hits)[0]) EXPECT_EQ(h.metadata.at("color"), "red");
    // In-list.
    p.filter.any_of = {{"color", {"green", "blue"}}};
    hits = c.Search(query, 1, p);
    ASSERT_TRUE(hits.ok());
    ExpectSameHits((*hits)[0], FilteredRef(items, query, dim, metric, 10, [](const Item& i) {
                     return i.metadata.at("color") == "green" || i.metadata.at("color") == "blue";
                   }));
    // Combination: color in {red} and shape in {star}: only 1 in 15 items.
    p.filter.any_of = {{"color", {"red"}}, {"shape", {"star"}}};
    p.k = 20;
    hits = c.Search(query, 1, p);
    ASSERT_TRUE(hits.ok());
    auto ref = FilteredRef(items, query, dim, metric, 20, [](const Item& i) {
      return i.metadata.at("color") == "red" && i.metadata.at("shape") == "star";
    });
    ASSERT_EQ(ref.size(), 20u);  // k results exist, so k come back
    ExpectSameHits((*hits)[0], ref);
    // No match.
    p.filter.any_of = {{"color", {"purple"}}};
    hits = c.Search(query, 1, p);
    ASSERT_TRUE(hits.ok());
    EXPECT_TRUE((*hits)[0].empty());
  }
}

TEST_P(CollectionTest, FiltersReturnKWhenKExist) {
  const int dim = 8;
  auto c = Make(dim, Metric::kInnerProduct);
  ASSERT_NE(c, nullptr);
  const auto items = MakeItems(600, dim, 11);
  UpsertAll(*c, items);
  CheckFilters(*c, items, dim, Metric::kInnerProduct);
}

TEST_P(CollectionTest, MinScoreAndExcludeIds) {
  const int dim = 8;
  auto c = Make(dim, Metric::kCosine);
  ASSERT_NE(c, nullptr);
  const auto items = MakeItems(200, dim, 3);
  UpsertAll(*c, items);
  const float* query = items[17].vector.data();
  SearchParams p;
  p.k = 10;
  p.exclude_ids = {"item-17", "unknown-id"};
  auto hits = c->Search(query, 1, p);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ((*hits)[0].size(), 10u);  // still k despite the exclusion
  std::vector<Item> others;
  for (const auto& i : items) {
    if (i.id != "item-17") others.push_back(i);
  }
  ExpectSameHits((*hits)[0], BruteForce(others, query, dim, Metric::kCosine, 10));

  // min_score between the 3rd and 4th reference score keeps exactly 3.
  auto ref = BruteForce(others, query, dim, Metric::kCosine, 10);
  p.min_score = (ref[2].score + ref[3].score) / 2;
  hits = c->Search(query, 1, p);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ((*hits)[0].size(), 3u);
  for (const auto& h : (*hits)[0]) EXPECT_GE(h.score, *p.min_score);
  p.min_score = 2.0f;  // above any cosine
  hits = c->Search(query, 1, p);
  ASSERT_TRUE(hits.ok());
  EXPECT_TRUE((*hits)[0].empty());
}

TEST_P(CollectionTest, IvfExactBeforeTrainingThenTrained) {
  const int dim = 8;
  auto c = Make(dim, Metric::kL2, "IVF16,Flat");
  ASSERT_NE(c, nullptr);
  // 39 * 16 = 624 vectors are needed to train; below that, exact search.
  const auto items = MakeItems(1200, dim, 21);
  std::vector<Item> first(items.begin(), items.begin() + 300);
  UpsertAll(*c, first);
  const auto queries = RandomVectors(4, dim, 8);
  SearchParams p;
  p.k = 10;
  for (int q = 0; q < 4; ++q) {
    auto hits = c->Search(queries.data() + q * dim, 1, p);
    ASSERT_TRUE(hits.ok());
    ExpectSameHits((*hits)[0], BruteForce(first, queries.data() + q * dim, dim, Metric::kL2, 10));
  }
  ASSERT_TRUE(c->Delete({"item-0", "item-1"}).ok());
  std::vector<Item> rest(items.begin() + 300, items.end());
  UpsertAll(*c, rest);  // crosses the training threshold
  std::vector<Item> live(items.begin() + 2, items.end());
  EXPECT_EQ(c->Stats().count, static_cast<int64_t>(live.size()));
  // Trained: scores of returned ids are exact; recall against the reference is high.
  int found = 0, total = 0;
  for (int q = 0; q < 4; ++q) {
    const float* query = queries.data() + q * dim;
    auto hits = c->Search(query, 1, p);
    ASSERT_TRUE(hits.ok());
    ASSERT_EQ((*hits)[0].size(), 10u);
    auto ref = BruteForce(live, query, dim, Metric::kL2, 10);
    std::set<std::string> ref_ids;
    for (const auto& r : ref) ref_ids.insert(r.id);
    for (const auto& h : (*hits)[0]) {
      EXPECT_NE(h.id, "item-0");
      auto exact = BruteForce({items[std::stoi(h.id.substr(5))]}, query, dim, Metric::kL2, 1);
      EXPECT_NEAR(h.score, exact[0].score, kTol);
      found += ref_ids.count(h.id);
      ++total;
    }
  }
  EXPECT_GE(found, total * 8 / 10);
  // Filtered searches probe every list: exact over the allowed set.
  CheckFilters(*c, live, dim, Metric::kL2);
  // Deletes hide at once after training too.
  auto top = c->Search(queries.data(), 1, p);
  ASSERT_TRUE(top.ok());
  const std::string best = (*top)[0][0].id;
  ASSERT_TRUE(c->Delete({best}).ok());
  top = c->Search(queries.data(), 1, p);
  ASSERT_TRUE(top.ok());
  for (const auto& h : (*top)[0]) EXPECT_NE(h.id, best);
}

TEST_P(CollectionTest, HnswFiltersAndDeletesStayCorrect) {
  const int dim = 8;
  auto c = Make(dim, Metric::kInnerProduct, "HNSW16");
  ASSERT_NE(c, nullptr);
  auto items = MakeItems(600, dim, 4);
  UpsertAll(*c, items);
  CheckFilters(*c, items, dim, Metric::kInnerProduct);
  // Delete most items: the survivors are still found.
  std::vector<std::string> doomed;
  std::vector<Item> live;
  for (const auto& i : items) {
    if (i.metadata.at("shape") != "star")
      doomed.push_back(i.id);
    else
      live.push_back(i);
  }
  ASSERT_TRUE(c->Delete(doomed).ok());
  const auto queries = RandomVectors(2, dim, 6);
  SearchParams p;
  p.k = 10;
  for (int q = 0; q < 2; ++q) {
    auto hits = c->Search(queries.data() + q * dim, 1, p);
    ASSERT_TRUE(hits.ok());
    ASSERT_EQ((*hits)[0].size(), 10u);
    for (const auto& h : (*hits)[0]) EXPECT_EQ(h.metadata.at("shape"), "star");
  }
}

// Every supported approximate family, through training (IVF4,PQ4 first fails
// to train its 256-centroid codebooks at 156 vectors and retries): own
// vectors are found, filters return k matching hits, deletes never return.
class ApproximateSpecTest : public CollectionTestBase,
                            public ::testing::WithParamInterface<const char*> {};

TEST_P(ApproximateSpecTest, FindsOwnVectorsFiltersAndHidesDeletes) {
  const int dim = 8;
  auto c = Make(dim, Metric::kL2, GetParam());
  ASSERT_NE(c, nullptr);
  const auto items = MakeItems(1500, dim, 41);
  for (size_t i = 0; i < items.size(); i += 250) {
    UpsertAll(*c, std::vector<Item>(items.begin() + static_cast<ptrdiff_t>(i),
                                    items.begin() + static_cast<ptrdiff_t>(i + 250)));
  }
  std::vector<std::string> doomed;
  for (int i = 0; i < 40; i += 2) doomed.push_back(items[static_cast<size_t>(i)].id);
  ASSERT_TRUE(c->Delete(doomed).ok());
  EXPECT_EQ(c->Stats().count, 1480);
  SearchParams p;
  p.k = 5;
  int own_first = 0;
  for (int i = 1; i < 40; i += 2) {
    auto hits = c->Search(items[static_cast<size_t>(i)].vector.data(), 1, p);
    ASSERT_TRUE(hits.ok()) << hits.status().ToString();
    ASSERT_EQ((*hits)[0].size(), 5u);
    own_first += (*hits)[0][0].id == items[static_cast<size_t>(i)].id;
  }
  EXPECT_GE(own_first, 18);  // of 20
  for (int i = 0; i < 40; i += 2) {
    auto hits = c->Search(items[static_cast<size_t>(i)].vector.data(), 1, p);
    ASSERT_TRUE(hits.ok());
    for (const auto& h : (*hits)[0]) EXPECT_NE(h.id, items[static_cast<size_t>(i)].id);
  }
  p.k = 30;
  p.filter.any_of = {{"color", {"red"}}, {"shape", {"star"}}};  // 100 items, 1 in 15
  auto hits = c->Search(items[7].vector.data(), 1, p);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ((*hits)[0].size(), 30u);
  for (const auto& h : (*hits)[0]) {
    EXPECT_EQ(h.metadata.at("color"), "red");
    EXPECT_EQ(h.metadata.at("shape"), "star");
  }
}

INSTANTIATE_TEST_SUITE_P(Specs, ApproximateSpecTest,
                         ::testing::Values("SQ8", "IVF4,PQ4", "IVF8,SQ8", "HNSW16"),
                         [](const auto& info) {
                           std::string name = info.param;
                           name.erase(std::remove(name.begin(), name.end(), ','), name.end());
                           return name;
                         });

TEST_P(CollectionTest, ConcurrentSearchesWhileWriting) {
  const int dim = 8;
  auto c = Make(dim, Metric::kCosine);
  ASSERT_NE(c, nullptr);
  const auto items = MakeItems(400, dim, 2);
  UpsertAll(*c, std::vector<Item>(items.begin(), items.begin() + 100));
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0}, searches{0};
  std::mutex error_mu;
  std::string first_error;  // guarded by error_mu
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      const auto queries = RandomVectors(8, dim, 100 + t);
      SearchParams p;
      p.k = 5;
      while (!stop) {
        for (int q = 0; q < 8; ++q) {
          if (t == 2) p.filter.any_of = {{"color", {"red"}}};
          auto hits = c->Search(queries.data() + q * dim, 1, p);
          if (!hits.ok() || (*hits)[0].size() != 5u) {
            std::lock_guard<std::mutex> lock(error_mu);
            if (errors++ == 0) {
              first_error = hits.ok() ? std::to_string((*hits)[0].size()) + " hits"
                                      : hits.status().ToString();
            }
            continue;
          }
          for (size_t i = 1; i < (*hits)[0].size(); ++i) {
            if ((*hits)[0][i].score > (*hits)[0][i - 1].score + kTol) {
              std::lock_guard<std::mutex> lock(error_mu);
              if (errors++ == 0) first_error = "hits out of order";
            }
          }
          ++searches;
        }
      }
    });
  }
  // Write only once the readers are searching (threads can start late on a
  // loaded machine; PostgreSQL storage writes fast enough to finish first).
  while (searches.load() == 0 && errors.load() == 0) std::this_thread::yield();
  for (size_t i = 100; i < items.size(); i += 20) {
    UpsertAll(*c, std::vector<Item>(items.begin() + static_cast<ptrdiff_t>(i),
                                    items.begin() + static_cast<ptrdiff_t>(i + 20)));
    ASSERT_TRUE(c->Delete({items[i - 50].id}).ok());
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0) << first_error;
  EXPECT_GT(searches.load(), 0);
  EXPECT_EQ(c->Stats().count, 400 - 15);
}

TEST_P(CollectionTest, ManagerLifecycle) {
  auto c = Make(4, Metric::kL2, "Flat", "first");
  ASSERT_NE(c, nullptr);
  CollectionSpec spec;
  spec.name = "first";
  spec.dim = 4;
  EXPECT_EQ(manager_->Create(spec).status().code(), StatusCode::kAlreadyExists);
  spec.name = "bad name!";
  EXPECT_EQ(manager_->Create(spec).status().code(), StatusCode::kInvalidArgument);
  spec.name = std::string(65, 'a');
  EXPECT_EQ(manager_->Create(spec).status().code(), StatusCode::kInvalidArgument);
  // The model is a model name or kVectorsOnly ("none"), never "".
  spec.name = "second";
  spec.model = "";
  auto no_model = manager_->Create(spec);
  EXPECT_EQ(no_model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_model.status().message().find("model"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/second"));
  spec.model = kVectorsOnly;
  spec.dim = 0;
  EXPECT_EQ(manager_->Create(spec).status().code(), StatusCode::kInvalidArgument);
  spec.dim = 4;
  spec.index_spec = "NotAnIndex";
  auto bad = manager_->Create(spec);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("NotAnIndex"), std::string::npos);
  spec.index_spec = "Flat";
  ASSERT_TRUE(manager_->Create(spec).ok());
  EXPECT_EQ(manager_->List(), (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(manager_->Get("nope").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(manager_->Get("second").ok());

  UpsertAll(*c, {{"x", {1, 2, 3, 4}, {}}});
  auto stats = c->Stats();
  EXPECT_EQ(stats.count, 1);
  // PostgreSQL rows are on the database server, not on this disk.
  if (kind_ == StorageKind::kSqlite) EXPECT_GT(stats.disk_bytes, 0);
  EXPECT_GE(stats.index_bytes, 16);
  EXPECT_EQ(stats.index_device, "cpu");
  EXPECT_EQ(stats.spec.dim, 4);
  EXPECT_EQ(stats.spec.model, kVectorsOnly);

  ASSERT_TRUE(manager_->Drop("first").ok());
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/first"));
  EXPECT_EQ(manager_->Drop("first").code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->Get("first").status().code(), StatusCode::kNotFound);
  // A handle kept across Drop fails cleanly.
  EXPECT_EQ(c->Upsert({{"y", {1, 1, 1, 1}, {}}}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->List(), (std::vector<std::string>{"second"}));
  // The name can be reused.
  spec.name = "first";
  EXPECT_TRUE(manager_->Create(spec).ok());
  // A second manager on the same data directory is refused.
  auto second = CollectionManager::Open(Options());
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use"), std::string::npos);
}

// Closing and opening the manager again finds every collection with its
// items (index from the snapshot, replayed from storage). With PostgreSQL a
// manager on another, empty data directory (another server) also finds
// them, rebuilding its index from the database.
TEST_P(CollectionTest, ReopenFindsCollectionsAndItems) {
  auto c = Make(8, Metric::kCosine, "Flat", "photos");
  ASSERT_NE(c, nullptr);
  const auto items = MakeItems(300, 8, 7);
  UpsertAll(*c, items);
  ASSERT_TRUE(c->Delete({"item-0", "item-1"}).ok());
  c.reset();
  manager_.reset();

  std::vector<std::string> data_dirs = {dir_.path()};
  TempDir other;
  if (kind_ == StorageKind::kPostgres) data_dirs.push_back(other.path());
  for (const auto& data_dir : data_dirs) {
    CollectionManagerOptions options = Options();
    options.data_dir = data_dir;
    auto m = CollectionManager::Open(options);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_EQ((*m)->List(), std::vector<std::string>{"photos"});
    auto reopened = (*m)->Get("photos");
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    EXPECT_EQ((*reopened)->Stats().count, 298);
    SearchParams p;
    p.k = 5;
    auto hits = (*reopened)->Search(items[10].vector.data(), 1, p);
    ASSERT_TRUE(hits.ok()) << hits.status().ToString();
    ASSERT_FALSE((*hits)[0].empty());
    EXPECT_EQ((*hits)[0][0].id, "item-10");
    EXPECT_EQ((*hits)[0][0].metadata, items[10].metadata);
  }
}

// Two servers (managers on separate data directories) writing one PostgreSQL
// collection: a write that finds batches of the other in between catches its
// index up, so each finds every item written before its own last write.
TEST(CollectionManagerStorage, TwoManagersWritingOnePostgresCollection) {
  auto uri = StorageFor(StorageKind::kPostgres);
  if (uri.status().code() == StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << uri.status().message();
  }
  ASSERT_TRUE(uri.ok()) << uri.status().ToString();
  TempDir dir_a, dir_b;
  CollectionManagerOptions options;
  options.storage = *uri;
  options.data_dir = dir_a.path();
  auto a = CollectionManager::Open(options);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  CollectionSpec spec;
  spec.name = "shared";
  spec.dim = 8;
  auto ca = (*a)->Create(spec);
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  options.data_dir = dir_b.path();
  auto b = CollectionManager::Open(options);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto cb = (*b)->Get("shared");
  ASSERT_TRUE(cb.ok()) << cb.status().ToString();

  const auto items = MakeItems(40, 8, 5);
  for (size_t i = 0; i < items.size(); i += 10) {
    Collection& writer = (i / 10) % 2 == 0 ? **ca : **cb;
    auto st = writer.Upsert(std::vector<Item>(items.begin() + static_cast<ptrdiff_t>(i),
                                              items.begin() + static_cast<ptrdiff_t>(i + 10)));
    ASSERT_TRUE(st.ok()) << st.status().ToString();
  }
  ASSERT_TRUE((*ca)->Delete({"item-35"}).ok());  // a's index catches up on b's last batch
  EXPECT_EQ((*ca)->Stats().count, 39);
  SearchParams p;
  p.k = 1;
  for (const int i : {5, 15, 25, 39}) {
    auto hits = (*ca)->Search(items[i].vector.data(), 1, p);
    ASSERT_TRUE(hits.ok()) << hits.status().ToString();
    ASSERT_EQ((*hits)[0].size(), 1u);
    EXPECT_EQ((*hits)[0][0].id, items[i].id);
  }
  auto hits = (*ca)->Search(items[35].vector.data(), 1, p);
  ASSERT_TRUE(hits.ok());
  EXPECT_NE((*hits)[0][0].id, "item-35");
}

TEST(CollectionManagerStorage, UnknownStorageIsInvalidArgument) {
  TempDir dir;
  CollectionManagerOptions options;
  options.data_dir = dir.path();
  options.storage = "mysql://x:secret@h/db";
  auto m = CollectionManager::Open(options);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message().find("secret"), std::string::npos) << m.status().ToString();
}

TEST(CollectionManagerStorage, UnreachablePostgresIsUnavailableNamingTheDatabase) {
  TempDir dir;
  CollectionManagerOptions options;
  options.data_dir = dir.path();
  options.storage = "postgresql://lookalike@127.0.0.1:1/shop";
  auto m = CollectionManager::Open(options);
  EXPECT_EQ(m.status().code(), StatusCode::kUnavailable) << m.status().ToString();
  EXPECT_NE(m.status().message().find("postgresql://lookalike@127.0.0.1:1/shop"), std::string::npos)
      << m.status().ToString();
}

INSTANTIATE_TEST_SUITE_P(Storages, CollectionTest,
                         ::testing::Values(StorageKind::kSqlite, StorageKind::kPostgres),
                         [](const ::testing::TestParamInfo<StorageKind>& info) {
                           return testing::StorageKindName(info.param);
                         });

TEST(CollectionManagerDevice, InvalidDeviceIsInvalidArgument) {
  TempDir dir;
  CollectionManagerOptions options;
  options.data_dir = dir.path();
  options.index_device = "tpu";
  EXPECT_EQ(CollectionManager::Open(options).status().code(), StatusCode::kInvalidArgument);
  options.index_device = "cuda:x";
  EXPECT_EQ(CollectionManager::Open(options).status().code(), StatusCode::kInvalidArgument);
}

#if !defined(LOOKALIKE_HAVE_GPU_INDEX)
TEST(CollectionManagerDevice, CudaWithoutGpuIndexIsFailedPrecondition) {
  TempDir dir;
  CollectionManagerOptions options;
  options.data_dir = dir.path();
  options.index_device = "cuda:0";
  auto m = CollectionManager::Open(options);
  ASSERT_TRUE(m.ok());
  CollectionSpec spec;
  spec.name = "g";
  spec.dim = 4;
  auto c = (*m)->Create(spec);
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(c.status().message(), "this build has no GPU index; use index_device: cpu");
  EXPECT_TRUE((*m)->List().empty());
}
#else
// The GPU flat index behind the collection: same answers as the brute-force
// reference, filters and deletes included. Skipped without a CUDA device.
TEST(CollectionManagerDevice, GpuFlatMatchesBruteForce) {
  TempDir dir;
  CollectionManagerOptions options;
  options.data_dir = dir.path();
  options.index_device = "cuda:0";
  auto m = CollectionManager::Open(options);
  ASSERT_TRUE(m.ok());
  CollectionSpec spec;
  spec.name = "g";
  spec.dim = 16;
  spec.metric = Metric::kCosine;
  auto created = (*m)->Create(spec);
  if (!created.ok() && created.status().code() == StatusCode::kFailedPrecondition) {
    GTEST_SKIP() << "no usable CUDA device: " << created.status().message();
  }
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto c = *created;
  spec.name = "h";
  spec.index_spec = "IVF4,Flat";
  EXPECT_EQ((*m)->Create(spec).status().code(), StatusCode::kInvalidArgument);
  auto items = MakeItems(500, 16, 31);
  auto st = c->Upsert(items);
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(c->Delete({"item-0", "item-7"}).ok());
  items.erase(items.begin() + 7);
  items.erase(items.begin());
  const auto queries = RandomVectors(3, 16, 4);
  SearchParams p;
  p.k = 10;
  auto hits = c->Search(queries.data(), 3, p);
  ASSERT_TRUE(hits.ok()) << hits.status().ToString();
  for (int q = 0; q < 3; ++q) {
    ExpectSameHits((*hits)[q], BruteForce(items, queries.data() + q * 16, 16, Metric::kCosine, 10));
  }
  CheckFilters(*c, items, 16, Metric::kCosine);
  EXPECT_EQ(c->Stats().index_device, "cuda:0");
  EXPECT_GT(c->Stats().gpu_bytes, 0);
}
#endif

}  // namespace
}  // namespace lookalike
