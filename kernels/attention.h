// Fused multi-head self-attention (flash-attention style, one kernel).
//
// qkv: {batch, seq, 3 * dim} packed [q | k | v] (models/backend.h Attention
// contract); head h uses columns [h*head_dim, (h+1)*head_dim) of each part.
// out: {batch, seq, dim}, out[n, t, h*hd + j] = softmax(q k^T * scale) v;
// with `causal`, query t attends to keys [0, t] only (CLIP's text tower).
// Row strides are in elements (qkv_row_stride >= 3*dim, out_row_stride >= dim).
// Supported: f16 / bf16, head_dim 64, 80 or 128, any seq >= 1; pointers and
// row strides 16-byte aligned. fp32 accumulation and softmax.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

struct AttentionParams {
  DType type = DType::kF16;
  const void* qkv = nullptr;
  void* out = nullptr;
  int batch = 0;
  int seq = 0;
  int heads = 0;
  int head_dim = 0;
  int64_t qkv_row_stride = 0;  // elements between consecutive tokens in qkv
  int64_t out_row_stride = 0;  // elements between consecutive tokens in out
  float scale = 0.f;           // 0 means 1/sqrt(head_dim)
  bool causal = false;         // mask keys after the query (GPT-style)
};

Status Attention(const AttentionParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
