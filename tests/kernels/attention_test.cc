// Fused attention kernel vs the CPU reference (GPU; skipped without one).
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "kernels/attention.h"
#include "kernels/reference/reference.h"
#include "tests/kernels/gpu_test_util.h"

namespace lookalike {
namespace kernels {
namespace {

using testing::AllClose;
using testing::DefaultTolerance;
using testing::DeviceBuffer;

TEST(AttentionArgsTest, RejectsUnsupportedHeadDimAndBadSizes) {
  // Validation happens before any CUDA call, so this runs without a GPU.
  AttentionParams p;
  p.batch = 1;
  p.seq = 4;
  p.heads = 2;
  p.head_dim = 96;
  p.qkv_row_stride = 3 * 192;
  p.out_row_stride = 192;
  Status s = Attention(p, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("96"), std::string::npos) << s.ToString();
  p.head_dim = 64;
  p.seq = 0;
  EXPECT_EQ(Attention(p, nullptr).code(), StatusCode::kInvalidArgument);
  p.seq = 4;
  p.qkv_row_stride = 100;  // < 3 * dim
  EXPECT_EQ(Attention(p, nullptr).code(), StatusCode::kInvalidArgument);
}

// causal: CLIP's text tower; lengths inside one key tile, CLIP's 77, and past
// one CTA's 64 query rows (tiles after a CTA's last row are skipped).
class AttentionTest : public ::testing::TestWithParam<
                          std::tuple<DType, int /*head_dim*/, int /*seq*/, bool /*causal*/>> {};

TEST_P(AttentionTest, MatchesReference) {
  LOOKALIKE_REQUIRE_GPU();
  const auto [type, hd, seq, causal] = GetParam();
  const int batch = 2, heads = 3, dim = heads * hd;
  // Range 2 makes softmax rows peaked enough for the running max to matter.
  const auto qkv = testing::RandomValues(static_cast<size_t>(batch) * seq * 3 * dim, type,
                                         1000 + seq + hd, -2.f, 2.f);
  const size_t out_n = static_cast<size_t>(batch) * seq * dim;
  DeviceBuffer d_qkv = testing::Upload(qkv, type);
  DeviceBuffer d_out = testing::Poisoned(out_n, type);
  AttentionParams p;
  p.type = type;
  p.qkv = d_qkv.get();
  p.out = d_out.get();
  p.batch = batch;
  p.seq = seq;
  p.heads = heads;
  p.head_dim = hd;
  p.qkv_row_stride = 3 * dim;
  p.out_row_stride = dim;
  p.causal = causal;
  STATUS_ASSERT_OK(Attention(p, nullptr));
  CUDA_ASSERT_OK(cudaDeviceSynchronize());
  const auto got = testing::Download(d_out, out_n, type);
  std::vector<float> want(out_n);
  const float scale = 1.f / std::sqrt(float(hd));
  ref::Attention(qkv.data(), want.data(), batch, seq, heads, hd, scale, causal);
  // P is rounded to the input type before P V: one more rounding than the output.
  testing::Tolerance tol = DefaultTolerance(type);
  EXPECT_TRUE(AllClose(got, want, tol)) << DTypeName(type) << " hd " << hd << " seq " << seq;
  if (causal && seq > 1) {  // the mask matters: unmasked, the first rows differ
    std::vector<float> unmasked(out_n);
    ref::Attention(qkv.data(), unmasked.data(), batch, seq, heads, hd, scale, false);
    EXPECT_FALSE(AllClose(got, unmasked, tol));
  }
}

INSTANTIATE_TEST_SUITE_P(Sweep, AttentionTest,
                         ::testing::Combine(::testing::Values(DType::kF16, DType::kBF16),
                                            ::testing::Values(64, 80, 128),
                                            ::testing::Values(1, 7, 50, 64, 77, 197, 257, 577),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(DTypeName(std::get<0>(info.param))) + "_hd" +
                                  std::to_string(std::get<1>(info.param)) + "_seq" +
                                  std::to_string(std::get<2>(info.param)) +
                                  (std::get<3>(info.param) ? "_causal" : "");
                         });

}  // namespace
}  // namespace kernels
}  // namespace lookalike
