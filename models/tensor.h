// Tensor: a backend-owned, dense, row-major activation buffer.
//
// Layouts used by the model definitions (the last dimension is contiguous):
//   images / feature maps: NHWC  shape {N, H, W, C}
//   token sequences:       NTD   shape {N, T, D}
//   pooled / embeddings:   ND    shape {N, D}
// A feature map {N, H, W, C} and the token sequence {N, H*W, C} share the
// same bytes, so Reshape() is free.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/device.h"
#include "common/dtype.h"

namespace lookalike {

// "[2, 224, 224, 3]"
std::string ShapeString(const std::vector<int64_t>& shape);

class Tensor {
 public:
  Tensor() = default;
  // `storage` keeps `data` alive (an arena slice, a std::vector, a cudaMalloc block).
  Tensor(std::vector<int64_t> shape, DType dtype, DeviceKind device, void* data,
         std::shared_ptr<void> storage)
      : shape_(std::move(shape)),
        dtype_(dtype),
        device_(device),
        data_(data),
        storage_(std::move(storage)) {}

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  DType dtype() const { return dtype_; }
  DeviceKind device() const { return device_; }
  bool empty() const { return data_ == nullptr; }

  void* data() const { return data_; }
  template <typename T>
  T* data_as() const {
    return static_cast<T*>(data_);
  }

  // Same bytes, another shape with the same element count.
  Tensor Reshape(std::vector<int64_t> shape) const {
    Tensor t = *this;
    t.shape_ = std::move(shape);
    return t;
  }
  std::string ShapeString() const { return lookalike::ShapeString(shape_); }

 private:
  std::vector<int64_t> shape_;
  DType dtype_ = DType::kF32;
  DeviceKind device_ = DeviceKind::kCpu;
  void* data_ = nullptr;
  std::shared_ptr<void> storage_;
};

}  // namespace lookalike
