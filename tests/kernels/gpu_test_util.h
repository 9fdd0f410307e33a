// Helpers for the GPU kernel tests: skip without a GPU, device buffers,
// random inputs rounded to the device dtype, poisoned outputs, comparison.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/device.h"
#include "common/half.h"
#include "kernels/types.h"

namespace lookalike {
namespace kernels {
namespace testing {

// True when a CUDA device is usable; the reason otherwise (common/device.h
// asks the driver, once).
inline bool HaveGpu(std::string* why) {
  if (CudaDeviceCount() > 0) return true;
  *why = CudaUnavailableReason();
  return false;
}

#define LOOKALIKE_REQUIRE_GPU()                                     \
  do {                                                              \
    std::string lookalike_why_;                                     \
    if (!::lookalike::kernels::testing::HaveGpu(&lookalike_why_)) { \
      GTEST_SKIP() << lookalike_why_;                               \
    }                                                               \
  } while (0)

#define CUDA_ASSERT_OK(expr)                                                                       \
  do {                                                                                             \
    const cudaError_t lookalike_err_ = (expr);                                                     \
    ASSERT_EQ(lookalike_err_, cudaSuccess) << #expr << ": " << cudaGetErrorString(lookalike_err_); \
  } while (0)

#define STATUS_ASSERT_OK(expr)                                 \
  do {                                                         \
    const ::lookalike::Status lookalike_s_ = (expr);           \
    ASSERT_TRUE(lookalike_s_.ok()) << lookalike_s_.ToString(); \
  } while (0)

// Owns a cudaMalloc block.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (cudaMalloc(&ptr_, bytes) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Values in [lo, hi), never exactly zero, already rounded to `type` so the
// reference sees what the device sees.
inline std::vector<float> RandomValues(size_t n, DType type, uint32_t seed, float lo = -1.f,
                                       float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) {
    float r = 0.f;
    while (r == 0.f) {  // redraw zeros (also values that round to zero)
      r = dist(rng);
      if (type == DType::kF16) r = RoundHalf(r);
      if (type == DType::kBF16) r = RoundBf16(r);
    }
    x = r;
  }
  return v;
}

inline std::vector<uint16_t> ToBits(const std::vector<float>& v, DType type) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    out[i] = type == DType::kBF16 ? FloatToBf16(v[i]) : FloatToHalf(v[i]);
  }
  return out;
}

// Uploads `v` converted to `type` (f16/bf16/f32) into a new buffer.
inline DeviceBuffer Upload(const std::vector<float>& v, DType type) {
  DeviceBuffer b(v.size() * DTypeSize(type) + 16);
  if (type == DType::kF32) {
    cudaMemcpy(b.get(), v.data(), v.size() * 4, cudaMemcpyHostToDevice);
  } else {
    const std::vector<uint16_t> bits = ToBits(v, type);
    cudaMemcpy(b.get(), bits.data(), bits.size() * 2, cudaMemcpyHostToDevice);
  }
  return b;
}

// A buffer of n elements filled with NaN bit patterns (0xFFFF is NaN in both
// f16 and bf16; 0xFFFFFFFF in f32), so unwritten elements fail the comparison.
inline DeviceBuffer Poisoned(size_t n, DType type) {
  DeviceBuffer b(n * DTypeSize(type) + 16);
  cudaMemset(b.get(), 0xFF, n * DTypeSize(type) + 16);
  return b;
}

inline std::vector<float> Download(const DeviceBuffer& b, size_t n, DType type) {
  std::vector<float> out(n);
  if (type == DType::kF32) {
    cudaMemcpy(out.data(), b.get(), n * 4, cudaMemcpyDeviceToHost);
    return out;
  }
  std::vector<uint16_t> bits(n);
  cudaMemcpy(bits.data(), b.get(), n * 2, cudaMemcpyDeviceToHost);
  for (size_t i = 0; i < n; ++i) {
    out[i] = type == DType::kBF16 ? Bf16ToFloat(bits[i]) : HalfToFloat(bits[i]);
  }
  return out;
}

// Per-dtype tolerance: |got - want| <= atol + rtol * |want| (fp32 reference).
struct Tolerance {
  float atol;
  float rtol;
};
// fp16 stores 11 significant bits (2^-11 ~ 4.9e-4 relative rounding), bf16 8
// (2^-8 ~ 3.9e-3); the bounds below allow the final rounding plus fp32
// accumulation-order differences over long reductions.
inline Tolerance DefaultTolerance(DType type) {
  switch (type) {
    case DType::kF16:
      return {2e-3f, 4e-3f};
    case DType::kBF16:
      return {1.6e-2f, 1.6e-2f};
    case DType::kF32:
      return {1e-5f, 1e-5f};
  }
  return {0.f, 0.f};
}

inline ::testing::AssertionResult AllClose(const std::vector<float>& got,
                                           const std::vector<float>& want, Tolerance tol) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  }
  size_t bad = 0, first = 0;
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float err = std::fabs(got[i] - want[i]);
    const float bound = tol.atol + tol.rtol * std::fabs(want[i]);
    if (!(err <= bound)) {  // NaN (unwritten poison) fails too
      if (bad == 0) first = i;
      ++bad;
    }
    if (err > worst || std::isnan(err)) worst = std::isnan(err) ? INFINITY : err;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << got.size() << " elements out of tolerance (atol " << tol.atol
         << ", rtol " << tol.rtol << "); first at " << first << ": got " << got[first] << ", want "
         << want[first] << "; worst abs error " << worst;
}

inline const char* TypeName(DType t) { return DTypeName(t); }

}  // namespace testing
}  // namespace kernels
}  // namespace lookalike
