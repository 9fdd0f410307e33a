// lookalike::GpuIndexFlat: exact k-NN on the GPU behind faiss::Index.
//
// A thin faiss::Index over GpuFlatStore (gpu_flat_store.h), so FAISS
// wrappers (IndexIDMap2, IndexShards, IndexReplicas) and code written for
// faiss::Index use it unchanged. Built only where FAISS is installed
// (target lookalike_gpu_index_flat).
//
// Arrays follow faiss::Index: x is n x d fp32 row-major (host); search writes
// distances and labels, n x k row-major (host), best first; labels are -1
// (distance +-FLT_MAX) where fewer than k results exist. Vectors live on the
// device in fp16 or fp32 (GpuIndexFlatConfig::storage).
//
// Labels: add() gives sequential labels like faiss::IndexFlat (positions).
// Append-only: add_with_ids and remove_ids are not supported (faiss::Index's
// defaults throw); wrap it in faiss::IndexIDMap2 for caller ids. The
// collections hide deleted rows with a selector and rebuild (derived_index.h).
// Metrics: METRIC_L2 (squared distance), METRIC_INNER_PRODUCT, and
// Metric::kCosine (inner product on vectors normalized on add and query;
// metric_type reports METRIC_INNER_PRODUCT).
// search() honours SearchParameters::sel (any faiss::IDSelector, evaluated on
// the labels) as an allow-set inside the k-selection; k is 1..kMaxK (2048).
// Errors throw faiss::FaissException (the faiss::Index convention); Create()
// is the non-throwing way to build one.
#pragma once

#include <faiss/Index.h>
#include <faiss/impl/IDSelector.h>

#include <memory>

#include "common/status.h"
#include "index/gpu/gpu_flat_store.h"

namespace lookalike {

struct GpuIndexFlatConfig {
  int device = 0;
  StorageType storage = StorageType::kFloat16;
  int64_t memory_budget_bytes = 0;  // 0 = no limit beyond the device's
  int64_t tile_rows = 0;            // 0 = automatic
};

class GpuIndexFlat : public faiss::Index {
 public:
  // Throws faiss::FaissException if the store cannot be created (bad dim, no
  // CUDA device).
  GpuIndexFlat(int dim, Metric metric, const GpuIndexFlatConfig& config = GpuIndexFlatConfig());
  GpuIndexFlat(int dim, faiss::MetricType metric,
               const GpuIndexFlatConfig& config = GpuIndexFlatConfig());
  static StatusOr<std::unique_ptr<GpuIndexFlat>> Create(
      int dim, Metric metric, const GpuIndexFlatConfig& config = GpuIndexFlatConfig());
  ~GpuIndexFlat() override;

  void add(idx_t n, const float* x) override;
  void search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
              const faiss::SearchParameters* params = nullptr) const override;
  void reset() override;
  void reconstruct(idx_t key, float* recons) const override;

  Metric lookalike_metric() const { return metric_; }
  GpuFlatStore& store() const { return *store_; }

 private:
  GpuIndexFlat(std::unique_ptr<GpuFlatStore> store, Metric metric);
  void SyncCount();

  std::unique_ptr<GpuFlatStore> store_;
  Metric metric_;
};

}  // namespace lookalike
