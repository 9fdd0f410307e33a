// MakeCudaBackend for builds without CUDA (CMake compiles this file instead of
// models/cuda/): the CUDA device is known but cannot be opened here.
#include "models/backend_factory.h"

namespace lookalike {

StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device_index, DType) {
  return FailedPreconditionError("device 'cuda:" + std::to_string(device_index) +
                                 "': this build has no CUDA backend (built without CUDA)");
}

}  // namespace lookalike
