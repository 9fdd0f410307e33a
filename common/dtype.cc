#include "common/dtype.h"

namespace lookalike {

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kF16:
      return "f16";
    case DType::kBF16:
      return "bf16";
  }
  return "?";
}

StatusOr<DType> ParseDType(const std::string& name) {
  if (name == "fp32" || name == "f32") return DType::kF32;
  if (name == "fp16" || name == "f16") return DType::kF16;
  if (name == "bf16") return DType::kBF16;
  return InvalidArgumentError("precision \"" + name + "\" is not one of fp32, fp16, bf16");
}

}  // namespace lookalike
