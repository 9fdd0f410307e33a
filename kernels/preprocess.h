// Batched image preprocessing on the GPU, the torchvision/timm eval transform
// as PIL computes it: resize so the shorter side is `resize_shorter` (the
// longer side int(resize_shorter * long / short)), separable filters with the
// support scaled by the downscale factor (antialiasing, as PIL's resize):
// horizontal pass, round to uint8, vertical pass, round to uint8; center crop
// (offsets round((size - crop) / 2), ties to even as Python's round); then
// (v / 255 - mean) / std per channel.
//
// Only the source rows and columns the crop needs are filtered. The resize /
// crop arithmetic is ref::PlanResize (kernels/reference/preprocess_ref.h).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/reference/preprocess_ref.h"
#include "kernels/types.h"

namespace lookalike {
namespace kernels {

// A uint8 RGB interleaved image in device memory (rows stride_bytes apart).
struct DeviceImage {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int stride_bytes = 0;
};

struct PreprocessParams {
  DType type = DType::kF16;             // f16, bf16 or f32 output
  const DeviceImage* images = nullptr;  // host array of `count` descriptors
  int count = 0;
  int resize_shorter = 256;
  int crop_h = 224;
  int crop_w = 224;
  bool bicubic = false;   // false: bilinear (triangle filter), true: bicubic (a = -0.5)
  bool antialias = true;  // scale the filter support when downscaling
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
  void* output = nullptr;     // {count, crop_h, crop_w, 3}
  void* workspace = nullptr;  // device scratch of PreprocessWorkspaceBytes()
  size_t workspace_bytes = 0;
};

// Device scratch the launch needs (descriptors + the horizontally filtered rows).
StatusOr<size_t> PreprocessWorkspaceBytes(const PreprocessParams& p);

// Copies the descriptors into the workspace (cudaMemcpyAsync from host memory,
// staged before return) and launches the two passes.
Status Preprocess(const PreprocessParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
