#include "kernels/elementwise.h"

#include <cfloat>
#include <string>

#include "kernels/device_common.cuh"

namespace lookalike {
namespace kernels {
namespace {

constexpr int kThreads = 256;

// ---- LayerNorm: one warp per row, two-pass statistics in fp32 ----------------
template <typename T>
__global__ void LayerNormKernel(const T* __restrict__ x, T* __restrict__ y,
                                const float* __restrict__ gamma, const float* __restrict__ beta,
                                int64_t rows, int dim, float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* xr = x + row * dim;
  float sum = 0.f;
  for (int i = lane; i < dim; i += 32) sum += dev::ToFloat(xr[i]);
  const float mean = dev::WarpSum(sum) / dim;
  float sq = 0.f;
  for (int i = lane; i < dim; i += 32) {
    const float d = dev::ToFloat(xr[i]) - mean;
    sq += d * d;
  }
  const float rstd = rsqrtf(dev::WarpSum(sq) / dim + eps);
  T* yr = y + row * dim;
  for (int i = lane; i < dim; i += 32) {
    yr[i] = dev::FromFloat<T>((dev::ToFloat(xr[i]) - mean) * rstd * gamma[i] + beta[i]);
  }
}

template <typename T>
__global__ void BiasActKernel(T* __restrict__ y, const float* __restrict__ bias,
                              const T* __restrict__ residual, int64_t n, int cols, Activation act) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = dev::ToFloat(y[i]);
    if (bias != nullptr) v += bias[i % cols];
    v = dev::Activate(v, act);
    if (residual != nullptr) v += dev::ToFloat(residual[i]);
    y[i] = dev::FromFloat<T>(v);
  }
}

template <typename T>
__global__ void MaxPoolKernel(const T* __restrict__ x, T* __restrict__ y, int batch, int in_h,
                              int in_w, int c, int out_h, int out_w, int k, int s, int pad) {
  const int64_t total = static_cast<int64_t>(batch) * out_h * out_w * c;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int ch = static_cast<int>(i % c);
    int64_t m = i / c;
    const int wo = static_cast<int>(m % out_w);
    m /= out_w;
    const int ho = static_cast<int>(m % out_h);
    const int n = static_cast<int>(m / out_h);
    float best = -INFINITY;
    for (int r = 0; r < k; ++r) {
      const int hi = ho * s - pad + r;
      if (hi < 0 || hi >= in_h) continue;
      for (int q = 0; q < k; ++q) {
        const int wi = wo * s - pad + q;
        if (wi < 0 || wi >= in_w) continue;
        best = fmaxf(best,
                     dev::ToFloat(x[((static_cast<int64_t>(n) * in_h + hi) * in_w + wi) * c + ch]));
      }
    }
    y[i] = dev::FromFloat<T>(best);
  }
}

// One thread per (n, c); consecutive threads read consecutive channels.
template <typename T>
__global__ void MeanPoolKernel(const T* __restrict__ x, T* __restrict__ y, int batch, int tokens,
                               int c, int begin) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(batch) * c) return;
  const int ch = static_cast<int>(i % c);
  const int n = static_cast<int>(i / c);
  const T* base = x + static_cast<int64_t>(n) * tokens * c + ch;
  float sum = 0.f;
  for (int t = begin; t < tokens; ++t) sum += dev::ToFloat(base[static_cast<int64_t>(t) * c]);
  y[i] = dev::FromFloat<T>(sum / (tokens - begin));
}

template <typename T>
__global__ void SelectTokenKernel(const T* __restrict__ x, T* __restrict__ y, int batch, int tokens,
                                  int dim, int index) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(batch) * dim) return;
  const int d = static_cast<int>(i % dim);
  const int n = static_cast<int>(i / dim);
  y[i] = x[(static_cast<int64_t>(n) * tokens + index) * dim + d];
}

