// Flash-attention style forward pass on mma.sync tensor cores.
//
// One CTA = 4 warps = 64 query rows of one (batch, head); each warp owns 16
// rows. Keys/values stream through shared memory in tiles of 64 rows, double
// buffered with cp.async. Per tile: S = Q K^T (mma), online softmax in fp32
// registers (running max / sum per row, rescaling the O accumulator), then
// O += P V with P converted to 16-bit straight from the S accumulators (the
// accumulator layout of two n8 tiles equals the A-fragment layout of one k16).
// Causal: keys after a row's query are masked like keys past the end, and
// key tiles wholly after the CTA's last query row are not visited.
#include "kernels/attention.h"

#include <cmath>

#include "kernels/device_common.cuh"

namespace lookalike {
namespace kernels {
namespace {

constexpr int kBlockM = 64;
constexpr int kBlockN = 64;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;

template <int HD>
struct AttnSmem {
  static constexpr int kStride = HD + 8;  // +16 bytes per row: conflict-free fragment loads
  static constexpr int kTile = kBlockN * kStride;
  static constexpr int kElems = kBlockM * kStride + 4 * kTile;  // Q + 2 x (K, V)
  static constexpr size_t kBytes = kElems * 2;
};

// Loads `rows` x HD elements starting at token `row0` into smem (zero rows past seq).
template <typename T, int HD>
__device__ __forceinline__ void LoadTile(T* smem, const T* src, int64_t row_stride, int row0,
                                         int seq, const T* base) {
  constexpr int kChunks = HD / 8;  // 16-byte chunks per row
  constexpr int kStride = AttnSmem<HD>::kStride;
  for (int i = threadIdx.x; i < kBlockN * kChunks; i += kThreads) {
    const int r = i / kChunks;
    const int c = i % kChunks;
    const bool valid = row0 + r < seq;
    const T* g = valid ? src + static_cast<int64_t>(row0 + r) * row_stride + c * 8 : base;
    dev::CpAsync16(smem + r * kStride + c * 8, g, valid);
  }
}

template <typename T, int HD>
__global__ void __launch_bounds__(kThreads)
    AttentionKernel(const T* __restrict__ qkv, T* __restrict__ out, int seq, int dim,
                    int64_t qkv_stride, int64_t out_stride, float scale_log2, bool causal) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  using S = AttnSmem<HD>;
  T* q_s = reinterpret_cast<T*>(smem_raw);
  T* kv_s = q_s + kBlockM * S::kStride;  // stage s: K at kv_s + 2s*kTile, V at +kTile

  const int m0 = blockIdx.x * kBlockM;
  const int head = blockIdx.y;
  const int n = blockIdx.z;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int g = lane / 4;
  const int t = lane % 4;

  const T* q_g = qkv + static_cast<int64_t>(n) * seq * qkv_stride + head * HD;
  const T* k_g = q_g + dim;
  const T* v_g = q_g + 2 * dim;

  LoadTile<T, HD>(q_s, q_g, qkv_stride, m0, seq, qkv);
  LoadTile<T, HD>(kv_s, k_g, qkv_stride, 0, seq, qkv);
  LoadTile<T, HD>(kv_s + S::kTile, v_g, qkv_stride, 0, seq, qkv);
  dev::CpAsyncCommit();

  constexpr int kDK = HD / 16;      // k16 steps over the head dim
  constexpr int kNT = kBlockN / 8;  // n8 tiles of S per warp
  constexpr int kDT = HD / 8;       // n8 tiles of O per warp

  float o_acc[kDT][4];
#pragma unroll
  for (int i = 0; i < kDT; ++i) o_acc[i][0] = o_acc[i][1] = o_acc[i][2] = o_acc[i][3] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.f, 0.f};
  uint32_t q_frag[kDK][4];

