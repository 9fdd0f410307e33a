// CudaBackend op by op against CpuBackend (the reference backend) on the same
// random inputs and weights. GPU tests report SKIPPED without a GPU; the
// device-selection tests run everywhere.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "models/backend_factory.h"
#include "models/cpu/cpu_backend.h"
#include "models/cuda/cuda_backend.h"

namespace lookalike {
namespace {

std::vector<float> RandomVec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) {
    x = d(rng);
    if (x == 0.f) x = 0.25f;
  }
  return v;
}

int64_t Numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

TEST(CudaBackendSelectionTest, NoGpuIsAClearError) {
  if (CudaDeviceCount() > 0) GTEST_SKIP() << "a GPU is present; this checks the no-GPU path";
  auto b = MakeBackend("cuda", 0);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition) << b.status().ToString();
  auto auto_b = MakeBackend("auto", 1);
  ASSERT_TRUE(auto_b.ok()) << auto_b.status().ToString();
  EXPECT_EQ((*auto_b)->name(), "cpu");
}

TEST(CudaBackendSelectionTest, BadDeviceIndexAndDtype) {
  CudaBackendOptions o;
  o.dtype = DType::kF32;
  EXPECT_EQ(CudaBackend::Create(o).status().code(), StatusCode::kInvalidArgument);
  if (CudaDeviceCount() == 0) GTEST_SKIP() << CudaUnavailableReason();
  o.dtype = DType::kF16;
  o.device = CudaDeviceCount();
  EXPECT_EQ(CudaBackend::Create(o).status().code(), StatusCode::kNotFound);
}

class CudaBackendTest : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << CudaUnavailableReason();
    CudaBackendOptions o;
    o.dtype = GetParam();
    auto b = CudaBackend::Create(o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    gpu_ = std::move(*b);
    CpuBackendOptions co;
    co.num_threads = 2;
    cpu_ = std::make_unique<CpuBackend>(co);
  }

  // The same values on both backends; rounded to the GPU dtype first so both
  // see identical inputs.
  std::pair<Tensor, Tensor> Input(const std::vector<int64_t>& shape, uint32_t seed, float lo = -1.f,
                                  float hi = 1.f) {
    std::vector<float> v = RandomVec(Numel(shape), seed, lo, hi);
    auto g = gpu_->Upload(shape, v.data());
    EXPECT_TRUE(g.ok()) << g.status().ToString();
    std::vector<float> back;
    EXPECT_TRUE(gpu_->ToHost(*g, &back).ok());
    auto c = cpu_->Allocate(shape);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    std::memcpy(c->data(), back.data(), back.size() * sizeof(float));
    return {*c, *g};
  }

  float Tol() const { return GetParam() == DType::kF16 ? 4e-3f : 2.4e-2f; }

  void ExpectClose(const StatusOr<Tensor>& cpu, const StatusOr<Tensor>& gpu, float scale,
                   const std::string& what) {
    ASSERT_TRUE(cpu.ok()) << what << ": " << cpu.status().ToString();
    ASSERT_TRUE(gpu.ok()) << what << ": " << gpu.status().ToString();
    ASSERT_EQ(cpu->shape(), gpu->shape()) << what;
    std::vector<float> c, g;
    ASSERT_TRUE(cpu_->ToHost(*cpu, &c).ok());
    const Status s = gpu_->ToHost(*gpu, &g);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(c.size(), g.size());
    size_t bad = 0;
    for (size_t i = 0; i < c.size(); ++i) {
      if (!(std::fabs(c[i] - g[i]) <= Tol() * (scale + std::fabs(c[i])))) {
        if (bad++ < 3)
          ADD_FAILURE() << what << " element " << i << ": cpu " << c[i] << " gpu " << g[i];
      }
    }
    EXPECT_EQ(bad, 0u) << what;
  }

  std::unique_ptr<CudaBackend> gpu_;
  std::unique_ptr<CpuBackend> cpu_;
};

