#include <algorithm>

#include "kernels/channels.h"
#include "kernels/device_common.cuh"

namespace lookalike {
namespace kernels {
namespace {

constexpr int kThreads = 256;

#define LOOKALIKE_GRID_LOOP(i, n)                                                        \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

template <typename T>
__global__ void ScaleChannelsKernel(const T* __restrict__ x, const T* __restrict__ s,
                                    T* __restrict__ y, int64_t pixels, int c, int64_t total) {
  LOOKALIKE_GRID_LOOP(i, total) {
    const int64_t b = i / (pixels * c);
    y[i] = dev::FromFloat<T>(dev::ToFloat(x[i]) * dev::ToFloat(s[b * c + i % c]));
  }
}

template <typename T>
__global__ void ChannelAffineKernel(const T* __restrict__ x, const T* __restrict__ scale,
                                    const T* __restrict__ shift, T* __restrict__ y, int c,
                                    int in_stride, int64_t total, Activation act) {
  LOOKALIKE_GRID_LOOP(i, total) {
    const int64_t q = i / c;
    const int ch = static_cast<int>(i % c);
    const float v =
        dev::ToFloat(x[q * in_stride + ch]) * dev::ToFloat(scale[ch]) + dev::ToFloat(shift[ch]);
    y[i] = dev::FromFloat<T>(dev::Activate(v, act));
  }
}

template <typename T>
__global__ void WriteChannelsKernel(const T* __restrict__ src, T* __restrict__ dst, int c,
                                    int dst_stride, int offset, int64_t total) {
  LOOKALIKE_GRID_LOOP(i, total) { dst[(i / c) * dst_stride + offset + i % c] = src[i]; }
}

}  // namespace

Status ScaleChannels(const ScaleChannelsParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.pixels <= 0 || p.channels <= 0) {
    return InvalidArgumentError("scale_channels: empty tensor");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t total = p.batch * p.pixels * p.channels;
    ScaleChannelsKernel<T><<<Blocks(total, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(p.input), static_cast<const T*>(p.scale), static_cast<T*>(p.output),
        p.pixels, p.channels, total);
    return LaunchStatus("ScaleChannelsKernel");
  });
}

Status ChannelAffine(const ChannelAffineParams& p, cudaStream_t stream) {
  if (p.pixels <= 0 || p.channels <= 0 || p.in_stride < p.channels) {
    return InvalidArgumentError("channel_affine: need pixels, channels > 0, in_stride >= channels");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t total = p.pixels * p.channels;
    ChannelAffineKernel<T><<<Blocks(total, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(p.input), static_cast<const T*>(p.scale),
        static_cast<const T*>(p.shift), static_cast<T*>(p.output), p.channels, p.in_stride, total,
        p.act);
    return LaunchStatus("ChannelAffineKernel");
  });
}

Status WriteChannels(const WriteChannelsParams& p, cudaStream_t stream) {
  if (p.pixels <= 0 || p.channels <= 0 || p.offset < 0 || p.offset + p.channels > p.dst_stride) {
    return InvalidArgumentError("write_channels: slice outside the destination");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    const int64_t total = p.pixels * p.channels;
    WriteChannelsKernel<T><<<Blocks(total, kThreads), kThreads, 0, stream>>>(
        static_cast<const T*>(p.src), static_cast<T*>(p.dst), p.channels, p.dst_stride, p.offset,
        total);
    return LaunchStatus("WriteChannelsKernel");
  });
}

}  // namespace kernels
}  // namespace lookalike
