// Parity of our engine (CPU backend, fp32) with the reference implementations
// on a fixture written by tools/make_reference.py (see
// tests/models/CMakeLists.txt). Environment:
//   LOOKALIKE_PARITY_PRESET  preset name
//   LOOKALIKE_PARITY_DIR     fixture directory: weights.safetensors, reference.safetensors
//                            (or SKIPPED holding the reason the Python reference stack is absent)
//   LOOKALIKE_PARITY_DEVICE  optional: "cpu" (default) or "cuda[:N]" (skipped without a GPU)
//   LOOKALIKE_PARITY_PRECISION  optional: "auto" (default; the device's) or a
//                            precision (EmbedderOptions::precision); bf16 on the
//                            CPU is skipped, naming the missing CPU feature,
//                            where CpuBf16UnavailableReason() says so
// Metric: for every image ||ours - ref|| <= 1% of the median pairwise
// distance between the reference embeddings of different images on the fp32
// CPU backend, 5% on a backend computing in fp16/bf16.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/half.h"
#include "models/backend_factory.h"
#include "models/cpu/cpu_backend.h"
#include "models/embedder.h"
#include "models/json.h"
#include "models/model.h"
#include "models/pos_embed.h"
#include "models/presets.h"
#include "models/safetensors.h"
#include "models/weights.h"

namespace lookalike {
namespace {

constexpr double kParityFractionF32 = 0.01;
constexpr double kParityFractionHalf = 0.05;

class ParityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* preset = std::getenv("LOOKALIKE_PARITY_PRESET");
    const char* dir = std::getenv("LOOKALIKE_PARITY_DIR");
    if (preset == nullptr || dir == nullptr) {
      GTEST_SKIP() << "LOOKALIKE_PARITY_PRESET / LOOKALIKE_PARITY_DIR not set (run through ctest)";
    }
    preset_name_ = preset;
    dir_ = dir;
    const char* device = std::getenv("LOOKALIKE_PARITY_DEVICE");
    device_ = device != nullptr && *device ? device : "cpu";
    if (device_ != "cpu" && CudaDeviceCount() == 0) {
      GTEST_SKIP() << "device " << device_ << ": " << CudaUnavailableReason();
    }
    const char* precision = std::getenv("LOOKALIKE_PARITY_PRECISION");
    precision_ = precision != nullptr && *precision ? precision : "auto";
    if (precision_ != "auto") {
      auto dtype = ParseDType(precision_);
      ASSERT_TRUE(dtype.ok()) << dtype.status().ToString();
      dtype_ = *dtype;
      if (device_ == "cpu" && dtype_ == DType::kBF16 && !CpuBf16UnavailableReason().empty()) {
        GTEST_SKIP() << "precision bf16: " << CpuBf16UnavailableReason();
      }
    }
    {
      auto backend = MakeBackend(device_, 0, dtype_);
      ASSERT_TRUE(backend.ok()) << backend.status().ToString();
      // The CPU's bf16 keeps fp32 activations (compute_dtype() f32) but
      // multiplies in bf16: the half-precision limit.
      tolerance_ = (*backend)->compute_dtype() == DType::kF32 && dtype_ != DType::kBF16
                       ? kParityFractionF32
                       : kParityFractionHalf;
    }
    std::ifstream skipped(dir_ + "/SKIPPED");
    if (skipped) {
      std::stringstream reason;
      reason << skipped.rdbuf();
      GTEST_SKIP() << reason.str();
    }
    auto p = FindPreset(preset_name_);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    preset_ = *p;
    weights_path_ = dir_ + "/weights.safetensors";
    auto ref = SafetensorsFile::Open(dir_ + "/reference.safetensors");
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ref_ = std::move(*ref);
    for (int i = 0;; ++i) {
      const SafeTensorInfo* t = ref_->Find("image_" + std::to_string(i));
      if (t == nullptr) break;
      ASSERT_EQ(t->shape.size(), 3u);
      ASSERT_EQ(t->shape[2], 3);
      images_.push_back(*ref_->ReadU8(t->name));
      ImageView v;
      v.height = static_cast<int>(t->shape[0]);
      v.width = static_cast<int>(t->shape[1]);
      v.stride_bytes = 3 * v.width;
      v.data = images_.back().data();
      views_.push_back(v);
    }
    for (size_t i = 0; i < views_.size(); ++i) views_[i].data = images_[i].data();
    n_ = static_cast<int>(views_.size());
    ASSERT_GE(n_, 2) << "fixture needs at least two photos";
    const SafeTensorInfo* e = ref_->Find("embeddings");
    ASSERT_NE(e, nullptr);
    ASSERT_EQ(e->shape, (std::vector<int64_t>{n_, preset_.embedding_dim}));
    ref_embeddings_ = *ref_->ReadF32("embeddings");
    std::vector<double> dists;
    const int d = preset_.embedding_dim;
    for (int i = 0; i < n_; ++i)
      for (int j = i + 1; j < n_; ++j)
        dists.push_back(Distance(&ref_embeddings_[i * d], &ref_embeddings_[j * d], d));
    std::sort(dists.begin(), dists.end());
    median_ = dists.size() % 2 ? dists[dists.size() / 2]
                               : 0.5 * (dists[dists.size() / 2 - 1] + dists[dists.size() / 2]);
    ASSERT_GT(median_, 1e-3) << "reference embeddings of different photos coincide";
  }

