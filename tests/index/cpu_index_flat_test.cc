// CpuIndexFlat (BLAS search) against a brute-force reference.
//
// Most cases use small-integer vectors: every dot product and squared norm is
// then exact in float, so results must match the reference exactly, ties
// included (the lower label wins).
#include "index/cpu_index_flat.h"

#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace lookalike {
namespace {

using idx_t = faiss::Index::idx_t;

std::vector<float> SmallInts(int64_t n, int64_t d, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> v(-3, 3);
  std::vector<float> x(static_cast<size_t>(n * d));
  for (auto& e : x) e = static_cast<float>(v(gen));
  return x;
}

std::vector<float> Normal(int64_t n, int64_t d, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> v;
  std::vector<float> x(static_cast<size_t>(n * d));
  for (auto& e : x) e = v(gen);
  return x;
}

struct Results {
  std::vector<float> d;
  std::vector<idx_t> l;
};

// Brute force in double; best first, ties to the lower label; unfilled slots
// as FAISS (-1, -FLT_MAX / FLT_MAX).
Results Reference(const std::vector<float>& xb, const std::vector<float>& xq, int64_t d, idx_t k,
                  faiss::MetricType metric, const faiss::IDSelector* sel) {
  const int64_t nb = static_cast<int64_t>(xb.size()) / d;
  const int64_t nq = static_cast<int64_t>(xq.size()) / d;
  const bool l2 = metric == faiss::METRIC_L2;
  Results r;
  r.d.assign(static_cast<size_t>(nq * k), l2 ? FLT_MAX : -FLT_MAX);
  r.l.assign(static_cast<size_t>(nq * k), -1);
  for (int64_t q = 0; q < nq; ++q) {
    std::vector<std::pair<double, idx_t>> all;
    for (int64_t i = 0; i < nb; ++i) {
      if (sel != nullptr && !sel->is_member(i)) continue;
      double s = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double a = xq[static_cast<size_t>(q * d + j)];
        const double b = xb[static_cast<size_t>(i * d + j)];
        s += l2 ? (a - b) * (a - b) : a * b;
      }
      all.emplace_back(l2 ? s : -s, i);  // ascending = best first
    }
    std::sort(all.begin(), all.end());
    for (int64_t j = 0; j < k && j < static_cast<int64_t>(all.size()); ++j) {
      const double s = all[static_cast<size_t>(j)].first;
      r.d[static_cast<size_t>(q * k + j)] = static_cast<float>(l2 ? s : -s);
      r.l[static_cast<size_t>(q * k + j)] = all[static_cast<size_t>(j)].second;
    }
  }
  return r;
}

Results Search(const faiss::Index& index, const std::vector<float>& xq, idx_t k,
               const faiss::IDSelector* sel = nullptr) {
  const int64_t nq = static_cast<int64_t>(xq.size()) / index.d;
  Results r;
  r.d.assign(static_cast<size_t>(nq * k), 0.f);
  r.l.assign(static_cast<size_t>(nq * k), -7);
  faiss::SearchParameters params;
  params.sel = const_cast<faiss::IDSelector*>(sel);
  index.search(nq, xq.data(), k, r.d.data(), r.l.data(), sel != nullptr ? &params : nullptr);
  return r;
}

void ExpectSame(const Results& got, const Results& want, const std::string& what) {
  ASSERT_EQ(got.l.size(), want.l.size()) << what;
  for (size_t i = 0; i < got.l.size(); ++i) {
    ASSERT_EQ(got.l[i], want.l[i]) << what << " at " << i;
    ASSERT_EQ(got.d[i], want.d[i]) << what << " at " << i;
  }
}

struct Case {
  faiss::MetricType metric;
  int64_t nb, nq, d;
  idx_t k;
  int64_t block_rows, block_queries;  // 0 rows = automatic
};

class CpuIndexFlatExact : public ::testing::TestWithParam<Case> {};

