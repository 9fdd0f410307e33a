// GpuFlatStore: exact k-nearest-neighbour search over vectors held on one GPU.
//
// This is the FAISS-free core of the GPU flat index: it needs only the CUDA
// runtime, cuBLAS and spdlog, so it builds on machines without FAISS.
// lookalike::GpuIndexFlat (gpu_index_flat.h) wraps it behind faiss::Index.
//
// Storage (all on the device, owned by the store):
//   vectors   rows x dim, row-major, fp32 or fp16 (StorageType); row r starts
//             at element r * dim. Capacity grows by doubling within the budget.
//   norms     rows fp32, ||x_r||^2 of the stored (rounded) row, used by L2.
//   ids       rows int64, the label returned for row r (its position, r).
// Append-only: rows are never removed. The collection's DerivedIndex hides
// deleted rows with its own allow-set (SearchFiltered) and rebuilds the store
// from storage to reclaim them, as it does for the CPU flat index.
//
// Metrics (distances follow FAISS conventions):
//   kInnerProduct  distance = <q, x>, larger first.
//   kCosine        as kInnerProduct on vectors L2-normalized on Add and on
//                  the query (zero vectors stay zero).
//   kL2            distance = ||q - x||^2 = ||q||^2 - 2 <q, x> + ||x||^2,
//                  smaller first, clamped at 0.
// With fp16 storage the query is rounded to fp16 as well; products are
// accumulated in fp32, so distances are those of the rounded vectors.
//
// Small batches (<= 16 queries, k <= 128, dim a multiple of 8 for fp16 or 4
// for fp32) take a fused path instead: each block streams a segment of the
// database once, scores it against all queries and keeps per-query top-k in
// shared memory; the segment lists are merged as below.
//
// Search: for each database tile (tile_rows rows) one cuBLAS GEMM writes the
// nq x tile inner products into a workspace; a selection kernel keeps the k
// best per (query, segment of the tile), skipping disallowed rows INSIDE the
// selection (a filtered search returns k results whenever k allowed rows
// exist); a merge kernel folds them into the running top-k. The full
// nq x rows distance matrix never exists. k is 1..kMaxK (index/types.h).
//
// Labels: the position of the row in insertion order (0..size()-1), like
// faiss::IndexFlat without removals.
//
// Memory: every device allocation (storage, norms, ids, search workspace,
// add staging) counts against memory_budget_bytes; going over it, or a
// failing cudaMalloc, returns RESOURCE_EXHAUSTED and leaves the store as it
// was. Growing the storage briefly holds the old and the new buffer.
//
// Thread safety: all methods may be called from several threads; they are
// serialized by an internal mutex. Results are complete when a call returns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/status.h"
#include "index/types.h"  // Metric, kMaxK

