// Kernels of the GPU flat index: row preparation, k-selection, result
// finishing, row gathering. Contracts are in flat_kernels.h.
//
// k-selection (block-wide, shared memory):
//   top   k_pow2 (key, value) pairs sorted ascending, initially +inf.
//   queue candidates with key < threshold (the current k-th best key),
//         appended with a shared atomic counter. After each pass of
//         kSelectThreads inputs, if the queue holds more than k_pow2 entries
//         (or at the end) it is flushed: bitonic-sorted ascending, then
//         top[i] = min(top[i], queue[k_pow2 - 1 - i]) (ascending vs
//         descending: a bitonic sequence holding the k_pow2 smallest of both),
//         then bitonic-merged back to ascending order; threshold = top[k-1].
//   Rows rejected by the allow-set bitsets never enter the
//   queue, so a filtered search still fills k results when k rows qualify.
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "index/gpu/flat_kernels.h"

namespace lookalike {
namespace gpu_detail {
namespace {

constexpr int kPrepareThreads = 256;

__device__ float BlockSum(float v, float* scratch) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  const int warps = (blockDim.x + 31) >> 5;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

__global__ void PrepareRowsKernel(const float* __restrict__ src, int dim, bool normalize,
                                  bool to_fp16, void* __restrict__ dst, float* __restrict__ norms) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const float* x = src + row * dim;
  float scale = 1.f;
  if (normalize) {
    float s = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) s += x[i] * x[i];
    s = BlockSum(s, scratch);
    if (s > 0.f) scale = 1.f / sqrtf(s);
  }
  float t = 0.f;
  if (to_fp16) {
    __half* y = static_cast<__half*>(dst) + row * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
      const __half h = __float2half_rn(x[i] * scale);
      y[i] = h;
      const float f = __half2float(h);
      t += f * f;
    }
  } else {
    float* y = static_cast<float*>(dst) + row * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
      const float f = x[i] * scale;
      y[i] = f;
      t += f * f;
    }
  }
  t = BlockSum(t, scratch);
  if (threadIdx.x == 0) norms[row] = t;
}

