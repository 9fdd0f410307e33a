// Memory-bound transformer / CNN ops on dense row-major f16 / bf16 tensors
// (Convert also handles f32). fp32 math inside every kernel. Output buffers
// never alias inputs unless stated.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

// y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * gamma + beta, statistics in
// fp32 over `dim` (one warp per row). gamma / beta: fp32 {dim}.
struct LayerNormParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  void* output = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  int64_t rows = 0;
  int dim = 0;
  float eps = 1e-5f;
};
Status LayerNorm(const LayerNormParams& p, cudaStream_t stream);

// In place: y[r, c] = act(y[r, c] + bias[c]) + residual[r, c]. bias fp32
// {cols} or null; residual {rows, cols} or null (may not alias y).
struct BiasActParams {
  DType type = DType::kF16;
  void* data = nullptr;
  const float* bias = nullptr;
  const void* residual = nullptr;
  int64_t rows = 0;
  int cols = 0;
  Activation act = Activation::kNone;
};
Status BiasAct(const BiasActParams& p, cudaStream_t stream);

// NHWC max pooling, square window, symmetric padding treated as -inf.
// out_h = (in_h + 2*pad - kernel) / stride + 1.
struct MaxPoolParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  void* output = nullptr;
  int batch = 0, in_h = 0, in_w = 0, channels = 0;
  int kernel = 0, stride = 1, pad = 0;
};
Status MaxPool2d(const MaxPoolParams& p, cudaStream_t stream);

// {batch, tokens, channels} -> {batch, channels}: mean over tokens
// [token_begin, tokens) (a feature map {N, H, W, C} is tokens = H*W).
struct MeanPoolParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  void* output = nullptr;
  int batch = 0, tokens = 0, channels = 0;
  int token_begin = 0;
};
Status MeanPool(const MeanPoolParams& p, cudaStream_t stream);

// {batch, tokens, dim} -> {batch, dim}: row `index` of each sequence.
struct SelectTokenParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  void* output = nullptr;
  int batch = 0, tokens = 0, dim = 0;
  int index = 0;
};
Status SelectToken(const SelectTokenParams& p, cudaStream_t stream);

// out {batch, prefix + patches, dim}: rows [0, prefix) = prefix_tokens
// {prefix, dim}, rows [prefix, ...) = patches {batch, patches, dim}; then pos is
// added: pos {prefix + patches, dim} to every row when pos_applies_to_prefix,
// else pos {patches, dim} to the patch rows only.
struct PrependTokensParams {
  DType type = DType::kF16;
  const void* patches = nullptr;
  const void* prefix_tokens = nullptr;  // null when prefix == 0
  const void* pos = nullptr;            // may be null: nothing added
  void* output = nullptr;
  int batch = 0, num_patches = 0, prefix = 0, dim = 0;
  bool pos_applies_to_prefix = true;
};
Status PrependTokensAddPos(const PrependTokensParams& p, cudaStream_t stream);

// out[i] = a[i] + b[i], n elements. out may alias a or b.
struct AddParams {
  DType type = DType::kF16;
  const void* a = nullptr;
  const void* b = nullptr;
  void* out = nullptr;
  int64_t n = 0;
};
Status Add(const AddParams& p, cudaStream_t stream);

// out[r, :] = x[r, :] / max(||x[r, :]||_2, eps). Sum of squares in fp32.
struct L2NormalizeParams {
  DType type = DType::kF16;
  const void* input = nullptr;
  void* output = nullptr;
  int64_t rows = 0;
  int dim = 0;
  float eps = 1e-12f;
};
Status L2Normalize(const L2NormalizeParams& p, cudaStream_t stream);

// Element type conversion (round to nearest even), any pair of f32/f16/bf16.
struct ConvertParams {
  DType src_type = DType::kF32;
  DType dst_type = DType::kF16;
  const void* src = nullptr;
  void* dst = nullptr;
  int64_t n = 0;
};
Status Convert(const ConvertParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
