// The Backend contract (models/backend.h), tested once for every backend:
// each public op's argument checks (INVALID_ARGUMENT naming the op and the
// shapes), the LayerNorm gamma / beta rule, conv end padding and bad images.
//
// Parameters:
//   "cpu"          CpuBackend.
//   "cuda"         CudaBackend on GPU 0; skipped without a usable GPU.
//   "cuda-checks"  The shared checks run with the CUDA backend's device and
//                  dtype (kCuda, f16) on a backend whose Impls only record
//                  what reached them: the checks CudaBackend gets, on any
//                  machine, GPU or not.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/device.h"
#include "models/backend.h"
#include "models/backend_factory.h"
#include "models/embedder.h"

namespace lookalike {
namespace {

// Runs the public ops' checks with the CUDA backend's device and dtype; an
// Impl records that it was reached and returns a placeholder of the right
// shape (device memory is never touched).
class CheckOnlyBackend : public Backend {
 public:
  std::string name() const override { return "cuda-checks"; }
  DeviceKind device() const override { return DeviceKind::kCuda; }
  DType compute_dtype() const override { return DType::kF16; }

  int impl_calls = 0;
  ConvSpec last_conv;
  std::vector<int64_t> last_out_shape;
  std::vector<float> last_gamma, last_beta;
  bool last_causal = false;
  std::vector<int64_t> last_pos_shape;

 protected:
  StatusOr<LayerPtr> PrepareConvImpl(const ConvSpec& spec, const float*, const float*) override {
    ++impl_calls;
    last_conv = spec;
    return std::make_unique<PreparedLayer>();
  }
  StatusOr<LayerPtr> PrepareLinearImpl(int, int, const float*, const float*) override {
    ++impl_calls;
    return std::make_unique<PreparedLayer>();
  }
  StatusOr<LayerPtr> PrepareLayerNormImpl(int dim, const float* gamma, const float* beta,
                                          float) override {
    ++impl_calls;
    last_gamma.assign(gamma, gamma + dim);
    last_beta.assign(beta, beta + dim);
    return std::make_unique<PreparedLayer>();
  }
  StatusOr<Tensor> ConstantImpl(const std::vector<int64_t>& shape, const float*) override {
    return Fake(shape);  // not counted: tests build their inputs with it
  }
  StatusOr<Tensor> PreprocessImpl(const std::vector<ImageView>& images,
                                  const PreprocessSpec& spec) override {
    return Reached({static_cast<int64_t>(images.size()), spec.crop_height, spec.crop_width, 3});
  }
  StatusOr<Tensor> Conv2dImpl(const PreparedLayer&, const Tensor&, Activation, const Tensor*,
                              const std::vector<int64_t>& out_shape) override {
    return Reached(out_shape);
  }
  StatusOr<Tensor> LinearImpl(const PreparedLayer&, const Tensor&, Activation, const Tensor*,
                              const std::vector<int64_t>& out_shape) override {
    return Reached(out_shape);
  }
  StatusOr<Tensor> LayerNormImpl(const PreparedLayer&, const Tensor& x) override {
    return Reached(x.shape());
  }
  StatusOr<Tensor> AttentionImpl(const Tensor& qkv, int, bool causal) override {
    last_causal = causal;
    return Reached({qkv.dim(0), qkv.dim(1), qkv.dim(2) / 3});
  }
  StatusOr<Tensor> MaxPool2dImpl(const Tensor&, int, int, int,
                                 const std::vector<int64_t>& out_shape) override {
    return Reached(out_shape);
  }
  StatusOr<Tensor> MeanPoolImpl(const Tensor& x, int) override {
    return Reached({x.dim(0), x.dim(2)});
  }
  StatusOr<Tensor> SelectTokenImpl(const Tensor& x, int) override {
    return Reached({x.dim(0), x.dim(2)});
  }
  StatusOr<Tensor> SelectTokensImpl(const Tensor& x, const std::vector<int32_t>&) override {
    return Reached({x.dim(0), x.dim(2)});
  }
  StatusOr<Tensor> EmbedTokensImpl(const Tensor& table, const Tensor& pos,
                                   const std::vector<int32_t>&, int64_t batch,
                                   int64_t tokens) override {
    last_pos_shape = pos.shape();
    return Reached({batch, tokens, table.dim(1)});
  }
  StatusOr<Tensor> PrependTokensAddPosImpl(const Tensor& patches, const Tensor*, int64_t prefix,
                                           const Tensor&, bool) override {
    return Reached({patches.dim(0), prefix + patches.dim(1), patches.dim(2)});
  }
  StatusOr<Tensor> AddImpl(const Tensor& a, const Tensor&) override { return Reached(a.shape()); }
  StatusOr<Tensor> L2NormalizeImpl(const Tensor& x) override { return Reached(x.shape()); }
  // ConvNeXt / Swin ops.
  StatusOr<Tensor> GlobalResponseNormImpl(const Tensor& x, const Tensor&, const Tensor&,
                                          float) override {
    return Reached(x.shape());
  }
  StatusOr<Tensor> WindowPartitionImpl(const Tensor& x, int window, int) override {
    return Reached({x.dim(0) * (x.dim(1) / window) * (x.dim(2) / window),
                    static_cast<int64_t>(window) * window, x.dim(3)});
  }
  StatusOr<Tensor> WindowMergeImpl(const Tensor& w, int height, int width, int window,
                                   int) override {
    return Reached({w.dim(0) / ((height / window) * (width / window)), height, width, w.dim(2)});
  }
  StatusOr<Tensor> AttentionWithBiasImpl(const Tensor& qkv, int, const Tensor&) override {
    return Reached({qkv.dim(0), qkv.dim(1), qkv.dim(2) / 3});
  }
  Status ToHostImpl(const Tensor& x, std::vector<float>* out) override {
    ++impl_calls;
    out->assign(static_cast<size_t>(x.numel()), 0.0f);
    return Status::Ok();
  }
  StatusOr<Tensor> Pool2dImpl(const Tensor&, const PoolSpec&,
                              const std::vector<int64_t>& out_shape) override {
    return Reached(out_shape);
  }
  StatusOr<Tensor> ScaleChannelsImpl(const Tensor& x, const Tensor&) override {
    return Reached(x.shape());
  }
  StatusOr<Tensor> ChannelAffineImpl(const Tensor& x, const Tensor& scale, const Tensor&,
                                     Activation) override {
    return Reached({x.dim(0), x.dim(1), x.dim(2), scale.dim(0)});
  }
  StatusOr<Tensor> ConcatChannelsImpl(const std::vector<Tensor>&,
                                      const std::vector<int64_t>& out_shape) override {
    return Reached(out_shape);
  }
  Status WriteChannelsImpl(const Tensor&, const Tensor&, int) override {
    ++impl_calls;
    return Status::Ok();
  }

