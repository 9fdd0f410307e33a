// GPU flat index core (GpuFlatStore) against the CPU brute force. Every test
// here needs a CUDA device and reports SKIPPED without one.
#include "index/gpu/gpu_flat_store.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "index/gpu/cpu_reference.h"
#include "tests/index/gpu/knn_test_util.h"

namespace lookalike {
namespace {

using testing_util::ClusteredVectors;
using testing_util::ExactCase;
using testing_util::ExpectExactTopK;
using testing_util::RandomVectors;

std::unique_ptr<GpuFlatStore> MakeStore(const GpuFlatStoreOptions& o) {
  auto s = GpuFlatStore::Create(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

struct KnnCase {
  int dim;
  int k;
  int nq;
  int nb;
  Metric metric;
  StorageType storage;
  bool clustered;
  int64_t tile_rows;  // 0 = automatic
  bool fused = true;  // allow the fused small-batch kernel (nq <= 16, k <= 128)
};

void PrintTo(const KnnCase& c, std::ostream* os) {
  *os << MetricName(c.metric) << " " << StorageTypeName(c.storage) << " dim " << c.dim << " k "
      << c.k << " nq " << c.nq << " nb " << c.nb;
}

std::string CaseName(const ::testing::TestParamInfo<KnnCase>& info) {
  const KnnCase& c = info.param;
  return std::string(MetricName(c.metric)) + "_" + StorageTypeName(c.storage) + "_d" +
         std::to_string(c.dim) + "_k" + std::to_string(c.k) + "_nq" + std::to_string(c.nq) + "_nb" +
         std::to_string(c.nb) + (c.clustered ? "_clustered" : "_random") +
         (c.tile_rows > 0 ? "_tile" + std::to_string(c.tile_rows) : "") + (c.fused ? "" : "_gemm");
}

class GpuFlatStoreKnnTest : public ::testing::TestWithParam<KnnCase> {};

TEST_P(GpuFlatStoreKnnTest, MatchesCpuBruteForce) {
  SKIP_WITHOUT_GPU();
  const KnnCase c = GetParam();
  GpuFlatStoreOptions o;
  o.dim = c.dim;
  o.metric = c.metric;
  o.storage = c.storage;
  o.tile_rows = c.tile_rows;
  o.fused_small_batch = c.fused;
  auto store = MakeStore(o);
  ASSERT_NE(store, nullptr);
  const std::vector<float> base =
      c.clustered ? ClusteredVectors(c.nb, c.dim, 32, 11) : RandomVectors(c.nb, c.dim, 11);
  const std::vector<float> queries =
      c.clustered ? ClusteredVectors(c.nq, c.dim, 32, 11 + 1) : RandomVectors(c.nq, c.dim, 12);
  ASSERT_TRUE(store->Add(c.nb, base.data()).ok());
  EXPECT_EQ(store->size(), c.nb);

  std::vector<float> dist(static_cast<size_t>(c.nq) * c.k);
  std::vector<int64_t> lab(dist.size());
  const Status st = store->Search(c.nq, queries.data(), c.dim, c.k, dist.data(), lab.data());
  ASSERT_TRUE(st.ok()) << st.ToString();

  const bool normalize = c.metric == Metric::kCosine;
  const bool fp16 = c.storage == StorageType::kFloat16;
  const std::vector<float> stored = PrepareAsStored(base.data(), c.nb, c.dim, normalize, fp16);
  const std::vector<float> qs = PrepareAsStored(queries.data(), c.nq, c.dim, normalize, fp16);
  std::vector<int64_t> labels(c.nb);
  std::iota(labels.begin(), labels.end(), 0);
  ExactCase e;
  e.base = stored.data();
  e.labels = labels.data();
  e.nb = c.nb;
  e.queries = qs.data();
  e.nq = c.nq;
  e.dim = c.dim;
  e.metric = c.metric;
  e.k = c.k;
  e.rel_error = fp16 ? 1e-4 : 2e-5;
  ExpectExactTopK(e, dist.data(), lab.data());
}

// dims 64/128/768/1024; k 1/10/100/1024/2048; nq 1/16/256/1000; all metrics,
// both storage types, random and clustered data, single- and multi-tile.
INSTANTIATE_TEST_SUITE_P(
    Matrix, GpuFlatStoreKnnTest,
    ::testing::Values(
        KnnCase{64, 1, 1, 4000, Metric::kL2, StorageType::kFloat32, false, 0},
        KnnCase{128, 10, 16, 5000, Metric::kInnerProduct, StorageType::kFloat16, true, 0},
        KnnCase{768, 100, 256, 3000, Metric::kCosine, StorageType::kFloat16, false, 0},
        KnnCase{1024, 1024, 16, 3000, Metric::kL2, StorageType::kFloat16, false, 0},
        KnnCase{128, 2048, 1, 5000, Metric::kInnerProduct, StorageType::kFloat32, false, 0},
        KnnCase{64, 10, 1000, 20000, Metric::kL2, StorageType::kFloat32, true, 4096},
        KnnCase{768, 2048, 16, 6000, Metric::kCosine, StorageType::kFloat32, false, 2500},
        KnnCase{1024, 100, 1000, 2000, Metric::kInnerProduct, StorageType::kFloat16, false, 0},
        KnnCase{64, 1024, 256, 10000, Metric::kL2, StorageType::kFloat16, true, 3000},
        KnnCase{128, 1, 1000, 10000, Metric::kCosine, StorageType::kFloat32, true, 0},
        KnnCase{768, 10, 1, 50000, Metric::kInnerProduct, StorageType::kFloat16, false, 0},
        KnnCase{1024, 2048, 256, 2500, Metric::kL2, StorageType::kFloat32, true, 1000},
        // Small batches: fused kernel vs forced GEMM path, and dims that rule
        // the fused kernel out (100 is not a multiple of 8 for fp16).
        KnnCase{128, 10, 16, 5000, Metric::kInnerProduct, StorageType::kFloat16, true, 0, false},
        KnnCase{768, 100, 16, 3000, Metric::kCosine, StorageType::kFloat32, false, 0, true},
        KnnCase{768, 100, 16, 3000, Metric::kCosine, StorageType::kFloat32, false, 0, false},
        KnnCase{100, 10, 4, 3000, Metric::kL2, StorageType::kFloat16, false, 0, true},
        KnnCase{100, 128, 16, 3000, Metric::kL2, StorageType::kFloat32, true, 0, true},
        KnnCase{1024, 128, 16, 4000, Metric::kL2, StorageType::kFloat16, true, 0, true}),
    CaseName);

// Common fixture for the behaviour tests: 3000 x 64 random fp32 vectors;
// row i has label ids_[i] = i (labels are positions).
class GpuFlatStoreTest : public ::testing::Test {
 protected:
  static constexpr int kDim = 64;
  static constexpr int kN = 3000;

  void SetUp() override {
    SKIP_WITHOUT_GPU();
    base_ = RandomVectors(kN, kDim, 5);
    ids_.resize(kN);
    std::iota(ids_.begin(), ids_.end(), 0);
    queries_ = RandomVectors(20, kDim, 6);
  }

  std::unique_ptr<GpuFlatStore> Filled(Metric metric, StorageType storage) {
    GpuFlatStoreOptions o;
    o.dim = kDim;
    o.metric = metric;
    o.storage = storage;
    auto s = MakeStore(o);
    if (s) EXPECT_TRUE(s->Add(kN, base_.data()).ok());
    return s;
  }

  // Searches `store` and checks against the brute force over the rows whose
  // ids satisfy `live` (and the allow predicate).
  // nq <= 16 with k <= 128 takes the fused kernel, nq = 20 the GEMM path.
  void CheckSearch(GpuFlatStore& store, Metric metric, StorageType storage, int k,
                   const std::function<bool(int64_t)>& live,
                   const std::function<bool(int64_t, int64_t)>& allowed = nullptr,
                   const RowAllowSets* allow = nullptr, int nq = 20) {
    std::vector<float> dist(nq * k);
    std::vector<int64_t> lab(nq * k);
    const Status st = store.Search(nq, queries_.data(), kDim, k, dist.data(), lab.data(), allow);
    ASSERT_TRUE(st.ok()) << st.ToString();
    const bool norm = metric == Metric::kCosine;
    const bool fp16 = storage == StorageType::kFloat16;
    std::vector<float> kept;
    std::vector<int64_t> kept_ids;
    for (int i = 0; i < kN; ++i) {
      if (!live(ids_[i])) continue;
      kept.insert(kept.end(), base_.begin() + i * kDim, base_.begin() + (i + 1) * kDim);
      kept_ids.push_back(ids_[i]);
    }
    const int64_t nk = static_cast<int64_t>(kept_ids.size());
    const std::vector<float> stored = PrepareAsStored(kept.data(), nk, kDim, norm, fp16);
    const std::vector<float> qs = PrepareAsStored(queries_.data(), nq, kDim, norm, fp16);
    ExactCase e;
    e.base = stored.data();
    e.labels = kept_ids.data();
    e.nb = nk;
    e.queries = qs.data();
    e.nq = nq;
    e.dim = kDim;
    e.metric = metric;
    e.k = k;
    e.rel_error = fp16 ? 1e-4 : 2e-5;
    e.allowed = allowed;
    ExpectExactTopK(e, dist.data(), lab.data());
  }

  std::vector<float> base_;
  std::vector<int64_t> ids_;
  std::vector<float> queries_;
};

TEST_F(GpuFlatStoreTest, SelectiveAllowSetReturnsKWhenKExist) {
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    auto store = Filled(metric, StorageType::kFloat16);
    ASSERT_NE(store, nullptr);
    // 150 allowed ids out of 3000, spread out: k=100 must return 100 of them.
    auto allowed_id = [](int64_t id) { return id % 20 == 3; };
    std::vector<uint32_t> bits = store->MakeRowBitset(allowed_id);
    RowAllowSets allow{bits.data(), static_cast<int64_t>(bits.size()), 1};
    for (int nq : {20, 16}) {
      CheckSearch(
          *store, metric, StorageType::kFloat16, 100, [](int64_t) { return true; },
          [&](int64_t, int64_t id) { return allowed_id(id); }, &allow, nq);
    }
    // Fewer allowed than k: all of them, then -1.
    auto few = [](int64_t id) { return id % 500 == 1; };  // 6 ids
    bits = store->MakeRowBitset(few);
    allow = RowAllowSets{bits.data(), static_cast<int64_t>(bits.size()), 1};
    CheckSearch(
        *store, metric, StorageType::kFloat16, 10, [](int64_t) { return true; },
        [&](int64_t, int64_t id) { return few(id); }, &allow);
  }
}

TEST_F(GpuFlatStoreTest, PerQueryAllowSets) {
  auto store = Filled(Metric::kL2, StorageType::kFloat32);
  ASSERT_NE(store, nullptr);
  const int nq = 20;
  const int64_t words = store->RowBitsetWords();
  std::vector<uint32_t> bits(nq * words);
  auto allowed = [](int64_t q, int64_t id) { return id % 7 == q % 7 && id % 5 != 0; };
  for (int q = 0; q < nq; ++q) {
    std::vector<uint32_t> one = store->MakeRowBitset([&](int64_t id) { return allowed(q, id); });
    std::copy(one.begin(), one.end(), bits.begin() + q * words);
  }
  RowAllowSets allow{bits.data(), words, nq};
  CheckSearch(
      *store, Metric::kL2, StorageType::kFloat32, 64, [](int64_t) { return true; }, allowed,
      &allow);
  // The first 16 sets with 16 queries: the fused kernel path.
  RowAllowSets first16{bits.data(), words, 16};
  CheckSearch(
      *store, Metric::kL2, StorageType::kFloat32, 64, [](int64_t) { return true; }, allowed,
      &first16, 16);
}

TEST_F(GpuFlatStoreTest, MemoryBudgetIsResourceExhausted) {
  GpuFlatStoreOptions o;
  o.dim = kDim;
  o.metric = Metric::kL2;
  o.storage = StorageType::kFloat32;
  // 1024 rows of 64 fp32 + norms + ids take 274 KiB; 3000 rows do not fit.
  o.memory_budget_bytes = 300 * 1024;
  auto store = MakeStore(o);
  ASSERT_NE(store, nullptr);
  const Status big = store->Add(kN, base_.data());
  EXPECT_EQ(big.code(), StatusCode::kResourceExhausted) << big.ToString();
  EXPECT_NE(big.message().find("budget"), std::string::npos) << big.ToString();
  EXPECT_EQ(store->size(), 0);
  // Fits (the add staging shrinks to the space left).
  ASSERT_TRUE(store->Add(1000, base_.data()).ok());
  EXPECT_LE(store->device_bytes(), o.memory_budget_bytes);
  // k = 2048 needs more workspace than is left even for one query.
  std::vector<float> dist(2048);
  std::vector<int64_t> lab(2048);
  const Status st = store->Search(1, queries_.data(), kDim, 2048, dist.data(), lab.data());
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_LE(store->device_bytes(), o.memory_budget_bytes);
  // A smaller search fits by processing one query at a time, and is exact.
  CheckSearch(*store, Metric::kL2, StorageType::kFloat32, 5,
              [this](int64_t id) { return id < ids_[1000]; });
  EXPECT_LE(store->device_bytes(), o.memory_budget_bytes);
}

TEST_F(GpuFlatStoreTest, BadInputIsRejected) {
  auto store = Filled(Metric::kL2, StorageType::kFloat16);
  ASSERT_NE(store, nullptr);
  std::vector<float> v(kDim, 1.f);
  v[3] = NAN;
  EXPECT_EQ(store->Add(1, v.data()).code(), StatusCode::kInvalidArgument);
  v[3] = 1e6f;  // outside fp16
  EXPECT_EQ(store->Add(1, v.data()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Add(1, nullptr).code(), StatusCode::kInvalidArgument);
  v[3] = 1.f;
  EXPECT_EQ(store->size(), kN);
  float d[4];
  int64_t l[4];
  EXPECT_EQ(store->Search(1, v.data(), kDim, 0, d, l).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Search(1, v.data(), kDim, 2049, d, l).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Search(1, v.data(), kDim + 1, 4, d, l).code(), StatusCode::kInvalidArgument);
  std::vector<uint32_t> short_bits(1);
  RowAllowSets bad{short_bits.data(), 1, 1};
  EXPECT_EQ(store->Search(1, v.data(), kDim, 4, d, l, &bad).code(), StatusCode::kInvalidArgument);
}

TEST_F(GpuFlatStoreTest, EmptyAndSmallIndexPadsResults) {
  GpuFlatStoreOptions o;
  o.dim = kDim;
  o.metric = Metric::kInnerProduct;
  auto store = MakeStore(o);
  ASSERT_NE(store, nullptr);
  float d[8];
  int64_t l[8];
  ASSERT_TRUE(store->Search(1, queries_.data(), kDim, 8, d, l).ok());
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(l[i], -1);
    EXPECT_EQ(d[i], -FLT_MAX);
  }
  ASSERT_TRUE(store->Add(3, base_.data()).ok());
  ASSERT_TRUE(store->Search(1, queries_.data(), kDim, 8, d, l).ok());
  for (int i = 0; i < 3; ++i) EXPECT_GE(l[i], 0);
  for (int i = 3; i < 8; ++i) EXPECT_EQ(l[i], -1);
  ASSERT_TRUE(store->Reset().ok());
  EXPECT_EQ(store->size(), 0);
  EXPECT_EQ(store->device_bytes(), 0);
}

TEST_F(GpuFlatStoreTest, ReconstructReturnsStoredVectors) {
  for (Metric metric : {Metric::kL2, Metric::kCosine}) {
    for (StorageType storage : {StorageType::kFloat32, StorageType::kFloat16}) {
      auto store = Filled(metric, storage);
      ASSERT_NE(store, nullptr);
      const bool norm = metric == Metric::kCosine;
      const bool fp16 = storage == StorageType::kFloat16;
      for (int i : {0, 17, kN - 1}) {
        std::vector<float> v(kDim);
        ASSERT_TRUE(store->Reconstruct(ids_[i], v.data()).ok());
        const std::vector<float> want =
            PrepareAsStored(base_.data() + i * kDim, 1, kDim, norm, fp16);
        for (int j = 0; j < kDim; ++j) {
          // Normalization sums in a different order on the GPU: one rounding step.
          EXPECT_NEAR(v[j], want[j], norm ? 1e-3f * std::fabs(want[j]) + 1e-7f : 0.f);
        }
      }
      std::vector<float> v(kDim);
      EXPECT_EQ(store->Reconstruct(kN, v.data()).code(), StatusCode::kNotFound);
      EXPECT_EQ(store->Reconstruct(-1, v.data()).code(), StatusCode::kNotFound);
    }
  }
}

}  // namespace
}  // namespace lookalike
