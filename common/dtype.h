// DType: the element type of activations and weights, one enum for the
// backends (models/), the CUDA kernels (kernels/) and the tensors they share.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace lookalike {

enum class DType { kF32, kF16, kBF16 };

// "f32", "f16", "bf16".
const char* DTypeName(DType dtype);
// A model's precision as configs and flags spell it ("precision: bf16"):
// "fp32", "fp16", "bf16" (DTypeName's "f32" / "f16" too). INVALID_ARGUMENT
// naming the value otherwise. Which precisions a backend computes in is the
// backend's to check (MakeBackend, models/backend_factory.h).
StatusOr<DType> ParseDType(const std::string& name);

// Bytes per element: 4 for f32, 2 for f16 / bf16.
inline size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

}  // namespace lookalike
