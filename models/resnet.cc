// ResNet v1.5 as torchvision defines it (stride on the 3x3 conv of the
// Bottleneck), eval mode, with every BatchNorm folded into its conv.
//
// torchvision tensor names: conv1, bn1, layer{1..4}.{i}.conv{1,2[,3]},
// .bn{1,2[,3]}, layer{2..4}.0.downsample.0 (1x1 conv) / .1 (BN), fc (the
// classifier, unused by the embedding). Embedding = global average pool of
// layer4's output (pre-fc): 512 (18/34) or 2048 (50/101/152) wide.
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"

namespace lookalike {
namespace {

constexpr float kBnEps = 1e-5f;  // torch.nn.BatchNorm2d default

StatusOr<LayerPtr> PrepareConvBn(Backend& backend, WeightStore& w, const std::string& conv,
                                 const std::string& bn, int in, int out, int k, int stride,
                                 int pad) {
  return LoadConv(backend, w, conv, bn, SquareConvSpec(in, out, k, stride, pad), kBnEps);
}

struct Block {
  LayerPtr conv1, conv2, conv3;  // conv3 only for Bottleneck
  LayerPtr downsample;           // may be null
};

class ResNetModel : public Model {
 public:
  bool bottleneck = false;
  LayerPtr stem;
  std::vector<Block> blocks;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    ASSIGN_OR_RETURN(Tensor h, b.Conv2d(*stem, x, Activation::kRelu, nullptr));
    ASSIGN_OR_RETURN(h, b.MaxPool2d(h, 3, 2, 1));
    for (const Block& blk : blocks) {
      Tensor identity = h;
      if (blk.downsample) {
        ASSIGN_OR_RETURN(identity, b.Conv2d(*blk.downsample, h, Activation::kNone, nullptr));
      }
      ASSIGN_OR_RETURN(Tensor y, b.Conv2d(*blk.conv1, h, Activation::kRelu, nullptr));
      if (bottleneck) {
        ASSIGN_OR_RETURN(y, b.Conv2d(*blk.conv2, y, Activation::kRelu, nullptr));
        ASSIGN_OR_RETURN(h, b.Conv2d(*blk.conv3, y, Activation::kRelu, &identity));
      } else {
        ASSIGN_OR_RETURN(h, b.Conv2d(*blk.conv2, y, Activation::kRelu, &identity));
      }
    }
    return b.MeanPool(h, 0);
  }
};

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildResNet(const Preset& preset, WeightStore& w,
                                             Backend& backend) {
  std::vector<int> layers;
  bool bottleneck = false;
  switch (preset.resnet_depth) {
    case 18:
      layers = {2, 2, 2, 2};
      break;
    case 34:
      layers = {3, 4, 6, 3};
      break;
    case 50:
      layers = {3, 4, 6, 3};
      bottleneck = true;
      break;
    case 101:
      layers = {3, 4, 23, 3};
      bottleneck = true;
      break;
    case 152:
      layers = {3, 8, 36, 3};
      bottleneck = true;
      break;
    default:
      return InvalidArgumentError("preset '" + preset.name + "': unsupported ResNet depth " +
                                  std::to_string(preset.resnet_depth));
  }
  auto model = std::make_unique<ResNetModel>();
  model->bottleneck = bottleneck;
  ASSIGN_OR_RETURN(model->stem, PrepareConvBn(backend, w, "conv1", "bn1", 3, 64, 7, 2, 3));
  const int expansion = bottleneck ? 4 : 1;
  int in = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int planes = 64 << stage;
    for (int i = 0; i < layers[stage]; ++i) {
      const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(i) + ".";
      const int stride = (stage > 0 && i == 0) ? 2 : 1;
      const int out = planes * expansion;
      Block blk;
      if (bottleneck) {
        ASSIGN_OR_RETURN(blk.conv1,
                         PrepareConvBn(backend, w, p + "conv1", p + "bn1", in, planes, 1, 1, 0));
        ASSIGN_OR_RETURN(blk.conv2, PrepareConvBn(backend, w, p + "conv2", p + "bn2", planes,
                                                  planes, 3, stride, 1));
        ASSIGN_OR_RETURN(blk.conv3,
                         PrepareConvBn(backend, w, p + "conv3", p + "bn3", planes, out, 1, 1, 0));
      } else {
        ASSIGN_OR_RETURN(
            blk.conv1, PrepareConvBn(backend, w, p + "conv1", p + "bn1", in, planes, 3, stride, 1));
        ASSIGN_OR_RETURN(
            blk.conv2, PrepareConvBn(backend, w, p + "conv2", p + "bn2", planes, planes, 3, 1, 1));
      }
      if (stride != 1 || in != out) {
        ASSIGN_OR_RETURN(blk.downsample, PrepareConvBn(backend, w, p + "downsample.0",
                                                       p + "downsample.1", in, out, 1, stride, 0));
      }
      model->blocks.push_back(std::move(blk));
      in = out;
    }
  }
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace lookalike