template <typename T>
__global__ void PrependKernel(const T* __restrict__ patches, const T* __restrict__ prefix_tokens,
                              const T* __restrict__ pos, T* __restrict__ y, int batch,
                              int num_patches, int prefix, int dim, bool pos_prefix) {
  const int rows = prefix + num_patches;
  const int64_t total = static_cast<int64_t>(batch) * rows * dim;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int d = static_cast<int>(i % dim);
    const int64_t rn = i / dim;
    const int r = static_cast<int>(rn % rows);
    const int n = static_cast<int>(rn / rows);
    float v;
    if (r < prefix) {
      v = dev::ToFloat(prefix_tokens[static_cast<int64_t>(r) * dim + d]);
      if (pos != nullptr && pos_prefix) v += dev::ToFloat(pos[static_cast<int64_t>(r) * dim + d]);
    } else {
      const int pr = r - prefix;
      v = dev::ToFloat(patches[(static_cast<int64_t>(n) * num_patches + pr) * dim + d]);
      if (pos != nullptr) {
        const int pos_row = pos_prefix ? r : pr;
        v += dev::ToFloat(pos[static_cast<int64_t>(pos_row) * dim + d]);
      }
    }
    y[i] = dev::FromFloat<T>(v);
  }
}

template <typename T>
__global__ void AddKernel(const T* a, const T* b, T* out, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = dev::FromFloat<T>(dev::ToFloat(a[i]) + dev::ToFloat(b[i]));
  }
}

template <typename T>
__global__ void L2NormalizeKernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int dim,
                                  float eps) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const T* xr = x + row * dim;
  float sq = 0.f;
  for (int i = lane; i < dim; i += 32) {
    const float v = dev::ToFloat(xr[i]);
    sq += v * v;
  }
  const float inv = 1.f / fmaxf(sqrtf(dev::WarpSum(sq)), eps);
  T* yr = y + row * dim;
  for (int i = lane; i < dim; i += 32) yr[i] = dev::FromFloat<T>(dev::ToFloat(xr[i]) * inv);
}

template <typename S, typename D>
__global__ void ConvertKernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = dev::FromFloat<D>(dev::ToFloat(src[i]));
  }
}

template <typename S>
Status ConvertFrom(const ConvertParams& p, cudaStream_t stream) {
  const S* src = static_cast<const S*>(p.src);
  switch (p.dst_type) {
    case DType::kF32:
      ConvertKernel<S, float>
          <<<Blocks(p.n), kThreads, 0, stream>>>(src, static_cast<float*>(p.dst), p.n);
      break;
    case DType::kF16:
      ConvertKernel<S, __half>
          <<<Blocks(p.n), kThreads, 0, stream>>>(src, static_cast<__half*>(p.dst), p.n);
      break;
    case DType::kBF16:
      ConvertKernel<S, __nv_bfloat16>
          <<<Blocks(p.n), kThreads, 0, stream>>>(src, static_cast<__nv_bfloat16*>(p.dst), p.n);
      break;
  }
  return LaunchStatus("ConvertKernel");
}

}  // namespace

Status LayerNorm(const LayerNormParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.dim <= 0 || p.gamma == nullptr || p.beta == nullptr) {
    return InvalidArgumentError("layer_norm: rows and dim must be positive, gamma/beta set");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int rows_per_block = kThreads / 32;
    LayerNormKernel<T><<<Blocks(p.rows, rows_per_block), kThreads, 0, stream>>>(
        static_cast<const T*>(p.input), static_cast<T*>(p.output), p.gamma, p.beta, p.rows, p.dim,
        p.eps);
    return LaunchStatus("LayerNormKernel");
  });
}

Status BiasAct(const BiasActParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.cols <= 0) return InvalidArgumentError("bias_act: empty tensor");
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t n = p.rows * p.cols;
    BiasActKernel<T><<<Blocks(n), kThreads, 0, stream>>>(
        static_cast<T*>(p.data), p.bias, static_cast<const T*>(p.residual), n, p.cols, p.act);
    return LaunchStatus("BiasActKernel");
  });
}