  static double Distance(const float* a, const float* b, int d) {
    double s = 0;
    for (int k = 0; k < d; ++k)
      s += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
    return std::sqrt(s);
  }

  // Asserts the contract metric for `ours` {N, dim} and reports the ratio.
  // `ours` holds the first `count` images (all when count < 0).
  void ExpectParity(const std::vector<float>& ours, const std::string& what, int count = -1) {
    const int d = preset_.embedding_dim;
    const int n = count < 0 ? n_ : count;
    ASSERT_EQ(ours.size(), static_cast<size_t>(n) * d);
    double worst = 0;
    for (int i = 0; i < n; ++i) {
      const double ratio = Distance(&ours[i * d], &ref_embeddings_[i * d], d) / median_;
      worst = std::max(worst, ratio);
      EXPECT_LE(ratio, tolerance_)
          << what << ": image " << i << " ||ours - ref|| / median = " << ratio;
    }
    std::printf(
        "[parity] %s %s on %s (precision %s): max ||ours - ref|| / median pairwise distance = "
        "%.3e (%.4f%%; limit %.0f%%), median = %.4f, images = %d\n",
        preset_name_.c_str(), what.c_str(), device_.c_str(), precision_.c_str(), worst,
        worst * 100.0, tolerance_ * 100.0, median_, n);
    RecordProperty(what + "_ratio", std::to_string(worst));
  }

