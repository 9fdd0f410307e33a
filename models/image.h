// Decoded images and the preprocessing spec: what Backend::Preprocess and the
// Embedder take, and the one check of an image view.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace lookalike {

// A decoded 8-bit RGB image, interleaved, rows `stride_bytes` apart (>= 3*width).
// Not owned.
struct ImageView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int stride_bytes = 0;
};

// The one check of an ImageView, used by the Embedder, Backend::Preprocess
// and the CPU preprocessing (models/cpu/preprocess.h): data non-null, width
// and height positive, 3 * width representable, stride_bytes >= 3 * width.
// INVALID_ARGUMENT naming the field; callers prefix which image it is.
Status CheckImage(const ImageView& image);

enum class Interpolation { kBilinear, kBicubic };

// The reference preprocessing (torchvision/timm eval transform):
// resize so the shorter side is `resize_shorter` (aspect kept; antialiased when
// downscaling, as torchvision's antialias=True / PIL do), center crop
// `crop_height` x `crop_width`, scale to [0,1], subtract mean, divide by std.
struct PreprocessSpec {
  int resize_shorter = 256;
  int crop_height = 224;
  int crop_width = 224;
  Interpolation interpolation = Interpolation::kBilinear;
  bool antialias = true;
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
};

// Positive sizes, finite mean / std with nonzero std. INVALID_ARGUMENT naming
// the field.
Status CheckPreprocessSpec(const PreprocessSpec& spec);

}  // namespace lookalike
