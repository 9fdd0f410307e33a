// EfficientNet-Lite as the PyPI package efficientnet-lite-pytorch defines it
// (efficientnet_lite_pytorch.EfficientNet.from_name("efficientnet-liteN")),
// eval mode, BatchNorm (eps 1e-3) folded into the convolutions:
//
//   stem   _conv_stem (3x3 s2, 32 ch, not width-scaled) + _bn0 + ReLU6
//   blocks _blocks.K: [_expand_conv 1x1 + _bn0 + ReLU6]  (expand ratio != 1)
//                     _depthwise_conv kxk stride s + _bn1 + ReLU6
//                     _project_conv 1x1 + _bn2 (+ input when the block keeps
//                     its shape; no squeeze-excitation in the Lite variants)
//   head   _conv_head 1x1 -> 1280 (not scaled) + _bn1 + ReLU6, global average
//          pool = the embedding; _fc is the ImageNet classifier.
//
// Every convolution uses TensorFlow "SAME" padding computed for the fixed
// input size (the package's Conv2dStaticSamePadding): total padding
// max((out - 1) * s + k - in, 0) with out = ceil(in / s), split
// floor(total / 2) before and the rest after, hence ConvSpec's pad_*_end.
#include <cmath>
#include <vector>

#include "models/model.h"

namespace lookalike {
namespace {

constexpr float kBnEps = 1e-3f;

struct StageArgs {
  int repeats, kernel, stride, expand, in, out;
};
// efficientnet_lite(): 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ...
constexpr StageArgs kStages[] = {
    {1, 3, 1, 1, 32, 16},  {2, 3, 2, 6, 16, 24},   {2, 5, 2, 6, 24, 40},   {3, 3, 2, 6, 40, 80},
    {3, 5, 1, 6, 80, 112}, {4, 5, 2, 6, 112, 192}, {1, 3, 1, 6, 192, 320},
};

int RoundFilters(int filters, double multiplier) {
  const int divisor = 8;
  const double f = filters * multiplier;
  int rounded = std::max(divisor, static_cast<int>(f + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * f) rounded += divisor;
  return rounded;
}

int RoundRepeats(int repeats, double multiplier) {
  return static_cast<int>(std::ceil(multiplier * repeats));
}

// TF "SAME" padding for one axis of an input of `in` pixels.
void SamePadding(int in, int kernel, int stride, int* before, int* after) {
  const int out = (in + stride - 1) / stride;
  const int total = std::max((out - 1) * stride + kernel - in, 0);
  *before = total / 2;
  *after = total - total / 2;
}

StatusOr<LayerPtr> ConvBnSame(Backend& backend, WeightStore& w, const std::string& conv,
                              const std::string& bn, int in, int out, int kernel, int stride,
                              int groups, int image_size) {
  const int in_per_group = in / groups;
  ASSIGN_OR_RETURN(FoldedConv f,
                   LoadConvBn(w, conv, bn, out, in_per_group, kernel, kernel, kBnEps));
  ConvSpec spec;
  spec.in_channels = in;
  spec.out_channels = out;
  spec.kernel_h = spec.kernel_w = kernel;
  spec.stride_h = spec.stride_w = stride;
  spec.groups = groups;
  SamePadding(image_size, kernel, stride, &spec.pad_h, &spec.pad_h_end);
  spec.pad_w = spec.pad_h;
  spec.pad_w_end = spec.pad_h_end;
  return backend.PrepareConv(spec, f.weight.data(), f.bias.data());
}

struct MBConv {
  LayerPtr expand;  // null when expand ratio is 1
  LayerPtr depthwise, project;
  bool skip = false;
};

class EfficientNetLiteModel : public Model {
 public:
  LayerPtr stem, head;
  std::vector<MBConv> blocks;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    ASSIGN_OR_RETURN(Tensor h, b.Conv2d(*stem, x, Activation::kRelu6, nullptr));
    for (const MBConv& blk : blocks) {
      Tensor y = h;
      if (blk.expand) {
        ASSIGN_OR_RETURN(y, b.Conv2d(*blk.expand, y, Activation::kRelu6, nullptr));
      }
      ASSIGN_OR_RETURN(y, b.Conv2d(*blk.depthwise, y, Activation::kRelu6, nullptr));
      ASSIGN_OR_RETURN(h, b.Conv2d(*blk.project, y, Activation::kNone, blk.skip ? &h : nullptr));
    }
    ASSIGN_OR_RETURN(h, b.Conv2d(*head, h, Activation::kRelu6, nullptr));
    return b.MeanPool(h, 0);
  }
};

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildEfficientNetLite(const Preset& preset, WeightStore& w,
                                                       Backend& backend) {
  const double width = preset.effnet.width_coefficient;
  const double depth = preset.effnet.depth_coefficient;
  auto model = std::make_unique<EfficientNetLiteModel>();
  int size = preset.input_size;
  ASSIGN_OR_RETURN(model->stem, ConvBnSame(backend, w, "_conv_stem", "_bn0", 3, 32, 3, 2, 1, size));
  size = (size + 1) / 2;
  const int num_stages = static_cast<int>(sizeof(kStages) / sizeof(kStages[0]));
  int index = 0;
  int last_out = 32;
  for (int s = 0; s < num_stages; ++s) {
    const StageArgs& a = kStages[s];
    // fix_head_stem: the first and last stages keep their repeat count, and
    // the first stage's input stays 32 (the unscaled stem).
    const bool fixed = (s == 0 || s == num_stages - 1);
    const int repeats = fixed ? a.repeats : RoundRepeats(a.repeats, depth);
    int in = s == 0 ? 32 : RoundFilters(a.in, width);
    const int out = RoundFilters(a.out, width);
    for (int r = 0; r < repeats; ++r) {
      const int stride = r == 0 ? a.stride : 1;
      const std::string p = "_blocks." + std::to_string(index) + ".";
      const int mid = in * a.expand;
      MBConv blk;
      if (a.expand != 1) {
        ASSIGN_OR_RETURN(blk.expand, ConvBnSame(backend, w, p + "_expand_conv", p + "_bn0", in, mid,
                                                1, 1, 1, size));
      }
      ASSIGN_OR_RETURN(blk.depthwise, ConvBnSame(backend, w, p + "_depthwise_conv", p + "_bn1", mid,
                                                 mid, a.kernel, stride, mid, size));
      size = (size + stride - 1) / stride;
      ASSIGN_OR_RETURN(blk.project, ConvBnSame(backend, w, p + "_project_conv", p + "_bn2", mid,
                                               out, 1, 1, 1, size));
      // The package skips only in the repeated blocks (its first block's
      // stride is a list, never == 1), which all keep their shape.
      blk.skip = r > 0 && in == out;
      model->blocks.push_back(std::move(blk));
      in = out;
      ++index;
    }
    last_out = out;
  }
  ASSIGN_OR_RETURN(model->head,
                   ConvBnSame(backend, w, "_conv_head", "_bn1", last_out, 1280, 1, 1, 1, size));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace lookalike
