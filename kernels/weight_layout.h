// Weight layouts of the CUDA convolution kernels (kernels/conv.h), and the
// reorders from PyTorch's layouts into them: the one implementation, used by
// the CUDA backend when it prepares a layer and by the kernel tests and
// benchmarks. Plain C++ (no CUDA headers), built on every machine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lookalike {
namespace kernels {

// Row stride of the implicit-GEMM weight matrix for a reduction length
// k = kernel_h * kernel_w * in_channels: k rounded up to a multiple of 8
// (16-byte rows of f16 / bf16 for cp.async).
inline int64_t ConvWeightRowStride(int64_t k) { return (k + 7) / 8 * 8; }

// Dense (groups == 1) weights {out, in, kh, kw} (PyTorch) -> {out, row_stride}
// rows in OHWI order: w[o, c, r, s] at (r * kw + s) * in + c, zeros in
// [kh * kw * in, row_stride). row_stride >= kh * kw * in.
std::vector<float> ConvWeightToOhwi(const float* w_oihw, int out_channels, int in_channels,
                                    int kernel_h, int kernel_w, int64_t row_stride);

// Depthwise weights {C, 1, kh, kw} (PyTorch) -> {kh * kw, C}: tap-major,
// channel contiguous (w[c, 0, r, s] at (r * kw + s) * C + c).
std::vector<float> DepthwiseWeightToTapMajor(const float* w, int channels, int kernel_h,
                                             int kernel_w);

}  // namespace kernels
}  // namespace lookalike
