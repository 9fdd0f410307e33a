// MobileNetV2 and MobileNetV3 (small / large) as torchvision defines them
// (torchvision.models.mobilenet_v2 / mobilenet_v3_{small,large}, width 1.0),
// eval mode, every BatchNorm folded into its convolution.
//
// torchvision tensor names:
//   V2  features.0.{0,1}            stem 3x3 s2 -> 32 + BN + ReLU6
//       features.{1..17}.conv.*     inverted residuals: with expansion
//                                   conv.0.{0,1} 1x1 expand + ReLU6,
//                                   conv.1.{0,1} 3x3 depthwise + ReLU6,
//                                   conv.2 1x1 project, conv.3 its BN; without
//                                   (t = 1) conv.0.{0,1} depthwise, conv.1 /
//                                   conv.2 project + BN
//       features.18.{0,1}           1x1 -> 1280 + ReLU6
//       classifier.1                the ImageNet classifier (unused)
//   V3  features.0.{0,1}            stem 3x3 s2 -> 16 + BN + hard-swish
//       features.{i}.block.{j}      [expand 1x1 .{0,1}] depthwise kxk .{0,1}
//                                   [squeeze-excite .fc1 / .fc2: 1x1 convs
//                                   with bias, ReLU then hard-sigmoid] project
//                                   1x1 .{0,1} (j counts the present parts)
//       features.{last}.{0,1}       1x1 -> 6 x 160 = 960 (large) / 6 x 96 =
//                                   576 (small) + hard-swish
//       classifier.0                Linear 960 -> 1280 / 576 -> 1024 +
//                                   hard-swish; classifier.3 the ImageNet
//                                   classifier (unused)
//   BatchNorm eps: 1e-5 (V2), 1e-3 (V3). A block adds its input when it keeps
//   stride 1 and its channel count.
//
// Embedding (pre-logits): V2 the global average pool of features.18 (1280);
// V3 the output of classifier.0 + hard-swish (1280 large / 1024 small), the
// input of the last Linear (timm's pre_logits for its MobileNetV3 too).
// Dropout is the identity in eval mode.
#include <algorithm>
#include <string>
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"

