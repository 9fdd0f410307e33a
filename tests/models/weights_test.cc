#include "models/weights.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"

namespace lookalike {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/weights_test_" + std::to_string(::getpid()) + "_" + name;
}

std::vector<float> Random(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::unique_ptr<WeightStore> Store(const std::string& name,
                                   const std::vector<SafeTensorToWrite>& tensors) {
  const std::string path = TempPath(name);
  EXPECT_TRUE(WriteSafetensors(path, tensors).ok());
  auto store = WeightStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(*store) : nullptr;
}

TEST(WeightStoreTest, GetChecksShapes) {
  auto store =
      Store("shapes.safetensors", {MakeF32Tensor("layer.weight", {2, 3}, {1, 2, 3, 4, 5, 6}),
                                   MakeF32Tensor("layer.bias", {2}, {7, 8})});
  ASSERT_NE(store, nullptr);
  auto w = store->Get("layer.weight", {2, 3});
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (std::vector<float>{1, 2, 3, 4, 5, 6}));

  auto missing = store->Get("layer2.weight", {4, 3, 3, 3});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find(
                "missing tensor 'layer2.weight' (expected shape [4, 3, 3, 3])"),
            std::string::npos)
      << missing.status().ToString();
  EXPECT_NE(missing.status().message().find(store->path()), std::string::npos);

  auto misshaped = store->Get("layer.bias", {3});
  ASSERT_FALSE(misshaped.ok());
  EXPECT_NE(misshaped.status().message().find("tensor 'layer.bias' has shape [2], expected [3]"),
            std::string::npos)
      << misshaped.status().ToString();

  std::vector<int64_t> shape;
  auto any = store->GetAnyShape("layer.weight", {-1, 3}, &shape);
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(shape, (std::vector<int64_t>{2, 3}));
  auto any_bad = store->GetAnyShape("layer.weight", {-1, 4}, &shape);
  ASSERT_FALSE(any_bad.ok());
  EXPECT_NE(any_bad.status().message().find("has shape [2, 3], expected [*, 4]"), std::string::npos)
      << any_bad.status().ToString();
}

TEST(WeightStoreTest, ConvertsHalfPrecisionOnRead) {
  SafeTensorToWrite h{"h", SafeDType::kF16, {2}, {}};
  SafeTensorToWrite b{"b", SafeDType::kBF16, {2}, {}};
  for (float v : {1.5f, -0.25f}) {
    h.bytes.push_back(FloatToHalf(v) & 0xff);
    h.bytes.push_back(FloatToHalf(v) >> 8);
    b.bytes.push_back(FloatToBf16(v) & 0xff);
    b.bytes.push_back(FloatToBf16(v) >> 8);
  }
  auto store = Store("half.safetensors", {h, b});
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(*store->Get("h", {2}), (std::vector<float>{1.5f, -0.25f}));
  EXPECT_EQ(*store->Get("b", {2}), (std::vector<float>{1.5f, -0.25f}));
}

TEST(WeightStoreTest, UnusedTensorsListedInOneError) {
  auto store = Store("unused.safetensors",
                     {MakeF32Tensor("used", {1}, {1}), MakeF32Tensor("extra.a", {1}, {1}),
                      MakeF32Tensor("extra.b", {1}, {1}), MakeF32Tensor("fc.weight", {1}, {1}),
                      MakeF32Tensor("bn.num_batches_tracked", {1}, {1})});
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Get("used", {1}).ok());
  Status s = store->CheckAllUsed({"fc.*", "*.num_batches_tracked"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("2 unexpected tensor(s) not used by the model: 'extra.a', 'extra.b'"),
            std::string::npos)
      << s.ToString();
  EXPECT_EQ(s.message().find("fc.weight"), std::string::npos);
  EXPECT_TRUE(store->CheckAllUsed({"fc.*", "*.num_batches_tracked", "extra.*"}).ok());
}