TEST_P(CpuIndexFlatExact, MatchesBruteForceWithTies) {
  const Case c = GetParam();
  const auto xb = SmallInts(c.nb, c.d, 1);
  const auto xq = SmallInts(c.nq, c.d, 2);
  CpuIndexFlat index(c.d, c.metric);
  index.set_block_sizes(c.block_rows, c.block_queries);
  // Two adds, so norms and rows are appended across calls.
  index.add(c.nb / 2, xb.data());
  index.add(c.nb - c.nb / 2, xb.data() + (c.nb / 2) * c.d);
  ExpectSame(Search(index, xq, c.k), Reference(xb, xq, c.d, c.k, c.metric, nullptr), "all rows");

  // A bitmap selector (every third row and the last one).
  std::vector<uint8_t> bits(static_cast<size_t>((c.nb + 7) / 8), 0);
  for (int64_t i = 0; i < c.nb; ++i) {
    if (i % 3 == 0 || i == c.nb - 1) bits[static_cast<size_t>(i >> 3)] |= uint8_t(1u << (i & 7));
  }
  faiss::IDSelectorBitmap bitmap(bits.size(), bits.data());
  ExpectSame(Search(index, xq, c.k, &bitmap), Reference(xb, xq, c.d, c.k, c.metric, &bitmap),
             "bitmap selector");
  // A permissive bitmap (all but every fifth row): the mask path, not the gather.
  std::vector<uint8_t> most(static_cast<size_t>((c.nb + 7) / 8), 0);
  for (int64_t i = 0; i < c.nb; ++i) {
    if (i % 5 != 2) most[static_cast<size_t>(i >> 3)] |= uint8_t(1u << (i & 7));
  }
  faiss::IDSelectorBitmap permissive(most.size(), most.data());
  ExpectSame(Search(index, xq, c.k, &permissive),
             Reference(xb, xq, c.d, c.k, c.metric, &permissive), "permissive selector");
  // Any other selector goes through is_member.
  faiss::IDSelectorRange range(c.nb / 4, c.nb / 2 + 1);
  ExpectSame(Search(index, xq, c.k, &range), Reference(xb, xq, c.d, c.k, c.metric, &range),
             "range selector");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuIndexFlatExact,
    ::testing::Values(Case{faiss::METRIC_INNER_PRODUCT, 500, 1, 16, 10, 0, 256},
                      Case{faiss::METRIC_L2, 500, 1, 16, 10, 0, 256},
                      Case{faiss::METRIC_INNER_PRODUCT, 1000, 37, 64, 100, 0, 256},
                      Case{faiss::METRIC_L2, 1000, 37, 64, 100, 0, 256},
                      // Block edges: blocks of 7 rows and 5 queries.
                      Case{faiss::METRIC_INNER_PRODUCT, 103, 12, 8, 9, 7, 5},
                      Case{faiss::METRIC_L2, 103, 12, 8, 9, 7, 5},
                      // k larger than the database: -1 labels at the end.
                      Case{faiss::METRIC_INNER_PRODUCT, 20, 3, 4, 50, 0, 256},
                      Case{faiss::METRIC_L2, 20, 3, 4, 50, 6, 2},
                      // Several query blocks of the default size.
                      Case{faiss::METRIC_INNER_PRODUCT, 300, 600, 32, 5, 0, 256}));

TEST(CpuIndexFlatTest, FloatDataMatchesFaissIndexFlat) {
  const int64_t d = 96;
  const auto xb = Normal(3000, d, 3);
  const auto xq = Normal(20, d, 4);
  for (auto metric : {faiss::METRIC_INNER_PRODUCT, faiss::METRIC_L2}) {
    faiss::IndexFlat ref(d, metric);
    CpuIndexFlat ours(d, metric);
    ref.add(3000, xb.data());
    ours.add(3000, xb.data());
    const Results want = Search(ref, xq, 10);
    const Results got = Search(ours, xq, 10);
    for (size_t i = 0; i < got.l.size(); ++i) {
      // Random floats have no ties; summation order changes the last bits.
      EXPECT_EQ(got.l[i], want.l[i]) << "rank " << i;
      EXPECT_NEAR(got.d[i], want.d[i], 1e-3f * std::max(1.f, std::abs(want.d[i])));
    }
  }
}

