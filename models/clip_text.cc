// CLIP text transformer, Hugging Face transformers' CLIPTextModel +
// CLIPModel.text_projection (tensor names and computation of 4.40.2):
//
//   x = token_embedding[ids] + position_embedding[0:T]             {N, T, D}
//   per layer: x = x + out_proj(CausalAttention(qkv(layer_norm1(x))))
//              x = x + fc2(act(fc1(layer_norm2(x))))       act: quick_gelu / gelu
//   x = final_layer_norm(x)
//   pooled = x[n, eos(n)]                                   {N, D}
//   features = text_projection(pooled)                     {N, projection_dim}
//
// eos(n) follows CLIPTextTransformer: with eos_token_id == 2 (the original
// CLIP configs) the argmax of the ids (CLIP's end token has the largest id;
// the first one on ties, as torch.argmax); otherwise the first position
// holding eos_token_id, 0 when none does.
// The q/k/v projections are concatenated into one [q | k | v] linear at load.
#include <cstdint>
#include <string>
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"

namespace lookalike {
namespace {

struct TextBlock {
  LayerPtr norm1, qkv, proj, norm2, fc1, fc2;
};

class ClipTextModel : public TextModel {
 public:
  ClipTextConfig cfg;
  Tensor token_table;  // {vocab, D}
  Tensor pos;          // {context_length, D}
  std::vector<TextBlock> blocks;
  LayerPtr final_norm, projection;

