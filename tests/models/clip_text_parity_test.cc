// CLIP text tower parity with transformers' CLIPModel.get_text_features, and
// the image-text similarity matrix of one CLIPModel checkpoint, on the
// fixture tools/make_clip_text_reference.py writes (random weights, a small
// config with CLIP's real vocabulary and context).
//
// Environment (set by ctest): LOOKALIKE_CLIP_TEXT_DIR, the fixture directory
// holding model.safetensors + reference.safetensors, or SKIPPED with the
// reason the Python reference stack is absent. A missing fixture fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/device.h"
#include "models/backend_factory.h"
#include "models/clip_tokenizer.h"
#include "models/embedder.h"
#include "models/json.h"
#include "models/model.h"
#include "models/presets.h"
#include "models/safetensors.h"
#include "models/weights.h"

namespace lookalike {
namespace {

// ‖ours − reference‖ of every L2-normalized text embedding, relative to the
// median distance between different texts' reference embeddings (fp32).
constexpr double kParityFraction = 0.01;
// Cosine similarities lie in [-1, 1].
constexpr double kSimilarityTolerance = 1e-3;

double Distance(const float* a, const float* b, int d) {
  double s = 0;
  for (int k = 0; k < d; ++k) s += (double{a[k]} - b[k]) * (double{a[k]} - b[k]);
  return std::sqrt(s);
}

std::vector<float> Normalized(std::vector<float> v, int d) {
  for (size_t r = 0; r * d < v.size(); ++r) {
    double s = 0;
    for (int k = 0; k < d; ++k) s += double{v[r * d + k]} * v[r * d + k];
    const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
    for (int k = 0; k < d; ++k) v[r * d + k] = static_cast<float>(v[r * d + k] * inv);
  }
  return v;
}

// Median of ‖ref_i − ref_j‖ over pairs i < j.
double MedianPairDistance(const std::vector<float>& ref, int n, int d) {
  std::vector<double> dists;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j) dists.push_back(Distance(&ref[i * d], &ref[j * d], d));
  std::sort(dists.begin(), dists.end());
  return dists.size() % 2 ? dists[dists.size() / 2]
                          : 0.5 * (dists[dists.size() / 2 - 1] + dists[dists.size() / 2]);
}

class ClipTextParityTest : public ::testing::Test {
 protected:
  // The fixture's texts as token id sequences.
  std::vector<std::vector<int32_t>> Texts() const {
    std::vector<std::vector<int32_t>> texts;
    for (int i = 0; i < num_texts_; ++i) {
      texts.emplace_back(ids_.begin() + i * context_, ids_.begin() + (i + 1) * context_);
    }
    return texts;
  }
  // EmbedTexts of every text is within `fraction` of the median distance
  // between different texts' reference embeddings.
  void ExpectTextsMatch(Embedder& embedder, double fraction, const char* what) {
    std::vector<float> ours;
    Status s = embedder.EmbedTexts(Texts(), &ours);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(ours.size(), ref_text_.size());
    const double median = MedianPairDistance(ref_text_, num_texts_, dim_);
    double worst = 0;
    for (int i = 0; i < num_texts_; ++i) {
      const double dist = Distance(&ours[i * dim_], &ref_text_[i * dim_], dim_);
      worst = std::max(worst, dist / median);
      EXPECT_LE(dist, fraction * median) << "text " << i;
    }
    std::printf("%s: max distance / median %.3g\n", what, worst);
  }

