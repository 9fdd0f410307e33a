// cuBLASLt linear layers (fused epilogues and the GemmEx fallback) vs the CPU reference.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "kernels/linear.h"
#include "kernels/reference/reference.h"
#include "tests/kernels/gpu_test_util.h"

namespace lookalike {
namespace kernels {
namespace {

using testing::DeviceBuffer;

class LinearTest : public ::testing::TestWithParam<
                       std::tuple<DType, Activation, bool /*residual*/, bool /*fallback*/>> {};

TEST_P(LinearTest, MatchesReference) {
  LOOKALIKE_REQUIRE_GPU();
  const auto [type, act, with_res, fallback] = GetParam();
  auto runner = LinearRunner::Create();
  ASSERT_TRUE(runner.ok()) << runner.status().ToString();
  (*runner)->set_force_fallback(fallback);
  struct Shape {
    int64_t rows;
    int in, out;
  };
  for (const Shape s : {Shape{1, 768, 2304}, Shape{394, 768, 3072}, Shape{50, 72, 40}}) {
    const float ws = 1.f / std::sqrt(static_cast<float>(s.in));
    const auto x = testing::RandomValues(s.rows * s.in, type, 1, -2.f, 2.f);
    const auto w = testing::RandomValues(static_cast<size_t>(s.out) * s.in, type, 2, -ws, ws);
    // The epilogue sees the bias in `type`; the reference gets the same rounded values.
    const auto b = testing::RandomValues(s.out, type, 3);
    const auto r = testing::RandomValues(s.rows * s.out, type, 4);
    DeviceBuffer dx = testing::Upload(x, type), dw = testing::Upload(w, type),
                 db = testing::Upload(b, type), db32 = testing::Upload(b, DType::kF32),
                 dr = testing::Upload(r, type), dy = testing::Poisoned(s.rows * s.out, type);
    LinearParams p;
    p.type = type;
    p.x = dx.get();
    p.weight = dw.get();
    p.bias = db.get();
    p.bias_f32 = static_cast<const float*>(db32.get());
    p.residual = with_res ? dr.get() : nullptr;
    p.y = dy.get();
    p.rows = s.rows;
    p.in_features = s.in;
    p.out_features = s.out;
    p.act = act;
    STATUS_ASSERT_OK((*runner)->Run(p, nullptr));
    CUDA_ASSERT_OK(cudaDeviceSynchronize());
    const auto got = testing::Download(dy, s.rows * s.out, type);
    std::vector<float> want(s.rows * s.out);
    ref::Linear(x.data(), w.data(), b.data(), with_res ? r.data() : nullptr, want.data(), s.rows,
                s.in, s.out, act);
    // The fused epilogues may round the matmul result to `type` before the
    // activation / residual: twice the default tolerance.
    testing::Tolerance tol = testing::DefaultTolerance(type);
    tol.atol *= 2;
    tol.rtol *= 2;
    EXPECT_TRUE(testing::AllClose(got, want, tol)) << "rows " << s.rows << " in " << s.in;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Sweep, LinearTest,
    ::testing::Combine(::testing::Values(DType::kF16, DType::kBF16),
                       ::testing::Values(Activation::kNone, Activation::kRelu, Activation::kGelu,
                                         Activation::kGeluTanh, Activation::kQuickGelu),
                       ::testing::Bool(), ::testing::Bool()));

}  // namespace
}  // namespace kernels
}  // namespace lookalike
