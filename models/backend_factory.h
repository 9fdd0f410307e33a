// Backend selection by device (common/device.h parses the strings).
//   cpu     -> CpuBackend (models/cpu/), `threads` OpenMP threads (0 = all cores)
//   cuda:N  -> CudaBackend on GPU N when this build has the CUDA backend;
//              otherwise FAILED_PRECONDITION "this build has no CUDA backend"
// `dtype`: the precision the model computes in (the config's `precision`);
// nullopt = the device's default (cpu: fp32, cuda: fp16). The CPU takes fp32
// or bf16 (bf16 where the CPU has avx512_bf16 / amx_bf16, else
// FAILED_PRECONDITION naming the missing feature), CUDA fp16 or bf16; another
// is INVALID_ARGUMENT naming the device and the precision.
// A device string ("cpu", "cuda", "cuda:N", "auto") goes through ParseDevice,
// which resolves "auto" (GPU 0 when CudaDeviceCount() > 0, else the CPU) and
// rejects anything else with INVALID_ARGUMENT naming the string.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/device.h"
#include "common/status.h"
#include "models/backend.h"

namespace lookalike {

StatusOr<std::unique_ptr<Backend>> MakeBackend(const Device& device, int threads,
                                               std::optional<DType> dtype = std::nullopt);
StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int threads,
                                               std::optional<DType> dtype = std::nullopt);

// A CudaBackend on GPU `device_index` computing in `dtype` (kF16 or kBF16)
// (FAILED_PRECONDITION naming the index when that GPU is absent). Defined by the CUDA backend
// (models/cuda/) in CUDA builds, and by models/cuda_backend_absent.cc (always FAILED_PRECONDITION)
// in builds without CUDA; CMake links exactly one of them.
StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device_index, DType dtype);

}  // namespace lookalike
