// Linear layers y = act(x W^T + b) [+ residual] on cuBLASLt, with the bias /
// ReLU / tanh-GELU epilogues fused into the matmul where cuBLASLt has them and
// the residual fused as C (beta = 1) when there is no activation; exact-erf
// GELU and QuickGELU run as one bias+activation+residual pass after the
// matmul. When cuBLASLt offers no algorithm, cublasGemmEx + that pass.
//
// Layouts: x {rows, in} row-major, weight {out, in} (torch.nn.Linear), y and
// residual {rows, out}; f16 / bf16 with fp32 accumulation.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>

#include "kernels/types.h"

namespace lookalike {
namespace kernels {

struct LinearParams {
  DType type = DType::kF16;
  const void* x = nullptr;
  const void* weight = nullptr;
  const void* bias = nullptr;  // {out} in `type` (for the cuBLASLt epilogue), or null
  const float* bias_f32 =
      nullptr;  // the same bias in fp32 (for the separate pass); null iff bias is
  const void* residual = nullptr;  // {rows, out} or null; must not alias y
  void* y = nullptr;
  int64_t rows = 0;
  int in_features = 0;
  int out_features = 0;
  Activation act = Activation::kNone;
};

// Owns the cuBLAS / cuBLASLt handles, the per-shape algorithm cache and a
// matmul workspace. One per stream; not thread-safe.
class LinearRunner {
 public:
  static StatusOr<std::unique_ptr<LinearRunner>> Create(size_t workspace_bytes = 32u << 20);
  ~LinearRunner();
  LinearRunner(const LinearRunner&) = delete;
  LinearRunner& operator=(const LinearRunner&) = delete;

  Status Run(const LinearParams& p, cudaStream_t stream);

  // Forces the cublasGemmEx fallback (tests exercise both paths).
  void set_force_fallback(bool v) { force_fallback_ = v; }

 private:
  struct Impl;
  explicit LinearRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  bool force_fallback_ = false;
};

}  // namespace kernels
}  // namespace lookalike
