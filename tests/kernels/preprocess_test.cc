// Batched GPU preprocessing vs the CPU reference (images of varied sizes).
#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "kernels/preprocess.h"
#include "kernels/reference/preprocess_ref.h"
#include "tests/kernels/gpu_test_util.h"

namespace lookalike {
namespace kernels {
namespace {

using testing::DeviceBuffer;

struct HostImage {
  int w, h, stride;
  std::vector<uint8_t> pixels;
};

// Smooth gradients plus noise: realistic enough for the filters, never constant.
HostImage MakeImage(int w, int h, int pad, uint32_t seed) {
  HostImage im{w, h, 3 * w + pad, {}};
  im.pixels.resize(static_cast<size_t>(im.stride) * h, 0);
  std::mt19937 rng(seed);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        const int v = (x * 255 / w + y * 127 / h + 60 * c + static_cast<int>(rng() % 40)) % 256;
        im.pixels[static_cast<size_t>(y) * im.stride + 3 * x + c] = static_cast<uint8_t>(v);
      }
  return im;
}

class PreprocessTest
    : public ::testing::TestWithParam<std::tuple<DType, bool /*bicubic*/, bool /*antialias*/>> {};

TEST_P(PreprocessTest, MatchesReference) {
  LOOKALIKE_REQUIRE_GPU();
  const auto [type, bicubic, antialias] = GetParam();
  const std::vector<HostImage> images = {MakeImage(500, 375, 0, 1), MakeImage(120, 260, 5, 2),
                                         MakeImage(64, 64, 0, 3), MakeImage(1001, 97, 3, 4),
                                         MakeImage(40, 30, 1, 5)};
  ref::PreprocessRefSpec spec;
  spec.resize_shorter = 72;
  spec.crop_h = 64;
  spec.crop_w = 56;
  spec.bicubic = bicubic;
  spec.antialias = antialias;
  std::vector<DeviceBuffer> srcs;
  std::vector<DeviceImage> descs;
  std::vector<float> want;
  for (const HostImage& im : images) {
    srcs.emplace_back(im.pixels.size());
    CUDA_ASSERT_OK(
        cudaMemcpy(srcs.back().get(), im.pixels.data(), im.pixels.size(), cudaMemcpyHostToDevice));
    descs.push_back({static_cast<const uint8_t*>(srcs.back().get()), im.w, im.h, im.stride});
    STATUS_ASSERT_OK(ref::Preprocess(im.pixels.data(), im.w, im.h, im.stride, spec, &want));
  }
  PreprocessParams p;
  p.type = type;
  p.images = descs.data();
  p.count = static_cast<int>(descs.size());
  p.resize_shorter = spec.resize_shorter;
  p.crop_h = spec.crop_h;
  p.crop_w = spec.crop_w;
  p.bicubic = bicubic;
  p.antialias = antialias;
  auto ws = PreprocessWorkspaceBytes(p);
  ASSERT_TRUE(ws.ok()) << ws.status().ToString();
  DeviceBuffer workspace(*ws);
  DeviceBuffer out = testing::Poisoned(want.size(), type);
  p.workspace = workspace.get();
  p.workspace_bytes = *ws;
  p.output = out.get();
  STATUS_ASSERT_OK(Preprocess(p, nullptr));
  CUDA_ASSERT_OK(cudaDeviceSynchronize());
  const auto got = testing::Download(out, want.size(), type);
  // Each uint8 rounding may flip at an exact .5 tie (float summation order):
  // at most one step (1/255/std = 0.0175) per channel, on few pixels.
  const testing::Tolerance tol = testing::DefaultTolerance(type);
  size_t off_by_step = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float err = std::fabs(got[i] - want[i]);
    ASSERT_LE(err, 1.01f / (255.f * 0.224f) + tol.atol + tol.rtol * std::fabs(want[i]))
        << "element " << i << " got " << got[i] << " want " << want[i];
    if (err > tol.atol + tol.rtol * std::fabs(want[i])) ++off_by_step;
  }
  EXPECT_LE(off_by_step, got.size() / 100) << "pixels one uint8 step off";
}

INSTANTIATE_TEST_SUITE_P(Sweep, PreprocessTest,
                         ::testing::Combine(::testing::Values(DType::kF16, DType::kBF16,
                                                              DType::kF32),
                                            ::testing::Bool(), ::testing::Bool()));

TEST(PreprocessArgsTest, RejectsImagesSmallerThanTheCrop) {
  DeviceImage im{reinterpret_cast<const uint8_t*>(16), 10, 10, 30};
  PreprocessParams p;
  p.images = &im;
  p.count = 1;
  p.resize_shorter = 100;
  p.crop_h = p.crop_w = 224;
  auto ws = PreprocessWorkspaceBytes(p);
  EXPECT_EQ(ws.status().code(), StatusCode::kInvalidArgument);
  im.stride_bytes = 5;  // < 3 * width
  p.crop_h = p.crop_w = 50;
  EXPECT_EQ(PreprocessWorkspaceBytes(p).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kernels
}  // namespace lookalike
