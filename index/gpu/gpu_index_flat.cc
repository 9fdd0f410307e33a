#include "index/gpu/gpu_index_flat.h"

#include <faiss/impl/FaissAssert.h>

#include <utility>

#include "index/gpu/id_selector_bitset.h"

namespace lookalike {
namespace {

faiss::MetricType ToFaiss(Metric metric) {
  return metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

Metric FromFaiss(faiss::MetricType metric) {
  if (metric == faiss::METRIC_L2) return Metric::kL2;
  if (metric == faiss::METRIC_INNER_PRODUCT) return Metric::kInnerProduct;
  FAISS_THROW_FMT("GpuIndexFlat supports METRIC_L2 and METRIC_INNER_PRODUCT, got metric %d",
                  static_cast<int>(metric));
}

GpuFlatStoreOptions ToOptions(int dim, Metric metric, const GpuIndexFlatConfig& c) {
  GpuFlatStoreOptions o;
  o.dim = dim;
  o.metric = metric;
  o.storage = c.storage;
  o.device = c.device;
  o.memory_budget_bytes = c.memory_budget_bytes;
  o.tile_rows = c.tile_rows;
  return o;
}

std::unique_ptr<GpuFlatStore> MakeStoreOrThrow(int dim, Metric metric,
                                               const GpuIndexFlatConfig& c) {
  auto store = GpuFlatStore::Create(ToOptions(dim, metric, c));
  if (!store.ok()) {
    FAISS_THROW_FMT("GpuIndexFlat: %s", store.status().ToString().c_str());
  }
  return std::move(store).value();
}

void ThrowIfError(const Status& st, const char* what) {
  if (!st.ok()) FAISS_THROW_FMT("GpuIndexFlat::%s: %s", what, st.ToString().c_str());
}

}  // namespace

GpuIndexFlat::GpuIndexFlat(int dim, Metric metric, const GpuIndexFlatConfig& config)
    : GpuIndexFlat(MakeStoreOrThrow(dim, metric, config), metric) {}

GpuIndexFlat::GpuIndexFlat(int dim, faiss::MetricType metric, const GpuIndexFlatConfig& config)
    : GpuIndexFlat(dim, FromFaiss(metric), config) {}

GpuIndexFlat::GpuIndexFlat(std::unique_ptr<GpuFlatStore> store, Metric metric)
    : faiss::Index(store->dim(), ToFaiss(metric)), store_(std::move(store)), metric_(metric) {
  is_trained = true;
  ntotal = 0;
}

GpuIndexFlat::~GpuIndexFlat() = default;

StatusOr<std::unique_ptr<GpuIndexFlat>> GpuIndexFlat::Create(int dim, Metric metric,
                                                             const GpuIndexFlatConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<GpuFlatStore> store,
                   GpuFlatStore::Create(ToOptions(dim, metric, config)));
  return std::unique_ptr<GpuIndexFlat>(new GpuIndexFlat(std::move(store), metric));
}

void GpuIndexFlat::SyncCount() { ntotal = store_->size(); }

void GpuIndexFlat::add(idx_t n, const float* x) {
  ThrowIfError(store_->Add(n, x), "add");
  SyncCount();
}

void GpuIndexFlat::search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
                          const faiss::SearchParameters* params) const {
  if (k < 1 || k > kMaxK) {
    FAISS_THROW_FMT("GpuIndexFlat::search: k must be in 1..%d, got %lld", kMaxK,
                    static_cast<long long>(k));
  }
  if (params != nullptr && params->sel != nullptr) {
    // The allow-set is built from the rows under the store's lock, so a
    // concurrent add cannot change the rows under it.
    const faiss::IDSelector& sel = *params->sel;
    ThrowIfError(store_->SearchFiltered(n, x, d, static_cast<int>(k), distances, labels,
                                        [&sel](const int64_t* row_labels, int64_t rows) {
                                          return RowBitsetFromSelector(sel, row_labels, rows);
                                        }),
                 "search");
    return;
  }
  ThrowIfError(store_->Search(n, x, d, static_cast<int>(k), distances, labels), "search");
}

void GpuIndexFlat::reset() {
  ThrowIfError(store_->Reset(), "reset");
  SyncCount();
}

void GpuIndexFlat::reconstruct(idx_t key, float* recons) const {
  ThrowIfError(store_->Reconstruct(key, recons), "reconstruct");
}

}  // namespace lookalike
