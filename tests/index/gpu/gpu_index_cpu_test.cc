// CPU-side logic of the GPU flat index: the brute-force reference, option and
// argument validation, and behaviour without a CUDA device. Runs everywhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "index/gpu/cpu_reference.h"
#include "index/gpu/gpu_flat_store.h"
#include "tests/index/gpu/knn_test_util.h"

namespace lookalike {
namespace {

using testing_util::RandomVectors;

// Naive oracle: full sort of every (distance, label) pair.
void NaiveKnn(const std::vector<float>& xb, int64_t nb, int dim, Metric metric,
              const std::vector<float>& xq, int64_t nq, int k, std::vector<float>* d,
              std::vector<int64_t>* l) {
  d->assign(nq * k, 0.f);
  l->assign(nq * k, -1);
  for (int64_t q = 0; q < nq; ++q) {
    std::vector<std::pair<double, int64_t>> all;
    for (int64_t r = 0; r < nb; ++r) {
      double acc = 0.0;
      for (int j = 0; j < dim; ++j) {
        const double a = xq[q * dim + j];
        const double b = xb[r * dim + j];
        acc += metric == Metric::kL2 ? (a - b) * (a - b) : a * b;
      }
      all.emplace_back(metric == Metric::kL2 ? acc : -acc, r);
    }
    std::sort(all.begin(), all.end());
    for (int i = 0; i < k && i < nb; ++i) {
      (*d)[q * k + i] = static_cast<float>(metric == Metric::kL2 ? all[i].first : -all[i].first);
      (*l)[q * k + i] = all[i].second;
    }
  }
}

TEST(CpuReferenceTest, MatchesFullSort) {
  const int dim = 24;
  const int64_t nb = 500;
  const int64_t nq = 7;
  const std::vector<float> xb = RandomVectors(nb, dim, 1);
  const std::vector<float> xq = RandomVectors(nq, dim, 2);
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct}) {
    for (int k : {1, 10, 500}) {
      std::vector<float> d(nq * k), nd;
      std::vector<int64_t> l(nq * k), nl;
      ReferenceKnn(xb.data(), nb, nullptr, dim, metric, xq.data(), nq, k, nullptr, d.data(),
                   l.data());
      NaiveKnn(xb, nb, dim, metric, xq, nq, k, &nd, &nl);
      EXPECT_EQ(l, nl) << MetricName(metric) << " k=" << k;
      for (size_t i = 0; i < d.size(); ++i) EXPECT_FLOAT_EQ(d[i], nd[i]);
    }
  }
}

TEST(CpuReferenceTest, HandComputedExampleWithLabelsAndFilter) {
  // 1-D points 0, 1, 2, 3, 4 labelled 10..14; query 2.2.
  const float xb[] = {0.f, 1.f, 2.f, 3.f, 4.f};
  const int64_t labels[] = {10, 11, 12, 13, 14};
  const float q[] = {2.2f};
  float d[3];
  int64_t l[3];
  ReferenceKnn(xb, 5, labels, 1, Metric::kL2, q, 1, 3, nullptr, d, l);
  EXPECT_EQ(l[0], 12);
  EXPECT_EQ(l[1], 13);
  EXPECT_EQ(l[2], 11);
  EXPECT_NEAR(d[0], 0.04f, 1e-6f);
  EXPECT_NEAR(d[1], 0.64f, 1e-6f);
  EXPECT_NEAR(d[2], 1.44f, 1e-6f);
  // Inner product: largest first.
  ReferenceKnn(xb, 5, labels, 1, Metric::kInnerProduct, q, 1, 2, nullptr, d, l);
  EXPECT_EQ(l[0], 14);
  EXPECT_EQ(l[1], 13);
  EXPECT_NEAR(d[0], 8.8f, 1e-5f);
  // Filter to even labels, k larger than what is allowed: padding.
  ReferenceKnn(
      xb, 5, labels, 1, Metric::kL2, q, 1, 3,
      [](int64_t, int64_t label) { return label == 10 || label == 14; }, d, l);
  EXPECT_EQ(l[0], 14);  // |4 - 2.2| = 1.8 < |0 - 2.2| = 2.2
  EXPECT_EQ(l[1], 10);
  EXPECT_EQ(l[2], -1);
  EXPECT_EQ(d[2], FLT_MAX);
}

TEST(CpuReferenceTest, PrepareAsStoredNormalizes) {
  const float x[] = {3.f, 4.f, 0.f, 0.f};
  const std::vector<float> y = PrepareAsStored(x, 2, 2, true, false);
  EXPECT_FLOAT_EQ(y[0], 0.6f);
  EXPECT_FLOAT_EQ(y[1], 0.8f);
  EXPECT_EQ(y[2], 0.f);  // zero rows stay zero
  EXPECT_EQ(y[3], 0.f);
}

