#include "models/presets.h"

namespace lookalike {
namespace {

constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};
constexpr float kHalf[3] = {0.5f, 0.5f, 0.5f};
constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
constexpr float kLiteMean[3] = {127.0f / 255.0f, 127.0f / 255.0f, 127.0f / 255.0f};
constexpr float kLiteStd[3] = {128.0f / 255.0f, 128.0f / 255.0f, 128.0f / 255.0f};

PreprocessSpec Spec(int resize, int crop, Interpolation interp, const float* mean,
                    const float* std) {
  PreprocessSpec s;
  s.resize_shorter = resize;
  s.crop_height = crop;
  s.crop_width = crop;
  s.interpolation = interp;
  s.antialias = true;
  for (int c = 0; c < 3; ++c) {
    s.mean[c] = mean[c];
    s.std[c] = std[c];
  }
  return s;
}

Preset ResNet(const std::string& name, int depth) {
  Preset p;
  p.name = name;
  p.family = "resnet";
  p.resnet_depth = depth;
  p.input_size = 224;
  p.preprocess = Spec(256, 224, Interpolation::kBilinear, kImageNetMean, kImageNetStd);
  p.pooling = Pooling::kAvgPool;
  p.embedding_dim = depth >= 50 ? 2048 : 512;
  p.classifier = "fc";
  p.num_classes = 1000;
  p.ignored_tensors = {"fc.*", "*.num_batches_tracked"};
  return p;
}

// timm vit_{small,base,large}_patch{16,32}_224 (augreg weights).
Preset TimmVit(const std::string& name, int patch, int width, int depth, int heads) {
  Preset p;
  p.name = name;
  p.family = "vit";
  p.vit.patch = patch;
  p.vit.width = width;
  p.vit.depth = depth;
  p.vit.heads = heads;
  p.vit.mlp_hidden = 4 * width;
  p.vit.ln_eps = 1e-6f;
  p.vit.mlp_act = Activation::kGelu;
  p.input_size = 224;
  // crop_pct 0.9: scale size floor(224 / 0.9) = 248.
  p.preprocess = Spec(248, 224, Interpolation::kBicubic, kHalf, kHalf);
  p.pooling = Pooling::kClassToken;
  p.embedding_dim = width;
  p.ignored_tensors = {"head.*"};
  return p;
}

// Hugging Face CLIPVisionModelWithProjection, or CLIPModel (vision + text).
Preset Clip(const std::string& name, int patch, int width, int depth, int heads, int proj,
            int text_width, int text_heads) {
  Preset p;
  p.name = name;
  p.family = "clip_vit";
  p.vit.patch = patch;
  p.vit.width = width;
  p.vit.depth = depth;
  p.vit.heads = heads;
  p.vit.mlp_hidden = 4 * width;
  p.vit.patch_bias = false;
  p.vit.pre_norm = true;
  p.vit.ln_eps = 1e-5f;
  p.vit.mlp_act = Activation::kQuickGelu;
  p.vit.projection_dim = proj;
  p.input_size = 224;
  p.preprocess = Spec(224, 224, Interpolation::kBicubic, kClipMean, kClipStd);
  p.pooling = Pooling::kClassToken;
  p.embedding_dim = proj;
  p.text.width = text_width;
  p.text.layers = 12;
  p.text.heads = text_heads;
  p.text.mlp_hidden = 4 * text_width;
  p.text.context_length = 77;
  p.text.vocab_size = 49408;
  p.text.projection_dim = proj;
  p.text.ln_eps = 1e-5f;
  p.text.mlp_act = Activation::kQuickGelu;
  p.text.eos_token_id = 2;
  // Buffers some transformers versions save with the state_dict, and
  // CLIPModel's contrastive temperature (not part of an embedding).
  p.ignored_tensors = {"vision_model.embeddings.position_ids", "text_model.embeddings.position_ids",
                       "logit_scale"};
  return p;
}

// timm vit_{small,base}_patch14_{dinov2,reg4_dinov2} (checkpoint grid 37x37
// from 518 inputs, run at 224 with the position embedding resampled).
Preset DinoV2(const std::string& name, int width, int depth, int heads, bool registers) {
  Preset p;
  p.name = name;
  p.family = "dinov2";
  p.vit.patch = 14;
  p.vit.width = width;
  p.vit.depth = depth;
  p.vit.heads = heads;
  p.vit.mlp_hidden = 4 * width;
  p.vit.layer_scale = true;
  p.vit.num_register_tokens = registers ? 4 : 0;
  p.vit.pos_embed_has_prefix = !registers;  // reg4 variants: no_embed_class=True
  p.vit.checkpoint_grid = 37;
  p.vit.ln_eps = 1e-6f;
  p.vit.mlp_act = Activation::kGelu;
  p.input_size = 224;
  // crop_pct 0.875 at 224: Resize(256).
  p.preprocess = Spec(256, 224, Interpolation::kBicubic, kImageNetMean, kImageNetStd);
  p.pooling = Pooling::kClassToken;
  p.embedding_dim = width;
  p.ignored_tensors = {"head.*", "mask_token"};
  return p;
}

// efficientnet-lite-pytorch: efficientnet_params() (width, depth, resolution).
Preset EffNetLite(const std::string& name, double width, double depth, int resolution) {
  Preset p;
  p.name = name;
  p.family = "efficientnet_lite";
  p.effnet.width_coefficient = width;
  p.effnet.depth_coefficient = depth;
  p.input_size = resolution;
  // TensorFlow EfficientNet-Lite eval (the real weights' training pipeline):
  // center crop of resolution / (resolution + 32) of the image, bicubic, and
  // (x - 127) / 128 on 0..255 pixels.
  p.preprocess = Spec(resolution + 32, resolution, Interpolation::kBicubic, kLiteMean, kLiteStd);
  p.pooling = Pooling::kAvgPool;
  p.embedding_dim = 1280;  // head is not scaled (fix_head_stem)
  p.classifier = "_fc";
  p.num_classes = 1000;
  p.ignored_tensors = {"_fc.*", "*.num_batches_tracked"};
  return p;
}

// ---- ConvNeXt / Swin / DeiT (timm 0.9.16, default pretrained tags) ----------

PreprocessSpec TimmImageNet(int resize) {
  return Spec(resize, 224, Interpolation::kBicubic, kImageNetMean, kImageNetStd);
}

Preset ConvNext(const std::string& name, std::vector<int> depths, std::vector<int> dims, bool grn,
                int resize) {
  Preset p;
  p.name = name;
  p.family = "convnext";
  for (int i = 0; i < 4; ++i) {
    p.convnext.depths[i] = depths[i];
    p.convnext.dims[i] = dims[i];
  }
  p.convnext.grn = grn;
  p.preprocess = TimmImageNet(resize);
  p.pooling = Pooling::kAvgPool;  // then head.norm
  p.embedding_dim = dims[3];
  p.classifier = "head.fc";
  p.num_classes = 1000;
  p.ignored_tensors = {"head.fc.*"};
  return p;
}

Preset Swin(const std::string& name, int embed_dim, std::vector<int> depths,
            std::vector<int> heads) {
  Preset p;
  p.name = name;
  p.family = "swin";
  p.swin.embed_dim = embed_dim;
  for (int i = 0; i < 4; ++i) {
    p.swin.depths[i] = depths[i];
    p.swin.heads[i] = heads[i];
  }
  p.preprocess = TimmImageNet(248);
  p.pooling = Pooling::kAvgPool;  // of the final norm's tokens
  p.embedding_dim = embed_dim * 8;
  p.classifier = "head.fc";
  p.num_classes = 1000;
  // Non-persistent buffers that older timm versions saved.
  p.ignored_tensors = {"head.fc.*", "*.relative_position_index", "*.attn_mask"};
  return p;
}

Preset Deit(const std::string& name, int width, int heads, bool distilled) {
  Preset p = TimmVit(name, 16, width, 12, heads);
  p.family = "deit";
  p.vit.distilled = distilled;
  p.preprocess = TimmImageNet(248);
  p.ignored_tensors = {"head.*", "head_dist.*"};
  return p;
}

// torchvision MobileNetV2/V3, VGG, DenseNet, GoogLeNet, Inception-v3
// (IMAGENET1K_V1 weights' transforms; bilinear).
Preset Torchvision(const std::string& name, const std::string& family, int dim,
                   const std::vector<std::string>& ignored, int resize = 256, int crop = 224,
                   bool transform_input = false) {
  Preset p;
  p.name = name;
  p.family = family;
  p.arch = name;
  p.input_size = crop;
  p.preprocess = transform_input
                     ? Spec(resize, crop, Interpolation::kBilinear, kHalf, kHalf)
                     : Spec(resize, crop, Interpolation::kBilinear, kImageNetMean, kImageNetStd);
  p.pooling = Pooling::kAvgPool;
  p.embedding_dim = dim;
  p.ignored_tensors = ignored;
  p.ignored_tensors.push_back("*.num_batches_tracked");
  return p;
}

std::vector<Preset> AllPresets() {
  return {
      ResNet("resnet18", 18),
      ResNet("resnet34", 34),
      ResNet("resnet50", 50),
      ResNet("resnet101", 101),
      ResNet("resnet152", 152),
      TimmVit("vit_s16", 16, 384, 12, 6),
      TimmVit("vit_b16", 16, 768, 12, 12),
      TimmVit("vit_l16", 16, 1024, 24, 16),
      TimmVit("vit_b32", 32, 768, 12, 12),
      Clip("clip_vit_b32", 32, 768, 12, 12, 512, 512, 8),
      Clip("clip_vit_b16", 16, 768, 12, 12, 512, 512, 8),
      Clip("clip_vit_l14", 14, 1024, 24, 16, 768, 768, 12),
      DinoV2("dinov2_vits14", 384, 12, 6, false),
      DinoV2("dinov2_vitb14", 768, 12, 12, false),
      DinoV2("dinov2_vits14_reg", 384, 12, 6, true),
      DinoV2("dinov2_vitb14_reg", 768, 12, 12, true),
      EffNetLite("efficientnet_lite0", 1.0, 1.0, 224),
      EffNetLite("efficientnet_lite1", 1.0, 1.1, 240),
      EffNetLite("efficientnet_lite2", 1.1, 1.2, 260),
      ConvNext("convnext_tiny", {3, 3, 9, 3}, {96, 192, 384, 768}, false, 235),
      ConvNext("convnext_small", {3, 3, 27, 3}, {96, 192, 384, 768}, false, 235),
      ConvNext("convnext_base", {3, 3, 27, 3}, {128, 256, 512, 1024}, false, 256),
      ConvNext("convnextv2_tiny", {3, 3, 9, 3}, {96, 192, 384, 768}, true, 256),
      ConvNext("convnextv2_base", {3, 3, 27, 3}, {128, 256, 512, 1024}, true, 256),
      Swin("swin_tiny", 96, {2, 2, 6, 2}, {3, 6, 12, 24}),
      Swin("swin_small", 96, {2, 2, 18, 2}, {3, 6, 12, 24}),
      Swin("swin_base", 128, {2, 2, 18, 2}, {4, 8, 16, 32}),
      Deit("deit_small", 384, 6, false),
      Deit("deit_base", 768, 12, false),
      Deit("deit_small_distilled", 384, 6, true),
      Deit("deit_base_distilled", 768, 12, true),
      // torchvision MobileNet, VGG, DenseNet, GoogLeNet / Inception.
      Torchvision("mobilenet_v2", "mobilenet", 1280, {"classifier.*"}),
      Torchvision("mobilenet_v3_small", "mobilenet", 1024, {"classifier.3.*"}),
      Torchvision("mobilenet_v3_large", "mobilenet", 1280, {"classifier.3.*"}),
      Torchvision("vgg16", "vgg", 4096, {"classifier.6.*"}),
      Torchvision("vgg16_bn", "vgg", 4096, {"classifier.6.*"}),
      Torchvision("vgg19", "vgg", 4096, {"classifier.6.*"}),
      Torchvision("vgg19_bn", "vgg", 4096, {"classifier.6.*"}),
      Torchvision("densenet121", "densenet", 1024, {"classifier.*"}),
      Torchvision("densenet169", "densenet", 1664, {"classifier.*"}),
      Torchvision("googlenet", "inception", 1024, {"fc.*", "aux1.*", "aux2.*"}, 256, 224, true),
      Torchvision("inception_v3", "inception", 2048, {"fc.*", "AuxLogits.*"}, 342, 299, true),
  };
}

}  // namespace

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : AllPresets()) names.push_back(p.name);
  return names;
}

StatusOr<Preset> FindPreset(const std::string& name) {
  std::string known;
  for (Preset& p : AllPresets()) {
    if (p.name == name) return std::move(p);
    known += (known.empty() ? "" : ", ") + p.name;
  }
  return InvalidArgumentError("unknown preset '" + name + "' (known: " + known + ")");
}

}  // namespace lookalike
