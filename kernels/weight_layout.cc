#include "kernels/weight_layout.h"

namespace lookalike {
namespace kernels {

std::vector<float> ConvWeightToOhwi(const float* w, int out_channels, int in_channels, int kernel_h,
                                    int kernel_w, int64_t row_stride) {
  std::vector<float> out(static_cast<size_t>(out_channels) * row_stride, 0.f);
  for (int o = 0; o < out_channels; ++o)
    for (int c = 0; c < in_channels; ++c)
      for (int r = 0; r < kernel_h; ++r)
        for (int q = 0; q < kernel_w; ++q) {
          const float v =
              w[((static_cast<int64_t>(o) * in_channels + c) * kernel_h + r) * kernel_w + q];
          out[o * row_stride + (r * kernel_w + q) * in_channels + c] = v;
        }
  return out;
}

std::vector<float> DepthwiseWeightToTapMajor(const float* w, int channels, int kernel_h,
                                             int kernel_w) {
  const int taps = kernel_h * kernel_w;
  std::vector<float> out(static_cast<size_t>(taps) * channels);
  for (int c = 0; c < channels; ++c)
    for (int t = 0; t < taps; ++t)
      out[static_cast<size_t>(t) * channels + c] = w[static_cast<int64_t>(c) * taps + t];
  return out;
}

}  // namespace kernels
}  // namespace lookalike
