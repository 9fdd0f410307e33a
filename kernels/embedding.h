// Token embedding lookup: out[n, t, :] = table[ids[n, t], :] + pos[t, :]
// (CLIP's text input). table {vocab, dim}, pos {>= tokens, dim}, out {batch,
// tokens, dim}, all of `type`; ids {batch, tokens} int32 in device memory,
// each in [0, vocab) (checked by the caller: the Backend's public op). Sums
// in fp32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

struct EmbedTokensParams {
  DType type = DType::kF16;
  const void* table = nullptr;
  const void* pos = nullptr;
  const int32_t* ids = nullptr;  // device
  void* output = nullptr;
  int batch = 0, tokens = 0, dim = 0, vocab = 0;
};

Status EmbedTokens(const EmbedTokensParams& p, cudaStream_t stream);

}  // namespace kernels
}  // namespace lookalike