TEST_P(CudaBackendTest, ConvolutionsMatchCpu) {
  struct Case {
    int cin, cout, k, stride, pad, pad_end, groups, h;
    Activation act;
    bool res;
  };
  const Case cases[] = {
      {3, 64, 7, 2, 3, 3, 1, 32, Activation::kRelu, false},
      {64, 64, 3, 1, 1, 1, 1, 14, Activation::kRelu, true},
      {64, 256, 1, 1, 0, 0, 1, 14, Activation::kNone, false},
      {32, 32, 3, 2, 0, 1, 32, 17, Activation::kRelu6, false},
      {40, 40, 5, 1, 2, 2, 40, 9, Activation::kRelu6, false},
      {3, 96, 16, 16, 0, 0, 1, 64, Activation::kNone, false},
  };
  uint32_t seed = 1;
  for (const Case& c : cases) {
    ConvSpec s;
    s.in_channels = c.cin;
    s.out_channels = c.cout;
    s.kernel_h = s.kernel_w = c.k;
    s.stride_h = s.stride_w = c.stride;
    s.pad_h = s.pad_w = c.pad;
    s.pad_h_end = s.pad_w_end = c.pad_end;
    s.groups = c.groups;
    const int k = c.k * c.k * (c.cin / c.groups);
    const float ws = 1.f / std::sqrt(static_cast<float>(k));
    const auto w = RandomVec(static_cast<size_t>(c.cout) * k, seed++, -ws, ws);
    const auto b = RandomVec(c.cout, seed++);
    auto lc = cpu_->PrepareConv(s, w.data(), b.data());
    auto lg = gpu_->PrepareConv(s, w.data(), b.data());
    ASSERT_TRUE(lc.ok() && lg.ok()) << lg.status().ToString();
    auto [xc, xg] = Input({2, c.h, c.h, c.cin}, seed++);
    const int oh = (c.h + c.pad + c.pad_end - c.k) / c.stride + 1;
    auto [rc, rg] = Input({2, oh, oh, c.cout}, seed++);
    ExpectClose(cpu_->Conv2d(**lc, xc, c.act, c.res ? &rc : nullptr),
                gpu_->Conv2d(**lg, xg, c.act, c.res ? &rg : nullptr), 1.f,
                "conv k" + std::to_string(c.k) + " groups " + std::to_string(c.groups));
  }
}

TEST_P(CudaBackendTest, TransformerOpsMatchCpu) {
  const int n = 2, t = 197, d = 192, heads = 3;
  auto [xc, xg] = Input({n, t, d}, 10, -2.f, 2.f);
  const auto gamma = RandomVec(d, 11, 0.5f, 1.5f), beta = RandomVec(d, 12);
  auto nc = cpu_->PrepareLayerNorm(d, gamma.data(), beta.data(), 1e-6f);
  auto ng = gpu_->PrepareLayerNorm(d, gamma.data(), beta.data(), 1e-6f);
  ASSERT_TRUE(nc.ok() && ng.ok());
  ExpectClose(cpu_->LayerNorm(**nc, xc), gpu_->LayerNorm(**ng, xg), 1.f, "layer norm");

  const float ws = 1.f / std::sqrt(static_cast<float>(d));
  const auto w = RandomVec(static_cast<size_t>(3 * d) * d, 13, -ws, ws), b = RandomVec(3 * d, 14);
  auto qc = cpu_->PrepareLinear(d, 3 * d, w.data(), b.data());
  auto qg = gpu_->PrepareLinear(d, 3 * d, w.data(), b.data());
  ASSERT_TRUE(qc.ok() && qg.ok());
  for (Activation act : {Activation::kNone, Activation::kGelu, Activation::kQuickGelu}) {
    ExpectClose(cpu_->Linear(**qc, xc, act, nullptr), gpu_->Linear(**qg, xg, act, nullptr), 1.f,
                "linear act " + std::to_string(static_cast<int>(act)));
  }
  auto [qkvc, qkvg] = Input({n, t, 3 * d}, 15, -2.f, 2.f);
  ExpectClose(cpu_->Attention(qkvc, heads), gpu_->Attention(qkvg, heads), 1.f, "attention");
  auto pc = cpu_->Linear(**qc, xc, Activation::kNone, nullptr);
  auto pg = gpu_->Linear(**qg, xg, Activation::kNone, nullptr);
  ASSERT_TRUE(pc.ok() && pg.ok());
  auto [rc, rg] = Input({n, t, 3 * d}, 16);
  ExpectClose(cpu_->Linear(**qc, xc, Activation::kNone, &rc),
              gpu_->Linear(**qg, xg, Activation::kNone, &rg), 1.f, "linear + residual");

  ExpectClose(cpu_->SelectToken(xc, 0), gpu_->SelectToken(xg, 0), 1.f, "select token");
  ExpectClose(cpu_->MeanPool(xc, 1), gpu_->MeanPool(xg, 1), 1.f, "mean pool tokens");
  auto [cls_c, cls_g] = Input({1, d}, 17);
  auto [pos_c, pos_g] = Input({1, t, d}, 18);
  auto [pat_c, pat_g] = Input({n, t - 1, d}, 19);
  ExpectClose(cpu_->PrependTokensAddPos(pat_c, &cls_c, pos_c, true),
              gpu_->PrependTokensAddPos(pat_g, &cls_g, pos_g, true), 1.f, "prepend tokens");
  auto [ec, eg] = Input({n, d}, 20, 1.f, 3.f);
  ExpectClose(cpu_->L2Normalize(ec), gpu_->L2Normalize(eg), 0.1f, "l2 normalize");
  ExpectClose(cpu_->Add(xc, xc), gpu_->Add(xg, xg), 1.f, "add");
}

