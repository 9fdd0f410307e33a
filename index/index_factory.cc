#include "index/index_factory.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/index_factory.h>

#include <exception>

#include "index/cpu_index_flat.h"

// Defined where this build links GpuIndexFlat (index/sources.cmake).
#if defined(LOOKALIKE_HAVE_GPU_INDEX)
#include "index/gpu/gpu_index_flat.h"
#endif

namespace lookalike {

faiss::MetricType FaissMetric(Metric metric) {
  return metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
}

StatusOr<IndexFamily> ClassifyIndex(const faiss::Index* index, const std::string& spec_text) {
  if (dynamic_cast<const faiss::IndexIVF*>(index) != nullptr) return IndexFamily::kIvf;
  if (dynamic_cast<const faiss::IndexHNSW*>(index) != nullptr) return IndexFamily::kHnsw;
  if (dynamic_cast<const faiss::IndexFlat*>(index) != nullptr ||
      dynamic_cast<const faiss::IndexScalarQuantizer*>(index) != nullptr) {
    return IndexFamily::kFlat;
  }
  return InvalidArgumentError("index_spec '" + spec_text +
                              "' is not supported; use Flat, SQ<bits>, IVF<nlist>,<codec> "
                              "(e.g. IVF256,Flat / IVF256,PQ16 / IVF256,SQ8) or HNSW<M>");
}

StatusOr<DerivedIndexParts> MakeDerivedIndex(const CollectionSpec& spec, const Device& device) {
  DerivedIndexParts parts;
  if (device.is_cuda()) {
#if defined(LOOKALIKE_HAVE_GPU_INDEX)
    if (spec.index_spec != "Flat") {
      return InvalidArgumentError("index_spec '" + spec.index_spec + "' is not available on " +
                                  device.ToString() +
                                  ": the GPU index is flat; use index_spec \"Flat\"");
    }
    try {
      GpuIndexFlatConfig config;
      config.device = device.index;
      // fp32 keeps GPU scores equal to the CPU index's (within float rounding).
      config.storage = StorageType::kFloat32;
      // Vectors arrive normalized for cosine, so the GPU index sees inner product.
      parts.index = std::make_unique<GpuIndexFlat>(spec.dim, FaissMetric(spec.metric), config);
    } catch (const std::exception& e) {
      return FailedPreconditionError("creating the GPU index on " + device.ToString() + ": " +
                                     e.what());
    }
    parts.family = IndexFamily::kGpuFlat;
    return parts;
#else
    return FailedPreconditionError("this build has no GPU index; use index_device: cpu");
#endif
  }
  if (spec.dim < 1) return InvalidArgumentError("dim must be >= 1");
  try {
    parts.index.reset(
        faiss::index_factory(spec.dim, spec.index_spec.c_str(), FaissMetric(spec.metric)));
  } catch (const std::exception& e) {
    return InvalidArgumentError("invalid index_spec '" + spec.index_spec + "': " + e.what());
  }
  // Flat searches run on BLAS (cpu_index_flat.h); same vectors and results.
  parts.index = CpuIndexFlat::Adopt(std::move(parts.index));
  ASSIGN_OR_RETURN(parts.family, ClassifyIndex(parts.index.get(), spec.index_spec));
  // Polysemous codebook training (on by default for IVF..,PQ.. and
  // HNSW..,PQ.. from the factory) only serves Hamming-filtered search, which
  // we never use, and costs minutes of simulated annealing.
  if (auto* ivfpq = dynamic_cast<faiss::IndexIVFPQ*>(parts.index.get())) {
    ivfpq->do_polysemous_training = false;
  }
  if (auto* hnswpq = dynamic_cast<faiss::IndexHNSWPQ*>(parts.index.get())) {
    if (auto* pq = dynamic_cast<faiss::IndexPQ*>(hnswpq->storage))
      pq->do_polysemous_training = false;
  }
  return parts;
}

int64_t GpuDeviceBytes(faiss::Index* index) {
#if defined(LOOKALIKE_HAVE_GPU_INDEX)
  if (auto* gpu = dynamic_cast<GpuIndexFlat*>(index)) return gpu->store().device_bytes();
#else
  (void)index;
#endif
  return 0;
}

Status ValidateIndexSpec(const CollectionSpec& spec) {
  auto parts = MakeDerivedIndex(spec, Device{});
  if (!parts.ok()) return parts.status();
  // FAISS 1.7.3 builds HNSW over PQ storage for L2 whatever metric it is
  // given, so a cosine or inner-product collection would rank and score by L2
  // distance (and its snapshots, metric L2, would never match its spec). Only
  // creation refuses it: a collection made before this check still opens.
  if (spec.metric != Metric::kL2 &&
      dynamic_cast<const faiss::IndexHNSWPQ*>(parts->index.get()) != nullptr) {
    return InvalidArgumentError("index_spec '" + spec.index_spec + "' with metric " +
                                MetricName(spec.metric) +
                                ": FAISS searches HNSW over PQ by L2 distance only; use metric l2, "
                                "or HNSW<M> / HNSW<M>,SQ8 / IVF<nlist>,PQ<m> for " +
                                MetricName(spec.metric));
  }
  return Status::Ok();
}

}  // namespace lookalike
