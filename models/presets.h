// Presets: every model the engine knows, by name. A preset fixes the
// architecture (family + variant dimensions), the reference eval preprocessing
// (resize, crop, interpolation, mean/std), the pooling, the embedding size and
// whether embeddings are L2-normalized. Names are the same in the config, the
// CLI, the docs and the parity fixtures.
//
// Preprocessing follows each reference implementation's eval transform:
//   resnet*            torchvision: Resize(256, bilinear), CenterCrop(224), ImageNet mean/std.
//   vit_*              timm augreg pretrained_cfg: crop_pct 0.9 -> Resize(int(224/0.9) = 248,
//                      bicubic), CenterCrop(224), mean = std = 0.5.
//   clip_vit_*         CLIPImageProcessor: Resize(224, bicubic), CenterCrop(224), CLIP mean/std.
//   dinov2_*           timm dinov2 cfg (bicubic, ImageNet mean/std) at 224 with crop_pct
//                      0.875: Resize(256, bicubic), CenterCrop(224).
//   efficientnet_lite* TensorFlow EfficientNet-Lite eval, which the package's real weights
//                      were trained with: Resize(size + 32, bicubic), CenterCrop(size),
//                      (x - 127) / 128 on 0..255 pixels (mean 127/255, std 128/255). The
//                      package's own README shows Resize(size) + ImageNet mean/std without
//                      a crop, which gives non-square inputs its static "same" padding was
//                      not computed for.
//   convnext*, swin_*, deit_*  timm 0.9.16 pretrained_cfg of the default tag: bicubic,
//                      ImageNet mean/std, Resize(floor(224 / crop_pct)) + CenterCrop(224):
//                      convnext_{tiny,small} 0.95 -> 235; convnext_base, convnextv2_* 0.875
//                      -> 256; swin_*, deit_* 0.9 -> 248.
//   mobilenet_v2, mobilenet_v3_*, vgg*, densenet*, googlenet
//                      torchvision IMAGENET1K_V1 weights' transforms: Resize(256, bilinear),
//                      CenterCrop(224), ImageNet mean/std.
//   inception_v3       torchvision IMAGENET1K_V1: Resize(342, bilinear), CenterCrop(299).
//   googlenet, inception_v3: torchvision builds them with transform_input=True for
//                      the pretrained weights, which turns the ImageNet-normalized input
//                      into (x - 0.5) / 0.5 inside the network; the presets normalize with
//                      mean = std = 0.5 directly (the same tensor reaches the first conv).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "models/backend.h"

namespace lookalike {

enum class Pooling {
  kAvgPool,     // conv nets: global average pool of the last feature map
  kClassToken,  // ViTs: token 0 after the final norm
  kMeanTokens,  // ViTs: mean of the patch tokens after the final norm
};

struct VitConfig {
  int patch = 16;
  int width = 768;  // embedding dim D
  int depth = 12;   // transformer blocks
  int heads = 12;
  int mlp_hidden = 3072;
  int num_register_tokens = 0;       // DINOv2-reg: 4, placed after the class token
  bool pos_embed_has_prefix = true;  // false: pos_embed covers patches only (timm no_embed_class)
  int checkpoint_grid = 0;           // pos_embed grid of the checkpoint (0: same as the input grid)
  bool layer_scale = false;          // blocks.N.ls1.gamma / ls2.gamma (folded at load)
  bool patch_bias = true;
  bool pre_norm = false;  // CLIP pre_layrnorm on the embeddings
  float ln_eps = 1e-6f;
  Activation mlp_act = Activation::kGelu;
  int projection_dim = 0;  // CLIP visual_projection output (0: none)
  // DeiT distilled: a dist_token after the class token; the embedding is
  // (class + distillation token) / 2 after the final norm (timm pre_logits).
  bool distilled = false;
};

// ConvNeXt / ConvNeXt V2 (timm) and Swin (timm, 224 input).
struct ConvNextConfig {
  int depths[4] = {3, 3, 9, 3};
  int dims[4] = {96, 192, 384, 768};
  bool grn = false;  // ConvNeXt V2: GlobalResponseNorm in the MLP, no layer scale
};
struct SwinConfig {
  int embed_dim = 96;  // stage i has embed_dim << i channels
  int depths[4] = {2, 2, 6, 2};
  int heads[4] = {3, 6, 12, 24};
  int window = 7;
};

// Hugging Face CLIPTextModel (CLIPModel's text_model + text_projection).
struct ClipTextConfig {
  int width = 512;  // hidden_size
  int layers = 12;
  int heads = 8;
  int mlp_hidden = 2048;    // intermediate_size
  int context_length = 77;  // max_position_embeddings
  int vocab_size = 49408;
  int projection_dim = 512;  // text_projection output, the shared embedding space
  float ln_eps = 1e-5f;
  Activation mlp_act = Activation::kQuickGelu;  // config hidden_act
  // Pooling at the end-of-text token, transformers' CLIPTextTransformer rule:
  // eos_token_id == 2 (the original CLIP configs) -> argmax of the ids (the
  // end token has the largest id); otherwise the first position holding
  // eos_token_id (0 when none does).
  int eos_token_id = 2;
};

struct EfficientNetLiteConfig {
  double width_coefficient = 1.0;
  double depth_coefficient = 1.0;
};

struct Preset {
  std::string name;
  std::string family;    // "resnet", "vit", "clip_vit", "dinov2", "efficientnet_lite",
                         // "convnext", "swin", "deit"
                         // "mobilenet", "vgg", "densenet", "inception"
  int resnet_depth = 0;  // 18, 34, 50, 101, 152
  VitConfig vit;
  EfficientNetLiteConfig effnet;
  ConvNextConfig convnext;
  SwinConfig swin;
  // clip_vit: the text tower, loaded when the weights hold text_model.* (a
  // CLIPModel checkpoint); vision-only checkpoints load without it.
  ClipTextConfig text;
  // mobilenet / vgg / densenet / inception: the torchvision builder name
  // ("mobilenet_v3_large", "vgg16_bn", "densenet121", "googlenet", ...).
  std::string arch;

  int input_size = 224;  // square network input after crop
  PreprocessSpec preprocess;
  Pooling pooling = Pooling::kAvgPool;
  int embedding_dim = 0;
  bool l2_normalize = true;

  // Classifier head of the reference model (used for output "logits"), its
  // tensor prefix ("fc", "_fc") and class count; empty / 0 when none.
  std::string classifier;
  int num_classes = 0;
  // Glob patterns of tensors the reference state_dict has but the embedding
  // does not use (classifier heads, BatchNorm counters...).
  std::vector<std::string> ignored_tensors;
};

// The preset named `name`, or INVALID_ARGUMENT listing the known names.
StatusOr<Preset> FindPreset(const std::string& name);
std::vector<std::string> PresetNames();

}  // namespace lookalike
