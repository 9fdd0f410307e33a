#include "models/backend_factory.h"

#include "models/cpu/cpu_backend.h"

namespace lookalike {

StatusOr<std::unique_ptr<Backend>> MakeBackend(const Device& device, int threads,
                                               std::optional<DType> dtype) {
  if (threads < 0) {
    return InvalidArgumentError("backend threads must be >= 0, got " + std::to_string(threads));
  }
  if (device.is_cuda()) {
    if (dtype == DType::kF32) {
      return InvalidArgumentError("precision fp32 on " + device.ToString() +
                                  ": the CUDA backend computes in fp16 or bf16");
    }
    return MakeCudaBackend(device.index, dtype.value_or(DType::kF16));
  }
  CpuBackendOptions options;
  options.num_threads = threads;
  options.dtype = dtype.value_or(DType::kF32);
  ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int threads,
                                               std::optional<DType> dtype) {
  ASSIGN_OR_RETURN(Device parsed, ParseDevice(device));
  return MakeBackend(parsed, threads, dtype);
}

}  // namespace lookalike
