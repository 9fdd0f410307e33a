// The one place where derived indexes are constructed, so the device choice
// ("cpu" FAISS vs the GPU flat index) lives here and nowhere else.
#pragma once

#include <faiss/Index.h>

#include <memory>
#include <string>

#include "common/device.h"
#include "common/status.h"
#include "index/types.h"

namespace lookalike {

// How a derived index handles labels, deletes and id selectors; decides the
// search strategy in DerivedIndex.
enum class IndexFamily {
  kFlat,     // IndexFlat / IndexScalarQuantizer: labels are positions; honours
             // SearchParameters::sel exactly; no physical removal (deleted
             // positions are excluded by the selector).
  kIvf,      // IndexIVF*: labels are our slot numbers (add_with_ids);
             // remove_ids; SearchParametersIVF with sel and nprobe.
  kHnsw,     // IndexHNSW*: positional; sel honoured, but a restrictive
             // selector can cut the graph walk short (caller falls back to
             // exact search when fewer than k come back).
  kGpuFlat,  // lookalike::GpuIndexFlat: positional like kFlat and honours
             // SearchParameters::sel as an allow-set inside its k-selection;
             // not serialized (rebuilt from storage at open).
};

struct DerivedIndexParts {
  std::unique_ptr<faiss::Index> index;
  IndexFamily family = IndexFamily::kFlat;
};

// FAISS metric for a collection metric (cosine = inner product on normalized vectors).
faiss::MetricType FaissMetric(Metric metric);

// Family of a CPU FAISS index; INVALID_ARGUMENT for types we do not support.
StatusOr<IndexFamily> ClassifyIndex(const faiss::Index* index, const std::string& spec_text);

// Creates the (empty, possibly untrained) derived index for `spec` on
// `device` (a cuda device builds the GPU flat index). Metric: inner product for cosine and ip, L2
// for l2. Errors: INVALID_ARGUMENT for an index_spec FAISS cannot parse or one whose index type we
// do not support (supported: Flat, SQ<n>, IVF<n>,..., HNSW<n>); FAILED_PRECONDITION for "cuda" in a
// build without the GPU index.
StatusOr<DerivedIndexParts> MakeDerivedIndex(const CollectionSpec& spec, const Device& device);

// Device bytes held by a GPU index made here; 0 for CPU indexes. Not safe
// to call concurrently with searches on the same index.
int64_t GpuDeviceBytes(faiss::Index* index);

// Checks the spec's index_spec without keeping the index.
Status ValidateIndexSpec(const CollectionSpec& spec);

}  // namespace lookalike
