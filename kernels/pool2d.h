// NHWC max / average pooling with torch's ceil_mode and count_include_pad
// rules (GoogLeNet's ceil-mode max pools,
// Inception's 3x3 average pools, DenseNet's transitions), f16 / bf16, fp32
// accumulation. The caller computes out_h / out_w (Backend::Pool2d's rule).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

struct Pool2dParams {
  DType type = DType::kF16;
  const void* input = nullptr;  // {batch, in_h, in_w, channels}
  void* output = nullptr;       // {batch, out_h, out_w, channels}
  int batch = 0, in_h = 0, in_w = 0, channels = 0, out_h = 0, out_w = 0;
  int kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool average = false;           // false: max (padding is -inf)
  bool count_include_pad = true;  // average: divisor counts the padding
};
Status Pool2d(const Pool2dParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
