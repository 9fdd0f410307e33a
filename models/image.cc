#include "models/image.h"

#include <climits>
#include <cmath>
#include <string>

namespace lookalike {

Status CheckImage(const ImageView& image) {
  if (image.data == nullptr) return InvalidArgumentError("image data is null");
  if (image.width <= 0 || image.height <= 0) {
    return InvalidArgumentError("image size " + std::to_string(image.width) + "x" +
                                std::to_string(image.height) + " is not positive");
  }
  if (image.width > INT_MAX / 3) {
    return InvalidArgumentError("image width " + std::to_string(image.width) + " is too large");
  }
  if (image.stride_bytes < 3 * image.width) {
    return InvalidArgumentError("image stride_bytes " + std::to_string(image.stride_bytes) +
                                " is less than 3 * width = " + std::to_string(3 * image.width));
  }
  return Status::Ok();
}

Status CheckPreprocessSpec(const PreprocessSpec& spec) {
  if (spec.resize_shorter <= 0 || spec.crop_height <= 0 || spec.crop_width <= 0) {
    return InvalidArgumentError("preprocess spec: resize_shorter " +
                                std::to_string(spec.resize_shorter) + ", crop " +
                                std::to_string(spec.crop_height) + "x" +
                                std::to_string(spec.crop_width) + " must be positive");
  }
  for (int c = 0; c < 3; ++c) {
    if (!(spec.std[c] != 0.0f) || !std::isfinite(spec.std[c]) || !std::isfinite(spec.mean[c])) {
      return InvalidArgumentError("preprocess spec: mean/std channel " + std::to_string(c) +
                                  " must be finite with nonzero std");
    }
  }
  return Status::Ok();
}

}  // namespace lookalike
