// Launchers for the GPU flat index kernels (definitions in flat_kernels.cu).
// Internal to index/gpu: GpuFlatStore is the public interface. All pointers
// are device pointers unless said; every launcher enqueues on `stream` and
// returns the launch error (cudaSuccess when the launch was accepted).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lookalike {
namespace gpu_detail {

// Largest padded k the selection kernels handle: the next power of two of
// kMaxK (index/types.h), the largest k any index accepts.
constexpr int kSelectMaxKPow2 = 2048;
// Threads per selection block; the candidate queue holds k_pow2 + this many.
constexpr int kSelectThreads = 256;

// src: n x dim fp32 row-major. Writes dst (n x dim, fp32 if !to_fp16 else
// fp16) = src scaled to unit L2 norm when normalize (zero rows stay zero),
// and norms[i] = squared L2 norm of the written (rounded) row i.
cudaError_t LaunchPrepareRows(const float* src, int64_t n, int dim, bool normalize, bool to_fp16,
                              void* dst, float* norms, cudaStream_t stream);

// Selection over the inner products of one database tile.
//   ip:      nq x tile_n fp32, row-major (row q at ip + q * tile_n).
//   Row global index r = tile_row0 + column. Key (smaller is better):
//   -ip for inner product / cosine, norms[r] - 2 ip for L2.
//   allow: allow-set words for the chunk's queries or nullptr; query q uses
//   allow + q * allow_stride (stride 0 = one shared set); clear bit = skip.
// Grid: ceil(tile_n / seg_len) segments x nq. Segment s of query q writes its
// k best (key ascending; padding key +inf, value -1) to
//   out_keys/out_vals + q * out_ld + (out_slot0 + s) * k, values = rows r.
// What both selection paths share: the queries' keys, the rows to skip, and
// where each segment's k best go.
struct SelectArgs {
  int nq = 0;
  bool l2 = false;
  const float* norms = nullptr;
  const uint32_t* allow = nullptr;
  int64_t allow_stride = 0;
  int64_t seg_len = 0;
  int k = 0;
  float* out_keys = nullptr;
  int32_t* out_vals = nullptr;
  int64_t out_ld = 0;
  int64_t out_slot0 = 0;
};
struct TileSelectArgs : SelectArgs {
  const float* ip = nullptr;
  int64_t tile_n = 0;
  int64_t tile_row0 = 0;
};
cudaError_t LaunchTileSelect(const TileSelectArgs& args, cudaStream_t stream);

// Merge: for each query q, selects the k best of the `count` candidates at
// keys/vals + q * ld (entries with value < 0 are empty) and writes them to
// keys/vals + q * ld (the first k entries, key ascending). In place is safe:
// one block owns one query and writes only after reading all of its input.
cudaError_t LaunchMergeSelect(float* keys, int32_t* vals, int nq, int64_t count, int64_t ld, int k,
                              cudaStream_t stream);

// Turns the merged keys/vals (nq rows, stride ld, first k used) into FAISS
// results: labels[q*k+i] = row_labels[val] (or -1), distances = -key for
// inner product, max(key + qnorms[q], 0) for L2; missing: +-FLT_MAX.
cudaError_t LaunchFinishResults(const float* keys, const int32_t* vals, int64_t ld, int nq, int k,
                                bool l2, const float* qnorms, const int64_t* row_labels,
                                float* distances, int64_t* labels, cudaStream_t stream);

// Fused small-batch search: each block streams one segment of the database
// (16-byte loads, one warp per row), computes the inner products with all nq
// (<= kFusedMaxQueries) queries held in shared memory, and keeps per-query
// top-k lists in shared memory; no distance matrix is written. Output as
// LaunchTileSelect: block s writes query q's k best to
// out_keys/out_vals + q * out_ld + (out_slot0 + s) * k (values = rows).
// Requires dim % (16 / element bytes) == 0 (rows 16-byte aligned) and
// k <= kFusedMaxK. queries: nq x dim in the storage type.
constexpr int kFusedMaxQueries = 16;
constexpr int kFusedMaxK = 128;
constexpr int kFusedChunk = 256;  // rows scored per block step (= threads)
struct FusedArgs : SelectArgs {   // seg_len: a multiple of kFusedChunk
  const void* vecs = nullptr;
  bool fp16 = true;
  int dim = 0;
  int64_t rows = 0;
  const void* queries = nullptr;
};
size_t FusedSharedBytes(int nq, int k, int dim);
cudaError_t LaunchFusedSmallBatch(const FusedArgs& args, cudaStream_t stream);

}  // namespace gpu_detail
}  // namespace lookalike
