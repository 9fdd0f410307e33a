// Elementwise / normalization / pooling kernels vs the CPU references.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/elementwise.h"
#include "kernels/reference/reference.h"
#include "tests/kernels/gpu_test_util.h"

namespace lookalike {
namespace kernels {
namespace {

using testing::AllClose;
using testing::DefaultTolerance;
using testing::DeviceBuffer;

class ElementwiseTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override { LOOKALIKE_REQUIRE_GPU(); }
  DType type() const { return GetParam(); }
  std::vector<float> Run(const DeviceBuffer& b, size_t n) {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    return testing::Download(b, n, type());
  }
};

TEST_P(ElementwiseTest, LayerNorm) {
  for (int dim : {80, 384, 768, 1024}) {
    const int64_t rows = 2 * 197;
    const auto x = testing::RandomValues(rows * dim, type(), dim, -3.f, 5.f);  // nonzero mean
    const auto g = testing::RandomValues(dim, DType::kF32, 2, 0.5f, 1.5f);
    const auto b = testing::RandomValues(dim, DType::kF32, 3);
    DeviceBuffer dx = testing::Upload(x, type()), dg = testing::Upload(g, DType::kF32),
                 db = testing::Upload(b, DType::kF32), dy = testing::Poisoned(rows * dim, type());
    LayerNormParams p;
    p.type = type();
    p.input = dx.get();
    p.output = dy.get();
    p.gamma = static_cast<const float*>(dg.get());
    p.beta = static_cast<const float*>(db.get());
    p.rows = rows;
    p.dim = dim;
    p.eps = 1e-6f;
    STATUS_ASSERT_OK(LayerNorm(p, nullptr));
    std::vector<float> want(rows * dim);
    ref::LayerNorm(x.data(), want.data(), g.data(), b.data(), rows, dim, 1e-6f);
    EXPECT_TRUE(AllClose(Run(dy, rows * dim), want, DefaultTolerance(type()))) << "dim " << dim;
  }
}

TEST_P(ElementwiseTest, BiasActivationResidual) {
  const int64_t rows = 33;
  const int cols = 200;
  for (Activation act : {Activation::kNone, Activation::kRelu, Activation::kRelu6,
                         Activation::kGelu, Activation::kGeluTanh, Activation::kQuickGelu,
                         Activation::kHardSwish, Activation::kHardSigmoid}) {
    const auto y = testing::RandomValues(rows * cols, type(), 1, -4.f, 4.f);
    const auto bias = testing::RandomValues(cols, DType::kF32, 2, -3.f, 3.f);
    const auto res = testing::RandomValues(rows * cols, type(), 3);
    DeviceBuffer dy = testing::Upload(y, type()), db = testing::Upload(bias, DType::kF32),
                 dr = testing::Upload(res, type());
    BiasActParams p;
    p.type = type();
    p.data = dy.get();
    p.bias = static_cast<const float*>(db.get());
    p.residual = dr.get();
    p.rows = rows;
    p.cols = cols;
    p.act = act;
    STATUS_ASSERT_OK(BiasAct(p, nullptr));
    std::vector<float> want = y;
    ref::BiasAct(want.data(), bias.data(), res.data(), rows, cols, act);
    EXPECT_TRUE(AllClose(Run(dy, rows * cols), want, DefaultTolerance(type())))
        << "act " << static_cast<int>(act);
  }
}

TEST_P(ElementwiseTest, MaxPool) {
  const int n = 2, h = 15, w = 16, c = 24;
  const auto x = testing::RandomValues(n * h * w * c, type(), 4);
  const int oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1;
  DeviceBuffer dx = testing::Upload(x, type()), dy = testing::Poisoned(n * oh * ow * c, type());
  MaxPoolParams p;
  p.type = type();
  p.input = dx.get();
  p.output = dy.get();
  p.batch = n;
  p.in_h = h;
  p.in_w = w;
  p.channels = c;
  p.kernel = 3;
  p.stride = 2;
  p.pad = 1;
  STATUS_ASSERT_OK(MaxPool2d(p, nullptr));
  std::vector<float> want(n * oh * ow * c);
  ref::MaxPool2d(x.data(), want.data(), n, h, w, c, 3, 2, 1);
  // A max of stored values is exact.
  EXPECT_TRUE(AllClose(Run(dy, want.size()), want, {0.f, 0.f}));
}

TEST_P(ElementwiseTest, MeanPoolSelectTokenPrepend) {
  const int n = 3, tokens = 197, d = 96;
  const auto x = testing::RandomValues(n * tokens * d, type(), 5);
  DeviceBuffer dx = testing::Upload(x, type());
  for (int begin : {0, 1, 5}) {
    DeviceBuffer dy = testing::Poisoned(n * d, type());
    MeanPoolParams p;
    p.type = type();
    p.input = dx.get();
    p.output = dy.get();
    p.batch = n;
    p.tokens = tokens;
    p.channels = d;
    p.token_begin = begin;
    STATUS_ASSERT_OK(MeanPool(p, nullptr));
    std::vector<float> want(n * d);
    ref::MeanPool(x.data(), want.data(), n, tokens, d, begin);
    EXPECT_TRUE(AllClose(Run(dy, want.size()), want, DefaultTolerance(type()))) << begin;
  }
  {
    DeviceBuffer dy = testing::Poisoned(n * d, type());
    SelectTokenParams p;
    p.type = type();
    p.input = dx.get();
    p.output = dy.get();
    p.batch = n;
    p.tokens = tokens;
    p.dim = d;
    p.index = 7;
    STATUS_ASSERT_OK(SelectToken(p, nullptr));
    std::vector<float> want(n * d);
    ref::SelectToken(x.data(), want.data(), n, tokens, d, 7);
    EXPECT_TRUE(AllClose(Run(dy, want.size()), want, {0.f, 0.f}));
  }
  for (bool pos_prefix : {true, false}) {
    const int prefix = pos_prefix ? 1 : 5;  // class token / class + 4 registers
    const int patches = 196;
    const auto pt = testing::RandomValues(n * patches * d, type(), 6);
    const auto pre = testing::RandomValues(prefix * d, type(), 7);
    const auto pos =
        testing::RandomValues((pos_prefix ? prefix + patches : patches) * d, type(), 8);
    DeviceBuffer dp = testing::Upload(pt, type()), dpre = testing::Upload(pre, type()),
                 dpos = testing::Upload(pos, type()),
                 dy = testing::Poisoned(n * (prefix + patches) * d, type());
    PrependTokensParams p;
    p.type = type();
    p.patches = dp.get();
    p.prefix_tokens = dpre.get();
    p.pos = dpos.get();
    p.output = dy.get();
    p.batch = n;
    p.num_patches = patches;
    p.prefix = prefix;
    p.dim = d;
    p.pos_applies_to_prefix = pos_prefix;
    STATUS_ASSERT_OK(PrependTokensAddPos(p, nullptr));
    std::vector<float> want(n * (prefix + patches) * d);
    ref::PrependTokensAddPos(pt.data(), pre.data(), pos.data(), want.data(), n, patches, prefix, d,
                             pos_prefix);
    EXPECT_TRUE(AllClose(Run(dy, want.size()), want, DefaultTolerance(type())));
  }
}

TEST_P(ElementwiseTest, AddL2NormalizeConvert) {
  const int64_t rows = 17;
  const int d = 768;
  const auto a = testing::RandomValues(rows * d, type(), 9);
  const auto b = testing::RandomValues(rows * d, type(), 10);
  DeviceBuffer da = testing::Upload(a, type()), db = testing::Upload(b, type()),
               dy = testing::Poisoned(rows * d, type());
  AddParams ap;
  ap.type = type();
  ap.a = da.get();
  ap.b = db.get();
  ap.out = dy.get();
  ap.n = rows * d;
  STATUS_ASSERT_OK(Add(ap, nullptr));
  std::vector<float> sum(rows * d);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = a[i] + b[i];
  EXPECT_TRUE(AllClose(Run(dy, sum.size()), sum, DefaultTolerance(type())));

  DeviceBuffer dn = testing::Poisoned(rows * d, type());
  L2NormalizeParams lp;
  lp.type = type();
  lp.input = da.get();
  lp.output = dn.get();
  lp.rows = rows;
  lp.dim = d;
  STATUS_ASSERT_OK(L2Normalize(lp, nullptr));
  std::vector<float> want(rows * d);
  ref::L2Normalize(a.data(), want.data(), rows, d, 1e-12f);
  EXPECT_TRUE(AllClose(Run(dn, want.size()), want, DefaultTolerance(type())));

  // type -> f32 is exact; f32 -> type rounds to nearest even like the host helpers.
  DeviceBuffer d32 = testing::Poisoned(rows * d, DType::kF32);
  ConvertParams cp;
  cp.src_type = type();
  cp.dst_type = DType::kF32;
  cp.src = da.get();
  cp.dst = d32.get();
  cp.n = rows * d;
  STATUS_ASSERT_OK(Convert(cp, nullptr));
  CUDA_ASSERT_OK(cudaDeviceSynchronize());
  EXPECT_TRUE(AllClose(testing::Download(d32, a.size(), DType::kF32), a, {0.f, 0.f}));
  const auto f = testing::RandomValues(rows * d, DType::kF32, 11, -50.f, 50.f);
  DeviceBuffer df = testing::Upload(f, DType::kF32), dh = testing::Poisoned(f.size(), type());
  cp.src_type = DType::kF32;
  cp.dst_type = type();
  cp.src = df.get();
  cp.dst = dh.get();
  STATUS_ASSERT_OK(Convert(cp, nullptr));
  std::vector<float> rounded(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    rounded[i] = type() == DType::kF16 ? RoundHalf(f[i]) : RoundBf16(f[i]);
  }
  EXPECT_TRUE(AllClose(Run(dh, f.size()), rounded, {0.f, 0.f}));
}

INSTANTIATE_TEST_SUITE_P(Types, ElementwiseTest, ::testing::Values(DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(ElementwiseArgsTest, RejectsOutOfRangeTokens) {
  MeanPoolParams m;
  m.batch = 1;
  m.tokens = 4;
  m.channels = 8;
  m.token_begin = 4;
  EXPECT_EQ(MeanPool(m, nullptr).code(), StatusCode::kInvalidArgument);
  SelectTokenParams s;
  s.batch = 1;
  s.tokens = 4;
  s.dim = 8;
  s.index = -1;
  EXPECT_EQ(SelectToken(s, nullptr).code(), StatusCode::kInvalidArgument);
  MaxPoolParams p;
  p.batch = 1;
  p.in_h = p.in_w = 4;
  p.channels = 1;
  p.kernel = 3;
  p.stride = 2;
  p.pad = 2;
  EXPECT_EQ(MaxPool2d(p, nullptr).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kernels
}  // namespace lookalike
