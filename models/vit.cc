// Vision Transformers: timm ViT (augreg), timm DINOv2 (with and without
// register tokens) and Hugging Face CLIP vision towers, one graph:
//
//   patches = Conv(patch x patch, stride patch)(x)        {N, g*g, D}
//   x = [prefix tokens | patches] + pos                    {N, P + g*g, D}
//   (CLIP) x = pre_layrnorm(x)
//   per block: x = x + proj(Attention(qkv(LN1(x))))        (layer scale folded)
//              x = x + fc2(act(fc1(LN2(x))))
//   timm:  x = norm(x); pooled = x[:, 0] (or mean of patch tokens)
//   DeiT distilled: prefix = [cls | dist]; pooled = (x[:, 0] + x[:, 1]) / 2
//   CLIP:  pooled = visual_projection(post_layernorm(x[:, 0]))
//
// Load-time transforms on the host (so every backend sees plain layers):
//   - DINOv2 layer scale: ls1.gamma scales attn.proj's rows and bias, ls2.gamma
//     fc2's (x + g * (W h + b) == x + (g W) h + g b).
//   - DeiT distilled: the final norm's gamma and beta are halved, so that
//     x[:, 0] + x[:, 1] is the mean of the two tokens.
//   - CLIP q/k/v projections are concatenated into one [q | k | v] linear.
//   - The position embedding is resampled from the checkpoint grid to the
//     input grid exactly as timm's resample_abs_pos_embed does (bicubic,
//     align_corners=False, antialias=True; prefix positions kept as they are).
#include <cmath>
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"
#include "models/pos_embed.h"

