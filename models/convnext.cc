// ConvNeXt and ConvNeXt V2 as timm 0.9 defines them (convnext_*,
// convnextv2_*; conv_mlp=False, patch stem, head_norm_first=False), eval mode:
//
//   stem:  x = LN(Conv 4x4 / 4 (x))                         stem.0, stem.1
//   stage i > 0: x = Conv 2x2 / 2 (LN(x))                   stages.i.downsample.{0,1}
//   block: y = Conv 7x7 depthwise (x)                       .conv_dw
//          y = fc1(LN(y)), GELU                             .norm, .mlp.fc1
//          (V2) y = GRN(y)                                  .mlp.grn.{weight,bias}
//          x = x + gamma * fc2(y)                           .mlp.fc2, .gamma (V1 layer scale)
//   embedding (pre-logits): head.norm(mean over H, W)       head.norm; head.fc unused
//
// Every LayerNorm normalizes the channels of an NHWC map (timm's LayerNorm2d
// and channels-last LayerNorm alike), which is Backend::LayerNorm over the
// last dimension. Layer scale is folded into fc2's rows and bias at load.
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"

namespace lookalike {
namespace {

constexpr float kLnEps = 1e-6f;   // timm LayerNorm / LayerNorm2d default
constexpr float kGrnEps = 1e-6f;  // timm GlobalResponseNorm default

struct ConvNextBlock {
  LayerPtr dw, norm, fc1, fc2;
  Tensor grn_gamma, grn_beta;  // V2 only
};

struct ConvNextStage {
  LayerPtr down_norm, down_conv;  // stages 1..3
  std::vector<ConvNextBlock> blocks;
};

class ConvNextModel : public Model {
 public:
  bool grn = false;
  LayerPtr stem_conv, stem_norm, head_norm;
  std::vector<ConvNextStage> stages;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    ASSIGN_OR_RETURN(Tensor h, b.Conv2d(*stem_conv, x, Activation::kNone, nullptr));
    ASSIGN_OR_RETURN(h, b.LayerNorm(*stem_norm, h));
    for (const ConvNextStage& st : stages) {
      if (st.down_conv) {
        ASSIGN_OR_RETURN(h, b.LayerNorm(*st.down_norm, h));
        ASSIGN_OR_RETURN(h, b.Conv2d(*st.down_conv, h, Activation::kNone, nullptr));
      }
      for (const ConvNextBlock& blk : st.blocks) {
        ASSIGN_OR_RETURN(Tensor y, b.Conv2d(*blk.dw, h, Activation::kNone, nullptr));
        ASSIGN_OR_RETURN(y, b.LayerNorm(*blk.norm, y));
        ASSIGN_OR_RETURN(y, b.Linear(*blk.fc1, y, Activation::kGelu, nullptr));
        if (grn) {
          ASSIGN_OR_RETURN(y, b.GlobalResponseNorm(y, blk.grn_gamma, blk.grn_beta, kGrnEps));
        }
        ASSIGN_OR_RETURN(h, b.Linear(*blk.fc2, y, Activation::kNone, &h));
      }
    }
    ASSIGN_OR_RETURN(h, b.MeanPool(h, 0));
    return b.LayerNorm(*head_norm, h);
  }
};

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildConvNext(const Preset& preset, WeightStore& w,
                                               Backend& backend) {
  const ConvNextConfig& cfg = preset.convnext;
  auto model = std::make_unique<ConvNextModel>();
  model->grn = cfg.grn;
  const int* dims = cfg.dims;
  ASSIGN_OR_RETURN(model->stem_conv, LoadConv(backend, w, "stem.0", 3, dims[0], 4, 4, 0, 1));
  ASSIGN_OR_RETURN(model->stem_norm, LoadLayerNorm(backend, w, "stem.1", dims[0], kLnEps));
  for (int i = 0; i < 4; ++i) {
    const std::string p = "stages." + std::to_string(i) + ".";
    const int d = dims[i];
    ConvNextStage st;
    if (i > 0) {
      ASSIGN_OR_RETURN(st.down_norm,
                       LoadLayerNorm(backend, w, p + "downsample.0", dims[i - 1], kLnEps));
      ASSIGN_OR_RETURN(st.down_conv,
                       LoadConv(backend, w, p + "downsample.1", dims[i - 1], d, 2, 2, 0, 1));
    }
    for (int j = 0; j < cfg.depths[i]; ++j) {
      const std::string q = p + "blocks." + std::to_string(j) + ".";
      ConvNextBlock blk;
      ASSIGN_OR_RETURN(blk.dw, LoadConv(backend, w, q + "conv_dw", d, d, 7, 1, 3, d));
      ASSIGN_OR_RETURN(blk.norm, LoadLayerNorm(backend, w, q + "norm", d, kLnEps));
      ASSIGN_OR_RETURN(blk.fc1, LoadLinear(backend, w, q + "mlp.fc1", d, 4 * d, true));
      if (cfg.grn) {
        ASSIGN_OR_RETURN(std::vector<float> g, w.Get(q + "mlp.grn.weight", {4 * d}));
        ASSIGN_OR_RETURN(std::vector<float> bt, w.Get(q + "mlp.grn.bias", {4 * d}));
        ASSIGN_OR_RETURN(blk.grn_gamma, backend.Constant({4 * d}, g.data()));
        ASSIGN_OR_RETURN(blk.grn_beta, backend.Constant({4 * d}, bt.data()));
        ASSIGN_OR_RETURN(blk.fc2, LoadLinear(backend, w, q + "mlp.fc2", 4 * d, d, true));
      } else {
        ASSIGN_OR_RETURN(std::vector<float> gamma, w.Get(q + "gamma", {d}));
        ASSIGN_OR_RETURN(blk.fc2, LoadLinear(backend, w, q + "mlp.fc2", 4 * d, d, true, &gamma));
      }
      st.blocks.push_back(std::move(blk));
    }
    model->stages.push_back(std::move(st));
  }
  ASSIGN_OR_RETURN(model->head_norm, LoadLayerNorm(backend, w, "head.norm", dims[3], kLnEps));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace lookalike