TEST(GpuFlatStoreOptionsTest, RejectsBadOptions) {
  GpuFlatStoreOptions o;
  o.dim = 128;
  EXPECT_TRUE(CheckGpuFlatStoreOptions(o).ok());
  GpuFlatStoreOptions bad = o;
  bad.dim = 0;
  EXPECT_EQ(CheckGpuFlatStoreOptions(bad).code(), StatusCode::kInvalidArgument);
  EXPECT_NE(CheckGpuFlatStoreOptions(bad).message().find("dim"), std::string::npos);
  bad.dim = 70000;
  EXPECT_EQ(CheckGpuFlatStoreOptions(bad).code(), StatusCode::kInvalidArgument);
  bad = o;
  bad.memory_budget_bytes = -1;
  EXPECT_EQ(CheckGpuFlatStoreOptions(bad).code(), StatusCode::kInvalidArgument);
  bad = o;
  bad.device = -1;
  EXPECT_EQ(CheckGpuFlatStoreOptions(bad).code(), StatusCode::kInvalidArgument);
  // Invalid options are reported before any device is touched.
  bad = o;
  bad.dim = -3;
  EXPECT_EQ(GpuFlatStore::Create(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST(GpuFlatStoreArgsTest, RejectsBadSearchArguments) {
  float q[4] = {0, 0, 0, 0};
  float d[8];
  int64_t l[8];
  EXPECT_TRUE(CheckSearchArgs(4, 1, q, 4, 8, d, l).ok());
  EXPECT_TRUE(CheckSearchArgs(4, 1, q, 4, kMaxK, d, l).ok());
  const Status k0 = CheckSearchArgs(4, 1, q, 4, 0, d, l);
  EXPECT_EQ(k0.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(k0.message().find("k must be in 1..2048"), std::string::npos) << k0.ToString();
  EXPECT_EQ(CheckSearchArgs(4, 1, q, 4, kMaxK + 1, d, l).code(), StatusCode::kInvalidArgument);
  const Status dim = CheckSearchArgs(4, 1, q, 5, 8, d, l);
  EXPECT_EQ(dim.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(dim.message().find("does not match"), std::string::npos) << dim.ToString();
  EXPECT_EQ(CheckSearchArgs(4, -1, q, 4, 8, d, l).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSearchArgs(4, 1, nullptr, 4, 8, d, l).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckSearchArgs(4, 1, q, 4, 8, nullptr, l).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckSearchArgs(4, 0, nullptr, 4, 8, nullptr, nullptr).ok());  // empty batch
}

TEST(GpuFlatStoreArgsTest, RejectsNonFiniteAndOutOfRangeValues) {
  const float inf = std::numeric_limits<float>::infinity();
  const float ok[6] = {1, -2, 3, 65504.f, -65504.f, 0};
  EXPECT_TRUE(CheckVectorValues(ok, 2, 3, StorageType::kFloat16, Metric::kL2, "query").ok());
  const float nan_row[6] = {1, 2, 3, 4, std::nanf(""), 6};
  const Status nan = CheckVectorValues(nan_row, 2, 3, StorageType::kFloat32, Metric::kL2, "query");
  EXPECT_EQ(nan.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(nan.message().find("query 1 component 1 is not finite"), std::string::npos)
      << nan.ToString();
  const float inf_row[3] = {inf, 0, 0};
  EXPECT_EQ(
      CheckVectorValues(inf_row, 1, 3, StorageType::kFloat16, Metric::kCosine, "vector").code(),
      StatusCode::kInvalidArgument);
  // 1e5 does not fit fp16 for L2 / inner product, but cosine rows are normalized first.
  const float big[3] = {1e5f, 0, 0};
  const Status range =
      CheckVectorValues(big, 1, 3, StorageType::kFloat16, Metric::kInnerProduct, "query");
  EXPECT_NE(range.message().find("query 0 component 0 is outside the fp16 range"),
            std::string::npos)
      << range.ToString();
  EXPECT_TRUE(CheckVectorValues(big, 1, 3, StorageType::kFloat16, Metric::kCosine, "query").ok());
  EXPECT_TRUE(CheckVectorValues(big, 1, 3, StorageType::kFloat32, Metric::kL2, "query").ok());
}

TEST(GpuFlatStoreNoDeviceTest, CreateFailsCleanlyWithoutDevice) {
  if (CudaDeviceCount() > 0)
    GTEST_SKIP() << "a CUDA device is present: this checks the no-device path";
  GpuFlatStoreOptions o;
  o.dim = 16;
  auto s = GpuFlatStore::Create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("no CUDA device"), std::string::npos)
      << s.status().ToString();
}

}  // namespace
}  // namespace lookalike
