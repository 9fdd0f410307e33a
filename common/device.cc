#include "common/device.h"

#include <cstdlib>
#include <mutex>

#if defined(LOOKALIKE_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace lookalike {
namespace {

struct CudaProbe {
  int count = 0;
  std::string reason;
};

const CudaProbe& Probe() {
  static std::once_flag once;
  static CudaProbe probe;
  std::call_once(once, [] {
#if defined(LOOKALIKE_HAVE_CUDA)
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no driver / no device" error
      probe.reason = std::string("no usable CUDA device: ") + cudaGetErrorString(err);
    } else if (n == 0) {
      probe.reason = "no CUDA device present";
    } else {
      probe.count = n;
    }
#else
    probe.reason = "this build has no CUDA";
#endif
  });
  return probe;
}

Status BadDevice(const std::string& text, AutoDevice auto_device) {
  return InvalidArgumentError("unknown device '" + text +
                              "' (expected \"cpu\", \"cuda\", \"cuda:N\" with 0 <= N < " +
                              std::to_string(kMaxCudaDevices) +
                              (auto_device == AutoDevice::kResolve ? " or \"auto\")" : ")"));
}

}  // namespace

std::string Device::ToString() const {
  return kind == DeviceKind::kCpu ? "cpu" : "cuda:" + std::to_string(index);
}

StatusOr<Device> ParseDevice(const std::string& text, AutoDevice auto_device) {
  if (text == "cpu") return Device{DeviceKind::kCpu, 0};
  if (text == "cuda") return Device{DeviceKind::kCuda, 0};
  if (text == "auto" && auto_device == AutoDevice::kResolve) {
    return CudaDeviceCount() > 0 ? Device{DeviceKind::kCuda, 0} : Device{DeviceKind::kCpu, 0};
  }
  if (text.rfind("cuda:", 0) == 0) {
    const std::string digits = text.substr(5);
    if (digits.empty() || digits.size() > 4) return BadDevice(text, auto_device);
    for (char c : digits) {
      if (c < '0' || c > '9') return BadDevice(text, auto_device);
    }
    const int index = std::atoi(digits.c_str());
    if (index >= kMaxCudaDevices) return BadDevice(text, auto_device);
    return Device{DeviceKind::kCuda, index};
  }
  return BadDevice(text, auto_device);
}

int CudaDeviceCount() { return Probe().count; }

std::string CudaUnavailableReason() { return Probe().reason; }

}  // namespace lookalike