Status MaxPool2d(const MaxPoolParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.in_h <= 0 || p.in_w <= 0 || p.channels <= 0 || p.kernel <= 0 ||
      p.stride <= 0 || p.pad < 0 || 2 * p.pad > p.kernel) {
    return InvalidArgumentError("max_pool2d: invalid geometry (pad must be <= kernel/2)");
  }
  const int out_h = (p.in_h + 2 * p.pad - p.kernel) / p.stride + 1;
  const int out_w = (p.in_w + 2 * p.pad - p.kernel) / p.stride + 1;
  if (out_h <= 0 || out_w <= 0) return InvalidArgumentError("max_pool2d: kernel larger than input");
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t n = static_cast<int64_t>(p.batch) * out_h * out_w * p.channels;
    MaxPoolKernel<T><<<Blocks(n), kThreads, 0, stream>>>(
        static_cast<const T*>(p.input), static_cast<T*>(p.output), p.batch, p.in_h, p.in_w,
        p.channels, out_h, out_w, p.kernel, p.stride, p.pad);
    return LaunchStatus("MaxPoolKernel");
  });
}

Status MeanPool(const MeanPoolParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.channels <= 0 || p.token_begin < 0 || p.token_begin >= p.tokens) {
    return InvalidArgumentError("mean_pool: need 0 <= token_begin (" +
                                std::to_string(p.token_begin) + ") < tokens (" +
                                std::to_string(p.tokens) + ")");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t n = static_cast<int64_t>(p.batch) * p.channels;
    MeanPoolKernel<T><<<Blocks(n), kThreads, 0, stream>>>(static_cast<const T*>(p.input),
                                                          static_cast<T*>(p.output), p.batch,
                                                          p.tokens, p.channels, p.token_begin);
    return LaunchStatus("MeanPoolKernel");
  });
}

Status SelectToken(const SelectTokenParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.dim <= 0 || p.index < 0 || p.index >= p.tokens) {
    return InvalidArgumentError("select_token: index " + std::to_string(p.index) +
                                " out of range for " + std::to_string(p.tokens) + " tokens");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t n = static_cast<int64_t>(p.batch) * p.dim;
    SelectTokenKernel<T><<<Blocks(n), kThreads, 0, stream>>>(static_cast<const T*>(p.input),
                                                             static_cast<T*>(p.output), p.batch,
                                                             p.tokens, p.dim, p.index);
    return LaunchStatus("SelectTokenKernel");
  });
}

Status PrependTokensAddPos(const PrependTokensParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.num_patches <= 0 || p.dim <= 0 || p.prefix < 0 ||
      (p.prefix > 0 && p.prefix_tokens == nullptr)) {
    return InvalidArgumentError("prepend_tokens: invalid sizes or missing prefix tokens");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t n = static_cast<int64_t>(p.batch) * (p.prefix + p.num_patches) * p.dim;
    PrependKernel<T><<<Blocks(n), kThreads, 0, stream>>>(
        static_cast<const T*>(p.patches), static_cast<const T*>(p.prefix_tokens),
        static_cast<const T*>(p.pos), static_cast<T*>(p.output), p.batch, p.num_patches, p.prefix,
        p.dim, p.pos_applies_to_prefix);
    return LaunchStatus("PrependKernel");
  });
}

Status Add(const AddParams& p, cudaStream_t stream) {
  if (p.n <= 0) return InvalidArgumentError("add: empty tensors");
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    AddKernel<T><<<Blocks(p.n), kThreads, 0, stream>>>(
        static_cast<const T*>(p.a), static_cast<const T*>(p.b), static_cast<T*>(p.out), p.n);
    return LaunchStatus("AddKernel");
  });
}

Status L2Normalize(const L2NormalizeParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.dim <= 0) return InvalidArgumentError("l2_normalize: empty tensor");
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    L2NormalizeKernel<T><<<Blocks(p.rows, kThreads / 32), kThreads, 0, stream>>>(
        static_cast<const T*>(p.input), static_cast<T*>(p.output), p.rows, p.dim, p.eps);
    return LaunchStatus("L2NormalizeKernel");
  });
}

Status Convert(const ConvertParams& p, cudaStream_t stream) {
  if (p.n <= 0) return InvalidArgumentError("convert: empty tensor");
  switch (p.src_type) {
    case DType::kF32:
      return ConvertFrom<float>(p, stream);
    case DType::kF16:
      return ConvertFrom<__half>(p, stream);
    case DType::kBF16:
      return ConvertFrom<__nv_bfloat16>(p, stream);
  }
  return InvalidArgumentError("convert: unknown source type");
}

}  // namespace kernels
}  // namespace lookalike
