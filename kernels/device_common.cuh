// Device helpers shared by the kernels (included only by .cu files).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

// Blocks of `per_block` threads covering n elements (at least 1, at most the
// grid's x limit: grid-stride kernels cover the rest).
inline unsigned Blocks(int64_t n, int per_block = 256) {
  int64_t b = (n + per_block - 1) / per_block;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b > 0x7fffffff ? 0x7fffffff : b);
}

namespace dev {

template <typename T>
__device__ __forceinline__ float ToFloat(T v);
template <>
__device__ __forceinline__ float ToFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float ToFloat<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float ToFloat<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Two floats -> packed 2 x 16-bit (low half = a), as mma fragments expect.
template <typename T>
__device__ __forceinline__ uint32_t PackPair(float a, float b);
template <>
__device__ __forceinline__ uint32_t PackPair<__half>(float a, float b) {
  __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}
template <>
__device__ __forceinline__ uint32_t PackPair<__nv_bfloat16>(float a, float b) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}

// Activation in fp32. Accurate erf/tanh on purpose: these feed parity tests.
__device__ __forceinline__ float Activate(float x, Activation act) {
  switch (act) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return fmaxf(x, 0.f);
    case Activation::kRelu6:
      return fminf(fmaxf(x, 0.f), 6.f);
    case Activation::kGelu:
      return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case Activation::kGeluTanh: {
      const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.f + tanhf(u));
    }
    case Activation::kQuickGelu:
      return x / (1.f + expf(-1.702f * x));
    case Activation::kHardSwish:
      return x * fminf(fmaxf(x + 3.f, 0.f), 6.f) / 6.f;
    case Activation::kHardSigmoid:
      return fminf(fmaxf(x + 3.f, 0.f), 6.f) / 6.f;
  }
  return x;
}

// D = A * B + D on tensor cores, m16n8k16, fp32 accumulate.
// Fragment layout (PTX ISA "mma.m16n8k16"): g = lane / 4, t = lane % 4;
//   a[0] = A[g][2t..2t+1]     a[1] = A[g+8][2t..2t+1]
//   a[2] = A[g][2t+8..2t+9]   a[3] = A[g+8][2t+8..2t+9]
//   b[0] = B[2t..2t+1][g]     b[1] = B[2t+8..2t+9][g]
//   d[0..1] = D[g][2t..2t+1]  d[2..3] = D[g+8][2t..2t+1]
template <typename T>
__device__ __forceinline__ void Mma16816(float* d, const uint32_t* a, const uint32_t* b);
template <>
__device__ __forceinline__ void Mma16816<__half>(float* d, const uint32_t* a, const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <>
__device__ __forceinline__ void Mma16816<__nv_bfloat16>(float* d, const uint32_t* a,
                                                        const uint32_t* b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 16-byte global -> shared copy that bypasses registers. When `valid` is
// false nothing is read and the 16 destination bytes are zero-filled (the
// source address must still be a legal pointer; callers pass the tensor base).
__device__ __forceinline__ void CpAsync16(void* smem_dst, const void* gmem_src, bool valid) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem_dst));
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem_src),
               "r"(src_bytes));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ uint32_t LoadU32(const void* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}
// Two 16-bit values from separate addresses packed into one fragment register.
__device__ __forceinline__ uint32_t Pack16(const uint16_t* lo, const uint16_t* hi) {
  return static_cast<uint32_t>(*lo) | (static_cast<uint32_t>(*hi) << 16);
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace dev
}  // namespace kernels
}  // namespace lookalike

// Dispatches a runtime DType (f16 / bf16) to a type alias `T` in `body`.
#define LOOKALIKE_DISPATCH_HALF_TYPES(elem_type, T, ...)                      \
  [&]() -> ::lookalike::Status {                                              \
    switch (elem_type) {                                                      \
      case ::lookalike::DType::kF16: {                                        \
        using T = __half;                                                     \
        return __VA_ARGS__();                                                 \
      }                                                                       \
      case ::lookalike::DType::kBF16: {                                       \
        using T = __nv_bfloat16;                                              \
        return __VA_ARGS__();                                                 \
      }                                                                       \
      default:                                                                \
        return ::lookalike::InvalidArgumentError("unsupported element type"); \
    }                                                                         \
  }()
