// One block per (sequence, token) row; threads stride over the dim.
#include "kernels/embedding.h"

#include <string>

#include "kernels/device_common.cuh"

namespace lookalike {
namespace kernels {
namespace {

constexpr int kThreads = 128;

template <typename T>
__global__ void __launch_bounds__(kThreads)
    EmbedTokensKernel(const T* __restrict__ table, const T* __restrict__ pos,
                      const int32_t* __restrict__ ids, T* __restrict__ out, int tokens, int dim,
                      int vocab) {
  const int64_t row = blockIdx.x;  // n * tokens + t
  const int t = static_cast<int>(row % tokens);
  const int32_t id = ids[row];
  T* o = out + row * dim;
  if (id < 0 || id >= vocab) {  // the caller checks; never read outside the table
    for (int c = threadIdx.x; c < dim; c += kThreads) o[c] = dev::FromFloat<T>(0.f);
    return;
  }
  const T* e = table + static_cast<int64_t>(id) * dim;
  const T* p = pos + static_cast<int64_t>(t) * dim;
  for (int c = threadIdx.x; c < dim; c += kThreads) {
    o[c] = dev::FromFloat<T>(dev::ToFloat<T>(e[c]) + dev::ToFloat<T>(p[c]));
  }
}

}  // namespace

Status EmbedTokens(const EmbedTokensParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.tokens <= 0 || p.dim <= 0 || p.vocab <= 0) {
    return InvalidArgumentError("embed_tokens: batch, tokens, dim and vocab must be positive");
  }
  if (static_cast<int64_t>(p.batch) * p.tokens > 0x7fffffff) {
    return InvalidArgumentError("embed_tokens: too many tokens for one launch");
  }
  if (p.table == nullptr || p.pos == nullptr || p.ids == nullptr || p.output == nullptr) {
    return InvalidArgumentError("embed_tokens: null pointer");
  }
  return LOOKALIKE_DISPATCH_HALF_TYPES(p.type, T, [&]() -> Status {
    EmbedTokensKernel<T><<<static_cast<unsigned>(p.batch * p.tokens), kThreads, 0, stream>>>(
        static_cast<const T*>(p.table), static_cast<const T*>(p.pos), p.ids,
        static_cast<T*>(p.output), p.tokens, p.dim, p.vocab);
    return LaunchStatus("EmbedTokensKernel");
  });
}

}  // namespace kernels
}  // namespace lookalike
