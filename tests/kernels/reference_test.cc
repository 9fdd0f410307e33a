// The CPU references checked against naive formulations (runs without a GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/reference/preprocess_ref.h"
#include "kernels/reference/reference.h"
#include "kernels/weight_layout.h"

namespace lookalike {
namespace kernels {
namespace ref {
namespace {

std::vector<float> Random(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// softmax(Q K^T * scale) V per head, in double, from explicit matrices.
std::vector<double> NaiveAttention(const std::vector<float>& qkv, int batch, int seq, int heads,
                                   int hd, double scale) {
  const int dim = heads * hd;
  std::vector<double> out(static_cast<size_t>(batch) * seq * dim);
  for (int n = 0; n < batch; ++n)
    for (int h = 0; h < heads; ++h) {
      auto at = [&](int t, int part, int d) {
        return static_cast<double>(
            qkv[(static_cast<size_t>(n) * seq + t) * 3 * dim + part * dim + h * hd + d]);
      };
      std::vector<double> s(static_cast<size_t>(seq) * seq);
      for (int i = 0; i < seq; ++i)
        for (int j = 0; j < seq; ++j) {
          double acc = 0;
          for (int d = 0; d < hd; ++d) acc += at(i, 0, d) * at(j, 1, d);
          s[i * seq + j] = acc * scale;
        }
      for (int i = 0; i < seq; ++i) {
        double sum = 0;
        for (int j = 0; j < seq; ++j) sum += std::exp(s[i * seq + j]);
        for (int d = 0; d < hd; ++d) {
          double acc = 0;
          for (int j = 0; j < seq; ++j) acc += std::exp(s[i * seq + j]) / sum * at(j, 2, d);
          out[(static_cast<size_t>(n) * seq + i) * dim + h * hd + d] = acc;
        }
      }
    }
  return out;
}

TEST(ReferenceAttentionTest, MatchesExplicitSoftmaxInDouble) {
  struct Case {
    int batch, seq, heads, hd;
  };
  for (const Case c : {Case{1, 5, 1, 64}, Case{2, 50, 3, 80}, Case{1, 67, 2, 128}}) {
    const int dim = c.heads * c.hd;
    // Range 3 gives peaked softmaxes (max-subtraction matters).
    const auto qkv = Random(static_cast<size_t>(c.batch) * c.seq * 3 * dim, 11, -3.f, 3.f);
    std::vector<float> out(static_cast<size_t>(c.batch) * c.seq * dim, NAN);
    const float scale = 1.f / std::sqrt(static_cast<float>(c.hd));
    Attention(qkv.data(), out.data(), c.batch, c.seq, c.heads, c.hd, scale);
    const auto want = NaiveAttention(qkv, c.batch, c.seq, c.heads, c.hd, scale);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], want[i], 2e-5) << "at " << i;
  }
}

// Direct 7-loop convolution over PyTorch OIHW weights, NHWC activations.
std::vector<float> DirectConv(const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& bias, const ConvShape& s) {
  const int oh = s.out_h(), ow = s.out_w();
  std::vector<float> y(static_cast<size_t>(s.batch) * oh * ow * s.out_channels);
  for (int n = 0; n < s.batch; ++n)
    for (int o = 0; o < s.out_channels; ++o)
      for (int ho = 0; ho < oh; ++ho)
        for (int wo = 0; wo < ow; ++wo) {
          double acc = bias[o];
          for (int c = 0; c < s.in_channels; ++c)
            for (int r = 0; r < s.kernel_h; ++r)
              for (int q = 0; q < s.kernel_w; ++q) {
                const int hi = ho * s.stride_h - s.pad_top + r;
                const int wi = wo * s.stride_w - s.pad_left + q;
                if (hi < 0 || hi >= s.in_h || wi < 0 || wi >= s.in_w) continue;
                acc +=
                    static_cast<double>(
                        x[((static_cast<size_t>(n) * s.in_h + hi) * s.in_w + wi) * s.in_channels +
                          c]) *
                    w[((static_cast<size_t>(o) * s.in_channels + c) * s.kernel_h + r) * s.kernel_w +
                      q];
              }
          y[((static_cast<size_t>(n) * oh + ho) * ow + wo) * s.out_channels + o] =
              static_cast<float>(acc);
        }
  return y;
}

ConvShape Shape(int batch, int h, int w, int cin, int cout, int k, int stride, int pad,
                int pad_end) {
  ConvShape s;
  s.batch = batch;
  s.in_h = h;
  s.in_w = w;
  s.in_channels = cin;
  s.out_channels = cout;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.pad_top = s.pad_left = pad;
  s.pad_bottom = s.pad_right = pad_end;
  return s;
}

TEST(ReferenceConvTest, ImplicitGemmMatchesDirectConv) {
  const ConvShape shapes[] = {
      Shape(2, 7, 9, 8, 5, 1, 1, 0, 0),     // 1x1
      Shape(1, 9, 8, 6, 4, 3, 1, 1, 1),     // 3x3 same
      Shape(1, 10, 11, 3, 4, 3, 2, 0, 1),   // TF "SAME" stride 2: pad only at the end
      Shape(1, 15, 13, 3, 8, 7, 2, 3, 3),   // ResNet stem
      Shape(2, 32, 32, 3, 6, 16, 16, 0, 0)  // patch embedding
  };
  uint32_t seed = 1;
  for (const ConvShape& s : shapes) {
    const auto x = Random(static_cast<size_t>(s.batch) * s.in_h * s.in_w * s.in_channels, seed++);
    const auto w = Random(
        static_cast<size_t>(s.out_channels) * s.in_channels * s.kernel_h * s.kernel_w, seed++);
    const auto b = Random(s.out_channels, seed++);
    const int64_t k = static_cast<int64_t>(s.kernel_h) * s.kernel_w * s.in_channels;
    const int64_t stride = (k + 7) / 8 * 8;
    const auto w_ohwi =
        ConvWeightToOhwi(w.data(), s.out_channels, s.in_channels, s.kernel_h, s.kernel_w, stride);
    std::vector<float> y(static_cast<size_t>(s.batch) * s.out_h() * s.out_w() * s.out_channels,
                         NAN);
    Conv2dGemm(x.data(), w_ohwi.data(), stride, b.data(), nullptr, y.data(), s, Activation::kNone);
    const auto want = DirectConv(x, w, b, s);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], want[i], 1e-4) << "at " << i;
    // Fused residual + ReLU == relu(conv + residual).
    const auto res = Random(y.size(), seed++);
    Conv2dGemm(x.data(), w_ohwi.data(), stride, b.data(), res.data(), y.data(), s,
               Activation::kRelu);
    for (size_t i = 0; i < y.size(); ++i) {
      ASSERT_NEAR(y[i], std::max(want[i] + res[i], 0.f), 1e-4) << "at " << i;
    }
  }
}

TEST(ReferenceConvTest, DepthwiseMatchesGroupedDirectConv) {
  for (int k : {3, 5}) {
    for (int stride : {1, 2}) {
      // Stride 2 uses TF "SAME" padding: one less at the top/left than at the end.
      ConvShape s = Shape(2, 9, 10, 12, 12, k, stride, stride == 2 ? k / 2 - 1 : k / 2, k / 2);
      const int c = s.in_channels;
      const auto x = Random(static_cast<size_t>(s.batch) * s.in_h * s.in_w * c, 3);
      const auto w = Random(static_cast<size_t>(c) * k * k, 4);  // {C, 1, k, k}
      const auto b = Random(c, 5);
      // Grouped conv as a dense conv with a block-diagonal weight.
      std::vector<float> dense(static_cast<size_t>(c) * c * k * k, 0.f);
      for (int o = 0; o < c; ++o)
        for (int t = 0; t < k * k; ++t)
          dense[(static_cast<size_t>(o) * c + o) * k * k + t] = w[o * k * k + t];
      const auto want = DirectConv(x, dense, b, s);
      const auto w_tap = DepthwiseWeightToTapMajor(w.data(), c, k, k);
      std::vector<float> y(want.size(), NAN);
      DepthwiseConv2d(x.data(), w_tap.data(), b.data(), nullptr, y.data(), s, Activation::kRelu6);
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], std::min(std::max(want[i], 0.f), 6.f), 1e-5) << "k " << k << " at " << i;
      }
    }
  }
}

