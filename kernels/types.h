// Shared host-side vocabulary of the CUDA kernels (no device code here).
//
// Every launcher takes a plain params struct (device pointers, sizes, strides
// in elements), a cudaStream_t, and returns a Status: INVALID_ARGUMENT for
// shapes / alignments it does not support, INTERNAL naming the CUDA error when
// a launch fails. Launchers never synchronize and never allocate.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "common/activation.h"
#include "common/dtype.h"
#include "common/status.h"

namespace lookalike {
namespace kernels {

// Element types are lookalike::DType (common/dtype.h) and epilogue
// activations lookalike::Activation (common/activation.h, applied in fp32),
// the same enums the backends use.

// "INTERNAL: <what>: <cudaGetErrorString>" when err != cudaSuccess.
Status CudaStatus(cudaError_t err, const std::string& what);
// Checks cudaGetLastError() after a launch.
Status LaunchStatus(const char* kernel_name);

}  // namespace kernels
}  // namespace lookalike