__host__ __device__ inline int NextPow2(int v) {
  int p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Bitonic sort of keys/vals[0, n) ascending; n a power of two. Block-wide.
__device__ void BitonicSort(float* keys, int32_t* vals, int n) {
  for (int size = 2; size <= n; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const bool ascending = (i & size) == 0;
          const float ki = keys[i];
          const float kj = keys[j];
          if ((ki > kj) == ascending) {
            keys[i] = kj;
            keys[j] = ki;
            const int32_t v = vals[i];
            vals[i] = vals[j];
            vals[j] = v;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Sorts a bitonic sequence keys/vals[0, n) ascending; n a power of two.
__device__ void BitonicMerge(float* keys, int32_t* vals, int n) {
  for (int stride = n >> 1; stride > 0; stride >>= 1) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
      const int j = i ^ stride;
      if (j > i && keys[i] > keys[j]) {
        const float k = keys[i];
        keys[i] = keys[j];
        keys[j] = k;
        const int32_t v = vals[i];
        vals[i] = vals[j];
        vals[j] = v;
      }
    }
    __syncthreads();
  }
}

struct SelectState {
  float* top_keys;
  int32_t* top_vals;
  float* q_keys;
  int32_t* q_vals;
  int kp;
  int k;
};

// Folds the queue into the top list. Called by all threads after a
// __syncthreads(); leaves *q_count = 0 and *threshold updated.
__device__ void Flush(const SelectState& s, int* q_count, float* threshold) {
  const int n = *q_count;
  const int size = max(s.kp, NextPow2(n));
  for (int i = n + threadIdx.x; i < size; i += blockDim.x) {
    s.q_keys[i] = FLT_MAX;
    s.q_vals[i] = -1;
  }
  __syncthreads();
  BitonicSort(s.q_keys, s.q_vals, size);
  for (int i = threadIdx.x; i < s.kp; i += blockDim.x) {
    const int j = s.kp - 1 - i;
    if (s.q_vals[j] >= 0 && s.q_keys[j] < s.top_keys[i]) {
      s.top_keys[i] = s.q_keys[j];
      s.top_vals[i] = s.q_vals[j];
    }
  }
  __syncthreads();
  BitonicMerge(s.top_keys, s.top_vals, s.kp);
  if (threadIdx.x == 0) {
    *q_count = 0;
    *threshold = s.top_vals[s.k - 1] >= 0 ? s.top_keys[s.k - 1] : FLT_MAX;
  }
  __syncthreads();
}

__device__ SelectState CarveShared(unsigned char* smem, int k) {
  SelectState s;
  s.k = k;
  s.kp = NextPow2(k);
  const int qp = NextPow2(s.kp + kSelectThreads);
  s.top_keys = reinterpret_cast<float*>(smem);
  s.top_vals = reinterpret_cast<int32_t*>(s.top_keys + s.kp);
  s.q_keys = reinterpret_cast<float*>(s.top_vals + s.kp);
  s.q_vals = reinterpret_cast<int32_t*>(s.q_keys + qp);
  for (int i = threadIdx.x; i < s.kp; i += blockDim.x) {
    s.top_keys[i] = FLT_MAX;
    s.top_vals[i] = -1;
  }
  return s;
}

size_t SelectSharedBytes(int k) {
  const int kp = NextPow2(k);
  const int qp = NextPow2(kp + kSelectThreads);
  return static_cast<size_t>(kp + qp) * (sizeof(float) + sizeof(int32_t));
}

// Reads one candidate: returns false when the input is skipped.
struct TileSource {
  const TileSelectArgs* a;
  int q;
  __device__ bool Get(int64_t i, float* key, int32_t* val) const {
    const int64_t r = a->tile_row0 + i;
    if (a->allow && !((a->allow[q * a->allow_stride + (r >> 5)] >> (r & 31)) & 1u)) return false;
    const float ip = a->ip[static_cast<int64_t>(q) * a->tile_n + i];
    *key = a->l2 ? a->norms[r] - 2.f * ip : -ip;
    *val = static_cast<int32_t>(r);
    return true;
  }
};

struct CandidateSource {
  const float* keys;
  const int32_t* vals;
  __device__ bool Get(int64_t i, float* key, int32_t* val) const {
    const int32_t v = vals[i];
    if (v < 0) return false;
    *key = keys[i];
    *val = v;
    return true;
  }
};

// Selects the k best of inputs [begin, end) of `src` into top (sorted).
template <typename Source>
__device__ void SelectRange(const Source& src, int64_t begin, int64_t end, const SelectState& s) {
  __shared__ int q_count;
  __shared__ float threshold;
  if (threadIdx.x == 0) {
    q_count = 0;
    threshold = FLT_MAX;
  }
  __syncthreads();
  for (int64_t base = begin; base < end; base += blockDim.x) {
    const int64_t i = base + threadIdx.x;
    float key;
    int32_t val;
    if (i < end && src.Get(i, &key, &val) && key < threshold) {
      const int pos = atomicAdd(&q_count, 1);
      s.q_keys[pos] = key;
      s.q_vals[pos] = val;
    }
    __syncthreads();
    const int pending = q_count;
    __syncthreads();  // every thread has read q_count before it can change again
    if (pending > s.kp) Flush(s, &q_count, &threshold);
  }
  if (q_count > 0) Flush(s, &q_count, &threshold);
}

__global__ void __launch_bounds__(kSelectThreads) TileSelectKernel(TileSelectArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int q = blockIdx.y;
  const int64_t seg = blockIdx.x;
  const SelectState s = CarveShared(smem, a.k);
  __syncthreads();
  const int64_t begin = seg * a.seg_len;
  const int64_t end = min(a.tile_n, begin + a.seg_len);
  TileSource src{&a, q};
  SelectRange(src, begin, end, s);
  float* out_k = a.out_keys + q * a.out_ld + (a.out_slot0 + seg) * a.k;
  int32_t* out_v = a.out_vals + q * a.out_ld + (a.out_slot0 + seg) * a.k;
  for (int i = threadIdx.x; i < a.k; i += blockDim.x) {
    out_k[i] = s.top_keys[i];
    out_v[i] = s.top_vals[i];
  }
}

__global__ void __launch_bounds__(kSelectThreads)
    MergeSelectKernel(float* keys, int32_t* vals, int64_t count, int64_t ld, int k) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t q = blockIdx.x;
  const SelectState s = CarveShared(smem, k);
  __syncthreads();
  CandidateSource src{keys + q * ld, vals + q * ld};
  SelectRange(src, 0, count, s);
  // All reads of this query's row happened before the last Flush returned.
  for (int i = threadIdx.x; i < k; i += blockDim.x) {
    keys[q * ld + i] = s.top_keys[i];
    vals[q * ld + i] = s.top_vals[i];
  }
}

__global__ void FinishResultsKernel(const float* __restrict__ keys,
                                    const int32_t* __restrict__ vals, int64_t ld, int nq, int k,
                                    bool l2, const float* __restrict__ qnorms,
                                    const int64_t* __restrict__ row_labels,
                                    float* __restrict__ distances, int64_t* __restrict__ labels) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<int64_t>(nq) * k) return;
  const int64_t q = idx / k;
  const int64_t i = idx % k;
  const int32_t v = vals[q * ld + i];
  if (v < 0) {
    labels[idx] = -1;
    distances[idx] = l2 ? FLT_MAX : -FLT_MAX;
    return;
  }
  const float key = keys[q * ld + i];
  labels[idx] = row_labels[v];
  distances[idx] = l2 ? fmaxf(key + qnorms[q], 0.f) : -key;
}