TEST(ReferenceOpsTest, ActivationsMatchFormulas) {
  EXPECT_NEAR(ApplyActivation(1.f, Activation::kGelu), 0.8413447f, 1e-6);
  EXPECT_NEAR(ApplyActivation(-1.f, Activation::kGelu), -0.1586553f, 1e-6);
  EXPECT_NEAR(ApplyActivation(1.f, Activation::kGeluTanh), 0.8411920f, 1e-6);
  EXPECT_NEAR(ApplyActivation(1.f, Activation::kQuickGelu), 1.f / (1.f + std::exp(-1.702f)), 1e-6);
  EXPECT_EQ(ApplyActivation(7.f, Activation::kRelu6), 6.f);
  EXPECT_EQ(ApplyActivation(-7.f, Activation::kRelu), 0.f);
  EXPECT_NEAR(ApplyActivation(1.f, Activation::kHardSwish), 4.f / 6.f, 1e-6);
  EXPECT_EQ(ApplyActivation(-3.5f, Activation::kHardSwish), 0.f);
  EXPECT_EQ(ApplyActivation(3.5f, Activation::kHardSwish), 3.5f);
  EXPECT_NEAR(ApplyActivation(1.f, Activation::kHardSigmoid), 4.f / 6.f, 1e-6);
  EXPECT_EQ(ApplyActivation(4.f, Activation::kHardSigmoid), 1.f);
}

