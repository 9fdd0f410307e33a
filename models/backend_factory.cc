#include "models/backend_factory.h"

#include <cstdlib>

#if defined(LOOKALIKE_HAVE_CPU_BACKEND)
#include "models/cpu/cpu_backend.h"
#endif
#include "models/embedder.h"

namespace lookalike {

bool CudaAvailable() {
#if defined(LOOKALIKE_HAVE_CUDA_BACKEND)
  return CudaDeviceCount() > 0;
#else
  return false;
#endif
}

StatusOr<std::unique_ptr<Backend>> MakeBackend(const std::string& device, int threads) {
  if (threads < 0) {
    return InvalidArgumentError("backend threads must be >= 0, got " + std::to_string(threads));
  }
  if (device == "cpu") {
#if defined(LOOKALIKE_HAVE_CPU_BACKEND)
    CpuBackendOptions options;
    options.num_threads = threads;
    return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(options));
#else
    return FailedPreconditionError("device 'cpu': this build has no CPU backend");
#endif
  }
  if (device == "auto") return MakeBackend(CudaAvailable() ? "cuda" : "cpu", threads);
  if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (device.size() > 5) {
      const std::string digits = device.substr(5);
      char* end = nullptr;
      const long v = std::strtol(digits.c_str(), &end, 10);
      if (digits.empty() || *end != '\0' || v < 0 || v > 1024) {
        return InvalidArgumentError("device '" + device + "': expected cuda:N with N >= 0");
      }
      index = static_cast<int>(v);
    }
#if defined(LOOKALIKE_HAVE_CUDA_BACKEND)
    return MakeCudaBackend(index);
#else
    (void)index;
    return FailedPreconditionError("device '" + device +
                                   "': this build has no CUDA backend (built without CUDA)");
#endif
  }
  return InvalidArgumentError("unknown device '" + device +
                              "' (expected \"cpu\", \"cuda\", \"cuda:N\" or \"auto\")");
}

}  // namespace lookalike