  void SetUp() override {
    const char* dir = std::getenv("LOOKALIKE_CLIP_TEXT_DIR");
    if (dir == nullptr) GTEST_SKIP() << "LOOKALIKE_CLIP_TEXT_DIR not set (run through ctest)";
    dir_ = dir;
    std::ifstream skipped(dir_ + "/SKIPPED");
    if (skipped) {
      std::stringstream reason;
      reason << skipped.rdbuf();
      GTEST_SKIP() << reason.str();
    }
    auto ref = SafetensorsFile::Open(dir_ + "/reference.safetensors");
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ref_ = std::move(*ref);
    auto weights = WeightStore::Open(dir_ + "/model.safetensors");
    ASSERT_TRUE(weights.ok()) << weights.status().ToString();
    weights_ = std::move(*weights);
    auto backend = MakeBackend("cpu", 0);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    backend_ = std::move(*backend);

    ASSERT_TRUE(ref_->metadata().count("config"));
    auto root = ParseJson(ref_->metadata().at("config"));
    ASSERT_TRUE(root.ok()) << root.status().ToString();
    ASSERT_TRUE(ApplyHfClipTextConfig(*root, &text_cfg_).ok());
    const JsonValue* vision = root->Find("vision_config");
    ASSERT_NE(vision, nullptr);
    auto field = [&](const char* key) {
      const JsonValue* v = vision->Find(key);
      EXPECT_NE(v, nullptr) << key;
      return v == nullptr ? 0 : static_cast<int>(v->as_int());
    };
    // The clip_vit preset's definition at the fixture's (small) dimensions.
    auto p = FindPreset("clip_vit_b32");
    ASSERT_TRUE(p.ok());
    preset_ = *p;
    preset_.vit.width = field("hidden_size");
    preset_.vit.mlp_hidden = field("intermediate_size");
    preset_.vit.depth = field("num_hidden_layers");
    preset_.vit.heads = field("num_attention_heads");
    preset_.vit.patch = field("patch_size");
    preset_.input_size = field("image_size");
    preset_.vit.projection_dim = text_cfg_.projection_dim;
    preset_.embedding_dim = text_cfg_.projection_dim;
    preset_.text = text_cfg_;
    dim_ = text_cfg_.projection_dim;

    const SafeTensorInfo* ids = ref_->Find("token_ids");
    ASSERT_NE(ids, nullptr);
    ASSERT_EQ(ids->shape.size(), 2u);
    num_texts_ = static_cast<int>(ids->shape[0]);
    context_ = static_cast<int>(ids->shape[1]);
    auto id_values = ref_->ReadInt("token_ids");
    ASSERT_TRUE(id_values.ok()) << id_values.status().ToString();
    ids_.assign(id_values->begin(), id_values->end());
    auto text = ref_->ReadF32("text_features");
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    ASSERT_EQ(text->size(), static_cast<size_t>(num_texts_) * dim_);
    ref_text_ = Normalized(*text, dim_);
  }

  // The text tower's L2-normalized embeddings of `batch` sequences.
  std::vector<float> EmbedTexts(TextModel& model, const std::vector<int32_t>& ids, int64_t batch) {
    std::vector<float> host;
    auto y = model.Forward(*backend_, ids, batch);
    EXPECT_TRUE(y.ok()) << y.status().ToString();
    if (!y.ok()) return host;
    auto n = backend_->L2Normalize(*y);
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    if (n.ok()) EXPECT_TRUE(backend_->ToHost(*n, &host).ok());
    return host;
  }

