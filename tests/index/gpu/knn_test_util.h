// Test helpers for the GPU flat index: data generators and the exactness
// check against the CPU brute force (index/gpu/cpu_reference.h).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/device.h"
#include "index/gpu/cpu_reference.h"

namespace lookalike {
namespace testing_util {

// Skips the current test, saying why (common/device.h), when no CUDA device
// is usable.
#define SKIP_WITHOUT_GPU()                                                       \
  do {                                                                           \
    const std::string lk_no_gpu_ = ::lookalike::CudaUnavailableReason();         \
    if (!lk_no_gpu_.empty()) GTEST_SKIP() << lk_no_gpu_ << ": GPU test not run"; \
  } while (0)

// n x dim i.i.d. N(0, 1).
inline std::vector<float> RandomVectors(int64_t n, int dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n) * dim);
  for (float& x : v) x = normal(rng);
  return v;
}

// n x dim points around `clusters` N(0, 1) centres with N(0, 0.05^2) noise:
// many near-ties, the hard case for selection.
inline std::vector<float> ClusteredVectors(int64_t n, int dim, int clusters, uint32_t seed) {
  std::vector<float> centres = RandomVectors(clusters, dim, seed ^ 0x9e3779b9u);
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.f, 0.05f);
  std::uniform_int_distribution<int> pick(0, clusters - 1);
  std::vector<float> v(static_cast<size_t>(n) * dim);
  for (int64_t i = 0; i < n; ++i) {
    const int c = pick(rng);
    for (int j = 0; j < dim; ++j) v[i * dim + j] = centres[c * dim + j] + noise(rng);
  }
  return v;
}

// What the exactness check needs to know about one search.
struct ExactCase {
  const float* base = nullptr;      // nb x dim, AS STORED (PrepareAsStored)
  const int64_t* labels = nullptr;  // nb labels of the live rows
  int64_t nb = 0;
  const float* queries = nullptr;  // nq x dim, as the index sees them (prepared)
  int64_t nq = 0;
  int dim = 0;
  Metric metric = Metric::kL2;  // kCosine is checked as inner product on prepared data
  int k = 0;
  // Relative error bound: |distance error| <= rel_error * scale, where scale
  // is ||q||^2 + max ||x||^2 (L2) or ||q|| * max ||x|| (inner product).
  double rel_error = 2e-5;
  std::function<bool(int64_t q, int64_t label)> allowed;  // empty = all
};

// Checks GPU results (nq x k distances/labels) are an exact top-k:
//  - the number of results is min(k, allowed items), then label -1;
//  - every label is a distinct allowed live item and its reported distance
//    matches the CPU distance of that item within the bound;
//  - distance at rank i matches the reference distance at rank i (recall 1.0
//    up to ties), and the label matches wherever the reference distance at
//    that rank is separated from its neighbours by more than twice the bound.
inline void ExpectExactTopK(const ExactCase& c, const float* distances, const int64_t* labels) {
  const Metric m = c.metric == Metric::kCosine ? Metric::kInnerProduct : c.metric;
  const bool l2 = m == Metric::kL2;
  std::unordered_map<int64_t, int64_t> row_of;
  double max_norm2 = 0.0;
  for (int64_t r = 0; r < c.nb; ++r) {
    row_of[c.labels[r]] = r;
    double s = 0.0;
    for (int j = 0; j < c.dim; ++j) s += double(c.base[r * c.dim + j]) * c.base[r * c.dim + j];
    max_norm2 = std::max(max_norm2, s);
  }
  std::vector<float> ref_d(static_cast<size_t>(c.nq) * c.k);
  std::vector<int64_t> ref_l(static_cast<size_t>(c.nq) * c.k);
  ReferenceKnn(c.base, c.nb, c.labels, c.dim, m, c.queries, c.nq, c.k, c.allowed, ref_d.data(),
               ref_l.data());
  int failures = 0;
  for (int64_t q = 0; q < c.nq && failures < 10; ++q) {
    const float* qv = c.queries + q * c.dim;
    double qn2 = 0.0;
    for (int j = 0; j < c.dim; ++j) qn2 += double(qv[j]) * qv[j];
    const double scale = l2 ? qn2 + max_norm2 : std::sqrt(qn2 * max_norm2);
    const double tol = c.rel_error * std::max(scale, 1e-12);
    int64_t expected = 0;
    for (int i = 0; i < c.k; ++i) expected += ref_l[q * c.k + i] >= 0 ? 1 : 0;
    std::unordered_set<int64_t> seen;
    for (int i = 0; i < c.k; ++i) {
      const int64_t at = q * c.k + i;
      const std::string where = "query " + std::to_string(q) + " rank " + std::to_string(i);
      if (i >= expected) {
        if (labels[at] != -1) {
          ADD_FAILURE() << where << ": expected no result (only " << expected
                        << " allowed items), got label " << labels[at];
          ++failures;
        }
        continue;
      }
      const auto it = row_of.find(labels[at]);
      if (it == row_of.end()) {
        ADD_FAILURE() << where << ": label " << labels[at] << " is not a live item";
        ++failures;
        continue;
      }
      if (!seen.insert(labels[at]).second) {
        ADD_FAILURE() << where << ": label " << labels[at] << " returned twice";
        ++failures;
      }
      if (c.allowed && !c.allowed(q, labels[at])) {
        ADD_FAILURE() << where << ": label " << labels[at] << " is not in the allow-set";
        ++failures;
      }
      const double truth = ReferenceDistance(qv, c.base + it->second * c.dim, c.dim, m);
      if (std::fabs(distances[at] - truth) > tol) {
        ADD_FAILURE() << where << ": reported distance " << distances[at] << " but item "
                      << labels[at] << " is at " << truth << " (bound " << tol << ")";
        ++failures;
      }
      if (std::fabs(double(distances[at]) - ref_d[at]) > tol) {
        ADD_FAILURE() << where << ": distance " << distances[at] << " vs reference " << ref_d[at]
                      << " (bound " << tol << ")";
        ++failures;
      }
      const bool sep_prev = i == 0 || std::fabs(double(ref_d[at]) - ref_d[at - 1]) > 2 * tol;
      const bool sep_next =
          i + 1 >= expected || std::fabs(double(ref_d[at]) - ref_d[at + 1]) > 2 * tol;
      if (sep_prev && sep_next && labels[at] != ref_l[at]) {
        ADD_FAILURE() << where << ": label " << labels[at] << " but the reference has " << ref_l[at]
                      << " at a distinct distance " << ref_d[at];
        ++failures;
      }
    }
  }
}

}  // namespace testing_util
}  // namespace lookalike
