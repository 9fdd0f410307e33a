// Backend selection by device string.
//   "cpu"              -> CpuBackend (models/cpu/), `threads` OpenMP threads (0 = all cores)
//   "cuda" / "cuda:N"  -> CudaBackend on GPU N (0 by default) when this build has
//                         the CUDA backend; otherwise FAILED_PRECONDITION
//                         "this build has no CUDA backend"
//   "auto"             -> "cuda" when CudaAvailable(), else "cpu"
// Anything else is INVALID_ARGUMENT naming the device string.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "models/backend.h"

namespace lookalike {

StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int threads);

// Defined by the CUDA backend (target lookalike_cuda_backend, models/cuda/),
// which exists only in CUDA builds; LOOKALIKE_HAVE_CUDA_BACKEND is defined
// where it is linked, and only then does MakeBackend() call these.
// MakeCudaBackend: a backend on GPU `device_index` (FAILED_PRECONDITION naming
// the index when that GPU is absent). CudaDeviceCount: the number of usable
// GPUs (0 when the driver or devices are missing; never fails).
StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device_index);
int CudaDeviceCount();

}  // namespace lookalike
