// lookalike::GpuIndexFlat behind faiss::Index: compared with the CPU brute
// force and with faiss::IndexFlat, wrapped by IndexIDMap2 and IndexShards.
// GPU tests report SKIPPED without a CUDA device.
#include "index/gpu/gpu_index_flat.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexReplicas.h>
#include <faiss/IndexShards.h>
#include <faiss/impl/FaissException.h>
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "index/gpu/cpu_reference.h"
#include "tests/index/gpu/knn_test_util.h"

namespace lookalike {
namespace {

using testing_util::ExactCase;
using testing_util::ExpectExactTopK;
using testing_util::RandomVectors;

constexpr int kDim = 96;
constexpr int kN = 4000;
constexpr int kQ = 16;

class GpuIndexFlatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GPU();
    base_ = RandomVectors(kN, kDim, 21);
    queries_ = RandomVectors(kQ, kDim, 22);
  }
  GpuIndexFlatConfig Fp32() {
    GpuIndexFlatConfig c;
    c.storage = StorageType::kFloat32;
    return c;
  }
  std::vector<float> base_;
  std::vector<float> queries_;
};

TEST_F(GpuIndexFlatTest, MatchesIndexFlatL2) {
  GpuIndexFlat gpu(kDim, faiss::METRIC_L2, Fp32());
  faiss::IndexFlatL2 cpu(kDim);
  gpu.add(kN, base_.data());
  cpu.add(kN, base_.data());
  EXPECT_EQ(gpu.ntotal, kN);
  const int k = 50;
  std::vector<float> gd(kQ * k), cd(kQ * k);
  std::vector<faiss::Index::idx_t> gl(kQ * k), cl(kQ * k);
  gpu.search(kQ, queries_.data(), k, gd.data(), gl.data());
  cpu.search(kQ, queries_.data(), k, cd.data(), cl.data());
  for (int i = 0; i < kQ * k; ++i) {
    EXPECT_NEAR(gd[i], cd[i], 2e-5 * (std::fabs(cd[i]) + 2 * kDim)) << i;
  }
  // Exactness against the brute force (labels where distances are distinct).
  std::vector<int64_t> labels(kN);
  std::iota(labels.begin(), labels.end(), 0);
  ExactCase e;
  e.base = base_.data();
  e.labels = labels.data();
  e.nb = kN;
  e.queries = queries_.data();
  e.nq = kQ;
  e.dim = kDim;
  e.metric = Metric::kL2;
  e.k = k;
  ExpectExactTopK(e, gd.data(), gl.data());
}

// Append-only: caller ids and removal are faiss::Index's defaults (throw);
// IndexIDMap2 provides caller ids (below).
TEST_F(GpuIndexFlatTest, AddWithIdsAndRemoveIdsAreNotSupported) {
  GpuIndexFlat gpu(kDim, faiss::METRIC_L2, Fp32());
  const faiss::Index::idx_t id = 7;
  EXPECT_THROW(gpu.add_with_ids(1, base_.data(), &id), faiss::FaissException);
  gpu.add(kN, base_.data());
  faiss::IDSelectorRange sel(0, 10);
  EXPECT_THROW(gpu.remove_ids(sel), faiss::FaissException);
  EXPECT_EQ(gpu.ntotal, kN);
}

TEST_F(GpuIndexFlatTest, IndexIDMap2Wrapping) {
  auto* gpu = new GpuIndexFlat(kDim, Metric::kCosine, GpuIndexFlatConfig());
  faiss::IndexIDMap2 map(gpu);
  map.own_fields = true;
  std::vector<faiss::Index::idx_t> ids(kN);
  for (int i = 0; i < kN; ++i) ids[i] = 50000 + 11 * i;
  map.add_with_ids(kN, base_.data(), ids.data());
  EXPECT_EQ(map.ntotal, kN);
  const int k = 100;
  std::vector<float> d(kQ * k);
  std::vector<faiss::Index::idx_t> l(kQ * k);
  map.search(kQ, queries_.data(), k, d.data(), l.data());
  const std::vector<float> stored = PrepareAsStored(base_.data(), kN, kDim, true, true);
  const std::vector<float> qs = PrepareAsStored(queries_.data(), kQ, kDim, true, true);
  std::vector<int64_t> labels(ids.begin(), ids.end());
  ExactCase e;
  e.base = stored.data();
  e.labels = labels.data();
  e.nb = kN;
  e.queries = qs.data();
  e.nq = kQ;
  e.dim = kDim;
  e.metric = Metric::kCosine;
  e.k = k;
  e.rel_error = 1e-4;
  ExpectExactTopK(e, d.data(), l.data());
  // reconstruct by external id goes through the map's reverse table.
  std::vector<float> v(kDim);
  map.reconstruct(ids[1], v.data());
  const std::vector<float> want = PrepareAsStored(base_.data() + kDim, 1, kDim, true, true);
  for (int j = 0; j < kDim; ++j) EXPECT_NEAR(v[j], want[j], 1e-3f * std::fabs(want[j]) + 1e-6f);
  EXPECT_THROW(map.reconstruct(7, v.data()), std::exception);  // not an id of the map
}

