// DType: the element type of activations and weights, one enum for the
// backends (models/), the CUDA kernels (kernels/) and the tensors they share.
#pragma once

#include <cstddef>

namespace lookalike {

enum class DType { kF32, kF16, kBF16 };

// "f32", "f16", "bf16".
const char* DTypeName(DType dtype);
// Bytes per element: 4 for f32, 2 for f16 / bf16.
inline size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

}  // namespace lookalike
