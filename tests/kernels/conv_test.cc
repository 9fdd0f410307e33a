// Implicit-GEMM and depthwise convolution kernels vs the CPU references.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/conv.h"
#include "kernels/reference/reference.h"
#include "tests/kernels/gpu_test_util.h"

namespace lookalike {
namespace kernels {
namespace {

using testing::DeviceBuffer;

struct ConvCase {
  std::string name;
  int batch, h, w, cin, cout, k, stride, pad, pad_end;
  Activation act;
  bool residual;
};

ref::ConvShape RefShape(const ConvCase& c) {
  ref::ConvShape s;
  s.batch = c.batch;
  s.in_h = c.h;
  s.in_w = c.w;
  s.in_channels = c.cin;
  s.out_channels = c.cout;
  s.kernel_h = s.kernel_w = c.k;
  s.stride_h = s.stride_w = c.stride;
  s.pad_top = s.pad_left = c.pad;
  s.pad_bottom = s.pad_right = c.pad_end;
  return s;
}
ConvGeometry Geo(const ConvCase& c) {
  ConvGeometry g;
  g.batch = c.batch;
  g.in_h = c.h;
  g.in_w = c.w;
  g.in_channels = c.cin;
  g.out_channels = c.cout;
  g.kernel_h = g.kernel_w = c.k;
  g.stride_h = g.stride_w = c.stride;
  g.pad_top = g.pad_left = c.pad;
  g.pad_bottom = g.pad_right = c.pad_end;
  return g;
}

class ConvTest : public ::testing::TestWithParam<std::tuple<DType, ConvCase>> {};

TEST_P(ConvTest, MatchesReference) {
  LOOKALIKE_REQUIRE_GPU();
  const DType type = std::get<0>(GetParam());
  const ConvCase c = std::get<1>(GetParam());
  const ref::ConvShape s = RefShape(c);
  const int64_t k = static_cast<int64_t>(c.k) * c.k * c.cin;
  const int64_t ldw = ConvWeightRowStride(k);
  const float wscale = 1.f / std::sqrt(static_cast<float>(k));
  const auto x = testing::RandomValues(static_cast<size_t>(c.batch) * c.h * c.w * c.cin, type, 1);
  const auto w = testing::RandomValues(static_cast<size_t>(c.cout) * k, type, 2, -wscale, wscale);
  const auto bias = testing::RandomValues(c.cout, DType::kF32, 3);
  const size_t out_n = static_cast<size_t>(c.batch) * s.out_h() * s.out_w() * c.cout;
  const auto res = testing::RandomValues(out_n, type, 4);
  const auto w_ohwi = ConvWeightToOhwi(w.data(), c.cout, c.cin, c.k, c.k, ldw);

  DeviceBuffer d_x = testing::Upload(x, type), d_w = testing::Upload(w_ohwi, type),
               d_b = testing::Upload(bias, DType::kF32), d_r = testing::Upload(res, type);
  DeviceBuffer d_y = testing::Poisoned(out_n, type);
  ConvParams p;
  p.type = type;
  p.geo = Geo(c);
  p.input = d_x.get();
  p.weight = d_w.get();
  p.weight_row_stride = ldw;
  p.bias = static_cast<const float*>(d_b.get());
  p.residual = c.residual ? d_r.get() : nullptr;
  p.output = d_y.get();
  p.act = c.act;
  STATUS_ASSERT_OK(Conv2d(p, nullptr));
  CUDA_ASSERT_OK(cudaDeviceSynchronize());
  const auto got = testing::Download(d_y, out_n, type);
  std::vector<float> want(out_n);
  ref::Conv2dGemm(x.data(), w_ohwi.data(), ldw, bias.data(), c.residual ? res.data() : nullptr,
                  want.data(), s, c.act);
  EXPECT_TRUE(testing::AllClose(got, want, testing::DefaultTolerance(type))) << c.name;
}

std::vector<ConvCase> ConvCases() {
  return {
      {"pointwise_1x1", 2, 14, 14, 64, 72, 1, 1, 0, 0, Activation::kNone, false},
      {"pointwise_residual_relu", 1, 7, 7, 256, 64, 1, 1, 0, 0, Activation::kRelu, true},
      {"pointwise_stride2", 2, 14, 14, 32, 64, 1, 2, 0, 0, Activation::kNone, false},
      {"conv3x3", 2, 15, 13, 32, 48, 3, 1, 1, 1, Activation::kRelu, false},
      {"conv3x3_stride2", 1, 16, 16, 16, 40, 3, 2, 1, 1, Activation::kRelu6, false},
      {"conv3x3_same_stride2", 1, 17, 18, 24, 32, 3, 2, 0, 1, Activation::kRelu6, false},
      {"stem7x7_rgb", 1, 32, 30, 3, 64, 7, 2, 3, 3, Activation::kRelu, false},
      {"stem3x3_rgb_same", 2, 33, 33, 3, 32, 3, 2, 0, 1, Activation::kRelu6, false},
      {"patch16", 2, 64, 64, 3, 96, 16, 16, 0, 0, Activation::kNone, false},
      {"patch14", 1, 56, 56, 3, 64, 14, 14, 0, 0, Activation::kNone, false},
      {"patch32", 1, 64, 64, 3, 64, 32, 32, 0, 0, Activation::kNone, false},
      {"odd_cout_residual", 1, 9, 9, 16, 7, 3, 1, 1, 1, Activation::kNone, true},
  };
}

INSTANTIATE_TEST_SUITE_P(Sweep, ConvTest,
                         ::testing::Combine(::testing::Values(DType::kF16, DType::kBF16),
                                            ::testing::ValuesIn(ConvCases())),
                         [](const auto& info) {
                           return std::string(DTypeName(std::get<0>(info.param))) + "_" +
                                  std::get<1>(info.param).name;
                         });

class DepthwiseTest
    : public ::testing::TestWithParam<std::tuple<DType, int /*k*/, int /*stride*/, int /*c*/>> {};

TEST_P(DepthwiseTest, MatchesReference) {
  LOOKALIKE_REQUIRE_GPU();
  const auto [type, k, stride, ch] = GetParam();
  ConvCase c{"dw",
             2,
             15,
             14,
             ch,
             ch,
             k,
             stride,
             stride == 2 ? k / 2 - 1 : k / 2,
             k / 2,
             Activation::kRelu6,
             stride == 1};
  const ref::ConvShape s = RefShape(c);
  const auto x = testing::RandomValues(static_cast<size_t>(c.batch) * c.h * c.w * ch, type, 5);
  const auto w = testing::RandomValues(static_cast<size_t>(ch) * k * k, type, 6);
  const auto bias = testing::RandomValues(ch, DType::kF32, 7);
  const size_t out_n = static_cast<size_t>(c.batch) * s.out_h() * s.out_w() * ch;
  const auto res = testing::RandomValues(out_n, type, 8);
  const auto w_tap = DepthwiseWeightToTapMajor(w.data(), ch, k, k);
  DeviceBuffer d_x = testing::Upload(x, type), d_w = testing::Upload(w_tap, type),
               d_b = testing::Upload(bias, DType::kF32), d_r = testing::Upload(res, type);
  DeviceBuffer d_y = testing::Poisoned(out_n, type);
  DepthwiseParams p;
  p.type = type;
  p.geo = Geo(c);
  p.input = d_x.get();
  p.weight = d_w.get();
  p.bias = static_cast<const float*>(d_b.get());
  p.residual = c.residual ? d_r.get() : nullptr;
  p.output = d_y.get();
  p.act = c.act;
  STATUS_ASSERT_OK(DepthwiseConv2d(p, nullptr));
  CUDA_ASSERT_OK(cudaDeviceSynchronize());
  const auto got = testing::Download(d_y, out_n, type);
  std::vector<float> want(out_n);
  ref::DepthwiseConv2d(x.data(), w_tap.data(), bias.data(), c.residual ? res.data() : nullptr,
                       want.data(), s, c.act);
  EXPECT_TRUE(testing::AllClose(got, want, testing::DefaultTolerance(type)));
}

INSTANTIATE_TEST_SUITE_P(Sweep, DepthwiseTest,
                         ::testing::Combine(::testing::Values(DType::kF16, DType::kBF16),
                                            ::testing::Values(3, 5), ::testing::Values(1, 2),
                                            ::testing::Values(32, 12)));

TEST(ConvArgsTest, RejectsBadGeometry) {
  ConvParams p;
  p.geo.batch = 1;
  p.geo.in_h = 4;
  p.geo.in_w = 4;
  p.geo.in_channels = 8;
  p.geo.out_channels = 8;
  p.geo.kernel_h = p.geo.kernel_w = 7;  // larger than the 4x4 input, no padding
  p.weight_row_stride = 7 * 7 * 8;
  EXPECT_EQ(Conv2d(p, nullptr).code(), StatusCode::kInvalidArgument);
  p.geo.kernel_h = p.geo.kernel_w = 3;
  p.weight_row_stride = 20;  // < K = 72
  EXPECT_EQ(Conv2d(p, nullptr).code(), StatusCode::kInvalidArgument);
  DepthwiseParams d;
  d.geo = p.geo;
  d.geo.out_channels = 16;
  EXPECT_EQ(DepthwiseConv2d(d, nullptr).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kernels
}  // namespace lookalike
