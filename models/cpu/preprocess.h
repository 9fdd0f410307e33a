// CPU image preprocessing: the reference eval transform, reproduced from a
// decoded 8-bit RGB image.
//
// Pipeline (torchvision transforms on a PIL image, as timm / torchvision eval
// scripts do it):
//   1. Resize(resize_shorter): the shorter side becomes `resize_shorter`, the
//      longer side int(resize_shorter * long / short) (torchvision's rule).
//      Resampling is PIL's Image.resize on uint8 RGB: separable bilinear
//      (triangle, support 1) or bicubic (a = -0.5, support 2) filter whose
//      support is scaled by the downscale factor (antialiasing), coefficients
//      in 22-bit fixed point, horizontal pass first into an 8-bit intermediate,
//      then the vertical pass, each rounded and clamped to uint8. This file
//      reimplements that arithmetic, so results match PIL bit for bit on the
//      same input (the test checks against PIL itself).
//      With spec.antialias = false the filter support is not scaled (for
//      bilinear this is the half-pixel-centre two-tap rule of
//      torch.nn.functional.interpolate without antialiasing).
//   2. CenterCrop(crop_height, crop_width): top = round((h - crop_h) / 2),
//      left = round((w - crop_w) / 2) with Python's round-half-to-even; when the
//      crop is larger than the image, the image is zero-padded first as
//      torchvision does ((crop - size) // 2 before).
//   3. ToTensor + Normalize: v = (float(u) / 255 - mean[c]) / std[c] in fp32.
// Output: NHWC fp32, {crop_height, crop_width, 3} per image.
//
// Only the pixels that survive the crop are resampled (each output pixel
// depends only on its own filter taps, so this is exact, not an approximation).
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "models/image.h"

namespace lookalike {

// torchvision Resize(int) output size for a width x height image.
void ResizedSize(int width, int height, int resize_shorter, int* out_width, int* out_height);

// One image -> `out` (crop_height * crop_width * 3 floats, NHWC). Checks the
// image (CheckImage) and the spec (CheckPreprocessSpec) first.
Status PreprocessImage(const ImageView& image, const PreprocessSpec& spec, float* out);
// The same for arguments that passed CheckImage and CheckPreprocessSpec
// (Backend::Preprocess checked them).
void PreprocessCheckedImage(const ImageView& image, const PreprocessSpec& spec, float* out);

// PIL-compatible uint8 resize of a whole RGB image to out_width x out_height
// (spec-free building block, used by the tests and by PreprocessImage).
// `out` is resized to out_height * out_width * 3 (packed rows).
Status ResizeRgb8(const ImageView& image, int out_width, int out_height,
                  Interpolation interpolation, bool antialias, std::vector<uint8_t>* out);

}  // namespace lookalike
