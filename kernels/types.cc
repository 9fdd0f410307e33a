#include "kernels/types.h"

#include <cuda_runtime.h>

namespace lookalike {
namespace kernels {

Status CudaStatus(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return Status::Ok();
  if (err == cudaErrorMemoryAllocation) {
    return ResourceExhaustedError(what + ": " + cudaGetErrorString(err));
  }
  return InternalError(what + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
}

Status LaunchStatus(const char* kernel_name) {
  return CudaStatus(cudaGetLastError(), std::string("launching ") + kernel_name);
}

}  // namespace kernels
}  // namespace lookalike
