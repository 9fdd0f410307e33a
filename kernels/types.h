// Shared host-side vocabulary of the CUDA kernels (no device code here).
//
// Every launcher takes a plain params struct (device pointers, sizes, strides
// in elements), a cudaStream_t, and returns a Status: INVALID_ARGUMENT for
// shapes / alignments it does not support, INTERNAL naming the CUDA error when
// a launch fails. Launchers never synchronize and never allocate.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "common/status.h"

namespace lookalike {
namespace kernels {

// Element type of activations and weights in device memory.
enum class ElemType { kF32, kF16, kBF16 };

const char* ElemTypeName(ElemType t);
inline size_t ElemSize(ElemType t) { return t == ElemType::kF32 ? 4 : 2; }

// Epilogue activation, applied in fp32.
enum class Act {
  kNone,
  kRelu,
  kRelu6,
  kGelu,       // x * 0.5 * (1 + erf(x / sqrt(2)))
  kGeluTanh,   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  kQuickGelu,  // x * sigmoid(1.702 x)
};

// "INTERNAL: <what>: <cudaGetErrorString>" when err != cudaSuccess.
Status CudaStatus(cudaError_t err, const std::string& what);
// Checks cudaGetLastError() after a launch.
Status LaunchStatus(const char* kernel_name);

}  // namespace kernels
}  // namespace lookalike
