#include "index/gpu/cpu_reference.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "common/half.h"

namespace lookalike {

double ReferenceDistance(const float* q, const float* x, int dim, Metric metric) {
  double acc = 0.0;
  if (metric == Metric::kL2) {
    for (int i = 0; i < dim; ++i) {
      const double d = static_cast<double>(q[i]) - static_cast<double>(x[i]);
      acc += d * d;
    }
  } else {
    for (int i = 0; i < dim; ++i) acc += static_cast<double>(q[i]) * static_cast<double>(x[i]);
  }
  return acc;
}

bool ReferenceBetter(double a, double b, Metric metric) {
  return metric == Metric::kL2 ? a < b : a > b;
}

std::vector<float> PrepareAsStored(const float* x, int64_t n, int dim, bool normalize,
                                   bool to_fp16) {
  std::vector<float> out(x, x + n * dim);
  for (int64_t r = 0; r < n; ++r) {
    float* row = out.data() + r * dim;
    if (normalize) {
      float s = 0.f;
      for (int i = 0; i < dim; ++i) s += row[i] * row[i];
      if (s > 0.f) {
        const float scale = 1.f / std::sqrt(s);
        for (int i = 0; i < dim; ++i) row[i] *= scale;
      }
    }
    if (to_fp16) {
      for (int i = 0; i < dim; ++i) row[i] = RoundHalf(row[i]);
    }
  }
  return out;
}

void ReferenceKnn(const float* xb, int64_t nb, const int64_t* labels, int dim, Metric metric,
                  const float* xq, int64_t nq, int k,
                  const std::function<bool(int64_t, int64_t)>& allowed, float* distances,
                  int64_t* out_labels) {
  std::vector<std::pair<double, int64_t>> cand;
  for (int64_t q = 0; q < nq; ++q) {
    cand.clear();
    for (int64_t r = 0; r < nb; ++r) {
      const int64_t label = labels != nullptr ? labels[r] : r;
      if (allowed && !allowed(q, label)) continue;
      cand.emplace_back(ReferenceDistance(xq + q * dim, xb + r * dim, dim, metric), label);
    }
    const int64_t take = std::min<int64_t>(k, static_cast<int64_t>(cand.size()));
    auto before = [metric](const std::pair<double, int64_t>& a,
                           const std::pair<double, int64_t>& b) {
      if (a.first != b.first) return ReferenceBetter(a.first, b.first, metric);
      return a.second < b.second;
    };
    std::partial_sort(cand.begin(), cand.begin() + take, cand.end(), before);
    for (int64_t i = 0; i < k; ++i) {
      if (i < take) {
        distances[q * k + i] = static_cast<float>(cand[i].first);
        out_labels[q * k + i] = cand[i].second;
      } else {
        distances[q * k + i] = metric == Metric::kL2 ? FLT_MAX : -FLT_MAX;
        out_labels[q * k + i] = -1;
      }
    }
  }
}

}  // namespace lookalike
