#include "models/presets.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "models/pos_embed.h"

namespace lookalike {
namespace {

TEST(PresetsTest, AllContractNamesExist) {
  for (const char* name :
       {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_s16", "vit_b16",
        "vit_l16", "vit_b32", "clip_vit_b32", "clip_vit_b16", "clip_vit_l14", "dinov2_vits14",
        "dinov2_vitb14", "dinov2_vits14_reg", "dinov2_vitb14_reg", "efficientnet_lite0",
        "efficientnet_lite1", "efficientnet_lite2",
        // torchvision MobileNet, VGG, DenseNet, GoogLeNet / Inception
        "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "vgg16", "vgg16_bn", "vgg19",
        "vgg19_bn", "densenet121", "densenet169", "googlenet", "inception_v3"}) {
    auto p = FindPreset(name);
    ASSERT_TRUE(p.ok()) << name;
    EXPECT_EQ(p->name, name);
    EXPECT_GT(p->embedding_dim, 0);
    EXPECT_TRUE(p->l2_normalize);
    EXPECT_EQ(p->preprocess.crop_height, p->input_size);
  }
  EXPECT_EQ(PresetNames().size(), 42u);  // 19 + ConvNeXt / Swin / DeiT 12 + torchvision 11
  const std::vector<std::string> names = PresetNames();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size())
      << "preset names are unique";
  auto bad = FindPreset("resnet19");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unknown preset 'resnet19'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("efficientnet_lite0"), std::string::npos);
}

// torchvision IMAGENET1K_V1 transforms; googlenet / inception_v3 take
// transform_input's (x - 0.5) / 0.5 as their normalization.
TEST(PresetsTest, TorchvisionFamilies) {
  struct Want {
    const char* name;
    const char* family;
    int dim, resize, crop;
    float mean0;
  };
  for (const Want& w : {Want{"mobilenet_v2", "mobilenet", 1280, 256, 224, 0.485f},
                        Want{"mobilenet_v3_small", "mobilenet", 1024, 256, 224, 0.485f},
                        Want{"mobilenet_v3_large", "mobilenet", 1280, 256, 224, 0.485f},
                        Want{"vgg19_bn", "vgg", 4096, 256, 224, 0.485f},
                        Want{"densenet169", "densenet", 1664, 256, 224, 0.485f},
                        Want{"googlenet", "inception", 1024, 256, 224, 0.5f},
                        Want{"inception_v3", "inception", 2048, 342, 299, 0.5f}}) {
    auto p = FindPreset(w.name);
    ASSERT_TRUE(p.ok()) << w.name;
    EXPECT_EQ(p->family, w.family) << w.name;
    EXPECT_EQ(p->arch, w.name);
    EXPECT_EQ(p->embedding_dim, w.dim) << w.name;
    EXPECT_EQ(p->preprocess.resize_shorter, w.resize) << w.name;
    EXPECT_EQ(p->input_size, w.crop) << w.name;
    EXPECT_EQ(p->preprocess.interpolation, Interpolation::kBilinear) << w.name;
    EXPECT_FLOAT_EQ(p->preprocess.mean[0], w.mean0) << w.name;
    EXPECT_FLOAT_EQ(p->preprocess.std[2], w.mean0 == 0.5f ? 0.5f : 0.225f) << w.name;
  }
}

TEST(PresetsTest, ReferenceTransforms) {
  auto r = *FindPreset("resnet50");
  EXPECT_EQ(r.preprocess.resize_shorter, 256);
  EXPECT_EQ(r.preprocess.interpolation, Interpolation::kBilinear);
  EXPECT_FLOAT_EQ(r.preprocess.mean[0], 0.485f);
  EXPECT_EQ(r.embedding_dim, 2048);
  EXPECT_EQ((*FindPreset("resnet34")).embedding_dim, 512);

  auto v = *FindPreset("vit_b16");  // timm crop_pct 0.9
  EXPECT_EQ(v.preprocess.resize_shorter, 248);
  EXPECT_EQ(v.preprocess.interpolation, Interpolation::kBicubic);
  EXPECT_FLOAT_EQ(v.preprocess.std[2], 0.5f);

  auto c = *FindPreset("clip_vit_l14");
  EXPECT_EQ(c.preprocess.resize_shorter, 224);
  EXPECT_FLOAT_EQ(c.preprocess.mean[0], 0.48145466f);
  EXPECT_EQ(c.embedding_dim, 768);
  EXPECT_EQ(c.vit.mlp_act, Activation::kQuickGelu);
  // The text tower (CLIPModel checkpoints): OpenAI CLIP's text transformers.
  EXPECT_EQ(c.text.width, 768);
  EXPECT_EQ(c.text.heads, 12);
  EXPECT_EQ(c.text.layers, 12);
  EXPECT_EQ(c.text.projection_dim, c.embedding_dim);
  for (const char* name : {"clip_vit_b32", "clip_vit_b16"}) {
    auto b = *FindPreset(name);
    EXPECT_EQ(b.text.width, 512) << name;
    EXPECT_EQ(b.text.heads, 8) << name;
    EXPECT_EQ(b.text.mlp_hidden, 2048) << name;
    EXPECT_EQ(b.text.context_length, 77) << name;
    EXPECT_EQ(b.text.vocab_size, 49408) << name;
    EXPECT_EQ(b.text.projection_dim, b.embedding_dim) << name;
    EXPECT_EQ(b.text.mlp_act, Activation::kQuickGelu) << name;
  }

  auto d = *FindPreset("dinov2_vits14_reg");
  EXPECT_EQ(d.vit.num_register_tokens, 4);
  EXPECT_FALSE(d.vit.pos_embed_has_prefix);
  EXPECT_TRUE((*FindPreset("dinov2_vitb14")).vit.pos_embed_has_prefix);

  auto e = *FindPreset("efficientnet_lite2");
  EXPECT_EQ(e.input_size, 260);
  EXPECT_EQ(e.preprocess.resize_shorter, 292);
  EXPECT_FLOAT_EQ(e.preprocess.std[0], 128.0f / 255.0f);
}

