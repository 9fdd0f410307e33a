// CPU reference of the GPU preprocessing (kernels/preprocess.h): resize the
// shorter side with PIL's separable antialiased filters (horizontal pass then
// vertical pass, each rounded to uint8), center crop, normalize. Plain C++,
// computed on the whole resized image, then cropped (the straightforward way
// the kernel's crop-only evaluation must agree with).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"

namespace lookalike {
namespace kernels {
namespace ref {

struct ResizePlan {
  int resized_w = 0, resized_h = 0;  // after the shorter-side resize
  int crop_left = 0, crop_top = 0;   // in resized coordinates
};
// torchvision Resize(int) + CenterCrop arithmetic. INVALID_ARGUMENT when a size
// is not positive or the resized image is smaller than the crop.
StatusOr<ResizePlan> PlanResize(int width, int height, int resize_shorter, int crop_w, int crop_h);

// PIL's filters: triangle (support 1) and cubic a = -0.5 (support 2).
float ResampleFilter(float x, bool bicubic);

// Resamples an interleaved uint8 RGB image to out_w x out_h (PIL ImagingResample
// semantics, float weights normalized by their sum, rounding to uint8 after
// each pass).
std::vector<uint8_t> ResizeRgb(const uint8_t* src, int width, int height, int stride_bytes,
                               int out_w, int out_h, bool bicubic, bool antialias);

struct PreprocessRefSpec {
  int resize_shorter = 256;
  int crop_h = 224, crop_w = 224;
  bool bicubic = false;
  bool antialias = true;
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
};
// One image -> {crop_h, crop_w, 3} fp32 normalized, appended to *out.
Status Preprocess(const uint8_t* src, int width, int height, int stride_bytes,
                  const PreprocessRefSpec& spec, std::vector<float>* out);

}  // namespace ref
}  // namespace kernels
}  // namespace lookalike