namespace lookalike {
namespace {

struct InvertedResidual {
  LayerPtr expand;  // null without expansion
  LayerPtr depthwise;
  LayerPtr se_fc1, se_fc2;  // null without squeeze-excite
  LayerPtr project;
  Activation act = Activation::kRelu6;
  bool skip = false;
};

class MobileNetModel : public Model {
 public:
  LayerPtr stem, head, pre_logits;  // pre_logits: V3's classifier.0 (null for V2)
  Activation stem_act = Activation::kRelu6;
  std::vector<InvertedResidual> blocks;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    ASSIGN_OR_RETURN(Tensor h, b.Conv2d(*stem, x, stem_act, nullptr));
    for (const InvertedResidual& blk : blocks) {
      Tensor y = h;
      if (blk.expand) {
        ASSIGN_OR_RETURN(y, b.Conv2d(*blk.expand, y, blk.act, nullptr));
      }
      ASSIGN_OR_RETURN(y, b.Conv2d(*blk.depthwise, y, blk.act, nullptr));
      if (blk.se_fc1) {
        ASSIGN_OR_RETURN(Tensor s, b.MeanPool(y, 0));
        ASSIGN_OR_RETURN(s, b.Linear(*blk.se_fc1, s, Activation::kRelu, nullptr));
        ASSIGN_OR_RETURN(s, b.Linear(*blk.se_fc2, s, Activation::kHardSigmoid, nullptr));
        ASSIGN_OR_RETURN(y, b.ScaleChannels(y, s));
      }
      ASSIGN_OR_RETURN(h, b.Conv2d(*blk.project, y, Activation::kNone, blk.skip ? &h : nullptr));
    }
    ASSIGN_OR_RETURN(h, b.Conv2d(*head, h, stem_act, nullptr));
    ASSIGN_OR_RETURN(Tensor pooled, b.MeanPool(h, 0));
    if (!pre_logits) return pooled;
    return b.Linear(*pre_logits, pooled, Activation::kHardSwish, nullptr);
  }
};

// torchvision's _make_divisible(v, 8).
int MakeDivisible(double v, int divisor = 8) {
  int n = std::max(divisor, static_cast<int>(v + divisor / 2.0) / divisor * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

// A 1x1 convolution with bias applied to pooled {N, C} vectors: a Linear
// with the conv's {out, in, 1, 1} weight.
StatusOr<LayerPtr> LoadPointwiseAsLinear(Backend& backend, WeightStore& w, const std::string& name,
                                         int in, int out) {
  ASSIGN_OR_RETURN(std::vector<float> weight, w.Get(name + ".weight", {out, in, 1, 1}));
  ASSIGN_OR_RETURN(std::vector<float> bias, w.Get(name + ".bias", {out}));
  return backend.PrepareLinear(in, out, weight.data(), bias.data());
}

StatusOr<std::unique_ptr<Model>> BuildV2(WeightStore& w, Backend& backend) {
  constexpr float kEps = 1e-5f;
  struct Stage {
    int t, c, n, s;
  };
  constexpr Stage kStages[] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                               {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  auto model = std::make_unique<MobileNetModel>();
  model->stem_act = Activation::kRelu6;
  ASSIGN_OR_RETURN(model->stem, LoadConv(backend, w, "features.0.0", "features.0.1",
                                         SquareConvSpec(3, 32, 3, 2, 1), kEps));
  int in = 32, index = 1;
  for (const Stage& st : kStages) {
    for (int i = 0; i < st.n; ++i, ++index) {
      const int stride = i == 0 ? st.s : 1;
      const int hidden = in * st.t;
      const std::string p = "features." + std::to_string(index) + ".conv.";
      InvertedResidual blk;
      blk.act = Activation::kRelu6;
      int part = 0;
      if (st.t != 1) {
        ASSIGN_OR_RETURN(blk.expand, LoadConv(backend, w, p + "0.0", p + "0.1",
                                              SquareConvSpec(in, hidden, 1, 1, 0), kEps));
        part = 1;
      }
      const std::string dw = p + std::to_string(part);
      ASSIGN_OR_RETURN(blk.depthwise,
                       LoadConv(backend, w, dw + ".0", dw + ".1",
                                SquareConvSpec(hidden, hidden, 3, stride, 1, hidden), kEps));
      ASSIGN_OR_RETURN(blk.project, LoadConv(backend, w, p + std::to_string(part + 1),
                                             p + std::to_string(part + 2),
                                             SquareConvSpec(hidden, st.c, 1, 1, 0), kEps));
      blk.skip = stride == 1 && in == st.c;
      model->blocks.push_back(std::move(blk));
      in = st.c;
    }
  }
  ASSIGN_OR_RETURN(model->head, LoadConv(backend, w, "features.18.0", "features.18.1",
                                         SquareConvSpec(in, 1280, 1, 1, 0), kEps));
  return std::unique_ptr<Model>(std::move(model));
}

StatusOr<std::unique_ptr<Model>> BuildV3(bool large, WeightStore& w, Backend& backend) {
  constexpr float kEps = 1e-3f;
  constexpr Activation RE = Activation::kRelu, HS = Activation::kHardSwish;
  struct Cfg {
    int in, kernel, expanded, out;
    bool se;
    Activation act;
    int stride;
  };
  // torchvision _mobilenet_v3_conf (dilated=False, reduce_divider=1).
  static const Cfg kLarge[] = {
      {16, 3, 16, 16, false, RE, 1},   {16, 3, 64, 24, false, RE, 2},
      {24, 3, 72, 24, false, RE, 1},   {24, 5, 72, 40, true, RE, 2},
      {40, 5, 120, 40, true, RE, 1},   {40, 5, 120, 40, true, RE, 1},
      {40, 3, 240, 80, false, HS, 2},  {80, 3, 200, 80, false, HS, 1},
      {80, 3, 184, 80, false, HS, 1},  {80, 3, 184, 80, false, HS, 1},
      {80, 3, 480, 112, true, HS, 1},  {112, 3, 672, 112, true, HS, 1},
      {112, 5, 672, 160, true, HS, 2}, {160, 5, 960, 160, true, HS, 1},
      {160, 5, 960, 160, true, HS, 1},
  };
  static const Cfg kSmall[] = {
      {16, 3, 16, 16, true, RE, 2},  {16, 3, 72, 24, false, RE, 2}, {24, 3, 88, 24, false, RE, 1},
      {24, 5, 96, 40, true, HS, 2},  {40, 5, 240, 40, true, HS, 1}, {40, 5, 240, 40, true, HS, 1},
      {40, 5, 120, 48, true, HS, 1}, {48, 5, 144, 48, true, HS, 1}, {48, 5, 288, 96, true, HS, 2},
      {96, 5, 576, 96, true, HS, 1}, {96, 5, 576, 96, true, HS, 1},
  };
  const Cfg* cfgs = large ? kLarge : kSmall;
  const int count = large ? static_cast<int>(sizeof(kLarge) / sizeof(Cfg))
                          : static_cast<int>(sizeof(kSmall) / sizeof(Cfg));
  const int last_channel = large ? 1280 : 1024;

  auto model = std::make_unique<MobileNetModel>();
  model->stem_act = HS;
  ASSIGN_OR_RETURN(model->stem, LoadConv(backend, w, "features.0.0", "features.0.1",
                                         SquareConvSpec(3, 16, 3, 2, 1), kEps));
  for (int i = 0; i < count; ++i) {
    const Cfg& c = cfgs[i];
    const std::string p = "features." + std::to_string(i + 1) + ".block.";
    InvertedResidual blk;
    blk.act = c.act;
    int j = 0;
    if (c.expanded != c.in) {
      const std::string e = p + std::to_string(j++);
      ASSIGN_OR_RETURN(blk.expand, LoadConv(backend, w, e + ".0", e + ".1",
                                            SquareConvSpec(c.in, c.expanded, 1, 1, 0), kEps));
    }
    const std::string dw = p + std::to_string(j++);
    ASSIGN_OR_RETURN(blk.depthwise,
                     LoadConv(backend, w, dw + ".0", dw + ".1",
                              SquareConvSpec(c.expanded, c.expanded, c.kernel, c.stride,
                                             (c.kernel - 1) / 2, c.expanded),
                              kEps));
    if (c.se) {
      const std::string se = p + std::to_string(j++);
      const int squeeze = MakeDivisible(c.expanded / 4);
      ASSIGN_OR_RETURN(blk.se_fc1,
                       LoadPointwiseAsLinear(backend, w, se + ".fc1", c.expanded, squeeze));
      ASSIGN_OR_RETURN(blk.se_fc2,
                       LoadPointwiseAsLinear(backend, w, se + ".fc2", squeeze, c.expanded));
    }
    const std::string pr = p + std::to_string(j++);
    ASSIGN_OR_RETURN(blk.project, LoadConv(backend, w, pr + ".0", pr + ".1",
                                           SquareConvSpec(c.expanded, c.out, 1, 1, 0), kEps));
    blk.skip = c.stride == 1 && c.in == c.out;
    model->blocks.push_back(std::move(blk));
  }
  const int last_in = cfgs[count - 1].out, last_out = 6 * last_in;
  const std::string head = "features." + std::to_string(count + 1);
  ASSIGN_OR_RETURN(model->head, LoadConv(backend, w, head + ".0", head + ".1",
                                         SquareConvSpec(last_in, last_out, 1, 1, 0), kEps));
  ASSIGN_OR_RETURN(model->pre_logits,
                   LoadLinear(backend, w, "classifier.0", last_out, last_channel, true));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildMobileNet(const Preset& preset, WeightStore& w,
                                                Backend& backend) {
  if (preset.arch == "mobilenet_v2") return BuildV2(w, backend);
  if (preset.arch == "mobilenet_v3_large") return BuildV3(true, w, backend);
  if (preset.arch == "mobilenet_v3_small") return BuildV3(false, w, backend);
  return InvalidArgumentError("preset '" + preset.name + "': unknown MobileNet architecture '" +
                              preset.arch + "'");
}

}  // namespace lookalike