 private:
  Tensor Fake(const std::vector<int64_t>& shape) {
    return Tensor(shape, DType::kF16, DeviceKind::kCuda, &placeholder_, nullptr);
  }
  Tensor Reached(const std::vector<int64_t>& out_shape) {
    ++impl_calls;
    last_out_shape = out_shape;
    return Fake(out_shape);
  }
  char placeholder_ = 0;
};

std::vector<float> RandomVec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

int64_t Numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// INVALID_ARGUMENT whose message names `op` and contains every part.
void ExpectInvalid(const Status& s, const std::string& op,
                   const std::vector<std::string>& parts = {}) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find(op), std::string::npos) << "op " << op << ": " << s.ToString();
  for (const std::string& p : parts) {
    EXPECT_NE(s.message().find(p), std::string::npos) << "'" << p << "': " << s.ToString();
  }
}

StatusOr<std::unique_ptr<Backend>> MakeBackendUnderTest(const std::string& which) {
  if (which == "cuda-checks") return std::unique_ptr<Backend>(new CheckOnlyBackend());
  return MakeBackend(which == "cuda" ? "cuda:0" : which, 1);
}

class BackendContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda" && CudaDeviceCount() == 0) {
      GTEST_SKIP() << CudaUnavailableReason();
    }
    auto b = MakeBackendUnderTest(GetParam());
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    be_ = std::move(b).value();
  }

  bool computes() const { return GetParam() != "cuda-checks"; }
  void CheckCausalAttention(int64_t tokens);

  Tensor T(const std::vector<int64_t>& shape, uint32_t seed = 1) {
    const std::vector<float> v = RandomVec(static_cast<size_t>(Numel(shape)), seed);
    auto t = be_->Constant(shape, v.data());
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : Tensor();
  }

  LayerPtr Conv(const ConvSpec& spec) {
    const std::vector<float> w =
        RandomVec(static_cast<size_t>(spec.out_channels) * (spec.in_channels / spec.groups) *
                      spec.kernel_h * spec.kernel_w,
                  7);
    auto l = be_->PrepareConv(spec, w.data(), nullptr);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? std::move(l).value() : nullptr;
  }

  LayerPtr Linear(int in, int out) {
    const std::vector<float> w = RandomVec(static_cast<size_t>(in) * out, 8);
    auto l = be_->PrepareLinear(in, out, w.data(), nullptr);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? std::move(l).value() : nullptr;
  }

  std::unique_ptr<Backend> be_;
};

ConvSpec Spec3x3(int in, int out) {
  ConvSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.kernel_h = s.kernel_w = 3;
  s.pad_h = s.pad_w = 1;
  return s;
}

TEST_P(BackendContractTest, PrepareChecksTheirArguments) {
  const std::vector<float> w(4 * 8 * 9, 0.5f);
  ConvSpec zero_kernel = Spec3x3(8, 4);
  zero_kernel.kernel_h = 0;
  ExpectInvalid(be_->PrepareConv(zero_kernel, w.data(), nullptr).status(), "PrepareConv",
                {"kernel 0x3"});
  ConvSpec groups = Spec3x3(8, 4);
  groups.groups = 3;
  ExpectInvalid(be_->PrepareConv(groups, w.data(), nullptr).status(), "PrepareConv", {"groups 3"});
  ExpectInvalid(be_->PrepareConv(Spec3x3(8, 4), nullptr, nullptr).status(), "PrepareConv",
                {"weight"});

  ExpectInvalid(be_->PrepareLinear(0, 4, w.data(), nullptr).status(), "PrepareLinear", {"in 0"});
  ExpectInvalid(be_->PrepareLinear(8, 4, nullptr, nullptr).status(), "PrepareLinear", {"weight"});

  ExpectInvalid(be_->PrepareLayerNorm(0, w.data(), w.data(), 1e-5f).status(), "PrepareLayerNorm",
                {"dim 0"});
  ExpectInvalid(be_->PrepareLayerNorm(8, w.data(), w.data(), -1.0f).status(), "PrepareLayerNorm",
                {"eps"});
  ExpectInvalid(be_->PrepareLayerNorm(8, w.data(), w.data(), NAN).status(), "PrepareLayerNorm",
                {"eps"});

  ExpectInvalid(be_->Constant({}, w.data()).status(), "Constant");
  ExpectInvalid(be_->Constant({2, 0, 3}, w.data()).status(), "Constant", {"[2, 0, 3]"});
  ExpectInvalid(be_->Constant({2, 3}, nullptr).status(), "Constant", {"[2, 3]"});
}

// The bug: CudaBackend::PrepareConv did not check pad_h_end / pad_w_end
// (below -1 they reached the kernel as negative padding); the CPU did.
TEST_P(BackendContractTest, ConvEndPaddingIsCheckedAndApplied) {
  const std::vector<float> w(4 * 8 * 9, 0.5f);
  for (int bad : {-2, -7}) {
    ConvSpec s = Spec3x3(8, 4);
    s.pad_h_end = bad;
    ExpectInvalid(be_->PrepareConv(s, w.data(), nullptr).status(), "PrepareConv",
                  {"end pad " + std::to_string(bad) + "x-1"});
    s = Spec3x3(8, 4);
    s.pad_w_end = bad;
    ExpectInvalid(be_->PrepareConv(s, w.data(), nullptr).status(), "PrepareConv",
                  {"end pad -1x" + std::to_string(bad)});
  }
  // TensorFlow "SAME" at stride 2: one more row / column at the end.
  ConvSpec same = Spec3x3(8, 4);
  same.stride_h = same.stride_w = 2;
  same.pad_h = same.pad_w = 0;
  same.pad_h_end = same.pad_w_end = 1;
  LayerPtr l = Conv(same);
  ASSERT_NE(l, nullptr);
  EXPECT_EQ(l->conv_spec().pad_h_end, 1);
  auto y = be_->Conv2d(*l, T({1, 8, 8, 8}), Activation::kNone, nullptr);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->shape(), (std::vector<int64_t>{1, 4, 4, 4}));  // (8 + 0 + 1 - 3) / 2 + 1
  // -1 means "the same as the start padding".
  LayerPtr sym = Conv(Spec3x3(8, 4));
  ASSERT_NE(sym, nullptr);
  EXPECT_EQ(sym->conv_spec().pad_h_end, 1);
  EXPECT_EQ(sym->conv_spec().pad_w_end, 1);
  // End padding counts toward "input smaller than the kernel".
  ConvSpec big = Spec3x3(8, 4);
  big.kernel_h = big.kernel_w = 5;
  big.pad_h = big.pad_w = 0;
  big.pad_h_end = big.pad_w_end = 2;
  LayerPtr lb = Conv(big);
  ASSERT_NE(lb, nullptr);
  EXPECT_TRUE(be_->Conv2d(*lb, T({1, 3, 3, 8}), Activation::kNone, nullptr).ok());
  ExpectInvalid(be_->Conv2d(*lb, T({1, 2, 3, 8}), Activation::kNone, nullptr).status(), "Conv2d",
                {"[1, 2, 3, 8]", "[5, 5]"});
}

