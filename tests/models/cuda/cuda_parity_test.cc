// Whole-model parity: the CUDA backend (fp16) against the CPU backend (fp32)
// on the same weights and photos (a parity fixture of tests/models, written
// by tools/make_reference.py with random weights). Environment as
// tests/models/parity_test.cc: LOOKALIKE_PARITY_PRESET, LOOKALIKE_PARITY_DIR.
// Metric: for every image ||gpu - cpu|| <= 5% of the median distance between
// different images' CPU embeddings. Skipped without a GPU or fixture.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "models/backend_factory.h"
#include "models/embedder.h"
#include "models/presets.h"
#include "models/safetensors.h"

namespace lookalike {
namespace {

constexpr double kGpuParityFraction = 0.05;

double Distance(const float* a, const float* b, int d) {
  double s = 0;
  for (int k = 0; k < d; ++k)
    s += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
  return std::sqrt(s);
}

TEST(CudaParityTest, GpuEmbeddingsMatchCpu) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device present";
  const char* preset = std::getenv("LOOKALIKE_PARITY_PRESET");
  const char* dir_env = std::getenv("LOOKALIKE_PARITY_DIR");
  if (preset == nullptr || dir_env == nullptr) {
    GTEST_SKIP() << "LOOKALIKE_PARITY_PRESET / LOOKALIKE_PARITY_DIR not set (run through ctest)";
  }
  const std::string dir = dir_env;
  std::ifstream skipped(dir + "/SKIPPED");
  if (skipped) {
    std::stringstream reason;
    reason << skipped.rdbuf();
    GTEST_SKIP() << reason.str();
  }
  auto ref = SafetensorsFile::Open(dir + "/reference.safetensors");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  std::vector<std::vector<uint8_t>> images;
  std::vector<ImageView> views;
  for (int i = 0;; ++i) {
    const SafeTensorInfo* t = (*ref)->Find("image_" + std::to_string(i));
    if (t == nullptr) break;
    images.push_back(*(*ref)->ReadU8(t->name));
    views.push_back({nullptr, static_cast<int>(t->shape[1]), static_cast<int>(t->shape[0]),
                     static_cast<int>(3 * t->shape[1])});
  }
  for (size_t i = 0; i < views.size(); ++i) views[i].data = images[i].data();
  const int n = static_cast<int>(views.size());
  ASSERT_GE(n, 2);

  std::vector<float> out[2];
  int dim = 0;
  const char* devices[2] = {"cpu", "cuda"};
  for (int b = 0; b < 2; ++b) {
    EmbedderOptions o;
    o.preset = preset;
    o.weights_path = dir + "/weights.safetensors";
    o.device = devices[b];
    auto e = Embedder::Load(o);
    ASSERT_TRUE(e.ok()) << devices[b] << ": " << e.status().ToString();
    dim = (*e)->info().dim;
    const Status s = (*e)->Embed(views, &out[b]);
    ASSERT_TRUE(s.ok()) << devices[b] << ": " << s.ToString();
    ASSERT_EQ(out[b].size(), static_cast<size_t>(n) * dim);
  }
  std::vector<double> dists;
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j)
      dists.push_back(Distance(&out[0][i * dim], &out[0][j * dim], dim));
  std::sort(dists.begin(), dists.end());
  const double median = dists.size() % 2
                            ? dists[dists.size() / 2]
                            : 0.5 * (dists[dists.size() / 2 - 1] + dists[dists.size() / 2]);
  ASSERT_GT(median, 1e-3);
  double worst = 0;
  for (int i = 0; i < n; ++i) {
    const double ratio = Distance(&out[1][i * dim], &out[0][i * dim], dim) / median;
    worst = std::max(worst, ratio);
    EXPECT_LE(ratio, kGpuParityFraction) << "image " << i;
  }
  std::printf("[cuda parity] %s: max ||gpu - cpu|| / median = %.3e (limit 5%%)\n", preset, worst);
}

}  // namespace
}  // namespace lookalike
