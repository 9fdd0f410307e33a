// lookalike::CpuIndexFlat: exact k-NN on the CPU, a faiss::IndexFlat whose
// search runs on BLAS.
//
// faiss::IndexFlat answers fewer than 20 queries per call with its own scalar
// distance loop, one thread per query; a single query over 12 800 x 1280
// vectors takes 18 ms on our 2-core machine, where BLAS sgemv reads the same
// vectors in 3.5 ms. This class keeps IndexFlat's storage, serialization
// (faiss::write_index sees an IndexFlat) and every other method, and replaces
// search():
//   - the database is streamed in row blocks; each block's scores for a block
//     of queries come from one BLAS call (sgemv for one query, sgemm else),
//     threaded by the BLAS library; BLAS calls of concurrent searches take
//     turns (each already uses every core);
//   - per query, a k-entry heap keeps the best results, on the calling
//     thread: an OpenMP region between BLAS calls would leave its threads
//     spinning against BLAS's own (2-3x slower at 16-256 queries, measured);
//   - SearchParameters::sel (any faiss::IDSelector) is evaluated once per
//     database row, shared by all queries of the call (IDSelectorBitmap is
//     read directly); where it admits at most half of a block, only the
//     admitted rows are gathered and scored;
//   - ties are broken by the lower label, so results are deterministic.
// Metrics: METRIC_INNER_PRODUCT and METRIC_L2 (squared distances, computed as
// |q|^2 - 2 q.x + |x|^2 with the |x|^2 of each row kept at add time); other
// metrics fall back to faiss::IndexFlat::search. Unfilled result slots hold
// label -1 and distance -FLT_MAX (inner product) or FLT_MAX (L2), as FAISS.
#pragma once

#include <faiss/IndexFlat.h>

#include <memory>
#include <vector>

namespace lookalike {

class CpuIndexFlat : public faiss::IndexFlat {
 public:
  CpuIndexFlat(idx_t d, faiss::MetricType metric);

  // Takes over a faiss::IndexFlat's vectors (from index_factory("Flat") or
  // faiss::read_index); returns `index` unchanged when it is not exactly an
  // IndexFlat (IndexFlatIP, IndexFlatL2 or IndexFlat) or uses another metric.
  static std::unique_ptr<faiss::Index> Adopt(std::unique_ptr<faiss::Index> index);

  void add(idx_t n, const float* x) override;
  void reset() override;
  size_t remove_ids(const faiss::IDSelector& sel) override;
  void search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
              const faiss::SearchParameters* params = nullptr) const override;

  // Rows per database block and queries per block of one BLAS call; exposed
  // for tests (small blocks exercise the block edges).
  void set_block_sizes(int64_t rows, int64_t queries);

 private:
  void RecomputeNorms();

  std::vector<float> norms_;  // |x|^2 per row, L2 only
  int64_t block_rows_ = 0;    // 0 = automatic
  int64_t block_queries_ = 256;
};

}  // namespace lookalike
