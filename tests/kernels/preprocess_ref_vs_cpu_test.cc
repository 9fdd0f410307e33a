// The preprocessing reference the GPU kernel is tested against
// (kernels/reference/preprocess_ref.h, float filter weights) against the CPU
// backend's PIL-exact implementation (models/cpu/preprocess.h, 22-bit
// fixed-point weights as PIL). Runs on the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/reference/preprocess_ref.h"
#include "models/cpu/preprocess.h"

namespace lookalike {
namespace {

TEST(PreprocessRefVsCpuTest, AgreeWithinOneUint8Step) {
  struct Size {
    int w, h;
  };
  std::mt19937 rng(12);
  size_t total = 0, off = 0;
  for (const Size sz :
       {Size{500, 375}, Size{375, 500}, Size{224, 224}, Size{1000, 300}, Size{97, 131}}) {
    std::vector<uint8_t> img(static_cast<size_t>(sz.w) * sz.h * 3);
    for (int y = 0; y < sz.h; ++y)
      for (int x = 0; x < sz.w; ++x)
        for (int c = 0; c < 3; ++c)
          img[(static_cast<size_t>(y) * sz.w + x) * 3 + c] =
              static_cast<uint8_t>((x * 3 + y * 2 + 70 * c + rng() % 60) % 256);
    for (bool bicubic : {false, true}) {
      for (bool antialias : {true, false}) {
        PreprocessSpec spec;
        spec.resize_shorter = 96;
        spec.crop_height = 80;
        spec.crop_width = 88;
        spec.interpolation = bicubic ? Interpolation::kBicubic : Interpolation::kBilinear;
        spec.antialias = antialias;
        kernels::ref::PreprocessRefSpec rs;
        rs.resize_shorter = spec.resize_shorter;
        rs.crop_h = spec.crop_height;
        rs.crop_w = spec.crop_width;
        rs.bicubic = bicubic;
        rs.antialias = antialias;
        std::vector<float> cpu(static_cast<size_t>(spec.crop_height) * spec.crop_width * 3);
        const ImageView view{img.data(), sz.w, sz.h, 3 * sz.w};
        ASSERT_TRUE(PreprocessImage(view, spec, cpu.data()).ok());
        std::vector<float> mine;
        ASSERT_TRUE(kernels::ref::Preprocess(img.data(), sz.w, sz.h, 3 * sz.w, rs, &mine).ok());
        ASSERT_EQ(mine.size(), cpu.size());
        for (size_t i = 0; i < cpu.size(); ++i) {
          const float step = 1.f / (255.f * rs.std[i % 3]);
          const float err = std::fabs(mine[i] - cpu[i]);
          ASSERT_LE(err, 1.01f * step) << sz.w << "x" << sz.h << " bicubic " << bicubic
                                       << " antialias " << antialias << " element " << i;
          if (err > 1e-5f) ++off;
        }
        total += cpu.size();
      }
    }
  }
  // Float vs fixed-point weights flip a rounding only near exact ties.
  EXPECT_LE(off, total / 100) << off << " of " << total << " values one uint8 step apart";
  std::printf("[preprocess ref vs cpu] %zu of %zu values one uint8 step apart\n", off, total);
}

}  // namespace
}  // namespace lookalike
