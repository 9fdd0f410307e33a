// Implicit-GEMM convolution and the direct depthwise convolution.
//
// Conv2d CTA tile: 64 output pixels x 64 output channels x 32 of K, 4 warps in
// a 2 x 2 grid, each warp 32 x 32 = 2 (m16) x 4 (n8) mma tiles. The A tile
// (im2col rows gathered on the fly) and the B tile (weight rows, K
// contiguous) live in shared memory with rows padded to 40 elements (80
// bytes), which keeps the 32-bit fragment loads of a warp on distinct banks.
// Two stages: the copy of tile k+1 is in flight while tile k is multiplied.
#include "kernels/conv.h"

#include <string>

#include "kernels/device_common.cuh"

namespace lookalike {
namespace kernels {
namespace {

constexpr int kBM = 64;
constexpr int kBN = 64;
constexpr int kBK = 32;
constexpr int kSmemStride = kBK + 8;
constexpr int kConvThreads = 128;

struct ConvArgs {
  int batch, in_h, in_w, cin, cout, kh, kw, sh, sw, pt, pl, out_h, out_w;
  int64_t m_total;  // batch * out_h * out_w
  int k_total;      // kh * kw * cin
  int64_t ldw;      // weight row stride
  Activation act;
};

template <typename T, bool kVec>
__global__ void __launch_bounds__(kConvThreads)
    ConvKernel(const T* __restrict__ x, const T* __restrict__ w, const float* __restrict__ bias,
               const T* __restrict__ residual, T* __restrict__ y, ConvArgs a) {
  __shared__ __align__(16) T a_s[2][kBM * kSmemStride];
  __shared__ __align__(16) T b_s[2][kBN * kSmemStride];

  const int tid = threadIdx.x;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kBM;
  const int n0 = blockIdx.y * kBN;

  // Each thread copies k-chunk `kc` (8 elements) of tile rows `row` and `row + 32`.
  const int kc = tid % 4;
  const int row = tid / 4;
  int a_n[2], a_h0[2], a_w0[2];
  bool a_ok[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int64_t m = m0 + row + 32 * i;
    a_ok[i] = m < a.m_total;
    const int64_t mm = a_ok[i] ? m : 0;
    const int wo = static_cast<int>(mm % a.out_w);
    const int64_t t2 = mm / a.out_w;
    const int ho = static_cast<int>(t2 % a.out_h);
    a_n[i] = static_cast<int>(t2 / a.out_h);
    a_h0[i] = ho * a.sh - a.pt;
    a_w0[i] = wo * a.sw - a.pl;
  }

  auto load_tile = [&](int kt, int stage) {
    const int k0 = kt * kBK + kc * 8;
    // B: weight rows n0 + row (+32), always 16-byte chunks (rows are zero padded to ldw).
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int co = n0 + row + 32 * i;
      const bool ok = co < a.cout && k0 < a.ldw;
      const T* src = ok ? w + co * a.ldw + k0 : w;
      dev::CpAsync16(&b_s[stage][(row + 32 * i) * kSmemStride + kc * 8], src, ok);
    }
    if constexpr (kVec) {
      // cin % 8 == 0: the 8 elements share one filter tap (r, s).
      const int rs = k0 / a.cin;
      const int c = k0 - rs * a.cin;
      const int r = rs / a.kw;
      const int s = rs - r * a.kw;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int hi = a_h0[i] + r;
        const int wi = a_w0[i] + s;
        const bool ok =
            a_ok[i] && k0 < a.k_total && hi >= 0 && hi < a.in_h && wi >= 0 && wi < a.in_w;
        const T* src =
            ok ? x + ((static_cast<int64_t>(a_n[i]) * a.in_h + hi) * a.in_w + wi) * a.cin + c : x;
        dev::CpAsync16(&a_s[stage][(row + 32 * i) * kSmemStride + kc * 8], src, ok);
      }
    } else {
      const uint16_t* x16 = reinterpret_cast<const uint16_t*>(x);
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        uint16_t* dst =
            reinterpret_cast<uint16_t*>(&a_s[stage][(row + 32 * i) * kSmemStride + kc * 8]);
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const int k = k0 + e;
          uint16_t v = 0;
          if (a_ok[i] && k < a.k_total) {
            const int rs = k / a.cin;
            const int c = k - rs * a.cin;
            const int r = rs / a.kw;
            const int s = rs - r * a.kw;
            const int hi = a_h0[i] + r;
            const int wi = a_w0[i] + s;
            if (hi >= 0 && hi < a.in_h && wi >= 0 && wi < a.in_w) {
              v = x16[((static_cast<int64_t>(a_n[i]) * a.in_h + hi) * a.in_w + wi) * a.cin + c];
            }
          }
          dst[e] = v;
        }
      }
    }
  };

  const int warp = tid / 32;
  const int lane = tid % 32;
  const int g = lane / 4;
  const int t = lane % 4;
  const int wm = (warp / 2) * 32;
  const int wn = (warp % 2) * 32;

  float acc[2][4][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
      acc[mi][ni][0] = acc[mi][ni][1] = acc[mi][ni][2] = acc[mi][ni][3] = 0.f;

  const int num_k_tiles = (a.k_total + kBK - 1) / kBK;
  load_tile(0, 0);
  dev::CpAsyncCommit();
  for (int kt = 0; kt < num_k_tiles; ++kt) {
    const int stage = kt & 1;
    if (kt + 1 < num_k_tiles) {
      load_tile(kt + 1, stage ^ 1);
      dev::CpAsyncCommit();
      dev::CpAsyncWait<1>();
    } else {
      dev::CpAsyncWait<0>();
    }
    __syncthreads();
    const T* as = a_s[stage];
    const T* bs = b_s[stage];
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t af[2][4];
      uint32_t bf[4][2];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        const T* p = as + (wm + mi * 16 + g) * kSmemStride + ks * 16 + 2 * t;
        af[mi][0] = dev::LoadU32(p);
        af[mi][1] = dev::LoadU32(p + 8 * kSmemStride);
        af[mi][2] = dev::LoadU32(p + 8);
        af[mi][3] = dev::LoadU32(p + 8 * kSmemStride + 8);
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const T* p = bs + (wn + ni * 8 + g) * kSmemStride + ks * 16 + 2 * t;
        bf[ni][0] = dev::LoadU32(p);
        bf[ni][1] = dev::LoadU32(p + 8);
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) dev::Mma16816<T>(acc[mi][ni], af[mi], bf[ni]);
    }
    __syncthreads();
  }

  // Epilogue: bias, residual, activation, store (pairs of channels when aligned).
  const bool pair_ok = (a.cout % 2) == 0;
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m0 + wm + mi * 16 + g + 8 * half;
      if (m >= a.m_total) continue;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int co = n0 + wn + ni * 8 + 2 * t;
        if (co >= a.cout) continue;
        const int64_t o = m * a.cout + co;
        float v0 = acc[mi][ni][2 * half];
        float v1 = acc[mi][ni][2 * half + 1];
        const bool has1 = co + 1 < a.cout;
        if (bias != nullptr) {
          v0 += bias[co];
          if (has1) v1 += bias[co + 1];
        }
        if (residual != nullptr) {
          v0 += dev::ToFloat(residual[o]);
          if (has1) v1 += dev::ToFloat(residual[o + 1]);
        }
        v0 = dev::Activate(v0, a.act);
        v1 = dev::Activate(v1, a.act);
        if (pair_ok) {
          *reinterpret_cast<uint32_t*>(y + o) = dev::PackPair<T>(v0, v1);
        } else {
          y[o] = dev::FromFloat<T>(v0);
          if (has1) y[o + 1] = dev::FromFloat<T>(v1);
        }
      }
    }
  }
}

