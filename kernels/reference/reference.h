// CPU references of the CUDA kernels: plain C++, fp32 math (fp64 where a sum
// is long), over exactly the layouts the kernels use (see the kernel headers).
// Tests compare the kernels against these; the references are themselves
// checked against naive formulations in tests/kernels/reference_test.cc.
#pragma once

#include <cstdint>
#include <vector>

#include "common/activation.h"

namespace lookalike {
namespace kernels {
namespace ref {

// qkv {batch, seq, 3*heads*head_dim} -> out {batch, seq, heads*head_dim}
// (dense rows). Row-by-row streaming softmax with the same tiling-free math.
// causal: query i attends to keys [0, i] only.
void Attention(const float* qkv, float* out, int batch, int seq, int heads, int head_dim,
               float scale, bool causal = false);

struct ConvShape {
  int batch = 0, in_h = 0, in_w = 0, in_channels = 0, out_channels = 0;
  int kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int out_h() const { return (in_h + pad_top + pad_bottom - kernel_h) / stride_h + 1; }
  int out_w() const { return (in_w + pad_left + pad_right - kernel_w) / stride_w + 1; }
};

// Weight reorders into the kernels' layouts: kernels/weight_layout.h.

// Implicit-GEMM formulation: for each output pixel (GEMM row m) and output
// channel (column n), the dot product over k of the gathered input row and
// the OHWI weight row. y = act(acc + bias [+ residual]).
void Conv2dGemm(const float* x, const float* w_ohwi, int64_t row_stride, const float* bias,
                const float* residual, float* y, const ConvShape& s, Activation act);
// Depthwise (in == out channels), weights {kh*kw, C}.
void DepthwiseConv2d(const float* x, const float* w_tap_major, const float* bias,
                     const float* residual, float* y, const ConvShape& s, Activation act);

void LayerNorm(const float* x, float* y, const float* gamma, const float* beta, int64_t rows,
               int dim, float eps);
// y = act(y + bias) + residual (bias / residual may be null).
void BiasAct(float* y, const float* bias, const float* residual, int64_t rows, int cols,
             Activation act);
void MaxPool2d(const float* x, float* y, int batch, int in_h, int in_w, int c, int kernel,
               int stride, int pad);
void MeanPool(const float* x, float* y, int batch, int tokens, int c, int token_begin);
void SelectToken(const float* x, float* y, int batch, int tokens, int dim, int index);
void PrependTokensAddPos(const float* patches, const float* prefix_tokens, const float* pos,
                         float* y, int batch, int num_patches, int prefix, int dim,
                         bool pos_applies_to_prefix);
void L2Normalize(const float* x, float* y, int64_t rows, int dim, float eps);
// y {rows, out} = act(x {rows, in} W^T + b) + residual, W {out, in}.
void Linear(const float* x, const float* w, const float* bias, const float* residual, float* y,
            int64_t rows, int in, int out, Activation act);

}  // namespace ref
}  // namespace kernels
}  // namespace lookalike