  std::unique_ptr<Embedder> LoadEmbedder(const std::string& output, int max_batch) {
    EmbedderOptions o;
    o.preset = preset_name_;
    o.weights_path = weights_path_;
    o.device = device_;
    o.max_batch = max_batch;
    o.output = output;
    o.precision = precision_;
    auto e = Embedder::Load(o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return e.ok() ? std::move(*e) : nullptr;
  }

  std::string preset_name_, dir_, weights_path_, device_;
  std::string precision_ = "auto";
  std::optional<DType> dtype_;  // nullopt: the device's default
  double tolerance_ = kParityFractionF32;
  Preset preset_;
  std::unique_ptr<SafetensorsFile> ref_;
  std::vector<std::vector<uint8_t>> images_;
  std::vector<ImageView> views_;
  int n_ = 0;
  std::vector<float> ref_embeddings_;
  double median_ = 0;
};

TEST_F(ParityTest, PresetMatchesFixtureTransform) {
  const auto& meta = ref_->metadata();
  ASSERT_TRUE(meta.count("config")) << "reference.safetensors has no config metadata";
  auto parsed = ParseJson(meta.at("config"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const JsonValue& cfg = *parsed;
  auto field = [&](const char* key) -> const JsonValue& {
    static const JsonValue kNull;
    const JsonValue* v = cfg.Find(key);
    EXPECT_NE(v, nullptr) << "fixture config has no '" << key << "'";
    return v ? *v : kNull;
  };
  const PreprocessSpec& s = preset_.preprocess;
  EXPECT_EQ(field("resize_shorter").as_int(), s.resize_shorter);
  EXPECT_EQ(field("crop_height").as_int(), s.crop_height);
  EXPECT_EQ(field("crop_width").as_int(), s.crop_width);
  EXPECT_EQ(field("interpolation").as_string(),
            s.interpolation == Interpolation::kBicubic ? "bicubic" : "bilinear");
  EXPECT_EQ(field("dim").as_int(), preset_.embedding_dim);
  ASSERT_EQ(field("mean").items().size(), 3u);
  ASSERT_EQ(field("std").items().size(), 3u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(field("mean").items()[c].as_double(), s.mean[c], 1e-7) << c;
    EXPECT_NEAR(field("std").items()[c].as_double(), s.std[c], 1e-7) << c;
  }
}

TEST_F(ParityTest, Preprocessing) {
  auto backend = MakeBackend(device_, 0);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  auto x = (*backend)->Preprocess(views_, preset_.preprocess);
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  const int h = preset_.preprocess.crop_height, w = preset_.preprocess.crop_width;
  ASSERT_EQ(x->shape(), (std::vector<int64_t>{n_, h, w, 3}));
  std::vector<float> ours;
  ASSERT_TRUE((*backend)->ToHost(x->Reshape({n_, static_cast<int64_t>(h) * w * 3}), &ours).ok());
  auto ref = ref_->ReadF32("preprocessed");
  ASSERT_TRUE(ref.ok());
  ASSERT_EQ(ref->size(), ours.size());
  double max_diff = 0;
  size_t mismatched = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(ours[i]) - (*ref)[i]);
    max_diff = std::max(max_diff, diff);
    if (diff > 1e-5) ++mismatched;
  }
  std::printf(
      "[parity] %s preprocessing: max |ours - ref| = %.3e, values off by > 1e-5: %zu of %zu\n",
      preset_name_.c_str(), max_diff, mismatched, ours.size());
  // PIL's uint8 arithmetic is reproduced exactly, so only fp32 rounding of
  // the normalization may differ (fp16 activations: half an fp16 ulp at |x| < 4).
  EXPECT_LE(max_diff, (*backend)->compute_dtype() == DType::kF32 ? 1e-5 : 2e-3);
}

TEST_F(ParityTest, ModelOnReferenceInput) {
  // The backbone alone, fed the reference's own preprocessed tensor (the
  // first kModelImages photos: the end-to-end test covers all of them).
  constexpr int kModelImages = 3;
  const int n = std::min(n_, kModelImages);
  auto backend = MakeBackend(device_, 0, dtype_);
  ASSERT_TRUE(backend.ok());
  auto store = WeightStore::Open(weights_path_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto model = BuildModel(preset_, **store, **backend);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto pre = ref_->ReadF32("preprocessed");
  ASSERT_TRUE(pre.ok());
  const int64_t h = preset_.input_size;
  auto x = (*backend)->Constant({n, h, h, 3}, pre->data());
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  auto y = (*model)->Forward(**backend, *x);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  auto yn = (*backend)->L2Normalize(*y);
  ASSERT_TRUE(yn.ok());
  std::vector<float> ours;
  ASSERT_TRUE((*backend)->ToHost(*yn, &ours).ok());
  ExpectParity(ours, "model_on_reference_input", n);
}

TEST_F(ParityTest, EndToEnd) {
  // Decoded photos in, embeddings out; max_batch 3 splits the batch.
  auto embedder = LoadEmbedder("embedding", 3);
  ASSERT_NE(embedder, nullptr);
  EXPECT_EQ(embedder->info().dim, preset_.embedding_dim);
  EXPECT_TRUE(embedder->info().l2_normalized);
  EXPECT_EQ(embedder->info().backend.substr(0, 4), device_.substr(0, 4));
  std::vector<float> ours;
  Status s = embedder->Embed(views_, &ours);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectParity(ours, "end_to_end");
  for (int i = 0; i < n_; ++i) {
    double norm = 0;
    for (int k = 0; k < preset_.embedding_dim; ++k)
      norm += ours[i * preset_.embedding_dim + k] * ours[i * preset_.embedding_dim + k];
    EXPECT_NEAR(std::sqrt(norm), 1.0, 1e-4) << i;
  }

  // Bad images are rejected by index, nothing is computed.
  std::vector<ImageView> bad = {views_[0], views_[1]};
  bad[1].data = nullptr;
  s = embedder->Embed(bad, &ours);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("image 1"), std::string::npos) << s.ToString();
  bad[1] = views_[1];
  bad[0].width = 0;
  s = embedder->Embed(bad, &ours);
  EXPECT_NE(s.message().find("image 0"), std::string::npos) << s.ToString();
  s = embedder->Embed({}, &ours);
  EXPECT_TRUE(s.ok());
  EXPECT_TRUE(ours.empty());

  // No fixture here has a text tower (clip_vit_*: vision-only checkpoints
  // load as before): text is refused with a clear error.
  EXPECT_FALSE(embedder->info().has_text);
  s = embedder->EmbedTexts({{49406, 320, 49407}}, &ours);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("no CLIP text tower"), std::string::npos) << s.ToString();
}

