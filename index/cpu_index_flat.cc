#include "index/cpu_index_flat.h"

#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/IDSelector.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <mutex>
#include <typeinfo>
#include <utility>

// The Fortran BLAS interface, as every BLAS (OpenBLAS, MKL, reference) exports it.
extern "C" {
int sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
           const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
           const float* beta, float* c, const int* ldc);
int sgemv_(const char* trans, const int* m, const int* n, const float* alpha, const float* a,
           const int* lda, const float* x, const int* incx, const float* beta, float* y,
           const int* incy);
}

namespace lookalike {
namespace {

using idx_t = faiss::Index::idx_t;

// A result candidate: `g` is the goodness (higher is better): the inner
// product, or 2 q.x - |x|^2 for L2 (= |q|^2 - distance).
struct Entry {
  float g;
  idx_t label;
};

// Heap order: the root is the worst entry (lowest g; among equal g the
// highest label, so the lower label wins ties).
inline bool Worse(const Entry& a, const Entry& b) {
  return a.g < b.g || (a.g == b.g && a.label > b.label);
}
inline bool HeapLess(const Entry& a, const Entry& b) { return Worse(b, a); }

// A k-entry heap over caller storage.
class TopK {
 public:
  TopK(Entry* storage, int64_t k) : e_(storage), k_(k) {}
  // Lowest g that can still enter (entries equal to it enter only with a
  // lower label, which the caller's ascending scan never offers).
  float threshold() const { return size_ < k_ ? -FLT_MAX : e_[0].g; }
  bool full() const { return size_ == k_; }
  void Push(float g, idx_t label) {
    if (size_ < k_) {
      e_[size_++] = Entry{g, label};
      std::push_heap(e_, e_ + size_, HeapLess);
    } else if (Worse(e_[0], Entry{g, label})) {
      std::pop_heap(e_, e_ + size_, HeapLess);
      e_[size_ - 1] = Entry{g, label};
      std::push_heap(e_, e_ + size_, HeapLess);
    }
  }
  // Best first.
  int64_t Finish() {
    std::sort(e_, e_ + size_, [](const Entry& a, const Entry& b) { return Worse(b, a); });
    return size_;
  }

 private:
  Entry* e_;
  int64_t k_;
  int64_t size_ = 0;
};

// Rows [begin, end) the selector admits, as a byte mask (1 = allowed).
void SelectorMask(const faiss::IDSelector* sel, idx_t begin, idx_t end, uint8_t* mask) {
  const idx_t n = end - begin;
  if (const auto* bitmap = dynamic_cast<const faiss::IDSelectorBitmap*>(sel)) {
    const idx_t limit = static_cast<idx_t>(bitmap->n) * 8;
    for (idx_t i = 0; i < n; ++i) {
      const idx_t id = begin + i;
      mask[i] = id < limit && ((bitmap->bitmap[id >> 3] >> (id & 7)) & 1) ? 1 : 0;
    }
    return;
  }
  for (idx_t i = 0; i < n; ++i) mask[i] = sel->is_member(begin + i) ? 1 : 0;
}

// BLAS calls of concurrent searches take turns: each call already spreads over
// every core, and overlapping calls oversubscribe them (on 2 cores, 4 searches
// in flight had half the throughput of 1). Selection runs outside the lock.
std::mutex& BlasTurn() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}

float SquaredNorm(const float* x, int64_t d) {
  float s = 0.f;
  for (int64_t j = 0; j < d; ++j) s += x[j] * x[j];
  return s;
}

}  // namespace

CpuIndexFlat::CpuIndexFlat(idx_t d, faiss::MetricType metric) : faiss::IndexFlat(d, metric) {}

