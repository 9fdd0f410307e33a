// Swin Transformer (v1) as timm 0.9 defines it (swin_*_patch4_window7_224),
// eval mode, NHWC throughout:
//
//   x = LN(Conv 4x4 / 4 (x))                                patch_embed.proj, .norm
//   stage i > 0 (PatchMerging): x = reduction(LN(2x2 neighbourhoods
//       concatenated on channels))                           layers.i.downsample.{norm,reduction}
//   block j: shift = window/2 on odd j (0 where the map is no larger than the window)
//       y = WindowPartition(LN(x), window, shift)            .norm1
//       y = proj(AttentionWithBias(qkv(y), heads, relative position bias [+ shift mask]))
//       x = x + WindowMerge(y) .attn.{qkv,proj,relative_position_bias_table} x = x +
//       fc2(GELU(fc1(LN(x))))                        .norm2, .mlp.fc1, .mlp.fc2
//   embedding (pre-logits): mean over H, W of norm(x)       norm; head.fc unused
//
// Load-time transforms (so the backend sees plain ops):
//   - The relative position bias is gathered from relative_position_bias_table
//     into {heads, T, T} (T = window^2, timm's get_relative_position_index)
//     and, for shifted blocks, added to timm's attention mask (-100 between
//     tokens of different regions of the rolled map) per window:
//     {windows, heads, T, T}, the bias AttentionWithBias takes.
//   - PatchMerging: WindowPartition(x, 2, 0) gives each 2x2 neighbourhood's
//     pixels in row-major order (0,0) (0,1) (1,0) (1,1); timm concatenates
//     them as (0,0) (1,0) (0,1) (1,1). LayerNorm is invariant to the order of
//     its features, so the norm's gamma / beta and the reduction's input
//     columns are permuted to ours instead of the activations.
#include <algorithm>
#include <utility>
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"

