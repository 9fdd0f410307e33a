// The dense math of the CPU backend: convolutions, linear layers and the
// sgemm of attention. One implementation per build, chosen by CMake
// (models/cpu/CMakeLists.txt): dense_dnnl.cc on oneDNN where it is installed,
// dense_loops.cc (portable OpenMP loops: the same results up to fp32
// rounding, far slower; reference use, e.g. on the GPU build island) where it
// is not. Arguments arrive checked (models/backend.h); tensors are host fp32,
// dense and row-major.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/activation.h"
#include "common/dtype.h"
#include "common/status.h"
#include "models/backend.h"
#include "models/cpu/buffer_pool.h"
#include "models/tensor.h"

namespace lookalike {
namespace cpu {

// A prepared convolution: its weights in the implementation's form (and any
// per-shape primitives it caches). Thread-safe.
class DenseConv {
 public:
  virtual ~DenseConv() = default;
  // y {N, OH, OW, out} = act(conv(x {N, H, W, in}) + bias [+ residual]);
  // y is allocated by the caller.
  virtual Status Run(const Tensor& x, Activation act, const Tensor* residual,
                     const Tensor& y) const = 0;
};

// A prepared linear layer. Thread-safe.
class DenseLinear {
 public:
  virtual ~DenseLinear() = default;
  // y {rows, out} = act(x {rows, in} W^T + bias) [+ residual] (x and y may
  // have more leading dimensions); y is allocated by the caller.
  virtual Status Run(const Tensor& x, Activation act, const Tensor* residual,
                     const Tensor& y) const = 0;
};

// One per CpuBackend: the implementation's engine state.
class Dense {
 public:
  // Defined by the implementation CMake compiled; `pool` supplies scratch.
  // `dtype`: kF32, or kBF16 (convolutions and linear layers compute in
  // bf16 with fp32 accumulation; tensors stay fp32) where
  // Bf16UnavailableReason() is "".
  static std::unique_ptr<Dense> Create(std::shared_ptr<BufferPool> pool, DType dtype = DType::kF32);
  // "" when this implementation can compute in bf16 on this CPU; otherwise
  // why not, naming the missing CPU feature (or the missing library).
  static std::string Bf16UnavailableReason();
  virtual ~Dense() = default;

  // spec: checked, end pads resolved. weight {out, in/groups, kh, kw}
  // (PyTorch), bias {out} (zeros when the layer has none). Layers are valid
  // only while this Dense lives.
  virtual std::unique_ptr<DenseConv> PrepareConv(const ConvSpec& spec, std::vector<float> weight,
                                                 std::vector<float> bias) = 0;
  // weight {out, in} (torch.nn.Linear), bias {out}.
  virtual std::unique_ptr<DenseLinear> PrepareLinear(int in, int out, std::vector<float> weight,
                                                     std::vector<float> bias) = 0;
};

// Row-major C {M, N} = alpha * A {M, K} * op(B) (+ beta C); op(B) = B {K, N}
// or, with trans_b, B^T where B is {N, K}. oneDNN's sgemm, or a plain loop.
// INTERNAL when oneDNN reports a failure.
// Runs single-threaded (it is called inside parallel regions).
Status Sgemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc);

}  // namespace cpu
}  // namespace lookalike