// The bug: the CPU backend accepted null gamma / beta, CudaBackend rejected
// them. The rule now: null means 1 / 0, on every backend.
TEST_P(BackendContractTest, LayerNormNullGammaBetaMeansIdentityAffine) {
  const int d = 64;
  const std::vector<float> ones(d, 1.0f), zeros(d, 0.0f);
  auto plain = be_->PrepareLayerNorm(d, nullptr, nullptr, 1e-5f);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  auto gamma_only = be_->PrepareLayerNorm(d, ones.data(), nullptr, 1e-5f);
  ASSERT_TRUE(gamma_only.ok()) << gamma_only.status().ToString();
  auto explicit_affine = be_->PrepareLayerNorm(d, ones.data(), zeros.data(), 1e-5f);
  ASSERT_TRUE(explicit_affine.ok()) << explicit_affine.status().ToString();
  if (!computes()) return;  // "cuda-checks": SharedChecksTest covers what reaches the Impl
  const Tensor x = T({2, 5, d}, 3);
  std::vector<float> a, b, c;
  auto ya = be_->LayerNorm(**plain, x);
  auto yb = be_->LayerNorm(**gamma_only, x);
  auto yc = be_->LayerNorm(**explicit_affine, x);
  ASSERT_TRUE(ya.ok() && yb.ok() && yc.ok());
  ASSERT_TRUE(be_->ToHost(*ya, &a).ok());
  ASSERT_TRUE(be_->ToHost(*yb, &b).ok());
  ASSERT_TRUE(be_->ToHost(*yc, &c).ok());
  EXPECT_EQ(a, c);
  EXPECT_EQ(b, c);
}

TEST_P(BackendContractTest, OpShapeErrorsNameTheOpAndBothShapes) {
  LayerPtr conv = Conv(Spec3x3(4, 6));
  ASSERT_NE(conv, nullptr);
  const Tensor x4 = T({1, 8, 8, 4});
  const Tensor x5 = T({1, 8, 8, 5});
  ExpectInvalid(be_->Conv2d(*conv, x5, Activation::kNone, nullptr).status(), "Conv2d",
                {"[1, 8, 8, 5]", "4]"});
  ExpectInvalid(be_->Conv2d(*conv, T({8, 8, 4}), Activation::kNone, nullptr).status(), "Conv2d",
                {"[8, 8, 4]"});
  const Tensor bad_res = T({1, 8, 8, 5});
  ExpectInvalid(be_->Conv2d(*conv, x4, Activation::kNone, &bad_res).status(), "Conv2d",
                {"[1, 8, 8, 5]", "[1, 8, 8, 6]"});
  ConvSpec no_pad = Spec3x3(4, 6);
  no_pad.pad_h = no_pad.pad_w = 0;
  LayerPtr conv0 = Conv(no_pad);
  ASSERT_NE(conv0, nullptr);
  ExpectInvalid(be_->Conv2d(*conv0, T({1, 1, 1, 4}), Activation::kNone, nullptr).status(), "Conv2d",
                {"[1, 1, 1, 4]"});

  LayerPtr lin = Linear(4, 3);
  ASSERT_NE(lin, nullptr);
  ExpectInvalid(be_->Linear(*lin, x5, Activation::kNone, nullptr).status(), "Linear",
                {"[1, 8, 8, 5]", "4]"});
  ExpectInvalid(be_->Linear(*lin, T({4}), Activation::kNone, nullptr).status(), "Linear", {"[4]"});
  const Tensor lres = T({1, 8, 8, 4});
  ExpectInvalid(be_->Linear(*lin, x4, Activation::kNone, &lres).status(), "Linear",
                {"[1, 8, 8, 4]", "[1, 8, 8, 3]"});

  auto ln = be_->PrepareLayerNorm(4, nullptr, nullptr, 1e-5f);
  ASSERT_TRUE(ln.ok());
  ExpectInvalid(be_->LayerNorm(**ln, x5).status(), "LayerNorm", {"[1, 8, 8, 5]", "4]"});
  Tensor sum;
  ExpectInvalid(be_->AddLayerNorm(**ln, x5, x5, &sum).status(), "AddLayerNorm",
                {"[1, 8, 8, 5]", "4]"});
  ExpectInvalid(be_->AddLayerNorm(**ln, x4, T({1, 8, 4, 4}), &sum).status(), "AddLayerNorm",
                {"[1, 8, 8, 4]", "[1, 8, 4, 4]"});
  ExpectInvalid(be_->AddLayerNorm(**ln, x4, x4, nullptr).status(), "AddLayerNorm", {"sum"});

  const Tensor qkv = T({2, 5, 12});
  ExpectInvalid(be_->Attention(qkv, 3).status(), "Attention", {"[2, 5, 12]", "heads=3"});
  ExpectInvalid(be_->Attention(qkv, 0).status(), "Attention", {"[2, 5, 12]", "heads=0"});
  ExpectInvalid(be_->Attention(x4, 1).status(), "Attention", {"[1, 8, 8, 4]"});
  ExpectInvalid(be_->Attention(T({2, 5, 13}), 1).status(), "Attention", {"[2, 5, 13]"});

  ExpectInvalid(be_->MaxPool2d(qkv, 3, 2, 1).status(), "MaxPool2d", {"[2, 5, 12]"});
  ExpectInvalid(be_->MaxPool2d(x4, 3, 2, 2).status(), "MaxPool2d", {"pad 2"});
  ExpectInvalid(be_->MaxPool2d(x4, 3, 0, 1).status(), "MaxPool2d", {"stride 0"});
  ExpectInvalid(be_->MaxPool2d(T({1, 2, 2, 4}), 5, 2, 1).status(), "MaxPool2d", {"[1, 2, 2, 4]"});

  ExpectInvalid(be_->MeanPool(qkv, 5).status(), "MeanPool", {"[2, 5, 12]"});
  ExpectInvalid(be_->MeanPool(qkv, -1).status(), "MeanPool", {"[2, 5, 12]"});
  ExpectInvalid(be_->MeanPool(x4, 1).status(), "MeanPool", {"[1, 8, 8, 4]"});  // feature map
  ExpectInvalid(be_->MeanPool(T({2, 12}), 0).status(), "MeanPool", {"[2, 12]"});
  ExpectInvalid(be_->SelectToken(qkv, 5).status(), "SelectToken", {"[2, 5, 12]"});
  ExpectInvalid(be_->SelectToken(x4, 0).status(), "SelectToken", {"[1, 8, 8, 4]"});
  ExpectInvalid(be_->Add(x4, x5).status(), "Add", {"[1, 8, 8, 4]", "[1, 8, 8, 5]"});
  ExpectInvalid(be_->L2Normalize(x4).status(), "L2Normalize", {"[1, 8, 8, 4]"});

  const Tensor patches = T({2, 4, 6});
  const Tensor cls = T({1, 1, 6});
  ExpectInvalid(be_->PrependTokensAddPos(patches, &cls, T({1, 4, 6}), true).status(),
                "PrependTokensAddPos", {"[1, 4, 6]", "[2, 4, 6]", "[1, 5, 6]"});
  ExpectInvalid(be_->PrependTokensAddPos(patches, &cls, T({1, 5, 6}), false).status(),
                "PrependTokensAddPos", {"[1, 5, 6]", "[1, 4, 6]"});
  ExpectInvalid(be_->PrependTokensAddPos(patches, &cls, T({1, 5, 7}), true).status(),
                "PrependTokensAddPos", {"[1, 5, 7]"});
  const Tensor cls_bad = T({2, 1, 6});
  ExpectInvalid(be_->PrependTokensAddPos(patches, &cls_bad, T({1, 5, 6}), true).status(),
                "PrependTokensAddPos", {"[2, 1, 6]", "[2, 4, 6]"});
  ExpectInvalid(be_->PrependTokensAddPos(x4, nullptr, T({1, 4, 6}), true).status(),
                "PrependTokensAddPos", {"[1, 8, 8, 4]"});

  std::vector<float> host;
  ExpectInvalid(be_->ToHost(x4, nullptr), "ToHost");
  ExpectInvalid(be_->ToHost(Tensor(), &host), "ToHost");
}