TEST(WeightStoreTest, GlobMatch) {
  EXPECT_TRUE(GlobMatch("fc.*", "fc.weight"));
  EXPECT_FALSE(GlobMatch("fc.*", "xfc.weight"));
  EXPECT_TRUE(GlobMatch("*.num_batches_tracked", "layer1.0.bn1.num_batches_tracked"));
  EXPECT_TRUE(GlobMatch("head.*", "head.weight"));
  EXPECT_FALSE(GlobMatch("head.*", "blocks.0.head.weight"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY"));
  EXPECT_TRUE(GlobMatch("exact", "exact"));
  EXPECT_FALSE(GlobMatch("exact", "exact2"));
}

// Direct conv (NCHW, one image) for the folding check.
std::vector<float> Conv(const std::vector<float>& x, int c_in, int h, int w,
                        const std::vector<float>& weight, const std::vector<float>& bias, int c_out,
                        int k, int pad) {
  std::vector<float> y(static_cast<size_t>(c_out) * h * w);
  for (int o = 0; o < c_out; ++o)
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j) {
        double acc = bias.empty() ? 0.0 : bias[o];
        for (int c = 0; c < c_in; ++c)
          for (int di = 0; di < k; ++di)
            for (int dj = 0; dj < k; ++dj) {
              const int yi = i + di - pad, xj = j + dj - pad;
              if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
              acc += static_cast<double>(weight[((o * c_in + c) * k + di) * k + dj]) *
                     x[(c * h + yi) * w + xj];
            }
        y[(o * h + i) * w + j] = static_cast<float>(acc);
      }
  return y;
}

TEST(BatchNormFoldTest, FoldedConvMatchesConvThenBatchNorm) {
  std::mt19937 rng(7);
  const int c_in = 3, c_out = 5, k = 3, h = 6, w = 7;
  const float eps = 1e-3f;
  const auto weight = Random(c_out * c_in * k * k, rng);
  const auto conv_bias = Random(c_out, rng);
  const auto gamma = Random(c_out, rng, 0.5f, 1.5f);
  const auto beta = Random(c_out, rng);
  const auto mean = Random(c_out, rng);
  const auto var = Random(c_out, rng, 0.01f, 2.0f);
  const auto x = Random(c_in * h * w, rng);

  // Reference: conv with bias, then eval BatchNorm.
  std::vector<float> ref = Conv(x, c_in, h, w, weight, conv_bias, c_out, k, 1);
  for (int o = 0; o < c_out; ++o)
    for (int p = 0; p < h * w; ++p) {
      float& v = ref[o * h * w + p];
      v = (v - mean[o]) / std::sqrt(var[o] + eps) * gamma[o] + beta[o];
    }

  for (bool with_bias : {true, false}) {
    std::vector<float> wf = weight, bf = with_bias ? conv_bias : std::vector<float>();
    FoldBatchNorm(c_out, gamma, beta, mean, var, eps, &wf, &bf);
    ASSERT_EQ(bf.size(), static_cast<size_t>(c_out));
    std::vector<float> expect = ref;
    if (!with_bias) {  // reference without the conv bias
      expect = Conv(x, c_in, h, w, weight, {}, c_out, k, 1);
      for (int o = 0; o < c_out; ++o)
        for (int p = 0; p < h * w; ++p) {
          float& v = expect[o * h * w + p];
          v = (v - mean[o]) / std::sqrt(var[o] + eps) * gamma[o] + beta[o];
        }
    }
    const std::vector<float> got = Conv(x, c_in, h, w, wf, bf, c_out, k, 1);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], expect[i], 1e-4f * (1.0f + std::fabs(expect[i]))) << i;
    }
  }
}

TEST(BatchNormFoldTest, LoadConvBnReadsAndFolds) {
  std::mt19937 rng(3);
  const auto weight = Random(4 * 2 * 1 * 1, rng);
  const std::vector<float> gamma = {1, 2, 0.5f, 1}, beta = {0, 1, -1, 0.5f},
                           mean = {0.5f, 0, 1, -1}, var = {1, 4, 0.25f, 1};
  auto store =
      Store("convbn.safetensors",
            {MakeF32Tensor("conv.weight", {4, 2, 1, 1}, weight),
             MakeF32Tensor("bn.weight", {4}, gamma), MakeF32Tensor("bn.bias", {4}, beta),
             MakeF32Tensor("bn.running_mean", {4}, mean), MakeF32Tensor("bn.running_var", {4}, var),
             MakeF32Tensor("bn.num_batches_tracked", {}, {0})});
  ASSERT_NE(store, nullptr);
  auto folded = LoadConvBn(*store, "conv", "bn", 4, 2, 1, 1, 0.0f);
  ASSERT_TRUE(folded.ok()) << folded.status().ToString();
  for (int o = 0; o < 4; ++o) {
    const float scale = gamma[o] / std::sqrt(var[o]);
    EXPECT_NEAR(folded->bias[o], -mean[o] * scale + beta[o], 1e-6f);
    for (int i = 0; i < 2; ++i)
      EXPECT_NEAR(folded->weight[o * 2 + i], weight[o * 2 + i] * scale, 1e-6f);
  }
  EXPECT_TRUE(store->CheckAllUsed({}).ok());

  // Mis-shaped BN vector names the tensor and both shapes.
  auto bad = LoadConvBn(*store, "conv", "bn", 4, 2, 3, 3, 1e-5f);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(
                "tensor 'conv.weight' has shape [4, 2, 1, 1], expected [4, 2, 3, 3]"),
            std::string::npos)
      << bad.status().ToString();
}

}  // namespace
}  // namespace lookalike