  StatusOr<Tensor> Forward(Backend& b, const std::vector<int32_t>& ids, int64_t batch) override {
    ASSIGN_OR_RETURN(Tensor h, b.EmbedTokens(token_table, pos, ids, batch));
    for (const TextBlock& blk : blocks) {
      ASSIGN_OR_RETURN(Tensor y, b.LayerNorm(*blk.norm1, h));
      ASSIGN_OR_RETURN(y, b.Linear(*blk.qkv, y, Activation::kNone, nullptr));
      ASSIGN_OR_RETURN(y, b.Attention(y, cfg.heads, /*causal=*/true));
      ASSIGN_OR_RETURN(h, b.Linear(*blk.proj, y, Activation::kNone, &h));
      ASSIGN_OR_RETURN(y, b.LayerNorm(*blk.norm2, h));
      ASSIGN_OR_RETURN(y, b.Linear(*blk.fc1, y, cfg.mlp_act, nullptr));
      ASSIGN_OR_RETURN(h, b.Linear(*blk.fc2, y, Activation::kNone, &h));
    }
    ASSIGN_OR_RETURN(h, b.LayerNorm(*final_norm, h));
    const int64_t t = h.dim(1);
    std::vector<int32_t> eos(static_cast<size_t>(batch), 0);
    for (int64_t n = 0; n < batch; ++n) {
      const int32_t* row = ids.data() + n * t;
      int32_t best = 0;
      for (int64_t i = 0; i < t; ++i) {
        if (cfg.eos_token_id == 2) {
          if (row[i] > row[best]) best = static_cast<int32_t>(i);
        } else if (row[i] == cfg.eos_token_id) {
          best = static_cast<int32_t>(i);
          break;
        }
      }
      eos[n] = best;
    }
    ASSIGN_OR_RETURN(Tensor pooled, b.SelectTokens(h, eos));
    return b.Linear(*projection, pooled, Activation::kNone, nullptr);
  }
};

// An integer field of `obj` (null: absent), or `fallback` when absent.
StatusOr<int> IntField(const JsonValue* obj, const char* key, int fallback) {
  const JsonValue* v = obj == nullptr ? nullptr : obj->Find(key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_integer() || v->as_int() < 0 || v->as_int() > (1 << 30)) {
    return InvalidArgumentError(std::string("config field '") + key + "' is not a valid integer");
  }
  return static_cast<int>(v->as_int());
}

}  // namespace

Status ApplyHfClipTextConfig(const JsonValue& root, ClipTextConfig* config) {
  if (!root.is_object()) return InvalidArgumentError("CLIP config is not a JSON object");
  const JsonValue* text = root.Find("text_config");
  if (text != nullptr && !text->is_object()) {
    return InvalidArgumentError("config field 'text_config' is not an object");
  }
  // transformers 4.40.2 CLIPTextConfig defaults.
  ClipTextConfig c;
  ASSIGN_OR_RETURN(c.width, IntField(text, "hidden_size", 512));
  ASSIGN_OR_RETURN(c.mlp_hidden, IntField(text, "intermediate_size", 2048));
  ASSIGN_OR_RETURN(c.layers, IntField(text, "num_hidden_layers", 12));
  ASSIGN_OR_RETURN(c.heads, IntField(text, "num_attention_heads", 8));
  ASSIGN_OR_RETURN(c.context_length, IntField(text, "max_position_embeddings", 77));
  ASSIGN_OR_RETURN(c.vocab_size, IntField(text, "vocab_size", 49408));
  ASSIGN_OR_RETURN(c.eos_token_id, IntField(text, "eos_token_id", 49407));
  ASSIGN_OR_RETURN(c.projection_dim, IntField(&root, "projection_dim", 512));
  c.ln_eps = 1e-5f;
  c.mlp_act = Activation::kQuickGelu;
  if (text != nullptr) {
    if (const JsonValue* eps = text->Find("layer_norm_eps"); eps != nullptr && !eps->is_null()) {
      if (!eps->is_number()) {
        return InvalidArgumentError("config field 'layer_norm_eps' is not a number");
      }
      c.ln_eps = static_cast<float>(eps->as_double());
    }
    if (const JsonValue* act = text->Find("hidden_act"); act != nullptr && !act->is_null()) {
      const std::string name = act->is_string() ? act->as_string() : act->Dump();
      if (name == "quick_gelu") {
        c.mlp_act = Activation::kQuickGelu;
      } else if (name == "gelu") {
        c.mlp_act = Activation::kGelu;  // transformers' "gelu": exact, erf form
      } else {
        return InvalidArgumentError("config field 'hidden_act' is '" + name +
                                    "' (supported: quick_gelu, gelu)");
      }
    }
  }
  *config = c;
  return Status::Ok();
}

StatusOr<std::unique_ptr<TextModel>> BuildClipText(const ClipTextConfig& cfg, WeightStore& w,
                                                   Backend& backend) {
  const int d = cfg.width;
  if (d <= 0 || cfg.heads <= 0 || d % cfg.heads != 0 || cfg.layers <= 0 ||
      cfg.context_length <= 0 || cfg.vocab_size <= 0 || cfg.mlp_hidden <= 0 ||
      cfg.projection_dim <= 0) {
    return InvalidArgumentError("CLIP text config: width " + std::to_string(d) + ", heads " +
                                std::to_string(cfg.heads) + ", layers " +
                                std::to_string(cfg.layers) +
                                " (need positive sizes, width divisible by heads)");
  }
  auto model = std::make_unique<ClipTextModel>();
  model->cfg = cfg;
  const std::string pre = "text_model.";
  {
    ASSIGN_OR_RETURN(std::vector<float> table,
                     w.Get(pre + "embeddings.token_embedding.weight", {cfg.vocab_size, d}));
    ASSIGN_OR_RETURN(model->token_table, backend.Constant({cfg.vocab_size, d}, table.data()));
    ASSIGN_OR_RETURN(std::vector<float> pos,
                     w.Get(pre + "embeddings.position_embedding.weight", {cfg.context_length, d}));
    ASSIGN_OR_RETURN(model->pos, backend.Constant({cfg.context_length, d}, pos.data()));
  }
  for (int i = 0; i < cfg.layers; ++i) {
    const std::string p = pre + "encoder.layers." + std::to_string(i) + ".";
    TextBlock blk;
    ASSIGN_OR_RETURN(blk.norm1, LoadLayerNorm(backend, w, p + "layer_norm1", d, cfg.ln_eps));
    ASSIGN_OR_RETURN(blk.qkv, LoadPackedQkv(backend, w, p + "self_attn", d));
    ASSIGN_OR_RETURN(blk.proj, LoadLinear(backend, w, p + "self_attn.out_proj", d, d, true));
    ASSIGN_OR_RETURN(blk.norm2, LoadLayerNorm(backend, w, p + "layer_norm2", d, cfg.ln_eps));
    ASSIGN_OR_RETURN(blk.fc1, LoadLinear(backend, w, p + "mlp.fc1", d, cfg.mlp_hidden, true));
    ASSIGN_OR_RETURN(blk.fc2, LoadLinear(backend, w, p + "mlp.fc2", cfg.mlp_hidden, d, true));
    model->blocks.push_back(std::move(blk));
  }
  ASSIGN_OR_RETURN(model->final_norm,
                   LoadLayerNorm(backend, w, pre + "final_layer_norm", d, cfg.ln_eps));
  ASSIGN_OR_RETURN(model->projection,
                   LoadLinear(backend, w, "text_projection", d, cfg.projection_dim, false));
  return std::unique_ptr<TextModel>(std::move(model));
}

}  // namespace lookalike