TEST_P(BackendContractTest, ValidShapesPassTheChecks) {
  LayerPtr conv = Conv(Spec3x3(4, 6));
  ASSERT_NE(conv, nullptr);
  const Tensor x = T({2, 8, 8, 4});
  auto y = be_->Conv2d(*conv, x, Activation::kRelu, nullptr);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->shape(), (std::vector<int64_t>{2, 8, 8, 6}));
  auto pooled = be_->MaxPool2d(*y, 3, 2, 1);
  ASSERT_TRUE(pooled.ok()) << pooled.status().ToString();
  EXPECT_EQ(pooled->shape(), (std::vector<int64_t>{2, 4, 4, 6}));
  auto mean = be_->MeanPool(*pooled, 0);
  ASSERT_TRUE(mean.ok()) << mean.status().ToString();
  EXPECT_EQ(mean->shape(), (std::vector<int64_t>{2, 6}));
  LayerPtr lin = Linear(6, 3);
  ASSERT_NE(lin, nullptr);
  // Linear takes any rank >= 2.
  auto l5 = be_->Linear(*lin, T({1, 2, 2, 2, 6}), Activation::kNone, nullptr);
  ASSERT_TRUE(l5.ok()) << l5.status().ToString();
  EXPECT_EQ(l5->shape(), (std::vector<int64_t>{1, 2, 2, 2, 3}));
  const Tensor patches = T({2, 4, 64});
  const Tensor prefix = T({1, 64});
  auto tokens = be_->PrependTokensAddPos(patches, &prefix, T({1, 4, 64}), false);
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ(tokens->shape(), (std::vector<int64_t>{2, 5, 64}));
  auto attn = be_->Attention(T({2, 5, 3 * 64}), 1);
  ASSERT_TRUE(attn.ok()) << attn.status().ToString();
  EXPECT_EQ(attn->shape(), (std::vector<int64_t>{2, 5, 64}));
  auto cls = be_->SelectToken(*tokens, 0);
  ASSERT_TRUE(cls.ok()) << cls.status().ToString();
  auto n = be_->L2Normalize(*cls);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  std::vector<float> host;
  ASSERT_TRUE(be_->ToHost(*n, &host).ok());
  EXPECT_EQ(host.size(), 2u * 64u);
}

TEST_P(BackendContractTest, LayersAreCheckedForKindAndOwner) {
  LayerPtr conv = Conv(Spec3x3(4, 4));
  LayerPtr lin = Linear(4, 4);
  ASSERT_NE(conv, nullptr);
  ASSERT_NE(lin, nullptr);
  const Tensor x = T({1, 8, 8, 4});
  ExpectInvalid(be_->Linear(*conv, x, Activation::kNone, nullptr).status(), "Linear",
                {"PrepareLinear"});
  ExpectInvalid(be_->Conv2d(*lin, x, Activation::kNone, nullptr).status(), "Conv2d",
                {"PrepareConv"});
  ExpectInvalid(be_->LayerNorm(*lin, x).status(), "LayerNorm", {"PrepareLayerNorm"});
  // A layer of another backend object is not ours to read.
  auto other = MakeBackendUnderTest(GetParam());
  ASSERT_TRUE(other.ok());
  const std::vector<float> w(16, 0.5f);
  auto foreign = (*other)->PrepareLinear(4, 4, w.data(), nullptr);
  ASSERT_TRUE(foreign.ok());
  ExpectInvalid(be_->Linear(**foreign, x, Activation::kNone, nullptr).status(), "Linear",
                {"PrepareLinear"});
}

TEST_P(BackendContractTest, TensorsOfAnotherDeviceOrDtypeAreRejected) {
  float host = 0.0f;
  const DeviceKind other_device =
      be_->device() == DeviceKind::kCpu ? DeviceKind::kCuda : DeviceKind::kCpu;
  const Tensor foreign({1, 4}, be_->compute_dtype(), other_device, &host, nullptr);
  ExpectInvalid(be_->L2Normalize(foreign).status(), "L2Normalize", {"[1, 4]"});
  const DType other_dtype = be_->compute_dtype() == DType::kF32 ? DType::kF16 : DType::kF32;
  const Tensor wrong_dtype({1, 4}, other_dtype, be_->device(), &host, nullptr);
  ExpectInvalid(be_->Add(wrong_dtype, wrong_dtype).status(), "Add", {DTypeName(other_dtype)});
  const Tensor zero_dim({1, 0}, be_->compute_dtype(), be_->device(), &host, nullptr);
  ExpectInvalid(be_->L2Normalize(zero_dim).status(), "L2Normalize", {"[1, 0]"});
}

TEST_P(BackendContractTest, BadImagesAreRejected) {
  const std::vector<uint8_t> pixels(16 * 16 * 3, 100);
  const ImageView good{pixels.data(), 16, 16, 48};
  PreprocessSpec spec;
  spec.resize_shorter = 16;
  spec.crop_height = spec.crop_width = 16;
  auto ok = be_->Preprocess({good}, spec);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->shape(), (std::vector<int64_t>{1, 16, 16, 3}));

  ExpectInvalid(be_->Preprocess({}, spec).status(), "Preprocess", {"no images"});
  ExpectInvalid(be_->Preprocess({good, {nullptr, 16, 16, 48}}, spec).status(), "Preprocess",
                {"item 1", "null"});
  ExpectInvalid(be_->Preprocess({{pixels.data(), 0, 16, 48}}, spec).status(), "Preprocess",
                {"item 0", "0x16"});
  ExpectInvalid(be_->Preprocess({{pixels.data(), 16, -1, 48}}, spec).status(), "Preprocess",
                {"16x-1"});
  ExpectInvalid(be_->Preprocess({{pixels.data(), 16, 16, 47}}, spec).status(), "Preprocess",
                {"stride_bytes 47", "48"});
  PreprocessSpec bad = spec;
  bad.crop_height = 0;
  ExpectInvalid(be_->Preprocess({good}, bad).status(), "Preprocess", {"crop"});
  bad = spec;
  bad.std[1] = 0.0f;
  ExpectInvalid(be_->Preprocess({good}, bad).status(), "Preprocess", {"std"});
}