// timm 0.9.16 pretrained_cfg of each default tag: Resize(floor(224 /
// crop_pct)), bicubic, ImageNet mean / std; embedding = num_features.
TEST(PresetsTest, ConvNextSwinDeitFollowTimmPretrainedCfg) {
  struct Expected {
    const char* name;
    const char* family;
    int resize, dim;
  };
  for (const Expected& e : std::vector<Expected>{
           {"convnext_tiny", "convnext", 235, 768},  // in12k_ft_in1k, crop_pct 0.95
           {"convnext_small", "convnext", 235, 768},
           {"convnext_base", "convnext", 256, 1024},  // fb_in22k_ft_in1k, 0.875
           {"convnextv2_tiny", "convnext", 256, 768},
           {"convnextv2_base", "convnext", 256, 1024},
           {"swin_tiny", "swin", 248, 768},  // crop_pct 0.9
           {"swin_small", "swin", 248, 768},
           {"swin_base", "swin", 248, 1024},
           {"deit_small", "deit", 248, 384},
           {"deit_base", "deit", 248, 768},
           {"deit_small_distilled", "deit", 248, 384},
           {"deit_base_distilled", "deit", 248, 768}}) {
    auto p = FindPreset(e.name);
    ASSERT_TRUE(p.ok()) << e.name;
    EXPECT_EQ(p->family, e.family) << e.name;
    EXPECT_EQ(p->input_size, 224) << e.name;
    EXPECT_EQ(p->preprocess.resize_shorter, e.resize) << e.name;
    EXPECT_EQ(p->preprocess.interpolation, Interpolation::kBicubic) << e.name;
    EXPECT_FLOAT_EQ(p->preprocess.mean[1], 0.456f) << e.name;
    EXPECT_FLOAT_EQ(p->preprocess.std[2], 0.225f) << e.name;
    EXPECT_EQ(p->embedding_dim, e.dim) << e.name;
  }
  EXPECT_TRUE(FindPreset("convnextv2_tiny")->convnext.grn);
  EXPECT_FALSE(FindPreset("convnext_tiny")->convnext.grn);
  EXPECT_EQ(FindPreset("convnext_base")->convnext.depths[2], 27);
  EXPECT_EQ(FindPreset("swin_base")->swin.heads[3], 32);
  EXPECT_TRUE(FindPreset("deit_base_distilled")->vit.distilled);
  EXPECT_FALSE(FindPreset("deit_base")->vit.distilled);
}

TEST(PosEmbedTest, SameGridIsIdentityAndConstantsStayConstant) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n;
  std::vector<float> grid(5 * 5 * 3);
  for (float& x : grid) x = n(rng);
  const auto same = ResamplePosEmbedBicubicAA(grid.data(), 5, 5, 3, 5, 5);
  ASSERT_EQ(same.size(), grid.size());
  for (size_t i = 0; i < grid.size(); ++i) EXPECT_NEAR(same[i], grid[i], 1e-6f);

  std::vector<float> ones(37 * 37 * 2, 1.5f);
  for (auto [h, w] : {std::pair<int, int>{16, 16}, {40, 45}, {3, 7}}) {
    const auto out = ResamplePosEmbedBicubicAA(ones.data(), 37, 37, 2, h, w);
    ASSERT_EQ(out.size(), static_cast<size_t>(h * w * 2));
    for (float x : out) ASSERT_NEAR(x, 1.5f, 1e-5f);
  }
}

TEST(PosEmbedTest, DownsampledLinearRampIsSymmetric) {
  // A ramp along x resampled 8 -> 4: the kernel is symmetric, so output
  // columns mirror around the centre.
  std::vector<float> ramp(8 * 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) ramp[y * 8 + x] = static_cast<float>(x) - 3.5f;
  const auto out = ResamplePosEmbedBicubicAA(ramp.data(), 8, 8, 1, 4, 4);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) EXPECT_NEAR(out[y * 4 + x], -out[y * 4 + 3 - x], 1e-5f);
    EXPECT_LT(out[y * 4 + 0], out[y * 4 + 1]);
  }
}

}  // namespace
}  // namespace lookalike