TEST(CpuIndexFlatTest, SelectorAllowingNothingFillsWithMinusOne) {
  const auto xb = SmallInts(50, 8, 5);
  CpuIndexFlat index(8, faiss::METRIC_INNER_PRODUCT);
  index.add(50, xb.data());
  std::vector<uint8_t> bits(7, 0);
  faiss::IDSelectorBitmap none(bits.size(), bits.data());
  const Results r = Search(index, SmallInts(2, 8, 6), 4, &none);
  for (size_t i = 0; i < r.l.size(); ++i) {
    EXPECT_EQ(r.l[i], -1);
    EXPECT_EQ(r.d[i], -FLT_MAX);
  }
}

TEST(CpuIndexFlatTest, AdoptsFactoryAndSerializedIndexes) {
  const int64_t d = 12;
  const auto xb = SmallInts(200, d, 7);
  const auto xq = SmallInts(5, d, 8);
  for (auto metric : {faiss::METRIC_INNER_PRODUCT, faiss::METRIC_L2}) {
    std::unique_ptr<faiss::Index> made(faiss::index_factory(d, "Flat", metric));
    made->add(200, xb.data());
    auto adopted = CpuIndexFlat::Adopt(std::move(made));
    ASSERT_NE(dynamic_cast<CpuIndexFlat*>(adopted.get()), nullptr);
    EXPECT_EQ(adopted->ntotal, 200);
    const Results want = Reference(xb, xq, d, 7, metric, nullptr);
    ExpectSame(Search(*adopted, xq, 7), want, "adopted from the factory");

    // Serialized as a plain IndexFlat, read back, adopted again.
    faiss::VectorIOWriter writer;
    faiss::write_index(adopted.get(), &writer);
    faiss::VectorIOReader reader;
    reader.data = writer.data;
    std::unique_ptr<faiss::Index> read(faiss::read_index(&reader));
    EXPECT_NE(dynamic_cast<faiss::IndexFlat*>(read.get()), nullptr);
    auto readopted = CpuIndexFlat::Adopt(std::move(read));
    ASSERT_NE(dynamic_cast<CpuIndexFlat*>(readopted.get()), nullptr);
    ExpectSame(Search(*readopted, xq, 7), want, "adopted after read_index");
  }
  // Other index types pass through unchanged.
  std::unique_ptr<faiss::Index> sq(faiss::index_factory(d, "SQ8", faiss::METRIC_L2));
  faiss::Index* raw = sq.get();
  EXPECT_EQ(CpuIndexFlat::Adopt(std::move(sq)).get(), raw);
}

TEST(CpuIndexFlatTest, RemoveIdsKeepsL2NormsInStep) {
  const int64_t d = 8;
  const auto xb = SmallInts(60, d, 9);
  CpuIndexFlat index(d, faiss::METRIC_L2);
  index.add(60, xb.data());
  faiss::IDSelectorRange first_half(0, 30);
  EXPECT_EQ(index.remove_ids(first_half), 30u);
  const std::vector<float> rest(xb.begin() + 30 * d, xb.end());
  const auto xq = SmallInts(4, d, 10);
  ExpectSame(Search(index, xq, 5), Reference(rest, xq, d, 5, faiss::METRIC_L2, nullptr),
             "after remove_ids");
  index.reset();
  EXPECT_EQ(index.ntotal, 0);
  index.add(60, xb.data());
  ExpectSame(Search(index, xq, 5), Reference(xb, xq, d, 5, faiss::METRIC_L2, nullptr),
             "after reset and add");
}

}  // namespace
}  // namespace lookalike