TEST_P(BackendContractTest, TextOpsCheckTheirArguments) {
  const Tensor table = T({10, 8});
  const Tensor pos = T({4, 8});
  ExpectInvalid(be_->EmbedTokens(table, pos, {1, 2, 3}, 2).status(), "EmbedTokens",
                {"3 ids", "batch 2"});
  ExpectInvalid(be_->EmbedTokens(table, pos, {}, 1).status(), "EmbedTokens", {"0 ids"});
  ExpectInvalid(be_->EmbedTokens(table, pos, {1, 2, 3, 4, 5}, 1).status(), "EmbedTokens",
                {"5 tokens", "4 positions"});
  ExpectInvalid(be_->EmbedTokens(table, pos, {1, 10}, 1).status(), "EmbedTokens",
                {"id 10", "[0, 1]", "[10, 8]"});
  ExpectInvalid(be_->EmbedTokens(table, pos, {-1, 2}, 1).status(), "EmbedTokens", {"id -1"});
  ExpectInvalid(be_->EmbedTokens(table, T({4, 7}), {1, 2}, 1).status(), "EmbedTokens",
                {"[4, 7]", "[10, 8]"});
  ExpectInvalid(be_->EmbedTokens(T({10, 8, 1}), pos, {1, 2}, 1).status(), "EmbedTokens",
                {"[10, 8, 1]"});
  const Tensor x = T({2, 5, 8});
  ExpectInvalid(be_->SelectTokens(x, {0}).status(), "SelectTokens", {"1 indices", "[2, 5, 8]"});
  ExpectInvalid(be_->SelectTokens(x, {0, 5}).status(), "SelectTokens",
                {"index[1] = 5", "[2, 5, 8]"});
  ExpectInvalid(be_->SelectTokens(x, {-1, 0}).status(), "SelectTokens", {"index[0] = -1"});
  ExpectInvalid(be_->SelectTokens(T({2, 8}), {0, 0}).status(), "SelectTokens", {"[2, 8]"});
  ExpectInvalid(be_->Attention(T({2, 5, 3 * 8}), 3, /*causal=*/true).status(), "Attention",
                {"heads=3"});
}

TEST_P(BackendContractTest, TextOpsCompute) {
  if (!computes()) GTEST_SKIP() << "the check-only backend computes nothing";
  const int64_t v = 6, d = 4, p = 5;
  const std::vector<float> table_v = RandomVec(v * d, 11), pos_v = RandomVec(p * d, 12);
  auto table = be_->Constant({v, d}, table_v.data());
  auto pos = be_->Constant({1, p, d}, pos_v.data());
  ASSERT_TRUE(table.ok() && pos.ok());
  const std::vector<int32_t> ids = {5, 0, 3, 2, 2, 1};  // {2, 3}
  auto emb = be_->EmbedTokens(*table, *pos, ids, 2);
  ASSERT_TRUE(emb.ok()) << emb.status().ToString();
  EXPECT_EQ(emb->shape(), (std::vector<int64_t>{2, 3, d}));
  {
    std::vector<float> host;
    ASSERT_TRUE(be_->ToHost(*emb, &host).ok());
    const double tol = GetParam() == "cpu" ? 0.0 : 1e-2;  // f16 rounding on CUDA
    for (int64_t n = 0; n < 2; ++n) {
      for (int64_t t = 0; t < 3; ++t) {
        for (int64_t i = 0; i < d; ++i) {
          EXPECT_NEAR(host[(n * 3 + t) * d + i], table_v[ids[n * 3 + t] * d + i] + pos_v[t * d + i],
                      tol);
        }
      }
    }
  }
  // SelectTokens picks a different token per sequence.
  const std::vector<float> xv = RandomVec(2 * 5 * d, 13);
  auto x = be_->Constant({2, 5, d}, xv.data());
  ASSERT_TRUE(x.ok());
  auto sel = be_->SelectTokens(*x, {4, 1});
  ASSERT_TRUE(sel.ok()) << sel.status().ToString();
  std::vector<float> host;
  ASSERT_TRUE(be_->ToHost(*sel, &host).ok());
  ASSERT_EQ(host.size(), static_cast<size_t>(2 * d));
  const double tol = GetParam() == "cpu" ? 0.0 : 1e-2;  // f16 rounding on CUDA
  for (int64_t i = 0; i < d; ++i) {
    EXPECT_NEAR(host[i], xv[(0 * 5 + 4) * d + i], tol);
    EXPECT_NEAR(host[d + i], xv[(1 * 5 + 1) * d + i], tol);
  }
}

// Causal attention against a direct evaluation of the definition: token t
// attends to tokens [0, t]; the last token sees everything, so its output
// equals the unmasked attention's. 5 tokens, and CLIP's 77 (past one 64-row
// tile of the CUDA kernel).
TEST_P(BackendContractTest, CausalAttention) {
  if (!computes()) GTEST_SKIP() << "the check-only backend computes nothing";
  for (const int64_t t : {5, 77}) {
    SCOPED_TRACE("tokens " + std::to_string(t));
    CheckCausalAttention(t);
  }
}

void BackendContractTest::CheckCausalAttention(int64_t t) {
  const int64_t n = 2, heads = 2, dh = 64, d = heads * dh;
  const std::vector<float> qkv_v = RandomVec(n * t * 3 * d, 21);
  auto qkv = be_->Constant({n, t, 3 * d}, qkv_v.data());
  ASSERT_TRUE(qkv.ok());
  auto y = be_->Attention(*qkv, static_cast<int>(heads), /*causal=*/true);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  // CUDA computes in f16 (inputs, P and the output rounded).
  const double tol = GetParam() == "cpu" ? 1e-5 : 2e-2;
  std::vector<float> got;
  ASSERT_TRUE(be_->ToHost(*y, &got).ok());
  auto full = be_->Attention(*qkv, static_cast<int>(heads), /*causal=*/false);
  ASSERT_TRUE(full.ok());
  std::vector<float> unmasked;
  ASSERT_TRUE(be_->ToHost(*full, &unmasked).ok());
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  double max_err = 0.0;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t i = 0; i < t; ++i) {
        const float* q = &qkv_v[(b * t + i) * 3 * d + h * dh];
        std::vector<double> p(i + 1);
        double mx = -1e300, sum = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          const float* k = &qkv_v[(b * t + j) * 3 * d + d + h * dh];
          double s = 0.0;
          for (int64_t c = 0; c < dh; ++c) s += static_cast<double>(q[c]) * k[c];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        for (double& e : p) sum += (e = std::exp(e - mx));
        for (int64_t c = 0; c < dh; ++c) {
          double o = 0.0;
          for (int64_t j = 0; j <= i; ++j)
            o += p[j] / sum * qkv_v[(b * t + j) * 3 * d + 2 * d + h * dh + c];
          max_err = std::max(max_err, std::abs(o - got[(b * t + i) * d + h * dh + c]));
        }
      }
    }
    for (int64_t c = 0; c < d; ++c) {
      EXPECT_NEAR(got[(b * t + t - 1) * d + c], unmasked[(b * t + t - 1) * d + c], tol);
    }
  }
  EXPECT_LT(max_err, tol);
  // Token 0 attends to itself only: its output is its own v.
  for (int64_t c = 0; c < d; ++c) {
    EXPECT_NEAR(got[c], qkv_v[2 * d + c], tol / 10);
  }
}

