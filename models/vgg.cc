// VGG-16 / VGG-19, with and without BatchNorm, as torchvision defines them
// (torchvision.models.vgg16 / vgg16_bn / vgg19 / vgg19_bn), eval mode.
//
// torchvision tensor names: features.{i} numbers the layers of its
// nn.Sequential: each 3x3 convolution (pad 1, with bias) is followed by ReLU
// (and by BatchNorm before the ReLU in the _bn variants, folded here), and
// the 2x2 max pools take an index each. classifier.0 (25088 -> 4096), ReLU,
// Dropout, classifier.3 (4096 -> 4096), ReLU, Dropout, classifier.6 (the
// ImageNet classifier, unused).
//
// Embedding (pre-logits): the output of the second classifier ReLU, 4096
// wide ("fc7", the classic VGG retrieval feature); Dropout is the identity
// in eval mode. torchvision's AdaptiveAvgPool2d((7, 7)) is the identity at
// the 224 input (7x7 maps); other inputs whose map is a multiple of 7 pool by
// that factor, others are refused. torchvision flattens the {512, 7, 7} map in
// C, H, W order; classifier.0's columns are reordered once at load to the H,
// W, C order of our NHWC maps.
#include <string>
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"

namespace lookalike {
namespace {

constexpr int kPool = 0;  // a max pool in the layer list
constexpr int kGrid = 7;  // torchvision's adaptive pool output

class VggModel : public Model {
 public:
  std::vector<LayerPtr> convs;  // null entries: 2x2 max pools
  LayerPtr fc6, fc7;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    Tensor h = x;
    for (const LayerPtr& conv : convs) {
      if (conv) {
        ASSIGN_OR_RETURN(h, b.Conv2d(*conv, h, Activation::kRelu, nullptr));
      } else {
        ASSIGN_OR_RETURN(h, b.MaxPool2d(h, 2, 2, 0));
      }
    }
    if (h.dim(1) != h.dim(2) || h.dim(1) % kGrid != 0) {
      return InvalidArgumentError("VGG: feature map " + h.ShapeString() +
                                  " is not a multiple of 7x7 (input " + x.ShapeString() + ")");
    }
    if (h.dim(1) != kGrid) {
      PoolSpec avg;
      avg.kind = PoolSpec::Kind::kAvg;
      avg.kernel_h = avg.kernel_w = avg.stride_h = avg.stride_w =
          static_cast<int>(h.dim(1) / kGrid);
      ASSIGN_OR_RETURN(h, b.Pool2d(h, avg));
    }
    const Tensor flat = h.Reshape({h.dim(0), h.dim(1) * h.dim(2) * h.dim(3)});
    ASSIGN_OR_RETURN(Tensor y, b.Linear(*fc6, flat, Activation::kRelu, nullptr));
    return b.Linear(*fc7, y, Activation::kRelu, nullptr);
  }
};

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildVgg(const Preset& preset, WeightStore& w, Backend& backend) {
  // torchvision cfgs "D" (16) and "E" (19).
  static const std::vector<int> kVgg16 = {64,    64,  kPool, 128, 128,   kPool, 256, 256, 256,
                                          kPool, 512, 512,   512, kPool, 512,   512, 512, kPool};
  static const std::vector<int> kVgg19 = {64,  64,    kPool, 128,   128, kPool, 256,
                                          256, 256,   256,   kPool, 512, 512,   512,
                                          512, kPool, 512,   512,   512, 512,   kPool};
  const std::vector<int>* cfg = nullptr;
  bool bn = false;
  if (preset.arch == "vgg16" || preset.arch == "vgg16_bn") cfg = &kVgg16;
  if (preset.arch == "vgg19" || preset.arch == "vgg19_bn") cfg = &kVgg19;
  if (cfg == nullptr) {
    return InvalidArgumentError("preset '" + preset.name + "': unknown VGG architecture '" +
                                preset.arch + "'");
  }
  bn = preset.arch.size() > 3 && preset.arch.compare(preset.arch.size() - 3, 3, "_bn") == 0;
  constexpr float kEps = 1e-5f;
  auto model = std::make_unique<VggModel>();
  int in = 3, index = 0;
  for (int v : *cfg) {
    if (v == kPool) {
      model->convs.push_back(nullptr);
      ++index;
      continue;
    }
    const std::string conv = "features." + std::to_string(index);
    const std::string norm = bn ? "features." + std::to_string(index + 1) : "";
    ASSIGN_OR_RETURN(LayerPtr layer,
                     LoadConv(backend, w, conv, norm, SquareConvSpec(in, v, 3, 1, 1), kEps,
                              /*conv_has_bias=*/true));
    model->convs.push_back(std::move(layer));
    index += bn ? 3 : 2;  // conv [, bn], relu
    in = v;
  }
  // classifier.0: columns from torch's (c, y, x) flatten order to (y, x, c).
  const int cells = kGrid * kGrid, fc_in = in * cells, hidden = 4096;
  ASSIGN_OR_RETURN(std::vector<float> w6, w.Get("classifier.0.weight", {hidden, fc_in}));
  ASSIGN_OR_RETURN(std::vector<float> b6, w.Get("classifier.0.bias", {hidden}));
  std::vector<float> reordered(w6.size());
  for (int64_t o = 0; o < hidden; ++o) {
    const float* src = w6.data() + o * fc_in;
    float* dst = reordered.data() + o * fc_in;
    for (int c = 0; c < in; ++c) {
      for (int s = 0; s < cells; ++s) dst[s * in + c] = src[c * cells + s];
    }
  }
  w6.clear();
  w6.shrink_to_fit();
  ASSIGN_OR_RETURN(model->fc6, backend.PrepareLinear(fc_in, hidden, reordered.data(), b6.data()));
  ASSIGN_OR_RETURN(model->fc7, LoadLinear(backend, w, "classifier.3", hidden, hidden, true));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace lookalike