TEST_P(CudaBackendTest, PoolsMatchCpu) {
  auto [xc, xg] = Input({2, 15, 15, 64}, 30);
  ExpectClose(cpu_->MaxPool2d(xc, 3, 2, 1), gpu_->MaxPool2d(xg, 3, 2, 1), 0.f, "max pool");
  ExpectClose(cpu_->MeanPool(xc, 0), gpu_->MeanPool(xg, 0), 0.1f, "mean pool");
}

// MobileNet, VGG, DenseNet, GoogLeNet / Inception ops.
TEST_P(CudaBackendTest, ChannelOpsMatchCpu) {
  auto [xc, xg] = Input({2, 15, 13, 48}, 31);
  for (bool avg : {false, true}) {
    for (bool ceil : {false, true}) {
      PoolSpec s;
      s.kind = avg ? PoolSpec::Kind::kAvg : PoolSpec::Kind::kMax;
      s.kernel_h = s.kernel_w = 3;
      s.stride_h = s.stride_w = avg ? 1 : 2;
      s.pad_h = s.pad_w = 1;
      s.ceil_mode = ceil;
      s.count_include_pad = !ceil;
      ExpectClose(cpu_->Pool2d(xc, s), gpu_->Pool2d(xg, s), 0.1f,
                  std::string(avg ? "avg" : "max") + (ceil ? " ceil" : "") + " pool");
    }
  }
  auto [sc, sg] = Input({2, 48}, 32, 0.f, 1.f);
  ExpectClose(cpu_->ScaleChannels(xc, sc), gpu_->ScaleChannels(xg, sg), 0.1f, "scale channels");
  auto [gc, gg] = Input({40}, 33);
  auto [bc, bg] = Input({40}, 34);
  for (Activation act : {Activation::kRelu, Activation::kHardSwish, Activation::kHardSigmoid}) {
    ExpectClose(cpu_->ChannelAffine(xc, gc, bc, act), gpu_->ChannelAffine(xg, gg, bg, act), 0.1f,
                "channel affine");
  }
  auto [oc, og] = Input({2, 15, 13, 8}, 35);
  auto cat_c = cpu_->ConcatChannels({xc, oc}, 8);
  auto cat_g = gpu_->ConcatChannels({xg, og}, 8);
  ASSERT_TRUE(cat_c.ok() && cat_g.ok());
  ASSERT_TRUE(cpu_->WriteChannels(*cat_c, oc, 56).ok());
  ASSERT_TRUE(gpu_->WriteChannels(*cat_g, og, 56).ok());
  ExpectClose(cat_c, cat_g, 0.f, "concat + write channels");
}

TEST_P(CudaBackendTest, PreprocessMatchesCpu) {
  std::vector<std::vector<uint8_t>> pixels;
  std::vector<ImageView> views;
  std::mt19937 rng(4);
  for (auto [w, h] : {std::pair<int, int>{500, 375}, {240, 320}, {257, 257}}) {
    pixels.emplace_back(static_cast<size_t>(w) * h * 3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w * 3; ++x)
        pixels.back()[static_cast<size_t>(y) * w * 3 + x] =
            static_cast<uint8_t>((x / 3 + y + 40 * (x % 3) + rng() % 30) % 256);
  }
  int i = 0;
  for (auto [w, h] : {std::pair<int, int>{500, 375}, {240, 320}, {257, 257}}) {
    views.push_back({pixels[i++].data(), w, h, 3 * w});
  }
  for (Interpolation interp : {Interpolation::kBilinear, Interpolation::kBicubic}) {
    PreprocessSpec spec;
    spec.interpolation = interp;
    // The CPU path uses PIL's 22-bit fixed-point weights, the GPU float
    // weights: rare one-step uint8 differences (0.0175 after normalization).
    auto c = cpu_->Preprocess(views, spec);
    auto g = gpu_->Preprocess(views, spec);
    ASSERT_TRUE(c.ok() && g.ok()) << g.status().ToString();
    std::vector<float> hc, hg;
    ASSERT_TRUE(cpu_->ToHost(*c, &hc).ok());
    ASSERT_TRUE(gpu_->ToHost(*g, &hg).ok());
    ASSERT_EQ(hc.size(), hg.size());
    size_t off = 0;
    for (size_t k = 0; k < hc.size(); ++k) {
      const float err = std::fabs(hc[k] - hg[k]);
      ASSERT_LE(err, 1.05f / (255.f * 0.224f) + Tol() * (1.f + std::fabs(hc[k]))) << k;
      if (err > Tol() * (1.f + std::fabs(hc[k]))) ++off;
    }
    EXPECT_LE(off, hc.size() / 100);
  }
}