// ---- ConvNeXt / Swin ops -----------------------------------------------------

TEST_P(BackendContractTest, WindowAndGrnOpsCheckTheirArguments) {
  const Tensor x = T({2, 14, 14, 6});
  ExpectInvalid(be_->WindowPartition(x, 4, 0).status(), "WindowPartition",
                {"[2, 14, 14, 6]", "window 4"});
  ExpectInvalid(be_->WindowPartition(x, 7, 7).status(), "WindowPartition", {"shift 7"});
  ExpectInvalid(be_->WindowPartition(T({2, 14, 6}), 7, 0).status(), "WindowPartition",
                {"[2, 14, 6]"});
  ExpectInvalid(be_->WindowMerge(T({7, 49, 6}), 14, 14, 7, 3).status(), "WindowMerge",
                {"[7, 49, 6]", "14x14"});
  ExpectInvalid(be_->WindowMerge(T({8, 48, 6}), 14, 14, 7, 3).status(), "WindowMerge",
                {"[8, 48, 6]"});
  const Tensor qkv = T({8, 49, 3 * 6});
  ExpectInvalid(be_->AttentionWithBias(qkv, 2, T({3, 2, 49, 49})).status(), "AttentionWithBias",
                {"[3, 2, 49, 49]", "[8, 49, 18]"});
  ExpectInvalid(be_->AttentionWithBias(qkv, 2, T({4, 3, 49, 49})).status(), "AttentionWithBias",
                {"[4, 3, 49, 49]"});
  ExpectInvalid(be_->AttentionWithBias(qkv, 4, T({4, 4, 49, 49})).status(), "AttentionWithBias",
                {"heads=4"});
  ExpectInvalid(be_->GlobalResponseNorm(x, T({5}), T({6}), 1e-6f).status(), "GlobalResponseNorm",
                {"[5]", "[2, 14, 14, 6]"});
  ExpectInvalid(be_->GlobalResponseNorm(T({2, 6}), T({6}), T({6}), 1e-6f).status(),
                "GlobalResponseNorm", {"[2, 6]"});
  ExpectInvalid(be_->GlobalResponseNorm(x, T({6}), T({6}), -1.0f).status(), "GlobalResponseNorm",
                {"eps"});
  auto w = be_->WindowPartition(x, 7, 3);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->shape(), (std::vector<int64_t>{8, 49, 6}));
  auto m = be_->WindowMerge(*w, 14, 14, 7, 3);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->shape(), x.shape());
}

// Values against plain loops written from timm's definitions (torch.roll,
// window_partition, GlobalResponseNorm, attention + bias). The CUDA backend
// computes in f16: its inputs are rounded first, hence the looser bound.
TEST_P(BackendContractTest, WindowAndGrnOpsCompute) {
  if (!computes()) GTEST_SKIP() << "records checks only";
  const double tol = GetParam() == "cpu" ? 1e-5 : 2e-2;
  const int64_t n = 2, h = 14, w = 14, c = 6;
  const int win = 7, shift = 3;
  const std::vector<float> xv = RandomVec(n * h * w * c, 21);
  auto x = be_->Constant({n, h, w, c}, xv.data());
  ASSERT_TRUE(x.ok());
  auto part = be_->WindowPartition(*x, win, shift);
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  std::vector<float> got;
  ASSERT_TRUE(be_->ToHost(*part, &got).ok());
  double max_err = 0;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t y = 0; y < h; ++y) {
      for (int64_t xx = 0; xx < w; ++xx) {
        const int64_t win_idx = (b * (h / win) + y / win) * (w / win) + xx / win;
        const int64_t tok = (y % win) * win + xx % win;
        const int64_t sy = (y + shift) % h, sx = (xx + shift) % w;
        for (int64_t ch = 0; ch < c; ++ch) {
          max_err = std::max<double>(max_err, std::fabs(got[(win_idx * win * win + tok) * c + ch] -
                                                        xv[((b * h + sy) * w + sx) * c + ch]));
        }
      }
    }
  }
  EXPECT_LT(max_err, tol);
  auto merged = be_->WindowMerge(*part, h, w, win, shift);
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  ASSERT_TRUE(be_->ToHost(*merged, &got).ok());
  max_err = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    max_err = std::max<double>(max_err, std::fabs(got[i] - xv[i]));
  }
  EXPECT_LT(max_err, tol);

  // GlobalResponseNorm.
  const std::vector<float> gv = RandomVec(c, 22), bv = RandomVec(c, 23);
  auto g = be_->Constant({c}, gv.data());
  auto bt = be_->Constant({c}, bv.data());
  ASSERT_TRUE(g.ok() && bt.ok());
  auto grn = be_->GlobalResponseNorm(*x, *g, *bt, 1e-6f);
  ASSERT_TRUE(grn.ok()) << grn.status().ToString();
  ASSERT_TRUE(be_->ToHost(*grn, &got).ok());
  max_err = 0;
  for (int64_t b = 0; b < n; ++b) {
    std::vector<double> norm(c, 0.0);
    for (int64_t p = 0; p < h * w; ++p) {
      for (int64_t ch = 0; ch < c; ++ch) norm[ch] += std::pow(xv[(b * h * w + p) * c + ch], 2);
    }
    double mean = 0;
    for (double& v : norm) {
      v = std::sqrt(v);
      mean += v / c;
    }
    for (int64_t p = 0; p < h * w; ++p) {
      for (int64_t ch = 0; ch < c; ++ch) {
        const double xi = xv[(b * h * w + p) * c + ch];
        const double ref = xi + gv[ch] * (xi * norm[ch] / (mean + 1e-6)) + bv[ch];
        max_err = std::max(max_err, std::fabs(got[(b * h * w + p) * c + ch] - ref));
      }
    }
  }
  EXPECT_LT(max_err, 2 * tol);

  // AttentionWithBias: 4 sequences of 49 tokens, 2 heads of 32, 2 bias groups.
  const int64_t seqs = 4, t = 49, heads = 2, hd = 32, d = heads * hd, groups = 2;
  const std::vector<float> qv = RandomVec(seqs * t * 3 * d, 24);
  std::vector<float> biasv = RandomVec(groups * heads * t * t, 25);
  for (int64_t i = 0; i < t; ++i) biasv[i * t + (i + 1) % t] = -100.0f;  // a masked entry
  auto qkv = be_->Constant({seqs, t, 3 * d}, qv.data());
  auto bias = be_->Constant({groups, heads, t, t}, biasv.data());
  ASSERT_TRUE(qkv.ok() && bias.ok());
  auto attn = be_->AttentionWithBias(*qkv, heads, *bias);
  ASSERT_TRUE(attn.ok()) << attn.status().ToString();
  ASSERT_TRUE(be_->ToHost(*attn, &got).ok());
  ASSERT_EQ(got.size(), static_cast<size_t>(seqs * t * d));
  max_err = 0;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (int64_t s = 0; s < seqs; ++s) {
    for (int64_t hh = 0; hh < heads; ++hh) {
      const float* bb = biasv.data() + ((s % groups) * heads + hh) * t * t;
      for (int64_t i = 0; i < t; ++i) {
        std::vector<double> p(t);
        double mx = -1e300;
        for (int64_t j = 0; j < t; ++j) {
          double dot = 0;
          for (int64_t k = 0; k < hd; ++k) {
            dot += static_cast<double>(qv[(s * t + i) * 3 * d + hh * hd + k]) *
                   qv[(s * t + j) * 3 * d + d + hh * hd + k];
          }
          p[j] = dot * scale + bb[i * t + j];
          mx = std::max(mx, p[j]);
        }
        double sum = 0;
        for (double& v : p) sum += (v = std::exp(v - mx));
        for (int64_t k = 0; k < hd; ++k) {
          double o = 0;
          for (int64_t j = 0; j < t; ++j)
            o += p[j] / sum * qv[(s * t + j) * 3 * d + 2 * d + hh * hd + k];
          max_err = std::max(max_err, std::fabs(got[(s * t + i) * d + hh * hd + k] - o));
        }
      }
    }
  }
  EXPECT_LT(max_err, tol);
}

