#include "kernels/window_attention.h"

#include <cmath>
#include <string>

#include "kernels/device_common.cuh"

namespace lookalike {
namespace kernels {
namespace {

constexpr int kThreads = 128;
constexpr size_t kMaxSmem = 48 * 1024;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    WindowAttentionKernel(const T* __restrict__ qkv, const T* __restrict__ bias,
                          T* __restrict__ out, int seq, int heads, int hd, int groups,
                          float scale) {
  extern __shared__ float smem[];
  const int n = blockIdx.x / heads, h = blockIdx.x % heads;
  const int d = heads * hd;
  float* q = smem;
  float* k = q + seq * hd;
  float* v = k + seq * hd;
  float* s = v + seq * hd;  // {seq, seq}
  const T* base = qkv + static_cast<int64_t>(n) * seq * 3 * d + h * hd;
  for (int i = threadIdx.x; i < seq * hd; i += blockDim.x) {
    const int t = i / hd, j = i % hd;
    const T* row = base + static_cast<int64_t>(t) * 3 * d + j;
    q[i] = dev::ToFloat(row[0]) * scale;
    k[i] = dev::ToFloat(row[d]);
    v[i] = dev::ToFloat(row[2 * d]);
  }
  __syncthreads();
  const T* b = bias + (static_cast<int64_t>(n % groups) * heads + h) * seq * seq;
  for (int i = threadIdx.x; i < seq * seq; i += blockDim.x) {
    const int r = i / seq, c = i % seq;
    float acc = dev::ToFloat(b[i]);
    for (int j = 0; j < hd; ++j) acc += q[r * hd + j] * k[c * hd + j];
    s[i] = acc;
  }
  __syncthreads();
  // Softmax: one warp per row.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int r = warp; r < seq; r += blockDim.x / 32) {
    float* row = s + r * seq;
    float mx = -INFINITY;
    for (int c = lane; c < seq; c += 32) mx = fmaxf(mx, row[c]);
    mx = dev::WarpMax(mx);
    float sum = 0.f;
    for (int c = lane; c < seq; c += 32) {
      const float e = __expf(row[c] - mx);
      row[c] = e;
      sum += e;
    }
    const float inv = 1.f / dev::WarpSum(sum);
    for (int c = lane; c < seq; c += 32) row[c] *= inv;
  }
  __syncthreads();
  T* o = out + static_cast<int64_t>(n) * seq * d + h * hd;
  for (int i = threadIdx.x; i < seq * hd; i += blockDim.x) {
    const int r = i / hd, j = i % hd;
    float acc = 0.f;
    for (int c = 0; c < seq; ++c) acc += s[r * seq + c] * v[c * hd + j];
    o[static_cast<int64_t>(r) * d + j] = dev::FromFloat<T>(acc);
  }
}

}  // namespace

Status WindowAttention(const WindowAttentionParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.seq <= 0 || p.heads <= 0 || p.head_dim <= 0 || p.groups <= 0 ||
      p.batch % p.groups != 0) {
    return InvalidArgumentError("window_attention: invalid sizes (batch " +
                                std::to_string(p.batch) + ", groups " + std::to_string(p.groups) +
                                ")");
  }
  const size_t smem = sizeof(float) * (3 * static_cast<size_t>(p.seq) * p.head_dim +
                                       static_cast<size_t>(p.seq) * p.seq);
  if (smem > kMaxSmem) {
    return UnimplementedError("window_attention: seq " + std::to_string(p.seq) + " x head_dim " +
                              std::to_string(p.head_dim) + " needs " + std::to_string(smem) +
                              " bytes of shared memory, over the kernel's 48 KiB");
  }
  const float scale = 1.f / std::sqrt(static_cast<float>(p.head_dim));
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    WindowAttentionKernel<T><<<p.batch * p.heads, kThreads, smem, stream>>>(
        static_cast<const T*>(p.qkv), static_cast<const T*>(p.bias), static_cast<T*>(p.out), p.seq,
        p.heads, p.head_dim, p.groups, scale);
    return LaunchStatus("WindowAttentionKernel");
  });
}

}  // namespace kernels
}  // namespace lookalike