Status ValidateGeometry(const ConvGeometry& g, const char* op) {
  if (g.batch <= 0 || g.in_h <= 0 || g.in_w <= 0 || g.in_channels <= 0 || g.out_channels <= 0 ||
      g.kernel_h <= 0 || g.kernel_w <= 0 || g.stride_h <= 0 || g.stride_w <= 0 || g.pad_top < 0 ||
      g.pad_left < 0 || g.pad_bottom < 0 || g.pad_right < 0) {
    return InvalidArgumentError(std::string(op) + ": sizes must be positive and padding >= 0");
  }
  if (g.out_h() <= 0 || g.out_w() <= 0) {
    return InvalidArgumentError(std::string(op) + ": kernel " + std::to_string(g.kernel_h) + "x" +
                                std::to_string(g.kernel_w) + " larger than padded input " +
                                std::to_string(g.in_h) + "x" + std::to_string(g.in_w));
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Depthwise: one thread = one output pixel x V channels (V = 8: 16-byte loads).

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {  // read and written as one 16-byte word
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ void LoadVec(const T* p, float* out) {
  if constexpr (V == 8) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < 8; ++i) out[i] = dev::ToFloat(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) out[i] = dev::ToFloat(p[i]);
  }
}

struct DwArgs {
  int batch, in_h, in_w, c, kh, kw, sh, sw, pt, pl, out_h, out_w;
  Activation act;
};

template <typename T, int V, int KH, int KW>
__global__ void __launch_bounds__(256)
    DepthwiseKernel(const T* __restrict__ x, const T* __restrict__ w,
                    const float* __restrict__ bias, const T* __restrict__ residual,
                    T* __restrict__ y, DwArgs a, int64_t total) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int groups = a.c / V;
  const int c0 = static_cast<int>(idx % groups) * V;
  const int64_t m = idx / groups;
  const int wo = static_cast<int>(m % a.out_w);
  const int ho = static_cast<int>((m / a.out_w) % a.out_h);
  const int n = static_cast<int>(m / (static_cast<int64_t>(a.out_w) * a.out_h));
  const int kh = KH > 0 ? KH : a.kh;
  const int kw = KW > 0 ? KW : a.kw;

  float acc[V];
#pragma unroll
  for (int i = 0; i < V; ++i) acc[i] = bias != nullptr ? bias[c0 + i] : 0.f;
    // kh / kw are compile-time constants for the 3x3 and 5x5 instantiations.
#pragma unroll
  for (int r = 0; r < kh; ++r) {
    const int hi = ho * a.sh - a.pt + r;
    if (hi < 0 || hi >= a.in_h) continue;
#pragma unroll
    for (int s = 0; s < kw; ++s) {
      const int wi = wo * a.sw - a.pl + s;
      if (wi < 0 || wi >= a.in_w) continue;
      float xv[V], wv[V];
      LoadVec<T, V>(x + ((static_cast<int64_t>(n) * a.in_h + hi) * a.in_w + wi) * a.c + c0, xv);
      LoadVec<T, V>(w + static_cast<int64_t>(r * kw + s) * a.c + c0, wv);
#pragma unroll
      for (int i = 0; i < V; ++i) acc[i] = fmaf(xv[i], wv[i], acc[i]);
    }
  }
  const int64_t o = m * a.c + c0;
  if (residual != nullptr) {
    float rv[V];
    LoadVec<T, V>(residual + o, rv);
#pragma unroll
    for (int i = 0; i < V; ++i) acc[i] += rv[i];
  }
  Vec<T, V> out;
#pragma unroll
  for (int i = 0; i < V; ++i) out.v[i] = dev::FromFloat<T>(dev::Activate(acc[i], a.act));
  if constexpr (V == 8) {
    *reinterpret_cast<uint4*>(y + o) = *reinterpret_cast<const uint4*>(&out);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) y[o + i] = out.v[i];
  }
}