// ---- MobileNet, VGG, DenseNet, GoogLeNet / Inception ops --------------------

TEST_P(BackendContractTest, ChannelOpsCheckTheirArguments) {
  const Tensor x = T({2, 5, 5, 8});
  PoolSpec bad;
  bad.kernel_h = 3;
  bad.pad_h = 2;  // > kernel / 2
  ExpectInvalid(be_->Pool2d(x, bad).status(), "Pool2d", {"kernel 3x2", "pad 2x0"});
  PoolSpec big;
  big.kernel_h = big.kernel_w = 7;
  ExpectInvalid(be_->Pool2d(x, big).status(), "Pool2d", {"[2, 5, 5, 8]", "smaller than kernel"});
  ExpectInvalid(be_->Pool2d(T({2, 5, 8}), PoolSpec{}).status(), "Pool2d", {"[2, 5, 8]"});
  ExpectInvalid(be_->ScaleChannels(x, T({2, 7})).status(), "ScaleChannels",
                {"[2, 7]", "[2, 5, 5, 8]"});
  ExpectInvalid(be_->ScaleChannels(x, T({1, 8})).status(), "ScaleChannels", {"[1, 8]"});
  ExpectInvalid(be_->ChannelAffine(x, T({9}), T({9}), Activation::kRelu).status(), "ChannelAffine",
                {"[9]", "[2, 5, 5, 8]"});
  ExpectInvalid(be_->ChannelAffine(x, T({4}), T({3}), Activation::kRelu).status(), "ChannelAffine",
                {"[4]", "[3]"});
  ExpectInvalid(be_->ConcatChannels({}).status(), "ConcatChannels", {"no parts"});
  ExpectInvalid(be_->ConcatChannels({x, T({2, 4, 5, 3})}).status(), "ConcatChannels",
                {"part 1", "[2, 4, 5, 3]", "[2, 5, 5, 8]"});
  ExpectInvalid(be_->ConcatChannels({x}, -1).status(), "ConcatChannels", {"reserve_channels -1"});
  ExpectInvalid(be_->WriteChannels(x, T({2, 5, 5, 4}), 5), "WriteChannels",
                {"[2, 5, 5, 4]", "channel 5", "[2, 5, 5, 8]"});
  ExpectInvalid(be_->WriteChannels(x, x, 0), "WriteChannels", {"same tensor"});
  // Output shapes, ceil mode included (torch's rule: 5 -> 2 floor, 3 ceil;
  // 6 with k2 s2 ceil -> 3, the last window starting inside the input).
  PoolSpec ceil;
  ceil.kind = PoolSpec::Kind::kMax;
  ceil.kernel_h = ceil.kernel_w = 3;
  ceil.stride_h = ceil.stride_w = 2;
  ceil.ceil_mode = true;
  auto p = be_->Pool2d(x, ceil);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->shape(), (std::vector<int64_t>{2, 2, 2, 8}));
  ceil.pad_h = ceil.pad_w = 1;
  p = be_->Pool2d(x, ceil);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->shape(), (std::vector<int64_t>{2, 3, 3, 8}));
  PoolSpec two;
  two.ceil_mode = true;
  p = be_->Pool2d(T({1, 7, 6, 2}), two);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->shape(), (std::vector<int64_t>{1, 4, 3, 2}));
  auto c = be_->ConcatChannels({x, T({2, 5, 5, 3})}, 4);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->shape(), (std::vector<int64_t>{2, 5, 5, 15}));
  auto a = be_->ChannelAffine(x, T({3}), T({3}), Activation::kRelu);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->shape(), (std::vector<int64_t>{2, 5, 5, 3}));
}

// Host values of a backend tensor.
std::vector<float> Host(Backend& be, const Tensor& t) {
  std::vector<float> v;
  const Status s = be.ToHost(t, &v);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return v;
}

