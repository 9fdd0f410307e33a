// 2-D convolution on NHWC activations.
//
// Conv2d: implicit GEMM on tensor cores (mma.sync m16n8k16, fp32 accumulate,
// cp.async double-buffered shared-memory tiles) with a fused epilogue
//   y = act(conv(x, w) + bias [+ residual])
// GEMM view: M = batch*out_h*out_w output pixels, N = out_channels,
// K = kernel_h*kernel_w*in_channels, k = (r*kernel_w + s)*in_channels + c.
// Groups must be 1 (depthwise has its own kernel below).
//
// Layouts (element strides, all dense):
//   input    {batch, in_h, in_w, in_channels}        f16 / bf16
//   weight   {out_channels, weight_row_stride}        same type; row o holds
//            w[o, c, r, s] at (r*kernel_w + s)*in_channels + c (OHWI) and zeros
//            in [K, weight_row_stride). weight_row_stride = ConvWeightRowStride(K)
//            (kernels/weight_layout.h, which also has the reorders).
//   bias     {out_channels} fp32, or null
//   residual {batch, out_h, out_w, out_channels}, or null
//   output   {batch, out_h, out_w, out_channels}
// out_h = (in_h + pad_top + pad_bottom - kernel_h) / stride_h + 1 (same for w):
// padding may be asymmetric (TensorFlow "SAME" at stride 2).
// in_channels % 8 == 0 takes the 16-byte cp.async path; other channel counts
// (the RGB stem, patch embeddings) gather elements one by one.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/types.h"
#include "kernels/weight_layout.h"

namespace lookalike {
namespace kernels {

struct ConvGeometry {
  int batch = 0, in_h = 0, in_w = 0, in_channels = 0;
  int out_channels = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;

  int out_h() const { return (in_h + pad_top + pad_bottom - kernel_h) / stride_h + 1; }
  int out_w() const { return (in_w + pad_left + pad_right - kernel_w) / stride_w + 1; }
};

struct ConvParams {
  DType type = DType::kF16;
  ConvGeometry geo;
  const void* input = nullptr;
  const void* weight = nullptr;
  int64_t weight_row_stride = 0;
  const float* bias = nullptr;
  const void* residual = nullptr;
  void* output = nullptr;
  Activation act = Activation::kNone;
};

Status Conv2d(const ConvParams& p, cudaStream_t stream);

// Depthwise convolution (groups == channels), direct, vectorized along C.
//   weight {kernel_h * kernel_w, channels}: tap-major, channel contiguous
//          (w[c, 0, r, s] at (r*kernel_w + s)*channels + c), same type as input.
// Other layouts as Conv2d (in_channels == out_channels == channels).
struct DepthwiseParams {
  DType type = DType::kF16;
  ConvGeometry geo;  // in_channels == out_channels
  const void* input = nullptr;
  const void* weight = nullptr;
  const float* bias = nullptr;
  const void* residual = nullptr;
  void* output = nullptr;
  Activation act = Activation::kNone;
};

Status DepthwiseConv2d(const DepthwiseParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
