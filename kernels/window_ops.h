// Swin window partition / merge and ConvNeXt V2 GlobalResponseNorm
// (models/backend.h states each contract). NHWC, f16 / bf16.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

// map {batch, height, width, channels} <-> windows {batch * (height/window) *
// (width/window), window * window, channels}; the map is rolled by -shift
// (partition) / +shift (merge) on both spatial axes. window divides height
// and width; 0 <= shift < window. to_windows: partition, else merge.
struct WindowShuffleParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  void* output = nullptr;
  int batch = 0, height = 0, width = 0, channels = 0;
  int window = 0, shift = 0;
  bool to_windows = true;
};
Status WindowShuffle(const WindowShuffleParams& p, cudaStream_t stream);

// y = x + gamma * (x * r) + beta, r[n, c] = ||x[n, :, :, c]|| / (mean_c of
// those norms + eps). gamma / beta: {channels} in `type`; workspace: batch *
// channels floats of device memory.
struct GlobalResponseNormParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  const void* gamma = nullptr;
  const void* beta = nullptr;
  void* output = nullptr;
  float* workspace = nullptr;
  int batch = 0, pixels = 0, channels = 0;
  float eps = 1e-6f;
};
Status GlobalResponseNorm(const GlobalResponseNormParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
