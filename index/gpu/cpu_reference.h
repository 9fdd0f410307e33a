// Brute-force k-NN on the CPU: the reference the GPU flat index is tested
// against. Plain loops with double accumulation; no FAISS, no CUDA.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "index/types.h"  // Metric

namespace lookalike {

// Distance in the GPU index's convention: inner product (kInnerProduct and
// kCosine: <q, x> on the vectors as given, larger first) or squared L2
// (smaller first). Accumulated in double. Cosine does NOT normalize here:
// pass vectors prepared with PrepareAsStored.
double ReferenceDistance(const float* q, const float* x, int dim, Metric metric);

// True when distance a ranks before b under `metric`.
bool ReferenceBetter(double a, double b, Metric metric);

// Returns x (n x dim) as the GPU index stores it: scaled to unit L2 norm
// (fp32 arithmetic, zero rows unchanged) when normalize, then rounded to the
// nearest fp16 value (round-to-nearest-even) when to_fp16.
std::vector<float> PrepareAsStored(const float* x, int64_t n, int dim, bool normalize,
                                   bool to_fp16);

// Exact k-NN. xb: nb x dim row-major; labels: nb labels (nullptr = row
// index); xq: nq x dim. allowed(q, label) filters (empty = all). Writes nq x k
// distances/labels, best first, ties broken by smaller label; missing entries
// are label -1 with +FLT_MAX (L2) or -FLT_MAX (inner product).
void ReferenceKnn(const float* xb, int64_t nb, const int64_t* labels, int dim, Metric metric,
                  const float* xq, int64_t nq, int k,
                  const std::function<bool(int64_t q, int64_t label)>& allowed, float* distances,
                  int64_t* out_labels);

}  // namespace lookalike