TEST_F(ParityTest, ConcurrentEmbedCallsAgree) {
  // Embed() is callable from several threads (calls are serialized); every
  // thread must get the single-threaded result.
  if (preset_name_ != "resnet18") GTEST_SKIP() << "checked on the resnet18 fixture only";
  auto embedder = LoadEmbedder("embedding", 2);
  ASSERT_NE(embedder, nullptr);
  const std::vector<ImageView> batch = {views_[0], views_[1], views_[2]};
  std::vector<float> expected;
  ASSERT_TRUE(embedder->Embed(batch, &expected).ok());
  constexpr int kThreads = 3;
  std::vector<std::vector<float>> results(kThreads);
  std::vector<Status> statuses(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { statuses[t] = embedder->Embed(batch, &results[t]); });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(statuses[t].ok()) << statuses[t].ToString();
    ASSERT_EQ(results[t].size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_NEAR(results[t][i], expected[i], 1e-6f) << "thread " << t << " value " << i;
    }
  }
}

TEST_F(ParityTest, Logits) {
  if (ref_->Find("logits") == nullptr) {
    ASSERT_EQ(std::getenv("LOOKALIKE_PARITY_EXPECT_LOGITS"), nullptr)
        << "real-weights fixture " << dir_ << " has no logits";
    GTEST_SKIP() << "fixture has no logits (random weights): nothing to compare";
  }
  auto embedder = LoadEmbedder("logits", 64);
  ASSERT_NE(embedder, nullptr);
  ASSERT_EQ(embedder->info().dim, 1000);
  std::vector<float> ours;
  Status s = embedder->Embed(views_, &ours);
  ASSERT_TRUE(s.ok()) << s.ToString();
  const auto ref = *ref_->ReadF32("logits");
  const auto labels = *ref_->ReadInt("labels");
  ASSERT_EQ(ref.size(), ours.size());
  ASSERT_EQ(labels.size(), static_cast<size_t>(n_));
  int known = 0;
  double worst = 0;
  for (int i = 0; i < n_; ++i) {
    const float* o = &ours[i * 1000];
    const float* r = &ref[i * 1000];
    double diff = 0, norm = 0;
    for (int k = 0; k < 1000; ++k) {
      diff += (o[k] - r[k]) * (o[k] - r[k]);
      norm += r[k] * r[k];
    }
    const double rel = std::sqrt(diff / norm);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, tolerance_) << "image " << i << " ||logits - ref|| / ||ref|| = " << rel;
    const int top1 = static_cast<int>(std::max_element(o, o + 1000) - o);
    const int ref_top1 = static_cast<int>(std::max_element(r, r + 1000) - r);
    EXPECT_EQ(top1, ref_top1) << "image " << i;
    if (labels[i] >= 0) {
      ++known;
      EXPECT_EQ(top1, labels[i]) << "image " << i << ": ImageNet top-1";
    }
  }
  std::printf(
      "[parity] %s logits: max ||ours - ref|| / ||ref|| = %.3e; ImageNet top-1 checked on "
      "%d of %d photos\n",
      preset_name_.c_str(), worst, known, n_);
  EXPECT_GE(known, 3) << "too few photos with a known ImageNet class to check top-1";
}

TEST_F(ParityTest, PositionEmbeddingResampling) {
  if (ref_->Find("pos_embed_resampled") == nullptr) {
    GTEST_SKIP() << "fixture has no resampled position embedding (only DINOv2 presets)";
  }
  auto store = WeightStore::Open(weights_path_);
  ASSERT_TRUE(store.ok());
  std::vector<int64_t> shape;
  auto pos = (*store)->GetAnyShape("pos_embed", {1, -1, preset_.vit.width}, &shape);
  ASSERT_TRUE(pos.ok());
  const int prefix = preset_.vit.pos_embed_has_prefix ? 1 + preset_.vit.num_register_tokens : 0;
  const int old_grid =
      static_cast<int>(std::lround(std::sqrt(static_cast<double>(shape[1] - prefix))));
  ASSERT_EQ(old_grid, preset_.vit.checkpoint_grid);
  const int grid = preset_.input_size / preset_.vit.patch;
  const int d = preset_.vit.width;
  auto ours =
      ResamplePosEmbedBicubicAA(pos->data() + prefix * d, old_grid, old_grid, d, grid, grid);
  auto ref = *ref_->ReadF32("pos_embed_resampled");
  ASSERT_EQ(ref.size(), static_cast<size_t>(prefix + grid * grid) * d);
  double max_diff = 0;
  for (int i = 0; i < prefix * d; ++i)
    max_diff = std::max(max_diff, std::fabs(double(ref[i]) - (*pos)[i]));
  for (size_t i = 0; i < ours.size(); ++i)
    max_diff = std::max(max_diff, std::fabs(double(ref[prefix * d + i]) - ours[i]));
  std::printf("[parity] %s position embedding %dx%d -> %dx%d: max |ours - timm| = %.3e\n",
              preset_name_.c_str(), old_grid, old_grid, grid, grid, max_diff);
  EXPECT_LE(max_diff, 1e-5);
}