template <bool kFp16>
__global__ void __launch_bounds__(kFusedChunk) FusedSmallBatchKernel(FusedArgs a) {
  constexpr int kVec = kFp16 ? 8 : 4;  // elements per 16-byte load
  extern __shared__ __align__(16) unsigned char smem[];
  const int nq = a.nq;
  const int kp = NextPow2(a.k);
  const int qp = max(kp, kFusedChunk);
  float* qs = reinterpret_cast<float*>(smem);   // nq x dim
  float* scores = qs + nq * a.dim;              // nq x kFusedChunk
  float* thresh = scores + nq * kFusedChunk;    // kFusedMaxQueries
  float* top_keys = thresh + kFusedMaxQueries;  // nq x kp
  int32_t* top_vals = reinterpret_cast<int32_t*>(top_keys + nq * kp);
  float* q_keys = reinterpret_cast<float*>(top_vals + nq * kp);  // qp
  int32_t* q_vals = reinterpret_cast<int32_t*>(q_keys + qp);
  __shared__ int q_count;

  for (int i = threadIdx.x; i < nq * a.dim; i += blockDim.x) {
    qs[i] = kFp16 ? __half2float(static_cast<const __half*>(a.queries)[i])
                  : static_cast<const float*>(a.queries)[i];
  }
  for (int i = threadIdx.x; i < nq * kp; i += blockDim.x) {
    top_keys[i] = FLT_MAX;
    top_vals[i] = -1;
  }
  if (threadIdx.x < kFusedMaxQueries) thresh[threadIdx.x] = FLT_MAX;
  if (threadIdx.x == 0) q_count = 0;
  __syncthreads();

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  constexpr int kWarps = kFusedChunk / 32;
  constexpr int kRowsPerWarp = kFusedChunk / kWarps;
  const int units = a.dim / kVec;
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * a.seg_len;
  const int64_t end = min(a.rows, begin + a.seg_len);
  for (int64_t chunk = begin; chunk < end; chunk += kFusedChunk) {
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int local = warp * kRowsPerWarp + rr;
      const int64_t r = chunk + local;
      const bool dead = r >= end;
      float acc[kFusedMaxQueries];
#pragma unroll
      for (int q = 0; q < kFusedMaxQueries; ++q) acc[q] = 0.f;
      if (!dead) {
        const uint4* row = reinterpret_cast<const uint4*>(static_cast<const char*>(a.vecs) +
                                                          r * a.dim * (kFp16 ? 2 : 4));
        for (int u = lane; u < units; u += 32) {
          const uint4 v = __ldg(row + u);
          float x[kVec];
          if constexpr (kFp16) {
            const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const float2 f = __half22float2(h[e]);
              x[2 * e] = f.x;
              x[2 * e + 1] = f.y;
            }
          } else {
            const float* f = reinterpret_cast<const float*>(&v);
#pragma unroll
            for (int e = 0; e < 4; ++e) x[e] = f[e];
          }
#pragma unroll
          for (int q = 0; q < kFusedMaxQueries; ++q) {
            if (q < nq) {
              const float4* qq = reinterpret_cast<const float4*>(qs + q * a.dim + u * kVec);
#pragma unroll
              for (int e = 0; e < kVec / 4; ++e) {
                const float4 w = qq[e];
                acc[q] = fmaf(x[4 * e], w.x, acc[q]);
                acc[q] = fmaf(x[4 * e + 1], w.y, acc[q]);
                acc[q] = fmaf(x[4 * e + 2], w.z, acc[q]);
                acc[q] = fmaf(x[4 * e + 3], w.w, acc[q]);
              }
            }
          }
        }
#pragma unroll
        for (int q = 0; q < kFusedMaxQueries; ++q) {
          if (q < nq) {
            for (int off = 16; off > 0; off >>= 1)
              acc[q] += __shfl_xor_sync(0xffffffffu, acc[q], off);
          }
        }
      }
      if (lane == 0) {
#pragma unroll
        for (int q = 0; q < kFusedMaxQueries; ++q) {
          if (q < nq) {
            bool ok = !dead;
            if (ok && a.allow) ok = (a.allow[q * a.allow_stride + (r >> 5)] >> (r & 31)) & 1u;
            const float key = a.l2 ? a.norms[ok ? r : 0] - 2.f * acc[q] : -acc[q];
            scores[q * kFusedChunk + local] = ok ? key : FLT_MAX;
          }
        }
      }
    }
    __syncthreads();
    for (int q = 0; q < nq; ++q) {
      const float key = scores[q * kFusedChunk + threadIdx.x];
      if (key < thresh[q]) {
        const int pos = atomicAdd(&q_count, 1);
        q_keys[pos] = key;
        q_vals[pos] = static_cast<int32_t>(chunk + threadIdx.x);
      }
      __syncthreads();
      const int pending = q_count;
      __syncthreads();
      if (pending > 0) {
        SelectState s;
        s.top_keys = top_keys + q * kp;
        s.top_vals = top_vals + q * kp;
        s.q_keys = q_keys;
        s.q_vals = q_vals;
        s.kp = kp;
        s.k = a.k;
        Flush(s, &q_count, &thresh[q]);
      }
    }
  }
  for (int q = 0; q < nq; ++q) {
    float* out_k = a.out_keys + q * a.out_ld + (a.out_slot0 + blockIdx.x) * a.k;
    int32_t* out_v = a.out_vals + q * a.out_ld + (a.out_slot0 + blockIdx.x) * a.k;
    for (int i = threadIdx.x; i < a.k; i += blockDim.x) {
      out_k[i] = top_keys[q * kp + i];
      out_v[i] = top_vals[q * kp + i];
    }
  }
}