  int num_tiles = (seq + kBlockN - 1) / kBlockN;
  if (causal) num_tiles = min(num_tiles, (m0 + kBlockM - 1) / kBlockN + 1);
  for (int j = 0; j < num_tiles; ++j) {
    const int stage = j & 1;
    if (j + 1 < num_tiles) {
      T* next = kv_s + 2 * (stage ^ 1) * S::kTile;
      LoadTile<T, HD>(next, k_g, qkv_stride, (j + 1) * kBlockN, seq, qkv);
      LoadTile<T, HD>(next + S::kTile, v_g, qkv_stride, (j + 1) * kBlockN, seq, qkv);
      dev::CpAsyncCommit();
      dev::CpAsyncWait<1>();
    } else {
      dev::CpAsyncWait<0>();
    }
    __syncthreads();

    if (j == 0) {
      const T* qw = q_s + (warp * 16) * S::kStride;
#pragma unroll
      for (int kk = 0; kk < kDK; ++kk) {
        q_frag[kk][0] = dev::LoadU32(qw + g * S::kStride + kk * 16 + 2 * t);
        q_frag[kk][1] = dev::LoadU32(qw + (g + 8) * S::kStride + kk * 16 + 2 * t);
        q_frag[kk][2] = dev::LoadU32(qw + g * S::kStride + kk * 16 + 2 * t + 8);
        q_frag[kk][3] = dev::LoadU32(qw + (g + 8) * S::kStride + kk * 16 + 2 * t + 8);
      }
    }

    const T* k_s = kv_s + 2 * stage * S::kTile;
    const T* v_s = k_s + S::kTile;

    // S = Q K^T for this warp's 16 rows x 64 keys.
    float s_acc[kNT][4];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
      s_acc[nt][0] = s_acc[nt][1] = s_acc[nt][2] = s_acc[nt][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kDK; ++kk) {
        const T* kr = k_s + (nt * 8 + g) * S::kStride + kk * 16 + 2 * t;
        uint32_t b[2] = {dev::LoadU32(kr), dev::LoadU32(kr + 8)};
        dev::Mma16816<T>(s_acc[nt], q_frag[kk], b);
      }
    }

    // Scale into the log2 domain and mask keys past the sequence end (and,
    // causal, after the element's query row: g for e = 0, 1; g + 8 for 2, 3).
    const int key0 = j * kBlockN;
    const int query0 = m0 + warp * 16 + g;
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = key0 + nt * 8 + 2 * t + (e & 1);
        const bool visible = key < seq && (!causal || key <= query0 + (e >> 1) * 8);
        s_acc[nt][e] = visible ? s_acc[nt][e] * scale_log2 : -INFINITY;
      }
    }

    // Online softmax: rows g (e = 0,1) and g + 8 (e = 2,3); a row's 64 values
    // live in the 4 lanes of one quad.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = row_max[r];
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt)
        mx = fmaxf(mx, fmaxf(s_acc[nt][2 * r], s_acc[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      // Key tile 0 always holds key 0, visible to every row (causal too), so
      // mx is finite from the first tile on.
      const float correction = exp2f(row_max[r] - mx);
      row_max[r] = mx;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
        s_acc[nt][2 * r] = exp2f(s_acc[nt][2 * r] - mx);
        s_acc[nt][2 * r + 1] = exp2f(s_acc[nt][2 * r + 1] - mx);
        sum += s_acc[nt][2 * r] + s_acc[nt][2 * r + 1];
      }
      row_sum[r] = row_sum[r] * correction + sum;  // per-lane partial; reduced at the end
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        o_acc[dt][2 * r] *= correction;
        o_acc[dt][2 * r + 1] *= correction;
      }
    }

    // O += P V. P's A fragment for keys [16kk, 16kk+16) comes from S tiles 2kk, 2kk+1.
    const uint16_t* v16 = reinterpret_cast<const uint16_t*>(v_s);
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t a[4];
      a[0] = dev::PackPair<T>(s_acc[2 * kk][0], s_acc[2 * kk][1]);
      a[1] = dev::PackPair<T>(s_acc[2 * kk][2], s_acc[2 * kk][3]);
      a[2] = dev::PackPair<T>(s_acc[2 * kk + 1][0], s_acc[2 * kk + 1][1]);
      a[3] = dev::PackPair<T>(s_acc[2 * kk + 1][2], s_acc[2 * kk + 1][3]);
      const int k_row = kk * 16 + 2 * t;
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        const int col = dt * 8 + g;
        uint32_t b[2];
        b[0] = dev::Pack16(v16 + k_row * S::kStride + col, v16 + (k_row + 1) * S::kStride + col);
        b[1] =
            dev::Pack16(v16 + (k_row + 8) * S::kStride + col, v16 + (k_row + 9) * S::kStride + col);
        dev::Mma16816<T>(o_acc[dt], a, b);
      }
    }
    __syncthreads();  // this stage is refilled by the next iteration's prefetch
  }

  // Finish: full row sums across the quad, normalize, store.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float s = row_sum[r];
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    row_sum[r] = 1.f / s;
  }
  const int row_a = m0 + warp * 16 + g;
  const int row_b = row_a + 8;
  T* o_base = out + static_cast<int64_t>(n) * seq * out_stride + head * HD;