  std::string dir_;
  std::unique_ptr<SafetensorsFile> ref_;
  std::unique_ptr<WeightStore> weights_;
  std::unique_ptr<Backend> backend_;
  ClipTextConfig text_cfg_;
  Preset preset_;
  int dim_ = 0, num_texts_ = 0, context_ = 0;
  std::vector<int32_t> ids_;
  std::vector<float> ref_text_;
};

TEST_F(ClipTextParityTest, TextFeaturesMatchTransformers) {
  auto model = BuildClipText(text_cfg_, *weights_, *backend_);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const std::vector<float> ours = EmbedTexts(**model, ids_, num_texts_);
  ASSERT_EQ(ours.size(), ref_text_.size());
  const double median = MedianPairDistance(ref_text_, num_texts_, dim_);
  ASSERT_GT(median, 1e-3) << "reference embeddings of different texts coincide";
  double worst = 0;
  std::vector<double> ratios;
  for (int i = 0; i < num_texts_; ++i) {
    const double dist = Distance(&ours[i * dim_], &ref_text_[i * dim_], dim_);
    ratios.push_back(dist / median);
    worst = std::max(worst, dist / median);
    EXPECT_LE(dist, kParityFraction * median) << "text " << i;
  }
  std::sort(ratios.begin(), ratios.end());
  std::printf(
      "text parity (%s): max distance / median %.3g, median ratio %.3g (limit %.3g), "
      "median distance between texts %.4f\n",
      ref_->metadata().count("variant") ? ref_->metadata().at("variant").c_str() : "?", worst,
      ratios[ratios.size() / 2], kParityFraction, median);
  RecordProperty("max_distance_over_median", std::to_string(worst));
}

// Tokens after the end-of-text token cannot change its embedding (causal
// mask), so a sequence cut after it, alone in its batch, embeds the same.
TEST_F(ClipTextParityTest, ShorterSequencesAndBatchOfOneAgree) {
  auto model = BuildClipText(text_cfg_, *weights_, *backend_);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const std::vector<float> all = EmbedTexts(**model, ids_, num_texts_);
  ASSERT_EQ(all.size(), static_cast<size_t>(num_texts_) * dim_);
  for (int i : {0, 3, num_texts_ - 1}) {
    const int32_t* row = &ids_[static_cast<size_t>(i) * context_];
    const int eos = static_cast<int>(std::max_element(row, row + context_) - row);
    std::vector<int32_t> cut(row, row + eos + 1);
    const std::vector<float> one = EmbedTexts(**model, cut, 1);
    ASSERT_EQ(one.size(), static_cast<size_t>(dim_));
    EXPECT_LT(Distance(one.data(), &all[i * dim_], dim_), 1e-4) << "text " << i;
  }
}

// One checkpoint, both towers: every tensor is used, and the image-text
// cosine similarity matrix matches the reference's.
TEST_F(ClipTextParityTest, ImageTextSimilarityMatchesTransformers) {
  auto vision = BuildModel(preset_, *weights_, *backend_);
  ASSERT_TRUE(vision.ok()) << vision.status().ToString();
  auto text = BuildClipText(text_cfg_, *weights_, *backend_);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  Status used = weights_->CheckAllUsed(preset_.ignored_tensors);
  EXPECT_TRUE(used.ok()) << used.ToString();

  const SafeTensorInfo* px = ref_->Find("pixel_values");
  ASSERT_NE(px, nullptr);
  const int num_images = static_cast<int>(px->shape[0]);
  auto pixels = ref_->ReadF32("pixel_values");
  ASSERT_TRUE(pixels.ok());
  auto x = backend_->Constant(px->shape, pixels->data());
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  auto features = (*vision)->Forward(*backend_, *x);
  ASSERT_TRUE(features.ok()) << features.status().ToString();
  auto normalized = backend_->L2Normalize(*features);
  ASSERT_TRUE(normalized.ok());
  std::vector<float> images;
  ASSERT_TRUE(backend_->ToHost(*normalized, &images).ok());
  ASSERT_EQ(images.size(), static_cast<size_t>(num_images) * dim_);

  auto ref_image = ref_->ReadF32("image_features");
  ASSERT_TRUE(ref_image.ok());
  const std::vector<float> ref_images = Normalized(*ref_image, dim_);
  const double image_median = MedianPairDistance(ref_images, num_images, dim_);
  for (int i = 0; i < num_images; ++i) {
    EXPECT_LE(Distance(&images[i * dim_], &ref_images[i * dim_], dim_),
              kParityFraction * image_median)
        << "image " << i;
  }

  const std::vector<float> texts = EmbedTexts(**text, ids_, num_texts_);
  ASSERT_EQ(texts.size(), static_cast<size_t>(num_texts_) * dim_);
  auto ref_sim = ref_->ReadF32("similarity");
  ASSERT_TRUE(ref_sim.ok());
  ASSERT_EQ(ref_sim->size(), static_cast<size_t>(num_images) * num_texts_);
  double max_diff = 0;
  for (int i = 0; i < num_images; ++i) {
    for (int t = 0; t < num_texts_; ++t) {
      double s = 0;
      for (int k = 0; k < dim_; ++k) s += double{images[i * dim_ + k]} * texts[t * dim_ + k];
      max_diff = std::max(max_diff, std::abs(s - (*ref_sim)[i * num_texts_ + t]));
    }
  }
  std::printf("image-text similarity: %d x %d, max |ours - reference| %.3g (limit %.3g)\n",
              num_images, num_texts_, max_diff, kSimilarityTolerance);
  EXPECT_LE(max_diff, kSimilarityTolerance);
}

// The fixture's token ids are open_clip's; ClipTokenizer gives the same ids
// for the same texts, so strings reach the tower as the reference's did.
TEST_F(ClipTextParityTest, TokenizerGivesTheFixtureIds) {
  ASSERT_TRUE(ref_->metadata().count("texts") && ref_->metadata().count("open_clip_vocab"));
  auto tokenizer = ClipTokenizer::Load(ref_->metadata().at("open_clip_vocab"));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  auto texts = ParseJson(ref_->metadata().at("texts"));
  ASSERT_TRUE(texts.ok() && texts->is_array());
  ASSERT_EQ(static_cast<int>(texts->items().size()), num_texts_);
  for (int i = 0; i < num_texts_; ++i) {
    auto ids = tokenizer->Tokenize(texts->items()[i].as_string(), context_);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    EXPECT_EQ(*ids,
              std::vector<int32_t>(ids_.begin() + i * context_, ids_.begin() + (i + 1) * context_))
        << "text " << i;
  }
}

// Through the public API: a clip_vit_b32 CLIPModel checkpoint with its
// config.json (gelu, eos_token_id 49407, where the preset says quick_gelu and
// argmax) loads both towers; EmbedTexts splits batches and matches the
// reference. Runs on the clip_vit_b32 fixture (full preset dimensions).
TEST_F(ClipTextParityTest, EmbedderEmbedsTexts) {
  const auto& meta = ref_->metadata();
  if (!meta.count("variant") || meta.at("variant") != "clip_vit_b32") {
    GTEST_SKIP() << "needs the clip_vit_b32 fixture (preset dimensions)";
  }
  EmbedderOptions o;
  o.preset = "clip_vit_b32";
  o.weights_path = dir_ + "/model.safetensors";
  o.max_batch = 5;  // 16 texts: four calls
  auto embedder = Embedder::Load(o);
  ASSERT_TRUE(embedder.ok()) << embedder.status().ToString();
  const ModelInfo& info = (*embedder)->info();
  EXPECT_TRUE(info.has_text);
  EXPECT_EQ(info.text_context_length, 77);
  ASSERT_EQ(info.dim, dim_);
  std::vector<std::vector<int32_t>> texts = Texts();
  std::vector<float> ours;
  ExpectTextsMatch(**embedder, kParityFraction, "Embedder::EmbedTexts (clip_vit_b32, config.json)");

  // Ragged batches and out-of-range ids are refused by name; nothing is empty.
  texts[1].pop_back();
  Status s = (*embedder)->EmbedTexts(texts, &ours);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("text 1"), std::string::npos) << s.ToString();
  s = (*embedder)->EmbedTexts({{49406, 49408}}, &ours);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("id 49408"), std::string::npos) << s.ToString();
  s = (*embedder)->EmbedTexts({}, &ours);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ours.empty());
}