// Raises `func`'s dynamic shared-memory limit on the current device to at
// least `bytes`. The limit belongs to the function, not to a store: lowering
// it for one launch could fail another store's launch on another thread
// between its own raise and launch, so the limit only ever goes up.
cudaError_t EnsureSharedLimit(const void* func, size_t bytes) {
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, size_t> limits;
  int device = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err != cudaSuccess) return err;
  std::lock_guard<std::mutex> lock(mu);
  size_t& limit = limits[{device, func}];
  if (bytes <= limit) return cudaSuccess;
  err = cudaFuncSetAttribute(func, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(bytes));
  if (err == cudaSuccess) limit = bytes;
  return err;
}

}  // namespace

size_t FusedSharedBytes(int nq, int k, int dim) {
  const int kp = NextPow2(k);
  const int qp = kp > kFusedChunk ? kp : kFusedChunk;
  return sizeof(float) * (static_cast<size_t>(nq) * dim + static_cast<size_t>(nq) * kFusedChunk +
                          kFusedMaxQueries) +
         (sizeof(float) + sizeof(int32_t)) * (static_cast<size_t>(nq) * kp + qp);
}

cudaError_t LaunchFusedSmallBatch(const FusedArgs& args, cudaStream_t stream) {
  if (args.nq <= 0 || args.rows <= 0) return cudaSuccess;
  if (args.nq > kFusedMaxQueries || args.k > kFusedMaxK || args.seg_len % kFusedChunk != 0) {
    return cudaErrorInvalidValue;
  }
  const size_t smem = FusedSharedBytes(args.nq, args.k, args.dim);
  const unsigned blocks = static_cast<unsigned>((args.rows + args.seg_len - 1) / args.seg_len);
  cudaError_t err;
  if (args.fp16) {
    err = EnsureSharedLimit(reinterpret_cast<const void*>(&FusedSmallBatchKernel<true>), smem);
    if (err != cudaSuccess) return err;
    FusedSmallBatchKernel<true><<<blocks, kFusedChunk, smem, stream>>>(args);
  } else {
    err = EnsureSharedLimit(reinterpret_cast<const void*>(&FusedSmallBatchKernel<false>), smem);
    if (err != cudaSuccess) return err;
    FusedSmallBatchKernel<false><<<blocks, kFusedChunk, smem, stream>>>(args);
  }
  return cudaGetLastError();
}