#pragma unroll
  for (int dt = 0; dt < kDT; ++dt) {
    const int col = dt * 8 + 2 * t;
    if (row_a < seq) {
      *reinterpret_cast<uint32_t*>(o_base + static_cast<int64_t>(row_a) * out_stride + col) =
          dev::PackPair<T>(o_acc[dt][0] * row_sum[0], o_acc[dt][1] * row_sum[0]);
    }
    if (row_b < seq) {
      *reinterpret_cast<uint32_t*>(o_base + static_cast<int64_t>(row_b) * out_stride + col) =
          dev::PackPair<T>(o_acc[dt][2] * row_sum[1], o_acc[dt][3] * row_sum[1]);
    }
  }
}

template <typename T, int HD>
Status LaunchAttention(const AttentionParams& p, cudaStream_t stream) {
  const size_t smem = AttnSmem<HD>::kBytes;
  auto kernel = AttentionKernel<T, HD>;
  RETURN_IF_ERROR(
      CudaStatus(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)),
                 "attention: raising the shared-memory limit"));
  const float scale = p.scale > 0.f ? p.scale : 1.f / std::sqrt(static_cast<float>(HD));
  dim3 grid((p.seq + kBlockM - 1) / kBlockM, p.heads, p.batch);
  kernel<<<grid, kThreads, smem, stream>>>(static_cast<const T*>(p.qkv), static_cast<T*>(p.out),
                                           p.seq, p.heads * HD, p.qkv_row_stride, p.out_row_stride,
                                           scale * 1.4426950408889634f, p.causal);
  return LaunchStatus("AttentionKernel");
}

// Switches a runtime head dim onto the compiled set.
#define LOOKALIKE_HEAD_DIM_SWITCH(hd, HD, ...)                                    \
  [&]() -> Status {                                                               \
    switch (hd) {                                                                 \
      case 64: {                                                                  \
        constexpr int HD = 64;                                                    \
        return __VA_ARGS__();                                                     \
      }                                                                           \
      case 80: {                                                                  \
        constexpr int HD = 80;                                                    \
        return __VA_ARGS__();                                                     \
      }                                                                           \
      case 128: {                                                                 \
        constexpr int HD = 128;                                                   \
        return __VA_ARGS__();                                                     \
      }                                                                           \
      default:                                                                    \
        return InvalidArgumentError("attention: head_dim " + std::to_string(hd) + \
                                    " is not supported (64, 80, 128)");           \
    }                                                                             \
  }()

}  // namespace

Status Attention(const AttentionParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.seq <= 0 || p.heads <= 0) {
    return InvalidArgumentError("attention: batch, seq and heads must be positive (got " +
                                std::to_string(p.batch) + ", " + std::to_string(p.seq) + ", " +
                                std::to_string(p.heads) + ")");
  }
  const int64_t dim = static_cast<int64_t>(p.heads) * p.head_dim;
  if (p.qkv_row_stride < 3 * dim || p.out_row_stride < dim) {
    return InvalidArgumentError("attention: row strides smaller than 3*dim / dim");
  }
  if (reinterpret_cast<uintptr_t>(p.qkv) % 16 || reinterpret_cast<uintptr_t>(p.out) % 16 ||
      p.qkv_row_stride % 8 || p.out_row_stride % 8) {
    return InvalidArgumentError("attention: pointers and row strides must be 16-byte aligned");
  }
  if (p.batch > 65535 || p.heads > 65535) {
    return InvalidArgumentError("attention: batch and heads must be <= 65535");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    return LOOKALIKE_HEAD_DIM_SWITCH(p.head_dim, HD,
                                     [&]() -> Status { return LaunchAttention<T, HD>(p, stream); });
  });
}

}  // namespace kernels
}  // namespace lookalike