TEST_F(GpuIndexFlatTest, SearchParametersSelectorFilters) {
  GpuIndexFlat gpu(kDim, faiss::METRIC_L2, Fp32());
  gpu.add(kN, base_.data());  // labels 0..kN-1
  std::vector<int64_t> ids(kN);
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<faiss::Index::idx_t> allowed;
  for (int i = 5; i < kN; i += 40) allowed.push_back(i);  // 100 items
  faiss::IDSelectorBatch batch(allowed.size(), allowed.data());
  faiss::IDSelectorRange range(1000, 1030);  // 30 items
  std::vector<uint8_t> map(kN / 8 + 1, 0);
  for (int i = 0; i < kN; i += 100) map[i >> 3] |= 1 << (i & 7);  // 40 items
  faiss::IDSelectorBitmap bitmap(map.size(), map.data());
  const faiss::IDSelector* sels[] = {&batch, &range, &bitmap};
  for (const faiss::IDSelector* sel : sels) {
    faiss::SearchParameters params;
    params.sel = const_cast<faiss::IDSelector*>(sel);
    const int k = 64;
    std::vector<float> d(kQ * k);
    std::vector<faiss::Index::idx_t> l(kQ * k);
    gpu.search(kQ, queries_.data(), k, d.data(), l.data(), &params);
    ExactCase e;
    e.base = base_.data();
    e.labels = ids.data();
    e.nb = kN;
    e.queries = queries_.data();
    e.nq = kQ;
    e.dim = kDim;
    e.metric = Metric::kL2;
    e.k = k;
    e.allowed = [sel](int64_t, int64_t id) { return sel->is_member(id); };
    ExpectExactTopK(e, d.data(), l.data());
  }
}

TEST_F(GpuIndexFlatTest, IndexShardsOverTwoGpuIndexes) {
  faiss::IndexShards shards(kDim, /*threaded=*/true, /*successive_ids=*/true);
  GpuIndexFlat a(kDim, faiss::METRIC_L2, Fp32());
  GpuIndexFlat b(kDim, faiss::METRIC_L2, Fp32());
  shards.add_shard(&a);
  shards.add_shard(&b);
  faiss::IndexFlatL2 cpu(kDim);
  shards.add(kN, base_.data());
  cpu.add(kN, base_.data());
  EXPECT_EQ(a.ntotal + b.ntotal, kN);
  const int k = 10;
  std::vector<float> gd(kQ * k), cd(kQ * k);
  std::vector<faiss::Index::idx_t> gl(kQ * k), cl(kQ * k);
  shards.search(kQ, queries_.data(), k, gd.data(), gl.data());
  cpu.search(kQ, queries_.data(), k, cd.data(), cl.data());
  for (int i = 0; i < kQ * k; ++i) EXPECT_NEAR(gd[i], cd[i], 2e-5 * (std::fabs(cd[i]) + 2 * kDim));
}