std::unique_ptr<faiss::Index> CpuIndexFlat::Adopt(std::unique_ptr<faiss::Index> index) {
  if (index == nullptr) return index;
  const std::type_info& type = typeid(*index);
  if (type != typeid(faiss::IndexFlat) && type != typeid(faiss::IndexFlatIP) &&
      type != typeid(faiss::IndexFlatL2)) {
    return index;
  }
  if (index->metric_type != faiss::METRIC_INNER_PRODUCT && index->metric_type != faiss::METRIC_L2) {
    return index;
  }
  auto* flat = static_cast<faiss::IndexFlat*>(index.get());
  auto out = std::make_unique<CpuIndexFlat>(flat->d, flat->metric_type);
  out->codes.swap(flat->codes);
  out->ntotal = flat->ntotal;
  out->is_trained = flat->is_trained;
  out->verbose = flat->verbose;
  out->RecomputeNorms();
  return out;
}

void CpuIndexFlat::RecomputeNorms() {
  norms_.clear();
  if (metric_type != faiss::METRIC_L2) return;
  norms_.resize(static_cast<size_t>(ntotal));
  const float* xb = get_xb();
  for (idx_t i = 0; i < ntotal; ++i) norms_[static_cast<size_t>(i)] = SquaredNorm(xb + i * d, d);
}

void CpuIndexFlat::add(idx_t n, const float* x) {
  faiss::IndexFlat::add(n, x);
  if (metric_type != faiss::METRIC_L2) return;
  for (idx_t i = 0; i < n; ++i) norms_.push_back(SquaredNorm(x + i * d, d));
}

void CpuIndexFlat::reset() {
  faiss::IndexFlat::reset();
  norms_.clear();
}

size_t CpuIndexFlat::remove_ids(const faiss::IDSelector& sel) {
  const size_t removed = faiss::IndexFlat::remove_ids(sel);
  RecomputeNorms();
  return removed;
}

void CpuIndexFlat::set_block_sizes(int64_t rows, int64_t queries) {
  FAISS_THROW_IF_NOT_MSG(rows >= 0 && queries >= 1, "invalid block sizes");
  block_rows_ = rows;
  block_queries_ = queries;
}

