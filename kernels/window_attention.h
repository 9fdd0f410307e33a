// Multi-head self-attention over short sequences with an additive score bias
// (Swin window attention: relative position bias + shifted-window mask).
//
// qkv: {batch, seq, 3 * heads * head_dim} packed [q | k | v] (models/backend.h
// Attention contract); bias: {groups, heads, seq, seq}, sequence n uses
// bias[n % groups]; out: {batch, seq, heads * head_dim},
// out = softmax(q k^T / sqrt(head_dim) + bias) v per head. One block per
// (sequence, head) holding q, k, v and the scores in shared memory (fp32):
// 4 * (3 * seq * head_dim + seq * seq) bytes must fit in 48 KiB (Swin's
// 49-token windows with head_dim 32 use 28 KiB). f16 / bf16.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

struct WindowAttentionParams {
  DType type = DType::kF16;
  const void* qkv = nullptr;
  const void* bias = nullptr;
  void* out = nullptr;
  int batch = 0, seq = 0, heads = 0, head_dim = 0;
  int groups = 1;  // bias groups, dividing batch
};

Status WindowAttention(const WindowAttentionParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