TEST_F(ParityTest, HalfPrecisionWeightFiles) {
  // The same state_dict stored as F16 and as BF16 loads (converted to fp32
  // on read) and still meets the parity limit (F16) / 5% (BF16, 8-bit mantissa).
  if (preset_name_ != "resnet18" || device_ != "cpu") {
    GTEST_SKIP() << "checked on the resnet18 fixture on cpu only";
  }
  auto src = SafetensorsFile::Open(weights_path_);
  ASSERT_TRUE(src.ok());
  for (const SafeDType dtype : {SafeDType::kF16, SafeDType::kBF16}) {
    std::vector<SafeTensorToWrite> tensors;
    for (const std::string& name : (*src)->names()) {
      SafeTensorToWrite t;
      t.name = name;
      t.dtype = dtype;
      t.shape = (*src)->Find(name)->shape;
      const std::vector<float> values = *(*src)->ReadF32(name);
      for (float v : values) {
        const uint16_t bits = dtype == SafeDType::kF16 ? FloatToHalf(v) : FloatToBf16(v);
        t.bytes.push_back(static_cast<uint8_t>(bits & 0xff));
        t.bytes.push_back(static_cast<uint8_t>(bits >> 8));
      }
      tensors.push_back(std::move(t));
    }
    EmbedderOptions o;
    o.preset = preset_name_;
    o.weights_path = ::testing::TempDir() + "/parity_" + SafeDTypeName(dtype) + "_" +
                     std::to_string(::getpid()) + ".safetensors";
    ASSERT_TRUE(WriteSafetensors(o.weights_path, tensors).ok());
    auto embedder = Embedder::Load(o);
    ASSERT_TRUE(embedder.ok()) << embedder.status().ToString();
    std::vector<float> ours;
    ASSERT_TRUE((*embedder)->Embed(views_, &ours).ok());
    const double saved = tolerance_;
    if (dtype == SafeDType::kBF16) tolerance_ = kParityFractionHalf;
    ExpectParity(ours, std::string("weights_") + SafeDTypeName(dtype));
    tolerance_ = saved;
    std::remove(o.weights_path.c_str());
  }
}

TEST_F(ParityTest, WeightNameErrorsOnARealStateDict) {
  if (preset_name_ != "resnet18" || device_ != "cpu") {
    GTEST_SKIP() << "checked on the resnet18 fixture on cpu only";
  }
  auto src = SafetensorsFile::Open(weights_path_);
  ASSERT_TRUE(src.ok());
  std::vector<SafeTensorToWrite> tensors;
  for (const std::string& name : (*src)->names()) {
    if (name == "layer3.1.bn2.running_var") continue;
    tensors.push_back(MakeF32Tensor(name, (*src)->Find(name)->shape, *(*src)->ReadF32(name)));
  }
  const std::string dir = ::testing::TempDir();
  EmbedderOptions o;
  o.preset = "resnet18";
  o.weights_path = dir + "/parity_missing_" + std::to_string(::getpid()) + ".safetensors";
  ASSERT_TRUE(WriteSafetensors(o.weights_path, tensors).ok());
  auto r = Embedder::Load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(
      r.status().message().find("missing tensor 'layer3.1.bn2.running_var' (expected shape [256])"),
      std::string::npos)
      << r.status().ToString();

  tensors.push_back(
      MakeF32Tensor("layer3.1.bn2.running_var", {256}, std::vector<float>(256, 1.0f)));
  tensors.push_back(MakeF32Tensor("layer5.0.conv1.weight", {1}, {0.0f}));
  tensors.push_back(MakeF32Tensor("extra_scale", {2}, {0.0f, 1.0f}));
  o.weights_path = dir + "/parity_extra_" + std::to_string(::getpid()) + ".safetensors";
  ASSERT_TRUE(WriteSafetensors(o.weights_path, tensors).ok());
  r = Embedder::Load(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("2 unexpected tensor(s) not used by the model: "
                                      "'layer5.0.conv1.weight', 'extra_scale'"),
            std::string::npos)
      << r.status().ToString();
  std::remove(o.weights_path.c_str());
}

}  // namespace
}  // namespace lookalike
