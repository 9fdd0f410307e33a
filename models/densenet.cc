// DenseNet-121 / DenseNet-169 as torchvision defines them
// (torchvision.models.densenet121 / densenet169: growth 32, bn_size 4, 64
// initial features), eval mode.
//
// torchvision tensor names (its current names; the released .pth files spell
// denselayer parts "norm.1" / "conv.1", which tools/convert_weights.py renames
// as torchvision's own loader does):
//   features.conv0 (7x7 s2) + features.norm0 + ReLU, then max pool 3x3 s2 p1
//   features.denseblock{b}.denselayer{l} (l from 1): norm1 + ReLU + conv1
//       (1x1 -> 128) + norm2 + ReLU + conv2 (3x3 -> 32) on the concatenation
//       of the block input and every earlier layer's output
//   features.transition{b}: norm + ReLU + conv (1x1, halves the channels) +
//       average pool 2x2 s2
//   features.norm5 + ReLU, global average pool = the embedding (1024 / 1664),
//   classifier the ImageNet classifier (unused)
//
// Concatenation costs no copy of earlier features: each block's output buffer
// {N, H, W, C_in + layers * 32} is allocated once (Backend::ConcatChannels
// with reserved channels), each layer reads the channel prefix that exists so
// far through its norm1 + ReLU (Backend::ChannelAffine: a BatchNorm followed
// by ReLU cannot fold into the next convolution) and writes its 32 new
// channels once into their slice (Backend::WriteChannels). norm2 folds into
// conv1. A transition average-pools before its 1x1 convolution (both linear,
// so they commute; 4x fewer multiply-adds than conv-then-pool).
#include <string>
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"

namespace lookalike {
namespace {

constexpr float kEps = 1e-5f;
constexpr int kGrowth = 32, kBottleneck = 4 * 32;

struct Affine {
  Tensor scale, shift;  // {channels}
};

struct DenseLayer {
  Affine norm1;
  LayerPtr conv1;  // norm2 folded in, ReLU after
  LayerPtr conv2;
};

struct DenseBlock {
  std::vector<DenseLayer> layers;
  int in_channels = 0;
  Affine transition_norm;  // unset after the last block
  LayerPtr transition_conv;
};

StatusOr<Affine> LoadAffine(Backend& backend, WeightStore& w, const std::string& bn, int c) {
  ASSIGN_OR_RETURN(FoldedConv f, LoadBatchNormAffine(w, bn, c, kEps));
  Affine a;
  ASSIGN_OR_RETURN(a.scale, backend.Constant({c}, f.weight.data()));
  ASSIGN_OR_RETURN(a.shift, backend.Constant({c}, f.bias.data()));
  return a;
}

class DenseNetModel : public Model {
 public:
  LayerPtr stem;  // conv0 + norm0 folded
  std::vector<DenseBlock> blocks;
  Affine norm5;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    ASSIGN_OR_RETURN(Tensor h, b.Conv2d(*stem, x, Activation::kRelu, nullptr));
    ASSIGN_OR_RETURN(h, b.MaxPool2d(h, 3, 2, 1));
    for (const DenseBlock& blk : blocks) {
      const int reserve = static_cast<int>(blk.layers.size()) * kGrowth;
      ASSIGN_OR_RETURN(Tensor features, b.ConcatChannels({h}, reserve));
      int channels = blk.in_channels;
      for (const DenseLayer& layer : blk.layers) {
        ASSIGN_OR_RETURN(Tensor y, b.ChannelAffine(features, layer.norm1.scale, layer.norm1.shift,
                                                   Activation::kRelu));
        ASSIGN_OR_RETURN(y, b.Conv2d(*layer.conv1, y, Activation::kRelu, nullptr));
        ASSIGN_OR_RETURN(y, b.Conv2d(*layer.conv2, y, Activation::kNone, nullptr));
        RETURN_IF_ERROR(b.WriteChannels(features, y, channels));
        channels += kGrowth;
      }
      h = features;
      if (blk.transition_conv) {
        ASSIGN_OR_RETURN(h, b.ChannelAffine(h, blk.transition_norm.scale, blk.transition_norm.shift,
                                            Activation::kRelu));
        PoolSpec avg;
        avg.kind = PoolSpec::Kind::kAvg;
        ASSIGN_OR_RETURN(h, b.Pool2d(h, avg));
        ASSIGN_OR_RETURN(h, b.Conv2d(*blk.transition_conv, h, Activation::kNone, nullptr));
      }
    }
    ASSIGN_OR_RETURN(h, b.ChannelAffine(h, norm5.scale, norm5.shift, Activation::kRelu));
    return b.MeanPool(h, 0);
  }
};

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildDenseNet(const Preset& preset, WeightStore& w,
                                               Backend& backend) {
  std::vector<int> config;
  if (preset.arch == "densenet121") config = {6, 12, 24, 16};
  if (preset.arch == "densenet169") config = {6, 12, 32, 32};
  if (config.empty()) {
    return InvalidArgumentError("preset '" + preset.name + "': unknown DenseNet architecture '" +
                                preset.arch + "'");
  }
  auto model = std::make_unique<DenseNetModel>();
  ASSIGN_OR_RETURN(model->stem, LoadConv(backend, w, "features.conv0", "features.norm0",
                                         SquareConvSpec(3, 64, 7, 2, 3), kEps));
  int c = 64;
  for (size_t bi = 0; bi < config.size(); ++bi) {
    DenseBlock blk;
    blk.in_channels = c;
    const std::string bp = "features.denseblock" + std::to_string(bi + 1) + ".denselayer";
    for (int l = 0; l < config[bi]; ++l) {
      const std::string p = bp + std::to_string(l + 1) + ".";
      DenseLayer layer;
      ASSIGN_OR_RETURN(layer.norm1, LoadAffine(backend, w, p + "norm1", c));
      ASSIGN_OR_RETURN(layer.conv1, LoadConv(backend, w, p + "conv1", p + "norm2",
                                             SquareConvSpec(c, kBottleneck, 1, 1, 0), kEps));
      ASSIGN_OR_RETURN(layer.conv2, LoadConv(backend, w, p + "conv2", "",
                                             SquareConvSpec(kBottleneck, kGrowth, 3, 1, 1), kEps));
      blk.layers.push_back(std::move(layer));
      c += kGrowth;
    }
    if (bi + 1 < config.size()) {
      const std::string t = "features.transition" + std::to_string(bi + 1) + ".";
      ASSIGN_OR_RETURN(blk.transition_norm, LoadAffine(backend, w, t + "norm", c));
      ASSIGN_OR_RETURN(blk.transition_conv, LoadConv(backend, w, t + "conv", "",
                                                     SquareConvSpec(c, c / 2, 1, 1, 0), kEps));
      c /= 2;
    }
    model->blocks.push_back(std::move(blk));
  }
  ASSIGN_OR_RETURN(model->norm5, LoadAffine(backend, w, "features.norm5", c));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace lookalike
