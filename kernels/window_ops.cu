#include "kernels/window_ops.h"

#include <string>

#include "kernels/device_common.cuh"

namespace lookalike {
namespace kernels {
namespace {

constexpr int kThreads = 256;

// One thread per element of the map.
template <typename T>
__global__ void WindowShuffleKernel(const T* __restrict__ x, T* __restrict__ y, int batch, int h,
                                    int w, int c, int window, int shift, bool to_windows) {
  const int64_t total = static_cast<int64_t>(batch) * h * w * c;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int ch = static_cast<int>(i % c);
    int64_t r = i / c;
    const int px = static_cast<int>(r % w);
    r /= w;
    const int py = static_cast<int>(r % h);
    const int b = static_cast<int>(r / h);
    // Window position (py, px) of the rolled map reads map row (py + shift) mod h.
    const int sy = (py + shift) % h, sx = (px + shift) % w;
    const int64_t win =
        (static_cast<int64_t>(b) * (h / window) + py / window) * (w / window) + px / window;
    const int64_t win_idx = ((win * window + py % window) * window + px % window) * c + ch;
    const int64_t map_idx = ((static_cast<int64_t>(b) * h + sy) * w + sx) * c + ch;
    if (to_windows) {
      y[win_idx] = x[map_idx];
    } else {
      y[map_idx] = x[win_idx];
    }
  }
}

// norms[n, c] = sqrt(sum over pixels of x^2); one thread per (n, c).
template <typename T>
__global__ void ChannelNormKernel(const T* __restrict__ x, float* __restrict__ norms, int batch,
                                  int pixels, int c) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(batch) * c) return;
  const int ch = static_cast<int>(i % c);
  const int n = static_cast<int>(i / c);
  const T* base = x + static_cast<int64_t>(n) * pixels * c + ch;
  float sq = 0.f;
  for (int p = 0; p < pixels; ++p) {
    const float v = dev::ToFloat(base[static_cast<int64_t>(p) * c]);
    sq += v * v;
  }
  norms[i] = sqrtf(sq);
}

// norms[n, :] -> 1 + gamma * norms / (mean + eps); one block per image.
template <typename T>
__global__ void GrnScaleKernel(float* __restrict__ norms, const T* __restrict__ gamma, int c,
                               float eps) {
  __shared__ float partial[kThreads / 32];
  float* row = norms + static_cast<int64_t>(blockIdx.x) * c;
  float sum = 0.f;
  for (int i = threadIdx.x; i < c; i += blockDim.x) sum += row[i];
  sum = dev::WarpSum(sum);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
  __syncthreads();
  float total = 0.f;
  for (int i = 0; i < kThreads / 32; ++i) total += partial[i];
  const float inv = 1.f / (total / c + eps);
  for (int i = threadIdx.x; i < c; i += blockDim.x) {
    row[i] = 1.f + dev::ToFloat(gamma[i]) * row[i] * inv;
  }
}

template <typename T>
__global__ void GrnApplyKernel(const T* __restrict__ x, const float* __restrict__ scale,
                               const T* __restrict__ beta, T* __restrict__ y, int pixels, int c,
                               int64_t total) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int ch = static_cast<int>(i % c);
    const int64_t n = i / c / pixels;
    y[i] = dev::FromFloat<T>(dev::ToFloat(x[i]) * scale[n * c + ch] + dev::ToFloat(beta[ch]));
  }
}

}  // namespace

Status WindowShuffle(const WindowShuffleParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.channels <= 0 || p.window <= 0 || p.height <= 0 || p.width <= 0 ||
      p.height % p.window != 0 || p.width % p.window != 0 || p.shift < 0 || p.shift >= p.window) {
    return InvalidArgumentError("window_shuffle: map " + std::to_string(p.height) + "x" +
                                std::to_string(p.width) + " with window " +
                                std::to_string(p.window) + ", shift " + std::to_string(p.shift) +
                                " is invalid");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t n = static_cast<int64_t>(p.batch) * p.height * p.width * p.channels;
    WindowShuffleKernel<T><<<Blocks(n), kThreads, 0, stream>>>(
        static_cast<const T*>(p.input), static_cast<T*>(p.output), p.batch, p.height, p.width,
        p.channels, p.window, p.shift, p.to_windows);
    return LaunchStatus("WindowShuffleKernel");
  });
}

Status GlobalResponseNorm(const GlobalResponseNormParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.pixels <= 0 || p.channels <= 0 || p.workspace == nullptr) {
    return InvalidArgumentError("global_response_norm: invalid sizes or no workspace");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t nc = static_cast<int64_t>(p.batch) * p.channels;
    ChannelNormKernel<T><<<Blocks(nc), kThreads, 0, stream>>>(
        static_cast<const T*>(p.input), p.workspace, p.batch, p.pixels, p.channels);
    RETURN_IF_ERROR(LaunchStatus("ChannelNormKernel"));
    GrnScaleKernel<T><<<p.batch, kThreads, 0, stream>>>(p.workspace, static_cast<const T*>(p.gamma),
                                                        p.channels, p.eps);
    RETURN_IF_ERROR(LaunchStatus("GrnScaleKernel"));
    const int64_t total = nc * p.pixels;
    GrnApplyKernel<T><<<Blocks(total), kThreads, 0, stream>>>(
        static_cast<const T*>(p.input), p.workspace, static_cast<const T*>(p.beta),
        static_cast<T*>(p.output), p.pixels, p.channels, total);
    return LaunchStatus("GrnApplyKernel");
  });
}

}  // namespace kernels
}  // namespace lookalike