namespace lookalike {
namespace {

struct VitBlock {
  LayerPtr norm1, qkv, proj, norm2, fc1, fc2;
};

class VitModel : public Model {
 public:
  VitConfig cfg;
  Pooling pooling = Pooling::kClassToken;
  int num_prefix = 1;
  LayerPtr patch_embed;
  Tensor prefix_tokens;  // {num_prefix, D}
  Tensor pos;            // {1, T or g*g, D}
  bool pos_applies_to_prefix = true;
  LayerPtr pre_norm;  // CLIP only
  std::vector<VitBlock> blocks;
  LayerPtr final_norm;  // timm: norm (on all tokens); CLIP: post_layernorm (on the pooled token)
  LayerPtr projection;  // CLIP visual_projection
  bool clip = false;
  bool distilled = false;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    ASSIGN_OR_RETURN(Tensor p, b.Conv2d(*patch_embed, x, Activation::kNone, nullptr));
    const int64_t n = p.dim(0);
    Tensor patches = p.Reshape({n, p.dim(1) * p.dim(2), p.dim(3)});
    ASSIGN_OR_RETURN(Tensor h,
                     b.PrependTokensAddPos(patches, &prefix_tokens, pos, pos_applies_to_prefix));
    if (pre_norm) {
      ASSIGN_OR_RETURN(h, b.LayerNorm(*pre_norm, h));
    }
    for (const VitBlock& blk : blocks) {
      ASSIGN_OR_RETURN(Tensor y, b.LayerNorm(*blk.norm1, h));
      ASSIGN_OR_RETURN(y, b.Linear(*blk.qkv, y, Activation::kNone, nullptr));
      ASSIGN_OR_RETURN(y, b.Attention(y, cfg.heads));
      ASSIGN_OR_RETURN(h, b.Linear(*blk.proj, y, Activation::kNone, &h));
      ASSIGN_OR_RETURN(y, b.LayerNorm(*blk.norm2, h));
      ASSIGN_OR_RETURN(y, b.Linear(*blk.fc1, y, cfg.mlp_act, nullptr));
      ASSIGN_OR_RETURN(h, b.Linear(*blk.fc2, y, Activation::kNone, &h));
    }
    if (clip) {
      ASSIGN_OR_RETURN(Tensor cls, b.SelectToken(h, 0));
      ASSIGN_OR_RETURN(cls, b.LayerNorm(*final_norm, cls));
      return b.Linear(*projection, cls, Activation::kNone, nullptr);
    }
    ASSIGN_OR_RETURN(h, b.LayerNorm(*final_norm, h));
    if (distilled) {
      ASSIGN_OR_RETURN(Tensor cls, b.SelectToken(h, 0));
      ASSIGN_OR_RETURN(Tensor dist, b.SelectToken(h, 1));
      return b.Add(cls, dist);
    }
    if (pooling == Pooling::kMeanTokens) return b.MeanPool(h, num_prefix);
    return b.SelectToken(h, 0);
  }
};

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildVit(const Preset& preset, WeightStore& w, Backend& backend) {
  const VitConfig& cfg = preset.vit;
  const int d = cfg.width;
  if (d % cfg.heads != 0) {
    return InvalidArgumentError("preset '" + preset.name + "': width not divisible by heads");
  }
  if (preset.input_size % cfg.patch != 0) {
    return InvalidArgumentError(
        "preset '" + preset.name + "': input size " + std::to_string(preset.input_size) +
        " is not a multiple of the patch size " + std::to_string(cfg.patch));
  }
  const int grid = preset.input_size / cfg.patch;
  const bool clip = preset.family == "clip_vit";
  auto model = std::make_unique<VitModel>();
  model->cfg = cfg;
  model->clip = clip;
  model->pooling = preset.pooling;
  model->distilled = cfg.distilled;
  model->num_prefix = 1 + (cfg.distilled ? 1 : 0) + cfg.num_register_tokens;
  model->pos_applies_to_prefix = cfg.pos_embed_has_prefix;

  const std::string pre = clip ? "vision_model." : "";
  // Patch embedding.
  {
    const std::string name =
        clip ? pre + "embeddings.patch_embedding" : std::string("patch_embed.proj");
    ASSIGN_OR_RETURN(std::vector<float> weight,
                     w.Get(name + ".weight", {d, 3, cfg.patch, cfg.patch}));
    std::vector<float> bias;
    if (cfg.patch_bias) {
      ASSIGN_OR_RETURN(bias, w.Get(name + ".bias", {d}));
    }
    ConvSpec spec;
    spec.in_channels = 3;
    spec.out_channels = d;
    spec.kernel_h = spec.kernel_w = cfg.patch;
    spec.stride_h = spec.stride_w = cfg.patch;
    ASSIGN_OR_RETURN(
        model->patch_embed,
        backend.PrepareConv(spec, weight.data(), cfg.patch_bias ? bias.data() : nullptr));
  }
  // Prefix tokens: class token, then register tokens.
  {
    std::vector<float> prefix;
    if (clip) {
      ASSIGN_OR_RETURN(prefix, w.Get(pre + "embeddings.class_embedding", {d}));
    } else {
      ASSIGN_OR_RETURN(prefix, w.Get("cls_token", {1, 1, d}));
      if (cfg.distilled) {
        ASSIGN_OR_RETURN(std::vector<float> dist, w.Get("dist_token", {1, 1, d}));
        prefix.insert(prefix.end(), dist.begin(), dist.end());
      }
      if (cfg.num_register_tokens > 0) {
        ASSIGN_OR_RETURN(std::vector<float> reg,
                         w.Get("reg_token", {1, cfg.num_register_tokens, d}));
        prefix.insert(prefix.end(), reg.begin(), reg.end());
      }
    }
    ASSIGN_OR_RETURN(model->prefix_tokens, backend.Constant({model->num_prefix, d}, prefix.data()));
  }
  // Position embedding, resampled to the input grid when the checkpoint's differs.
  {
    const int pos_prefix = cfg.pos_embed_has_prefix ? model->num_prefix : 0;
    std::vector<int64_t> shape;
    std::vector<float> pos;
    const std::string name = clip ? pre + "embeddings.position_embedding.weight" : "pos_embed";
    if (clip) {
      ASSIGN_OR_RETURN(pos, w.GetAnyShape(name, {-1, d}, &shape));
      shape.insert(shape.begin(), 1);
    } else {
      ASSIGN_OR_RETURN(pos, w.GetAnyShape(name, {1, -1, d}, &shape));
    }
    const int64_t grid_tokens = shape[1] - pos_prefix;
    const int old_grid = static_cast<int>(std::lround(std::sqrt(static_cast<double>(grid_tokens))));
    if (grid_tokens <= 0 || static_cast<int64_t>(old_grid) * old_grid != grid_tokens) {
      return InvalidArgumentError("weights '" + w.path() + "': tensor '" + name + "' has shape " +
                                  ShapeToString(shape) + ": " + std::to_string(grid_tokens) +
                                  " grid positions after " + std::to_string(pos_prefix) +
                                  " prefix position(s) is not a square grid");
    }
    if (old_grid != grid) {
      if (clip) {
        return InvalidArgumentError("weights '" + w.path() + "': tensor '" + name + "' covers a " +
                                    std::to_string(old_grid) + "x" + std::to_string(old_grid) +
                                    " grid but preset '" + preset.name + "' needs " +
                                    std::to_string(grid) + "x" + std::to_string(grid));
      }
      std::vector<float> resampled = ResamplePosEmbedBicubicAA(
          pos.data() + static_cast<size_t>(pos_prefix) * d, old_grid, old_grid, d, grid, grid);
      pos.resize(static_cast<size_t>(pos_prefix) * d);
      pos.insert(pos.end(), resampled.begin(), resampled.end());
    }
    ASSIGN_OR_RETURN(model->pos, backend.Constant({1, pos_prefix + grid * grid, d}, pos.data()));
  }
  if (clip) {
    ASSIGN_OR_RETURN(model->pre_norm,
                     LoadLayerNorm(backend, w, pre + "pre_layrnorm", d, cfg.ln_eps));
  }
  // Blocks.
  for (int i = 0; i < cfg.depth; ++i) {
    VitBlock blk;
    if (clip) {
      const std::string p = pre + "encoder.layers." + std::to_string(i) + ".";
      ASSIGN_OR_RETURN(blk.norm1, LoadLayerNorm(backend, w, p + "layer_norm1", d, cfg.ln_eps));
      ASSIGN_OR_RETURN(blk.qkv, LoadPackedQkv(backend, w, p + "self_attn", d));
      ASSIGN_OR_RETURN(blk.proj, LoadLinear(backend, w, p + "self_attn.out_proj", d, d, true));
      ASSIGN_OR_RETURN(blk.norm2, LoadLayerNorm(backend, w, p + "layer_norm2", d, cfg.ln_eps));
      ASSIGN_OR_RETURN(blk.fc1, LoadLinear(backend, w, p + "mlp.fc1", d, cfg.mlp_hidden, true));
      ASSIGN_OR_RETURN(blk.fc2, LoadLinear(backend, w, p + "mlp.fc2", cfg.mlp_hidden, d, true));
    } else {
      const std::string p = "blocks." + std::to_string(i) + ".";
      std::vector<float> ls1, ls2;
      if (cfg.layer_scale) {
        ASSIGN_OR_RETURN(ls1, w.Get(p + "ls1.gamma", {d}));
        ASSIGN_OR_RETURN(ls2, w.Get(p + "ls2.gamma", {d}));
      }
      ASSIGN_OR_RETURN(blk.norm1, LoadLayerNorm(backend, w, p + "norm1", d, cfg.ln_eps));
      ASSIGN_OR_RETURN(blk.qkv, LoadLinear(backend, w, p + "attn.qkv", d, 3 * d, true));
      ASSIGN_OR_RETURN(blk.proj, LoadLinear(backend, w, p + "attn.proj", d, d, true,
                                            cfg.layer_scale ? &ls1 : nullptr));
      ASSIGN_OR_RETURN(blk.norm2, LoadLayerNorm(backend, w, p + "norm2", d, cfg.ln_eps));
      ASSIGN_OR_RETURN(blk.fc1, LoadLinear(backend, w, p + "mlp.fc1", d, cfg.mlp_hidden, true));
      ASSIGN_OR_RETURN(blk.fc2, LoadLinear(backend, w, p + "mlp.fc2", cfg.mlp_hidden, d, true,
                                           cfg.layer_scale ? &ls2 : nullptr));
    }
    model->blocks.push_back(std::move(blk));
  }
  if (clip) {
    ASSIGN_OR_RETURN(model->final_norm,
                     LoadLayerNorm(backend, w, pre + "post_layernorm", d, cfg.ln_eps));
    ASSIGN_OR_RETURN(model->projection,
                     LoadLinear(backend, w, "visual_projection", d, cfg.projection_dim, false));
  } else if (cfg.distilled) {
    ASSIGN_OR_RETURN(std::vector<float> gamma, w.Get("norm.weight", {d}));
    ASSIGN_OR_RETURN(std::vector<float> beta, w.Get("norm.bias", {d}));
    for (int i = 0; i < d; ++i) {
      gamma[i] *= 0.5f;
      beta[i] *= 0.5f;
    }
    ASSIGN_OR_RETURN(model->final_norm,
                     backend.PrepareLayerNorm(d, gamma.data(), beta.data(), cfg.ln_eps));
  } else {
    ASSIGN_OR_RETURN(model->final_norm, LoadLayerNorm(backend, w, "norm", d, cfg.ln_eps));
  }
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace lookalike