// The text tower on the CUDA backend (causal attention kernel, embedding
// lookup; f16 compute) against the same reference, with the 5% bound of the
// CUDA image parity checks. Skipped without a GPU.
TEST_F(ClipTextParityTest, CudaEmbedderMatchesTheReference) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << CudaUnavailableReason();
  const auto& meta = ref_->metadata();
  if (!meta.count("variant") || meta.at("variant") != "clip_vit_b32") {
    GTEST_SKIP() << "needs the clip_vit_b32 fixture (preset dimensions)";
  }
  constexpr double kCudaParityFraction = 0.05;
  EmbedderOptions o;
  o.preset = "clip_vit_b32";
  o.weights_path = dir_ + "/model.safetensors";
  o.device = "cuda";
  auto embedder = Embedder::Load(o);
  ASSERT_TRUE(embedder.ok()) << embedder.status().ToString();
  ASSERT_TRUE((*embedder)->info().has_text);
  ExpectTextsMatch(**embedder, kCudaParityFraction, "CUDA Embedder::EmbedTexts (clip_vit_b32)");
}

TEST(ClipTextConfigTest, HfConfigFieldsAndDefaults) {
  auto root = ParseJson(
      R"({"projection_dim": 768, "text_config": {"hidden_size": 768, "num_attention_heads": 12,
          "intermediate_size": 3072, "hidden_act": "gelu", "eos_token_id": 2}})");
  ASSERT_TRUE(root.ok());
  ClipTextConfig c;
  ASSERT_TRUE(ApplyHfClipTextConfig(*root, &c).ok());
  EXPECT_EQ(c.width, 768);
  EXPECT_EQ(c.heads, 12);
  EXPECT_EQ(c.mlp_hidden, 3072);
  EXPECT_EQ(c.projection_dim, 768);
  EXPECT_EQ(c.mlp_act, Activation::kGelu);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.layers, 12);  // transformers' defaults for what the file omits
  EXPECT_EQ(c.context_length, 77);
  auto empty = ParseJson("{}");
  ASSERT_TRUE(empty.ok());
  ASSERT_TRUE(ApplyHfClipTextConfig(*empty, &c).ok());
  EXPECT_EQ(c.eos_token_id, 49407);
  EXPECT_EQ(c.mlp_act, Activation::kQuickGelu);
  EXPECT_EQ(c.width, 512);
  auto bad = ParseJson(R"({"text_config": {"hidden_act": "relu"}})");
  ASSERT_TRUE(bad.ok());
  Status s = ApplyHfClipTextConfig(*bad, &c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("hidden_act"), std::string::npos) << s.ToString();
}

}  // namespace
}  // namespace lookalike
