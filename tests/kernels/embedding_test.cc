// Token embedding lookup kernel vs its definition (GPU; skipped without one).
#include "kernels/embedding.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/kernels/gpu_test_util.h"

namespace lookalike {
namespace kernels {
namespace {

using testing::AllClose;
using testing::DefaultTolerance;
using testing::DeviceBuffer;

TEST(EmbedTokensArgsTest, RejectsBadSizes) {
  // Validation happens before any CUDA call, so this runs without a GPU.
  EmbedTokensParams p;
  p.batch = 1;
  p.tokens = 0;
  p.dim = 8;
  p.vocab = 10;
  EXPECT_EQ(EmbedTokens(p, nullptr).code(), StatusCode::kInvalidArgument);
}

class EmbedTokensTest : public ::testing::TestWithParam<DType> {};

TEST_P(EmbedTokensTest, MatchesDefinition) {
  LOOKALIKE_REQUIRE_GPU();
  const DType type = GetParam();
  // CLIP's text sizes: 77 tokens, dim 512, the 49408-id vocabulary (both
  // ends of it used).
  const int batch = 3, tokens = 77, dim = 512, vocab = 49408, positions = 77;
  const auto table = testing::RandomValues(static_cast<size_t>(vocab) * dim, type, 5);
  const auto pos = testing::RandomValues(static_cast<size_t>(positions) * dim, type, 6);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(batch) * tokens);
  for (int32_t& x : ids) x = id(rng);
  ids[0] = 0;
  ids[1] = vocab - 1;
  DeviceBuffer d_table = testing::Upload(table, type);
  DeviceBuffer d_pos = testing::Upload(pos, type);
  DeviceBuffer d_ids(ids.size() * sizeof(int32_t));
  CUDA_ASSERT_OK(
      cudaMemcpy(d_ids.get(), ids.data(), ids.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  const size_t out_n = static_cast<size_t>(batch) * tokens * dim;
  DeviceBuffer d_out = testing::Poisoned(out_n, type);
  EmbedTokensParams p;
  p.type = type;
  p.table = d_table.get();
  p.pos = d_pos.get();
  p.ids = static_cast<const int32_t*>(d_ids.get());
  p.output = d_out.get();
  p.batch = batch;
  p.tokens = tokens;
  p.dim = dim;
  p.vocab = vocab;
  STATUS_ASSERT_OK(EmbedTokens(p, nullptr));
  CUDA_ASSERT_OK(cudaDeviceSynchronize());
  const auto got = testing::Download(d_out, out_n, type);
  std::vector<float> want(out_n);
  for (int r = 0; r < batch * tokens; ++r) {
    const int t = r % tokens;
    for (int c = 0; c < dim; ++c) {
      want[static_cast<size_t>(r) * dim + c] =
          table[static_cast<size_t>(ids[r]) * dim + c] + pos[static_cast<size_t>(t) * dim + c];
    }
  }
  EXPECT_TRUE(AllClose(got, want, DefaultTolerance(type))) << DTypeName(type);
}

INSTANTIATE_TEST_SUITE_P(Types, EmbedTokensTest, ::testing::Values(DType::kF16, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace kernels
}  // namespace lookalike
