// Channel-wise NHWC ops of the MobileNet / DenseNet / GoogLeNet / Inception
// definitions, f16 / bf16, fp32 math. Each pixel's channels are contiguous;
// strides are in elements.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

// Squeeze-and-excitation's excitation: y[b, p, c] = x[b, p, c] * scale[b, c],
// x / y {batch, pixels, channels}, scale {batch, channels}.
struct ScaleChannelsParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  const void* scale = nullptr;
  void* output = nullptr;
  int batch = 0;
  int64_t pixels = 0;
  int channels = 0;
};
Status ScaleChannels(const ScaleChannelsParams& p, cudaStream_t stream);

// y[q, c] = act(x[q * in_stride + c] * scale[c] + shift[c]) for c < channels,
// y {pixels, channels} dense; x rows in_stride >= channels apart (a channel
// prefix of a wider tensor). scale / shift {channels} of `type`.
struct ChannelAffineParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  const void* scale = nullptr;
  const void* shift = nullptr;
  void* output = nullptr;
  int64_t pixels = 0;
  int channels = 0;
  int in_stride = 0;
  Activation act = Activation::kNone;
};
Status ChannelAffine(const ChannelAffineParams& p, cudaStream_t stream);

// dst[q * dst_stride + offset + c] = src[q * channels + c] for c < channels:
// one part of a channel concatenation written into its slice.
struct WriteChannelsParams {
  DType type = DType::kF16;
  const void* src = nullptr;
  void* dst = nullptr;
  int64_t pixels = 0;
  int channels = 0;
  int dst_stride = 0;
  int offset = 0;
};
Status WriteChannels(const WriteChannelsParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