void CpuIndexFlat::search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
                          const faiss::SearchParameters* params) const {
  const bool l2 = metric_type == faiss::METRIC_L2;
  if ((!l2 && metric_type != faiss::METRIC_INNER_PRODUCT) ||
      (l2 && norms_.size() != static_cast<size_t>(ntotal))) {
    faiss::IndexFlat::search(n, x, k, distances, labels, params);
    return;
  }
  FAISS_THROW_IF_NOT_MSG(k > 0, "k must be positive");
  FAISS_THROW_IF_NOT_MSG(d <= INT32_MAX, "dimension too large for BLAS");
  const faiss::IDSelector* sel = params != nullptr ? params->sel : nullptr;
  const float empty = l2 ? FLT_MAX : -FLT_MAX;
  if (n <= 0) return;

  // Database rows per block: about 16 MiB of vectors, and at most 4M scores
  // per block of queries.
  const idx_t bq_max = std::max<idx_t>(1, block_queries_);
  idx_t bd_max =
      block_rows_ > 0 ? block_rows_ : std::clamp<idx_t>((idx_t{16} << 20) / (4 * d), 1024, 65536);
  if (block_rows_ == 0) bd_max = std::max<idx_t>(256, std::min<idx_t>(bd_max, (4 << 20) / bq_max));
  bd_max = std::min<idx_t>(bd_max, INT32_MAX / std::max<idx_t>(1, bq_max));

  const float* xb = get_xb();
  const int di = static_cast<int>(d);
  std::vector<float> scores;
  std::vector<uint8_t> mask;
  std::vector<float> gathered, gathered_norms;
  std::vector<idx_t> gathered_labels;
  std::vector<Entry> heaps;
  std::vector<TopK> tops;
  for (idx_t q0 = 0; q0 < n; q0 += bq_max) {
    const idx_t bq = std::min(bq_max, n - q0);
    heaps.assign(static_cast<size_t>(bq * k), Entry{0.f, -1});
    tops.clear();
    for (idx_t q = 0; q < bq; ++q) tops.emplace_back(heaps.data() + q * k, k);
    const float* xq = x + q0 * d;
    for (idx_t r0 = 0; r0 < ntotal; r0 += bd_max) {
      const idx_t bd = std::min(bd_max, ntotal - r0);
      const float* block = xb + r0 * d;
      const float* row_norms = l2 ? norms_.data() + r0 : nullptr;
      const uint8_t* row_ok = nullptr;
      const idx_t* row_label = nullptr;  // nullptr: row r has label r0 + r
      idx_t rows = bd;
      if (sel != nullptr) {
        mask.resize(static_cast<size_t>(bd));
        SelectorMask(sel, r0, r0 + bd, mask.data());
        const idx_t allowed = std::count(mask.begin(), mask.end(), uint8_t{1});
        if (allowed == 0) continue;
        if (allowed * 2 <= bd) {
          // A selective filter: score only the allowed rows, gathered into a
          // contiguous block (labels ascending, so ties still go to the lower).
          gathered.resize(static_cast<size_t>(allowed * d));
          gathered_labels.resize(static_cast<size_t>(allowed));
          if (l2) gathered_norms.resize(static_cast<size_t>(allowed));
          idx_t j = 0;
          for (idx_t r = 0; r < bd; ++r) {
            if (mask[static_cast<size_t>(r)] == 0) continue;
            std::copy(block + r * d, block + (r + 1) * d, gathered.data() + j * d);
            gathered_labels[static_cast<size_t>(j)] = r0 + r;
            if (l2) gathered_norms[static_cast<size_t>(j)] = row_norms[r];
            ++j;
          }
          block = gathered.data();
          row_label = gathered_labels.data();
          if (l2) row_norms = gathered_norms.data();
          rows = allowed;
        } else {
          row_ok = mask.data();
        }
      }
      // scores[q * rows + r] = xq[q] . block[r]
      scores.resize(static_cast<size_t>(bq * rows));
      const float one = 1.f;
      const float zero = 0.f;
      const int m = static_cast<int>(rows);
      {
        std::lock_guard<std::mutex> turn(BlasTurn());
        if (bq == 1) {
          const int inc = 1;
          sgemv_("T", &di, &m, &one, block, &di, xq, &inc, &zero, scores.data(), &inc);
        } else {
          const int nqi = static_cast<int>(bq);
          sgemm_("T", "N", &m, &nqi, &di, &one, block, &di, xq, &di, &zero, scores.data(), &m);
        }
      }
      for (idx_t q = 0; q < bq; ++q) {
        TopK& top = tops[static_cast<size_t>(q)];
        const float* s = scores.data() + q * rows;
        float threshold = top.threshold();
        for (idx_t r = 0; r < rows; ++r) {
          if (row_ok != nullptr && row_ok[r] == 0) continue;
          const float g = row_norms != nullptr ? 2.f * s[r] - row_norms[r] : s[r];
          // Ascending labels: an entry equal to the threshold loses the tie.
          if (g > threshold || !top.full()) {
            top.Push(g, row_label != nullptr ? row_label[r] : r0 + r);
            threshold = top.threshold();
          }
        }
      }
    }
    for (idx_t q = 0; q < bq; ++q) {
      const idx_t count = tops[static_cast<size_t>(q)].Finish();
      const Entry* e = heaps.data() + q * k;
      float* dist = distances + (q0 + q) * k;
      idx_t* lab = labels + (q0 + q) * k;
      const float qnorm = l2 ? SquaredNorm(xq + q * d, d) : 0.f;
      for (idx_t j = 0; j < k; ++j) {
        if (j < count) {
          dist[j] = l2 ? std::max(0.f, qnorm - e[j].g) : e[j].g;
          lab[j] = e[j].label;
        } else {
          dist[j] = empty;
          lab[j] = -1;
        }
      }
    }
  }
}

}  // namespace lookalike