TEST(ReferenceOpsTest, LayerNormHasZeroMeanUnitVariance) {
  const int rows = 3, dim = 77;
  auto x = Random(rows * dim, 9, -5.f, 9.f);
  std::vector<float> g(dim, 1.f), b(dim, 0.f), y(rows * dim);
  LayerNorm(x.data(), y.data(), g.data(), b.data(), rows, dim, 0.f);
  for (int r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int i = 0; i < dim; ++i) m += y[r * dim + i];
    m /= dim;
    for (int i = 0; i < dim; ++i) v += (y[r * dim + i] - m) * (y[r * dim + i] - m);
    EXPECT_NEAR(m, 0.0, 1e-5);
    EXPECT_NEAR(v / dim, 1.0, 1e-4);
  }
}

TEST(ReferenceOpsTest, PoolsAndTokens) {
  // 1 x 2 x 2 x 1 max pool 3 stride 2 pad 1 -> single output = max of all.
  const std::vector<float> x = {1.f, -4.f, 3.f, 2.f};
  std::vector<float> y(1);
  MaxPool2d(x.data(), y.data(), 1, 2, 2, 1, 3, 2, 1);
  EXPECT_EQ(y[0], 3.f);
  MeanPool(x.data(), y.data(), 1, 4, 1, 1);  // tokens 1..3
  EXPECT_FLOAT_EQ(y[0], (-4.f + 3.f + 2.f) / 3.f);
  SelectToken(x.data(), y.data(), 1, 4, 1, 2);
  EXPECT_EQ(y[0], 3.f);
  // prefix 1 + 2 patches, dim 1, pos over the patches only.
  const std::vector<float> patches = {10.f, 20.f}, cls = {5.f}, pos = {1.f, 2.f};
  std::vector<float> out(3);
  PrependTokensAddPos(patches.data(), cls.data(), pos.data(), out.data(), 1, 2, 1, 1, false);
  EXPECT_EQ(out, (std::vector<float>{5.f, 11.f, 22.f}));
  const std::vector<float> v = {3.f, 4.f};
  std::vector<float> n(2);
  L2Normalize(v.data(), n.data(), 1, 2, 1e-12f);
  EXPECT_FLOAT_EQ(n[0], 0.6f);
  EXPECT_FLOAT_EQ(n[1], 0.8f);
}

