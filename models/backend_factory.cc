#include "models/backend_factory.h"

#include "models/cpu/cpu_backend.h"

namespace lookalike {

StatusOr<std::unique_ptr<Backend>> MakeBackend(const Device& device, int threads) {
  if (threads < 0) {
    return InvalidArgumentError("backend threads must be >= 0, got " + std::to_string(threads));
  }
  if (device.is_cuda()) return MakeCudaBackend(device.index);
  CpuBackendOptions options;
  options.num_threads = threads;
  return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(options));
}

StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int threads) {
  ASSIGN_OR_RETURN(Device parsed, ParseDevice(device));
  return MakeBackend(parsed, threads);
}

}  // namespace lookalike