namespace lookalike {
namespace {

constexpr float kLnEps = 1e-5f;  // torch.nn.LayerNorm default (timm Swin's norm_layer)

struct SwinBlock {
  LayerPtr norm1, qkv, proj, norm2, fc1, fc2;
  int window = 7, shift = 0;
  Tensor bias;  // {1 or windows, heads, T, T}
};

struct SwinStage {
  LayerPtr merge_norm, merge_reduction;  // stages 1..3
  int heads = 1;
  std::vector<SwinBlock> blocks;
};

class SwinModel : public Model {
 public:
  LayerPtr patch_embed, patch_norm, final_norm;
  std::vector<SwinStage> stages;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    ASSIGN_OR_RETURN(Tensor h, b.Conv2d(*patch_embed, x, Activation::kNone, nullptr));
    ASSIGN_OR_RETURN(h, b.LayerNorm(*patch_norm, h));
    for (const SwinStage& st : stages) {
      if (st.merge_norm) {
        const int64_t n = h.dim(0), oh = h.dim(1) / 2, ow = h.dim(2) / 2, c = h.dim(3);
        ASSIGN_OR_RETURN(Tensor m, b.WindowPartition(h, 2, 0));
        ASSIGN_OR_RETURN(m, b.LayerNorm(*st.merge_norm, m.Reshape({n, oh, ow, 4 * c})));
        ASSIGN_OR_RETURN(h, b.Linear(*st.merge_reduction, m, Activation::kNone, nullptr));
      }
      const int height = static_cast<int>(h.dim(1)), width = static_cast<int>(h.dim(2));
      for (const SwinBlock& blk : st.blocks) {
        ASSIGN_OR_RETURN(Tensor y, b.LayerNorm(*blk.norm1, h));
        ASSIGN_OR_RETURN(y, b.WindowPartition(y, blk.window, blk.shift));
        ASSIGN_OR_RETURN(y, b.Linear(*blk.qkv, y, Activation::kNone, nullptr));
        ASSIGN_OR_RETURN(y, b.AttentionWithBias(y, st.heads, blk.bias));
        ASSIGN_OR_RETURN(y, b.Linear(*blk.proj, y, Activation::kNone, nullptr));
        ASSIGN_OR_RETURN(y, b.WindowMerge(y, height, width, blk.window, blk.shift));
        Tensor sum;  // h + y
        ASSIGN_OR_RETURN(y, b.AddLayerNorm(*blk.norm2, h, y, &sum));
        h = std::move(sum);
        ASSIGN_OR_RETURN(y, b.Linear(*blk.fc1, y, Activation::kGelu, nullptr));
        ASSIGN_OR_RETURN(h, b.Linear(*blk.fc2, y, Activation::kNone, &h));
      }
    }
    ASSIGN_OR_RETURN(h, b.LayerNorm(*final_norm, h));
    return b.MeanPool(h, 0);
  }
};

// {windows, heads, T, T}: relative position bias of every head, plus the
// shifted-window mask of each window when shift > 0 (windows = 1 otherwise).
std::vector<float> WindowBias(const std::vector<float>& table, int heads, int window, int shift,
                              int height, int width, int* windows) {
  const int t = window * window, span = 2 * window - 1;
  std::vector<float> rel(static_cast<size_t>(heads) * t * t);
  for (int i = 0; i < t; ++i) {
    for (int j = 0; j < t; ++j) {
      const int idx =
          (i / window - j / window + window - 1) * span + (i % window - j % window) + window - 1;
      for (int h = 0; h < heads; ++h) {
        rel[(static_cast<size_t>(h) * t + i) * t + j] = table[static_cast<size_t>(idx) * heads + h];
      }
    }
  }
  if (shift == 0) {
    *windows = 1;
    return rel;
  }
  // timm's img_mask regions of the rolled map: [0, size - window),
  // [size - window, size - shift), [size - shift, size) on each axis.
  auto region = [&](int p, int size) { return p < size - window ? 0 : (p < size - shift ? 1 : 2); };
  const int wh = height / window, ww = width / window;
  *windows = wh * ww;
  std::vector<float> out(static_cast<size_t>(*windows) * heads * t * t);
  for (int w = 0; w < *windows; ++w) {
    std::vector<int> label(t);
    for (int i = 0; i < t; ++i) {
      const int y = (w / ww) * window + i / window, x = (w % ww) * window + i % window;
      label[i] = region(y, height) * 3 + region(x, width);
    }
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < t; ++i) {
        for (int j = 0; j < t; ++j) {
          const size_t k = (static_cast<size_t>(h) * t + i) * t + j;
          out[static_cast<size_t>(w) * heads * t * t + k] =
              rel[k] + (label[i] != label[j] ? -100.0f : 0.0f);
        }
      }
    }
  }
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildSwin(const Preset& preset, WeightStore& w, Backend& backend) {
  const SwinConfig& cfg = preset.swin;
  const int c0 = cfg.embed_dim;
  if (preset.input_size % 32 != 0) {
    return InvalidArgumentError("preset '" + preset.name + "': input size " +
                                std::to_string(preset.input_size) + " is not a multiple of 32");
  }
  auto model = std::make_unique<SwinModel>();
  ASSIGN_OR_RETURN(model->patch_embed, LoadConv(backend, w, "patch_embed.proj", 3, c0, 4, 4, 0));
  ASSIGN_OR_RETURN(model->patch_norm, LoadLayerNorm(backend, w, "patch_embed.norm", c0, kLnEps));
  int res = preset.input_size / 4;
  for (int i = 0; i < 4; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    const int d = c0 << i;
    SwinStage st;
    st.heads = cfg.heads[i];
    if (i > 0) {
      const int c = d / 2;
      res /= 2;
      // Our slot k = 2 * row + col holds timm's slot 2 * col + row.
      const int timm_slot[4] = {0, 2, 1, 3};
      ASSIGN_OR_RETURN(std::vector<float> g, w.Get(p + "downsample.norm.weight", {4 * c}));
      ASSIGN_OR_RETURN(std::vector<float> bt, w.Get(p + "downsample.norm.bias", {4 * c}));
      ASSIGN_OR_RETURN(std::vector<float> red,
                       w.Get(p + "downsample.reduction.weight", {d, 4 * c}));
      std::vector<float> g2(g.size()), b2(bt.size()), red2(red.size());
      for (int k = 0; k < 4; ++k) {
        const size_t dst = static_cast<size_t>(k) * c, src = static_cast<size_t>(timm_slot[k]) * c;
        std::copy(g.begin() + src, g.begin() + src + c, g2.begin() + dst);
        std::copy(bt.begin() + src, bt.begin() + src + c, b2.begin() + dst);
        for (int o = 0; o < d; ++o) {
          const size_t row = static_cast<size_t>(o) * 4 * c;
          std::copy(red.begin() + row + src, red.begin() + row + src + c, red2.begin() + row + dst);
        }
      }
      ASSIGN_OR_RETURN(st.merge_norm,
                       backend.PrepareLayerNorm(4 * c, g2.data(), b2.data(), kLnEps));
      ASSIGN_OR_RETURN(st.merge_reduction, backend.PrepareLinear(4 * c, d, red2.data(), nullptr));
    }
    // timm's _calc_window_shift: the window shrinks to the map, and a map no
    // larger than the window is not shifted.
    const int window = std::min(cfg.window, res);
    if (res % window != 0) {
      return InvalidArgumentError("preset '" + preset.name + "': stage " + std::to_string(i) +
                                  " map " + std::to_string(res) + " is not a multiple of window " +
                                  std::to_string(window));
    }
    const int t = window * window;
    for (int j = 0; j < cfg.depths[i]; ++j) {
      const std::string q = p + "blocks." + std::to_string(j) + ".";
      SwinBlock blk;
      blk.window = window;
      blk.shift = (j % 2 == 1 && res > cfg.window) ? cfg.window / 2 : 0;
      ASSIGN_OR_RETURN(blk.norm1, LoadLayerNorm(backend, w, q + "norm1", d, kLnEps));
      ASSIGN_OR_RETURN(blk.qkv, LoadLinear(backend, w, q + "attn.qkv", d, 3 * d, true));
      ASSIGN_OR_RETURN(blk.proj, LoadLinear(backend, w, q + "attn.proj", d, d, true));
      ASSIGN_OR_RETURN(std::vector<float> table,
                       w.Get(q + "attn.relative_position_bias_table",
                             {(2 * window - 1) * (2 * window - 1), st.heads}));
      int groups = 1;
      const std::vector<float> bias =
          WindowBias(table, st.heads, window, blk.shift, res, res, &groups);
      ASSIGN_OR_RETURN(blk.bias, backend.Constant({groups, st.heads, t, t}, bias.data()));
      ASSIGN_OR_RETURN(blk.norm2, LoadLayerNorm(backend, w, q + "norm2", d, kLnEps));
      ASSIGN_OR_RETURN(blk.fc1, LoadLinear(backend, w, q + "mlp.fc1", d, 4 * d, true));
      ASSIGN_OR_RETURN(blk.fc2, LoadLinear(backend, w, q + "mlp.fc2", 4 * d, d, true));
      st.blocks.push_back(std::move(blk));
    }
    model->stages.push_back(std::move(st));
  }
  ASSIGN_OR_RETURN(model->final_norm, LoadLayerNorm(backend, w, "norm", c0 << 3, kLnEps));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace lookalike