TEST(ReferenceOpsTest, LinearMatchesExplicitDot) {
  const int rows = 4, in = 6, out = 3;
  const auto x = Random(rows * in, 1), w = Random(out * in, 2), b = Random(out, 3),
             r = Random(rows * out, 4);
  std::vector<float> y(rows * out);
  Linear(x.data(), w.data(), b.data(), r.data(), y.data(), rows, in, out, Activation::kGelu);
  for (int i = 0; i < rows; ++i)
    for (int o = 0; o < out; ++o) {
      double acc = b[o];
      for (int k = 0; k < in; ++k) acc += x[i * in + k] * w[o * in + k];
      const double g = 0.5 * acc * (1 + std::erf(acc / std::sqrt(2.0)));
      EXPECT_NEAR(y[i * out + o], g + r[i * out + o], 1e-5);
    }
}

TEST(ReferencePreprocessTest, PlanFollowsTorchvision) {
  auto p = PlanResize(500, 375, 256, 224, 224);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->resized_h, 256);
  EXPECT_EQ(p->resized_w, 341);  // int(256 * 500 / 375) = int(341.33)
  EXPECT_EQ(p->crop_top, 16);
  EXPECT_EQ(p->crop_left, 58);  // round(58.5) = 58 (half to even)
  auto q = PlanResize(375, 500, 256, 224, 224);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->resized_w, 256);
  EXPECT_EQ(q->resized_h, 341);
  EXPECT_EQ(q->crop_top, 58);
  EXPECT_FALSE(PlanResize(0, 10, 256, 224, 224).ok());
  EXPECT_EQ(PlanResize(100, 100, 200, 224, 224).status().code(), StatusCode::kInvalidArgument);
}

TEST(ReferencePreprocessTest, HalvingBilinearUsesTheScaledTriangle) {
  // Antialiased bilinear 2x downscale: support 2, taps 1/8 3/8 3/8 1/8 in the
  // interior (PIL's triangle filter stretched by the scale).
  const int w = 16, h = 1, ow = 8;
  std::vector<uint8_t> img(w * 3);
  for (int x = 0; x < w; ++x)
    for (int c = 0; c < 3; ++c) img[x * 3 + c] = static_cast<uint8_t>(13 * x + 50 * c);
  const auto out = ResizeRgb(img.data(), w, h, w * 3, ow, 1, false, true);
  for (int x = 1; x < ow - 1; ++x)
    for (int c = 0; c < 3; ++c) {
      const float want = (img[(2 * x - 1) * 3 + c] + 3.f * img[2 * x * 3 + c] +
                          3.f * img[(2 * x + 1) * 3 + c] + img[(2 * x + 2) * 3 + c]) /
                         8.f;
      EXPECT_EQ(out[x * 3 + c], static_cast<uint8_t>(std::floor(want + 0.5f))) << x;
    }
  // Without antialiasing the 2x bilinear is the mean of the two nearest pixels.
  const auto plain = ResizeRgb(img.data(), w, h, w * 3, ow, 1, false, false);
  for (int x = 0; x < ow; ++x) {
    const float want = (img[2 * x * 3] + img[(2 * x + 1) * 3]) / 2.f;
    EXPECT_EQ(plain[x * 3], static_cast<uint8_t>(std::floor(want + 0.5f))) << x;
  }
}

TEST(ReferencePreprocessTest, SameSizeIsIdentityAndConstantsStayConstant) {
  const int w = 9, h = 7;
  std::vector<uint8_t> img(w * h * 3);
  std::mt19937 rng(3);
  for (auto& v : img) v = static_cast<uint8_t>(rng() % 256);
  for (bool bicubic : {false, true}) {
    EXPECT_EQ(ResizeRgb(img.data(), w, h, w * 3, w, h, bicubic, true), img);
  }
  std::vector<uint8_t> flat(40 * 30 * 3, 77);
  for (bool bicubic : {false, true}) {
    for (uint8_t v : ResizeRgb(flat.data(), 40, 30, 120, 13, 11, bicubic, true)) ASSERT_EQ(v, 77);
  }
  PreprocessRefSpec spec;
  spec.resize_shorter = 11;
  spec.crop_h = spec.crop_w = 10;
  std::vector<float> out;
  ASSERT_TRUE(Preprocess(flat.data(), 40, 30, 120, spec, &out).ok());
  ASSERT_EQ(out.size(), 10u * 10 * 3);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(out[c], (77 / 255.f - spec.mean[c]) / spec.std[c], 1e-6);
}

}  // namespace
}  // namespace ref
}  // namespace kernels
}  // namespace lookalike
