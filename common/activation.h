// Activation: the element-wise activations the backbones use, one enum for the
// backends (models/), the CUDA kernels' epilogues (kernels/) and the CPU
// references, with the one scalar host formula (the CUDA kernels have their
// device copy in kernels/device_common.cuh).
#pragma once

#include <algorithm>
#include <cmath>

namespace lookalike {

enum class Activation {
  kNone,
  kRelu,
  kRelu6,
  kGelu,       // exact, erf form (timm / torch default): 0.5 x (1 + erf(x / sqrt(2)))
  kGeluTanh,   // tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  kQuickGelu,  // x * sigmoid(1.702 x) (OpenAI CLIP)
  // MobileNetV3 (torch.nn.Hardswish / Hardsigmoid):
  kHardSwish,    // x * relu6(x + 3) / 6
  kHardSigmoid,  // relu6(x + 3) / 6
};

// act(x) in fp32.
inline float ApplyActivation(float x, Activation act) {
  switch (act) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return std::max(x, 0.0f);
    case Activation::kRelu6:
      return std::min(std::max(x, 0.0f), 6.0f);
    case Activation::kGelu:
      return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Activation::kGeluTanh:
      return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case Activation::kQuickGelu:
      return x / (1.0f + std::exp(-1.702f * x));
    case Activation::kHardSwish:
      return x * std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;
    case Activation::kHardSigmoid:
      return std::min(std::max(x + 3.0f, 0.0f), 6.0f) / 6.0f;
  }
  return x;
}

}  // namespace lookalike
