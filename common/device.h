// Devices: the one parser of device strings and the one answer to "is there a
// GPU", shared by the config, the backend factory and the index factory.
//
// Device strings: "cpu", "cuda" (GPU 0), "cuda:N" (GPU N, 0 <= N < kMaxCudaDevices)
// and, where a caller allows it, "auto": GPU 0 when CudaDeviceCount() > 0,
// else the CPU. "auto" is resolved here and nowhere else.
#pragma once

#include <string>

#include "common/status.h"

namespace lookalike {

enum class DeviceKind { kCpu, kCuda };

inline constexpr int kMaxCudaDevices = 1024;

struct Device {
  DeviceKind kind = DeviceKind::kCpu;
  int index = 0;  // the GPU's ordinal for kCuda; 0 for kCpu

  bool is_cuda() const { return kind == DeviceKind::kCuda; }
  // "cpu" or "cuda:N": parses back to the same Device.
  std::string ToString() const;
  bool operator==(const Device& other) const { return kind == other.kind && index == other.index; }
  bool operator!=(const Device& other) const { return !(*this == other); }
};

enum class AutoDevice { kReject, kResolve };

// Parses a device string. INVALID_ARGUMENT naming the string and the accepted
// forms for anything else (and for "auto" under AutoDevice::kReject). Whether
// GPU N exists is not checked here: the backend or index that opens it says so.
StatusOr<Device> ParseDevice(const std::string& text,
                             AutoDevice auto_device = AutoDevice::kResolve);

// The number of usable CUDA devices: 0 in a build without CUDA, or when the
// driver or the devices are missing. Never fails; asks the driver once.
int CudaDeviceCount();

// Why CudaDeviceCount() is 0, in words ("this build has no CUDA", "no CUDA
// device present", "no usable CUDA device: <driver error>"); empty when a GPU
// is usable. Tests print it when they skip.
std::string CudaUnavailableReason();

}  // namespace lookalike