// Argument checks: tests/models/backend_contract_test.cc (every backend).

// RunRecorded: the second run at a shape is captured as a CUDA graph and later
// runs replay it. Replays must give bit-identical results to eager runs of
// the same ops, for new inputs, and the graph's buffers must survive eager
// work in between.
TEST_P(CudaBackendTest, RecordedGraphsReplayExactly) {
  const int n = 2, t = 50, d = 64, heads = 2;
  const float ws = 1.f / std::sqrt(static_cast<float>(d));
  const auto w = RandomVec(static_cast<size_t>(3 * d) * d, 40, -ws, ws), b = RandomVec(3 * d, 41);
  const auto w2 = RandomVec(static_cast<size_t>(d) * d, 42, -ws, ws);
  auto qkv = gpu_->PrepareLinear(d, 3 * d, w.data(), b.data());
  auto proj = gpu_->PrepareLinear(d, d, w2.data(), nullptr);
  ASSERT_TRUE(qkv.ok() && proj.ok());
  int calls = 0;
  const Backend::ForwardFn forward = [&](const Tensor& x) -> StatusOr<Tensor> {
    ++calls;
    ASSIGN_OR_RETURN(Tensor y, gpu_->Linear(**qkv, x, Activation::kNone, nullptr));
    ASSIGN_OR_RETURN(Tensor a, gpu_->Attention(y, heads));
    ASSIGN_OR_RETURN(Tensor z, gpu_->Linear(**proj, a, Activation::kGelu, &x));
    ASSIGN_OR_RETURN(Tensor m, gpu_->MeanPool(z, 0));
    return gpu_->L2Normalize(m);
  };
  auto run = [&](const std::vector<int64_t>& shape, uint32_t seed, bool recorded) {
    const auto v = RandomVec(Numel(shape), seed);
    auto x = gpu_->Upload(shape, v.data());
    EXPECT_TRUE(x.ok());
    auto y = recorded ? gpu_->RunRecorded(*x, forward) : forward(*x);
    EXPECT_TRUE(y.ok()) << y.status().ToString();
    std::vector<float> host;
    EXPECT_TRUE(gpu_->ToHost(*y, &host).ok());
    return host;
  };
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    const std::vector<float> eager = run({n, t, d}, seed, false);
    const std::vector<float> recorded = run({n, t, d}, seed, true);
    ASSERT_EQ(eager.size(), recorded.size());
    for (size_t i = 0; i < eager.size(); ++i) {
      ASSERT_EQ(eager[i], recorded[i]) << "seed " << seed << " element " << i;
    }
  }
  // Eager run 1, then RunRecorded: eager (1st), captured (2nd), replays.
  // forward() ran for each eager run and once per capture; replays call nothing.
  EXPECT_EQ(gpu_->recorded_graphs(), 1u) << gpu_->last_graph_error();
  EXPECT_EQ(calls, 4 + 2);
  EXPECT_GT(gpu_->graph_pool_bytes(), 0u);
  // Another batch size gets a graph of its own; the first still replays exactly.
  for (uint32_t seed = 10; seed <= 12; ++seed) run({n + 1, t, d}, seed, true);
  EXPECT_EQ(gpu_->recorded_graphs(), 2u) << gpu_->last_graph_error();
  const std::vector<float> again = run({n, t, d}, 3, true);
  EXPECT_EQ(again, run({n, t, d}, 3, false));
}

TEST(CudaBackendGraphsTest, DisabledGraphsRunEagerly) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << CudaUnavailableReason();
  CudaBackendOptions o;
  o.cuda_graphs = false;
  auto b = CudaBackend::Create(o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const std::vector<float> v = RandomVec(16, 1);
  auto x = (*b)->Upload({2, 8}, v.data());
  ASSERT_TRUE(x.ok());
  int calls = 0;
  for (int i = 0; i < 3; ++i) {
    auto y = (*b)->RunRecorded(*x, [&](const Tensor& in) -> StatusOr<Tensor> {
      ++calls;
      return (*b)->L2Normalize(in);
    });
    ASSERT_TRUE(y.ok());
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ((*b)->recorded_graphs(), 0u);
}

INSTANTIATE_TEST_SUITE_P(DTypes, CudaBackendTest, ::testing::Values(DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace lookalike