cudaError_t LaunchPrepareRows(const float* src, int64_t n, int dim, bool normalize, bool to_fp16,
                              void* dst, float* norms, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  PrepareRowsKernel<<<static_cast<unsigned>(n), kPrepareThreads, 0, stream>>>(src, dim, normalize,
                                                                              to_fp16, dst, norms);
  return cudaGetLastError();
}

cudaError_t LaunchTileSelect(const TileSelectArgs& args, cudaStream_t stream) {
  if (args.nq <= 0 || args.tile_n <= 0) return cudaSuccess;
  const size_t smem = SelectSharedBytes(args.k);
  cudaError_t err = EnsureSharedLimit(reinterpret_cast<const void*>(&TileSelectKernel), smem);
  if (err != cudaSuccess) return err;
  const int64_t segments = (args.tile_n + args.seg_len - 1) / args.seg_len;
  dim3 grid(static_cast<unsigned>(segments), static_cast<unsigned>(args.nq));
  TileSelectKernel<<<grid, kSelectThreads, smem, stream>>>(args);
  return cudaGetLastError();
}

cudaError_t LaunchMergeSelect(float* keys, int32_t* vals, int nq, int64_t count, int64_t ld, int k,
                              cudaStream_t stream) {
  if (nq <= 0) return cudaSuccess;
  const size_t smem = SelectSharedBytes(k);
  cudaError_t err = EnsureSharedLimit(reinterpret_cast<const void*>(&MergeSelectKernel), smem);
  if (err != cudaSuccess) return err;
  MergeSelectKernel<<<static_cast<unsigned>(nq), kSelectThreads, smem, stream>>>(keys, vals, count,
                                                                                 ld, k);
  return cudaGetLastError();
}

cudaError_t LaunchFinishResults(const float* keys, const int32_t* vals, int64_t ld, int nq, int k,
                                bool l2, const float* qnorms, const int64_t* row_labels,
                                float* distances, int64_t* labels, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(nq) * k;
  if (total <= 0) return cudaSuccess;
  const int threads = 256;
  const unsigned blocks = static_cast<unsigned>((total + threads - 1) / threads);
  FinishResultsKernel<<<blocks, threads, 0, stream>>>(keys, vals, ld, nq, k, l2, qnorms, row_labels,
                                                      distances, labels);
  return cudaGetLastError();
}

}  // namespace gpu_detail
}  // namespace lookalike