namespace lookalike {

enum class StorageType {
  kFloat32,
  kFloat16,
};
const char* StorageTypeName(StorageType type);  // "fp32", "fp16"

struct GpuFlatStoreOptions {
  int dim = 0;  // 1..65536
  Metric metric = Metric::kL2;
  StorageType storage = StorageType::kFloat16;
  int device = 0;  // CUDA device ordinal
  // Upper bound on device bytes held by this store (0 = only the device's own
  // limit). Exceeding it returns RESOURCE_EXHAUSTED.
  int64_t memory_budget_bytes = 0;
  // Target size of the per-search distance workspace (nq_chunk x tile_rows
  // fp32). The tile shrinks to fit the budget.
  int64_t workspace_bytes = int64_t{256} << 20;
  // Batches of at most 16 queries with k <= 128 use the fused kernel (one
  // pass over the database, no distance workspace) when the dim allows
  // 16-byte row loads; false forces the GEMM path (tests cover both).
  bool fused_small_batch = true;
  // If > 0, forces the database tile height (tests use it to exercise the
  // multi-tile merge on small data).
  int64_t tile_rows = 0;
};

// Validates options without touching a device. INVALID_ARGUMENT names the field.
Status CheckGpuFlatStoreOptions(const GpuFlatStoreOptions& options);

// Validates search arguments without touching a device: queries/distances/
// labels non-null when nq > 0, nq >= 0, query_dim == dim, 1 <= k <= kMaxK.
Status CheckSearchArgs(int dim, int64_t nq, const float* queries, int query_dim, int k,
                       const float* distances, const int64_t* labels);

// Every value of n x dim `x` finite and, for fp16 storage (except cosine,
// whose rows are normalized first), within +-65504. INVALID_ARGUMENT names
// `what` ("vector", "query"), the row and the component.
Status CheckVectorValues(const float* x, int64_t n, int dim, StorageType storage, Metric metric,
                         const char* what);

// Allow-sets for a filtered search, as bitsets over the store's ROWS (not
// ids): bit (r % 32) of word r / 32 set means row r may be returned. Host
// memory, read during Search only. num_sets is 1 (one set shared by all
// queries) or nq (set i for query i, starting at bits + i * words_per_set).
// words_per_set >= RowBitsetWords() at the time of the search.
struct RowAllowSets {
  const uint32_t* bits = nullptr;
  int64_t words_per_set = 0;
  int64_t num_sets = 0;
};

// Device time of one Search, measured with CUDA events on the store's
// stream from the first query upload to the last result download.
struct SearchTiming {
  float device_ms = 0.f;
  int query_chunks = 0;   // times the database was streamed
  int64_t tile_rows = 0;  // database rows per GEMM tile; 0 = fused small-batch path
};

class GpuFlatStore {
 public:
  // Checks the options, selects the device, creates the stream and cuBLAS
  // handle. FAILED_PRECONDITION when no CUDA device is usable.
  static StatusOr<std::unique_ptr<GpuFlatStore>> Create(const GpuFlatStoreOptions& options);
  ~GpuFlatStore();
  GpuFlatStore(const GpuFlatStore&) = delete;
  GpuFlatStore& operator=(const GpuFlatStore&) = delete;

  // Appends n vectors, labelled size() .. size() + n - 1. x: host, n x dim
  // fp32, row-major. Vectors must be finite (and within fp16 range for fp16
  // storage). On error nothing is added.
  Status Add(int64_t n, const float* x);

  // queries: host, nq x query_dim fp32 row-major. distances: host, nq x k;
  // labels: host, nq x k; both row-major, best first. Missing results (fewer
  // than k allowed rows) have label -1 and distance +FLT_MAX (L2) or
  // -FLT_MAX (inner product, cosine). allow: optional row allow-sets.
  // timing: optional, filled when non-null (benchmarks).
  Status Search(int64_t nq, const float* queries, int query_dim, int k, float* distances,
                int64_t* labels, const RowAllowSets* allow = nullptr,
                SearchTiming* timing = nullptr);

  // Search with one allow-set built from the store's rows while it is locked,
  // so no add can slip between building the set and searching with it.
  // make_allow(row_labels, rows) returns ceil(rows / 32) words.
  using RowAllowBuilder =
      std::function<std::vector<uint32_t>(const int64_t* row_labels, int64_t rows)>;
  Status SearchFiltered(int64_t nq, const float* queries, int query_dim, int k, float* distances,
                        int64_t* labels, const RowAllowBuilder& make_allow);

  // Copies the stored vector labelled `label` (normalized for cosine, rounded
  // for fp16) into out (host, dim floats). NOT_FOUND if no row has it.
  Status Reconstruct(int64_t label, float* out);

  // Drops every vector and frees the storage.
  Status Reset();

  // Builds a row allow-set from a predicate on labels: bit r is set iff
  // allowed(label of r). Size RowBitsetWords().
  std::vector<uint32_t> MakeRowBitset(const std::function<bool(int64_t label)>& allowed);

  // The label of every row, for building allow-sets without a per-row callback.
  std::vector<int64_t> RowLabels();

  int dim() const { return options_.dim; }
  Metric metric() const { return options_.metric; }
  StorageType storage() const { return options_.storage; }
  const GpuFlatStoreOptions& options() const { return options_; }
  int64_t size();            // rows
  int64_t RowBitsetWords();  // ceil(size() / 32)
  int64_t device_bytes();    // device memory held now

 private:
  struct Impl;
  explicit GpuFlatStore(std::unique_ptr<Impl> impl, const GpuFlatStoreOptions& options);
  std::unique_ptr<Impl> impl_;
  GpuFlatStoreOptions options_;
};

}  // namespace lookalike