template <typename T, int V>
Status LaunchDepthwise(const DepthwiseParams& p, const DwArgs& a, cudaStream_t stream) {
  const int64_t m = static_cast<int64_t>(a.batch) * a.out_h * a.out_w;
  const int64_t total = m * (a.c / V);
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  const T* x = static_cast<const T*>(p.input);
  const T* w = static_cast<const T*>(p.weight);
  const T* r = static_cast<const T*>(p.residual);
  T* y = static_cast<T*>(p.output);
  if (a.kh == 3 && a.kw == 3) {
    DepthwiseKernel<T, V, 3, 3><<<blocks, threads, 0, stream>>>(x, w, p.bias, r, y, a, total);
  } else if (a.kh == 5 && a.kw == 5) {
    DepthwiseKernel<T, V, 5, 5><<<blocks, threads, 0, stream>>>(x, w, p.bias, r, y, a, total);
  } else {
    DepthwiseKernel<T, V, 0, 0><<<blocks, threads, 0, stream>>>(x, w, p.bias, r, y, a, total);
  }
  return LaunchStatus("DepthwiseKernel");
}

}  // namespace

Status Conv2d(const ConvParams& p, cudaStream_t stream) {
  RETURN_IF_ERROR(ValidateGeometry(p.geo, "conv2d"));
  const ConvGeometry& g = p.geo;
  ConvArgs a;
  a.batch = g.batch;
  a.in_h = g.in_h;
  a.in_w = g.in_w;
  a.cin = g.in_channels;
  a.cout = g.out_channels;
  a.kh = g.kernel_h;
  a.kw = g.kernel_w;
  a.sh = g.stride_h;
  a.sw = g.stride_w;
  a.pt = g.pad_top;
  a.pl = g.pad_left;
  a.out_h = g.out_h();
  a.out_w = g.out_w();
  a.m_total = static_cast<int64_t>(g.batch) * a.out_h * a.out_w;
  a.k_total = g.kernel_h * g.kernel_w * g.in_channels;
  a.ldw = p.weight_row_stride;
  a.act = p.act;
  if (a.ldw < ConvWeightRowStride(a.k_total) || a.ldw % 8 != 0) {
    return InvalidArgumentError(
        "conv2d: weight_row_stride " + std::to_string(a.ldw) +
        " must be a multiple of 8 and >= " + std::to_string(ConvWeightRowStride(a.k_total)));
  }
  if (reinterpret_cast<uintptr_t>(p.input) % 16 || reinterpret_cast<uintptr_t>(p.weight) % 16 ||
      reinterpret_cast<uintptr_t>(p.output) % 4 || reinterpret_cast<uintptr_t>(p.residual) % 4) {
    return InvalidArgumentError("conv2d: input/weight must be 16-byte aligned, output 4-byte");
  }
  const int64_t grid_x = (a.m_total + kBM - 1) / kBM;
  if (grid_x > 0x7fffffff) return InvalidArgumentError("conv2d: output too large");
  dim3 grid(static_cast<unsigned>(grid_x), (a.cout + kBN - 1) / kBN);
  const bool vec = g.in_channels % 8 == 0;
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const T* x = static_cast<const T*>(p.input);
    const T* w = static_cast<const T*>(p.weight);
    const T* r = static_cast<const T*>(p.residual);
    T* y = static_cast<T*>(p.output);
    if (vec) {
      ConvKernel<T, true><<<grid, kConvThreads, 0, stream>>>(x, w, p.bias, r, y, a);
    } else {
      ConvKernel<T, false><<<grid, kConvThreads, 0, stream>>>(x, w, p.bias, r, y, a);
    }
    return LaunchStatus("ConvKernel");
  });
}

Status DepthwiseConv2d(const DepthwiseParams& p, cudaStream_t stream) {
  RETURN_IF_ERROR(ValidateGeometry(p.geo, "depthwise_conv2d"));
  const ConvGeometry& g = p.geo;
  if (g.in_channels != g.out_channels) {
    return InvalidArgumentError("depthwise_conv2d: in_channels " + std::to_string(g.in_channels) +
                                " != out_channels " + std::to_string(g.out_channels));
  }
  DwArgs a{g.batch,    g.in_h,    g.in_w,     g.in_channels, g.kernel_h, g.kernel_w, g.stride_h,
           g.stride_w, g.pad_top, g.pad_left, g.out_h(),     g.out_w(),  p.act};
  const bool vec = g.in_channels % 8 == 0 && reinterpret_cast<uintptr_t>(p.input) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.weight) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.output) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.residual) % 16 == 0;
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    return vec ? LaunchDepthwise<T, 8>(p, a, stream) : LaunchDepthwise<T, 1>(p, a, stream);
  });
}

}  // namespace kernels
}  // namespace lookalike
