// models/cpu/preprocess.cc against PIL + torchvision, from the reference file
// written by make_preprocess_reference.py (ctest fixture), plus checks that
// need no reference.
//
// Tolerances: the uint8 resize must equal PIL's exactly (max abs diff 0): the
// implementation reproduces PIL's fixed-point arithmetic, so any difference is
// a bug, not rounding. The normalized output is computed with the same fp32
// operations as ToTensor + Normalize ((u / 255 - mean) / std), so it must match
// to 1e-6 (it is expected to be bit-identical; the slack only allows for a
// compiler contracting the expression differently).
#include "models/cpu/preprocess.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "models/cpu/cpu_backend.h"

#ifndef LOOKALIKE_PREPROCESS_REFERENCE
#error "LOOKALIKE_PREPROCESS_REFERENCE must name the reference file"
#endif

namespace lookalike {
namespace {

struct RefCase {
  std::string name;
  uint32_t height, width, resize, crop_h, crop_w, interp, resized_h, resized_w;
  std::vector<uint8_t> image, resized;
  std::vector<float> out;
};

// The fixture writes <reference>.skip with a reason instead of the reference
// where the Python reference stack is missing; empty when there is none.
std::string SkipReason() {
  std::ifstream f(std::string(LOOKALIKE_PREPROCESS_REFERENCE) + ".skip");
  if (!f) return "";
  std::string reason((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return reason.empty() ? "reference skipped" : reason;
}

bool ReadCases(const std::string& path, std::vector<RefCase>* cases, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = "cannot open " + path + " (written by make_preprocess_reference.py)";
    return false;
  }
  char magic[4];
  uint32_t version = 0, count = 0;
  f.read(magic, 4);
  f.read(reinterpret_cast<char*>(&version), 4);
  f.read(reinterpret_cast<char*>(&count), 4);
  if (!f || std::memcmp(magic, "LKPP", 4) != 0 || version != 1) {
    *error = "bad header in " + path;
    return false;
  }
  for (uint32_t i = 0; i < count; ++i) {
    RefCase c;
    uint32_t h[9];
    f.read(reinterpret_cast<char*>(h), sizeof(h));
    c.height = h[0], c.width = h[1], c.resize = h[2], c.crop_h = h[3], c.crop_w = h[4];
    c.interp = h[5], c.resized_h = h[6], c.resized_w = h[7];
    c.name.resize(h[8]);
    f.read(&c.name[0], h[8]);
    c.image.resize(size_t{c.height} * c.width * 3);
    c.resized.resize(size_t{c.resized_h} * c.resized_w * 3);
    c.out.resize(size_t{c.crop_h} * c.crop_w * 3);
    f.read(reinterpret_cast<char*>(c.image.data()), c.image.size());
    f.read(reinterpret_cast<char*>(c.resized.data()), c.resized.size());
    f.read(reinterpret_cast<char*>(c.out.data()), c.out.size() * sizeof(float));
    if (!f) {
      *error = "truncated case " + std::to_string(i) + " in " + path;
      return false;
    }
    cases->push_back(std::move(c));
  }
  return true;
}

PreprocessSpec SpecOf(const RefCase& c) {
  PreprocessSpec s;
  s.resize_shorter = static_cast<int>(c.resize);
  s.crop_height = static_cast<int>(c.crop_h);
  s.crop_width = static_cast<int>(c.crop_w);
  s.interpolation = c.interp ? Interpolation::kBicubic : Interpolation::kBilinear;
  return s;
}

TEST(PreprocessTest, MatchesPilAndTorchvision) {
  if (const std::string why = SkipReason(); !why.empty()) GTEST_SKIP() << why;
  std::vector<RefCase> cases;
  std::string error;
  ASSERT_TRUE(ReadCases(LOOKALIKE_PREPROCESS_REFERENCE, &cases, &error)) << error;
  ASSERT_GE(cases.size(), 5u);
  for (const RefCase& c : cases) {
    SCOPED_TRACE(c.name + " resize " + std::to_string(c.resize) + " crop " +
                 std::to_string(c.crop_h) + "x" + std::to_string(c.crop_w) +
                 (c.interp ? " bicubic" : " bilinear"));
    ImageView view{c.image.data(), static_cast<int>(c.width), static_cast<int>(c.height),
                   static_cast<int>(c.width * 3)};
    int rw = 0, rh = 0;
    ResizedSize(view.width, view.height, static_cast<int>(c.resize), &rw, &rh);
    ASSERT_EQ(rw, static_cast<int>(c.resized_w));
    ASSERT_EQ(rh, static_cast<int>(c.resized_h));

    std::vector<uint8_t> resized;
    ASSERT_TRUE(ResizeRgb8(view, rw, rh, SpecOf(c).interpolation, true, &resized).ok());
    int max_u8 = 0;
    for (size_t i = 0; i < resized.size(); ++i)
      max_u8 = std::max(max_u8, std::abs(int{resized[i]} - int{c.resized[i]}));
    EXPECT_EQ(max_u8, 0) << "uint8 resize differs from PIL";

    std::vector<float> out(c.out.size());
    ASSERT_TRUE(PreprocessImage(view, SpecOf(c), out.data()).ok());
    double max_diff = 0;
    for (size_t i = 0; i < out.size(); ++i)
      max_diff = std::max(max_diff, std::fabs(double{out[i]} - c.out[i]));
    EXPECT_LE(max_diff, 1e-6) << "normalized output differs from torchvision";
    std::printf(
        "[ preprocess ] %-22s %s resize %3u crop %ux%u: max |u8 diff| %d, max |out diff| %.3g\n",
        c.name.c_str(), c.interp ? "bicubic " : "bilinear", c.resize, c.crop_h, c.crop_w, max_u8,
        max_diff);
  }
}

TEST(PreprocessTest, BackendBatchMatchesSingleImagesAndStride) {
  if (const std::string why = SkipReason(); !why.empty()) GTEST_SKIP() << why;
  std::vector<RefCase> cases;
  std::string error;
  ASSERT_TRUE(ReadCases(LOOKALIKE_PREPROCESS_REFERENCE, &cases, &error)) << error;
  // Same spec for the batch; images of different sizes, one with padded rows.
  PreprocessSpec spec;
  std::vector<std::vector<uint8_t>> padded;
  std::vector<ImageView> views;
  for (const RefCase& c : cases) {
    const int stride = static_cast<int>(c.width * 3 + 5);
    std::vector<uint8_t> buf(size_t(stride) * c.height, 0xAB);
    for (uint32_t y = 0; y < c.height; ++y)
      std::memcpy(&buf[size_t(y) * stride], &c.image[size_t(y) * c.width * 3], c.width * 3);
    padded.push_back(std::move(buf));
    views.push_back(
        {padded.back().data(), static_cast<int>(c.width), static_cast<int>(c.height), stride});
  }
  CpuBackend be({2});
  auto batch = be.Preprocess(views, spec);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->shape(),
            (std::vector<int64_t>{static_cast<int64_t>(views.size()), 224, 224, 3}));
  const size_t per = 224 * 224 * 3;
  for (size_t i = 0; i < cases.size(); ++i) {
    ImageView packed{cases[i].image.data(), static_cast<int>(cases[i].width),
                     static_cast<int>(cases[i].height), static_cast<int>(cases[i].width * 3)};
    std::vector<float> single(per);
    ASSERT_TRUE(PreprocessImage(packed, spec, single.data()).ok());
    EXPECT_EQ(0, std::memcmp(single.data(), batch->data_as<float>() + per * i, per * sizeof(float)))
        << cases[i].name;
  }
}

TEST(PreprocessTest, ConstantImageGivesConstantOutput) {
  // Any resampling of a constant image is that constant (weights sum to one).
  std::vector<uint8_t> img(61 * 47 * 3);
  for (size_t i = 0; i < img.size(); ++i)
    img[i] = static_cast<uint8_t>(i % 3 == 0 ? 200 : i % 3 == 1 ? 17 : 99);
  ImageView view{img.data(), 61, 47, 61 * 3};
  for (Interpolation interp : {Interpolation::kBilinear, Interpolation::kBicubic}) {
    PreprocessSpec spec;
    spec.resize_shorter = 30;  // downscale
    spec.crop_height = spec.crop_width = 28;
    spec.interpolation = interp;
    std::vector<float> out(28 * 28 * 3);
    ASSERT_TRUE(PreprocessImage(view, spec, out.data()).ok());
    const uint8_t v[3] = {200, 17, 99};
    for (size_t i = 0; i < out.size(); ++i) {
      const int c = i % 3;
      ASSERT_FLOAT_EQ(out[i], (v[c] / 255.0f - spec.mean[c]) / spec.std[c]);
    }
  }
}

TEST(PreprocessTest, InvalidInputsAreRejected) {
  std::vector<uint8_t> img(10 * 10 * 3, 1);
  PreprocessSpec spec;
  std::vector<float> out(224 * 224 * 3);
  EXPECT_EQ(PreprocessImage({nullptr, 10, 10, 30}, spec, out.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PreprocessImage({img.data(), 0, 10, 30}, spec, out.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(PreprocessImage({img.data(), 10, 10, 29}, spec, out.data()).code(),
            StatusCode::kInvalidArgument);
  PreprocessSpec bad = spec;
  bad.std[1] = 0.0f;
  EXPECT_EQ(PreprocessImage({img.data(), 10, 10, 30}, bad, out.data()).code(),
            StatusCode::kInvalidArgument);
  CpuBackend be({1});
  auto r = be.Preprocess({{img.data(), 10, 10, 30}, {img.data(), 10, 10, 12}}, spec);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("item 1"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(be.Preprocess({}, spec).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lookalike