TEST_F(GpuIndexFlatTest, IndexReplicasOverTwoGpuIndexes) {
  faiss::IndexReplicas replicas(kDim, /*threaded=*/true);
  GpuIndexFlat a(kDim, faiss::METRIC_INNER_PRODUCT, Fp32());
  GpuIndexFlat b(kDim, faiss::METRIC_INNER_PRODUCT, Fp32());
  replicas.addIndex(&a);
  replicas.addIndex(&b);
  faiss::IndexFlatIP cpu(kDim);
  replicas.add(kN, base_.data());
  cpu.add(kN, base_.data());
  EXPECT_EQ(a.ntotal, kN);  // every replica holds everything
  EXPECT_EQ(b.ntotal, kN);
  const int k = 10;
  std::vector<float> gd(kQ * k), cd(kQ * k);
  std::vector<faiss::Index::idx_t> gl(kQ * k), cl(kQ * k);
  replicas.search(kQ, queries_.data(), k, gd.data(), gl.data());
  cpu.search(kQ, queries_.data(), k, cd.data(), cl.data());
  for (int i = 0; i < kQ * k; ++i) EXPECT_NEAR(gd[i], cd[i], 2e-5 * kDim) << i;
}

TEST_F(GpuIndexFlatTest, KAboveLimitThrows) {
  GpuIndexFlat gpu(kDim, faiss::METRIC_L2);
  gpu.add(100, base_.data());
  std::vector<float> d(2049);
  std::vector<faiss::Index::idx_t> l(2049);
  try {
    gpu.search(1, queries_.data(), 2049, d.data(), l.data());
    ADD_FAILURE() << "k = 2049 was accepted";
  } catch (const faiss::FaissException& e) {
    EXPECT_NE(std::string(e.what()).find("k must be in 1..2048"), std::string::npos) << e.what();
  }
  // 2048 itself works even with fewer items: padding.
  gpu.search(1, queries_.data(), 2048, d.data(), l.data());
  EXPECT_GE(l[99], 0);
  EXPECT_EQ(l[100], -1);
}

TEST_F(GpuIndexFlatTest, MemoryBudgetThrowsResourceExhausted) {
  GpuIndexFlatConfig c = Fp32();
  c.memory_budget_bytes = 256 * 1024;
  GpuIndexFlat gpu(kDim, faiss::METRIC_L2, c);
  try {
    gpu.add(kN, base_.data());
    ADD_FAILURE() << "add over the budget was accepted";
  } catch (const faiss::FaissException& e) {
    EXPECT_NE(std::string(e.what()).find("RESOURCE_EXHAUSTED"), std::string::npos) << e.what();
  }
  EXPECT_EQ(gpu.ntotal, 0);
}

// Filtered searches while another thread adds: the allow-set is built under
// the store's lock, so every search succeeds and returns only labels the
// selector admits.
TEST_F(GpuIndexFlatTest, FilteredSearchDuringConcurrentWrites) {
  GpuIndexFlat gpu(kDim, faiss::METRIC_L2, Fp32());
  gpu.add(kN / 2, base_.data());
  std::atomic<bool> done{false};
  std::string writer_error;
  std::thread writer([&] {
    try {
      for (int i = kN / 2; i < kN; i += 100) {
        gpu.add(100, base_.data() + static_cast<size_t>(i) * kDim);
      }
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
    done = true;
  });
  faiss::IDSelectorRange allowed(1000, 3000);
  faiss::SearchParameters params;
  params.sel = &allowed;
  const int k = 20;
  std::vector<float> d(kQ * k);
  std::vector<faiss::Index::idx_t> l(kQ * k);
  int searches = 0;
  std::string search_error;
  int64_t outside = 0;
  while ((!done || searches < 3) && search_error.empty()) {
    try {
      gpu.search(kQ, queries_.data(), k, d.data(), l.data(), &params);
    } catch (const std::exception& e) {
      search_error = e.what();
    }
    for (faiss::Index::idx_t label : l) outside += label >= 0 && (label < 1000 || label >= 3000);
    ++searches;
  }
  writer.join();  // before any assertion can return
  EXPECT_EQ(search_error, "");
  EXPECT_EQ(writer_error, "");
  EXPECT_EQ(outside, 0);
}

TEST(GpuIndexFlatNoDeviceTest, ConstructorThrowsClearErrorWithoutDevice) {
  if (CudaDeviceCount() > 0)
    GTEST_SKIP() << "a CUDA device is present: this checks the no-device path";
  try {
    GpuIndexFlat gpu(16, faiss::METRIC_L2);
    ADD_FAILURE() << "constructed without a CUDA device";
  } catch (const faiss::FaissException& e) {
    EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
  }
  auto created = GpuIndexFlat::Create(16, Metric::kL2);
  EXPECT_EQ(created.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace lookalike