TEST_P(BackendContractTest, ChannelOpsCompute) {
  if (!computes()) GTEST_SKIP() << "the check-only backend computes nothing";
  const double tol = GetParam() == "cpu" ? 1e-5 : 2e-2;  // f16 on CUDA
  const int n = 2, h = 7, w = 6, c = 5;
  const Tensor x = T({n, h, w, c}, 3);
  const std::vector<float> xv = Host(*be_, x);
  auto at = [&](int b, int y, int xx, int ch) { return xv[((b * h + y) * w + xx) * c + ch]; };

  // Pool2d: max (ceil, padded) and average (padded; with and without the
  // padding in the divisor) against torch's window rule.
  for (int kind = 0; kind < 3; ++kind) {
    PoolSpec s;
    s.kind = kind == 0 ? PoolSpec::Kind::kMax : PoolSpec::Kind::kAvg;
    s.kernel_h = s.kernel_w = 3;
    s.stride_h = s.stride_w = 2;
    s.pad_h = s.pad_w = 1;
    s.ceil_mode = kind != 2;
    s.count_include_pad = kind == 1;
    auto y = be_->Pool2d(x, s);
    ASSERT_TRUE(y.ok()) << y.status().ToString();
    const std::vector<float> got = Host(*be_, *y);
    const int oh = static_cast<int>(y->dim(1)), ow = static_cast<int>(y->dim(2));
    for (int b = 0; b < n; ++b) {
      for (int oy = 0; oy < oh; ++oy) {
        for (int ox = 0; ox < ow; ++ox) {
          for (int ch = 0; ch < c; ++ch) {
            const int y0 = oy * 2 - 1, x0 = ox * 2 - 1;
            const int y1 = std::min(y0 + 3, h + 1), x1 = std::min(x0 + 3, w + 1);
            double acc = kind == 0 ? -1e30 : 0.0;
            int inside = 0;
            for (int iy = std::max(y0, 0); iy < std::min(y1, h); ++iy) {
              for (int ix = std::max(x0, 0); ix < std::min(x1, w); ++ix) {
                const double v = at(b, iy, ix, ch);
                acc = kind == 0 ? std::max(acc, v) : acc + v;
                ++inside;
              }
            }
            if (kind == 1) acc /= (y1 - y0) * (x1 - x0);
            if (kind == 2) acc /= inside;
            EXPECT_NEAR(got[((b * oh + oy) * ow + ox) * c + ch], acc, tol)
                << "pool kind " << kind << " at " << b << "," << oy << "," << ox << "," << ch;
          }
        }
      }
    }
  }

  // ScaleChannels.
  const Tensor scale = T({n, c}, 4);
  const std::vector<float> sv = Host(*be_, scale);
  auto scaled = be_->ScaleChannels(x, scale);
  ASSERT_TRUE(scaled.ok()) << scaled.status().ToString();
  const std::vector<float> sg = Host(*be_, *scaled);
  for (size_t i = 0; i < sg.size(); ++i) {
    const size_t b = i / (h * w * c);
    EXPECT_NEAR(sg[i], xv[i] * sv[b * c + i % c], tol) << i;
  }

  // ChannelAffine on a channel prefix, hard-swish.
  const Tensor ga = T({3}, 5), be = T({3}, 6);
  const std::vector<float> gv = Host(*be_, ga), bv = Host(*be_, be);
  auto aff = be_->ChannelAffine(x, ga, be, Activation::kHardSwish);
  ASSERT_TRUE(aff.ok()) << aff.status().ToString();
  const std::vector<float> ag = Host(*be_, *aff);
  for (int p = 0; p < n * h * w; ++p) {
    for (int ch = 0; ch < 3; ++ch) {
      const float want = ApplyActivation(xv[p * c + ch] * gv[ch] + bv[ch], Activation::kHardSwish);
      EXPECT_NEAR(ag[p * 3 + ch], want, tol) << p << "," << ch;
    }
  }

  // ConcatChannels with reserved channels, then WriteChannels into them.
  const Tensor other = T({n, h, w, 2}, 7);
  const std::vector<float> ov = Host(*be_, other);
  auto cat = be_->ConcatChannels({x, other}, 3);
  ASSERT_TRUE(cat.ok()) << cat.status().ToString();
  ASSERT_TRUE(be_->WriteChannels(*cat, *aff, 7).ok());
  const std::vector<float> cg = Host(*be_, *cat);
  for (int p = 0; p < n * h * w; ++p) {
    for (int ch = 0; ch < c; ++ch) EXPECT_EQ(cg[p * 10 + ch], xv[p * c + ch]);
    for (int ch = 0; ch < 2; ++ch) EXPECT_EQ(cg[p * 10 + c + ch], ov[p * 2 + ch]);
    for (int ch = 0; ch < 3; ++ch) EXPECT_EQ(cg[p * 10 + 7 + ch], ag[p * 3 + ch]);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendContractTest,
                         ::testing::Values("cpu", "cuda", "cuda-checks"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

// What reaches a backend's Impl: checked, normalized arguments, on any
// machine (the CUDA backend gets exactly these).
TEST(SharedChecksTest, LayerNormImplGetsOnesAndZerosForNull) {
  CheckOnlyBackend be;
  ASSERT_TRUE(be.PrepareLayerNorm(3, nullptr, nullptr, 1e-6f).ok());
  EXPECT_EQ(be.last_gamma, (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(be.last_beta, (std::vector<float>{0, 0, 0}));
  const std::vector<float> g = {2, 3, 4};
  ASSERT_TRUE(be.PrepareLayerNorm(3, g.data(), nullptr, 1e-6f).ok());
  EXPECT_EQ(be.last_gamma, g);
  EXPECT_EQ(be.last_beta, (std::vector<float>{0, 0, 0}));
}

TEST(SharedChecksTest, ConvImplGetsResolvedEndPaddingAndTheOutputShape) {
  CheckOnlyBackend be;
  ConvSpec s = Spec3x3(3, 8);
  s.stride_h = s.stride_w = 2;
  s.pad_h = s.pad_w = 0;
  s.pad_w_end = 1;  // pad_h_end stays -1: the same as pad_h
  const std::vector<float> w(8 * 3 * 9, 0.f);
  auto l = be.PrepareConv(s, w.data(), nullptr);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_EQ(be.last_conv.pad_h_end, 0);
  EXPECT_EQ(be.last_conv.pad_w_end, 1);
  const std::vector<float> x(2 * 9 * 10 * 3, 0.f);
  auto xt = be.Constant({2, 9, 10, 3}, x.data());
  ASSERT_TRUE(xt.ok());
  ASSERT_TRUE(be.Conv2d(**l, *xt, Activation::kNone, nullptr).ok());
  // OH = (9 + 0 + 0 - 3) / 2 + 1 = 4, OW = (10 + 0 + 1 - 3) / 2 + 1 = 5.
  EXPECT_EQ(be.last_out_shape, (std::vector<int64_t>{2, 4, 5, 8}));
}

TEST(SharedChecksTest, TextOpsReachTheImplNormalized) {
  CheckOnlyBackend b;
  const std::vector<float> v(10 * 8, 0.f);
  auto table = b.Constant({10, 8}, v.data());
  auto pos = b.Constant({1, 4, 8}, v.data());
  ASSERT_TRUE(table.ok() && pos.ok());
  auto y = b.EmbedTokens(*table, *pos, {1, 2, 3, 4, 5, 6}, 3);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(b.last_pos_shape, (std::vector<int64_t>{4, 8}));  // {1, P, D} arrives as {P, D}
  EXPECT_EQ(b.last_out_shape, (std::vector<int64_t>{3, 2, 8}));
  auto qkv = b.Constant({1, 3, 24}, v.data());
  ASSERT_TRUE(qkv.ok());
  ASSERT_TRUE(b.Attention(*qkv, 2, /*causal=*/true).ok());
  EXPECT_TRUE(b.last_causal);
  ASSERT_TRUE(b.Attention(*qkv, 2).ok());
  EXPECT_FALSE(b.last_causal);  // the default stays unmasked
}

TEST(SharedChecksTest, FailedChecksNeverReachTheImpl) {
  CheckOnlyBackend be;
  ConvSpec s = Spec3x3(3, 8);
  s.pad_h_end = -2;
  const std::vector<float> w(8 * 3 * 9, 0.f);
  EXPECT_FALSE(be.PrepareConv(s, w.data(), nullptr).ok());
  EXPECT_FALSE(be.Preprocess({{nullptr, 4, 4, 12}}, PreprocessSpec{}).ok());
  const std::vector<float> x(12, 0.f);
  auto t = be.Constant({1, 4, 3}, x.data());
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(be.Attention(*t, 2).ok());
  EXPECT_FALSE(be.MeanPool(t->Reshape({1, 2, 2, 3}), 1).ok());
  EXPECT_EQ(be.impl_calls, 0);
}

TEST(CheckImageTest, OneRuleForEveryCaller) {
  const uint8_t px[12] = {};
  EXPECT_TRUE(CheckImage({px, 2, 2, 6}).ok());
  EXPECT_TRUE(CheckImage({px, 2, 1, 8}).ok());  // padded rows
  EXPECT_EQ(CheckImage({nullptr, 2, 2, 6}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckImage({px, 0, 2, 6}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckImage({px, 2, 0, 6}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckImage({px, 2, 2, 5}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckImage({px, 1 << 30, 1, 1 << 30}).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lookalike
