#include "models/pos_embed.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace lookalike {
namespace {

float CubicAA(float x) {
  constexpr float a = -0.5f;
  x = std::fabs(x);
  if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
  if (x < 2.0f) return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
  return 0.0f;
}

struct Taps {
  int64_t begin = 0;
  std::vector<float> weights;
};

// Interpolation taps for one axis (in -> out).
std::vector<Taps> ComputeTaps(int in, int out) {
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  const float support = scale >= 1.0f ? 2.0f * scale : 2.0f;  // interp_size 4 * 0.5
  const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
  std::vector<Taps> taps(out);
  for (int i = 0; i < out; ++i) {
    const float center = scale * (static_cast<float>(i) + 0.5f);
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5f), 0);
    const int64_t xsize =
        std::min<int64_t>(static_cast<int64_t>(center + support + 0.5f), in) - xmin;
    Taps& t = taps[i];
    t.begin = xmin;
    float total = 0.0f;
    for (int64_t j = 0; j < xsize; ++j) {
      const float w = CubicAA((static_cast<float>(j + xmin) - center + 0.5f) * invscale);
      t.weights.push_back(w);
      total += w;
    }
    if (total != 0.0f) {
      for (float& w : t.weights) w /= total;
    }
  }
  return taps;
}

}  // namespace

std::vector<float> ResamplePosEmbedBicubicAA(const float* src, int old_h, int old_w, int dim,
                                             int new_h, int new_w) {
  // Width pass: {old_h, old_w, dim} -> {old_h, new_w, dim}.
  const std::vector<Taps> tw = ComputeTaps(old_w, new_w);
  std::vector<float> mid(static_cast<size_t>(old_h) * new_w * dim, 0.0f);
  for (int y = 0; y < old_h; ++y) {
    for (int x = 0; x < new_w; ++x) {
      float* o = mid.data() + (static_cast<size_t>(y) * new_w + x) * dim;
      const Taps& t = tw[x];
      for (int c = 0; c < dim; ++c) {
        float acc = 0.0f;
        for (size_t j = 0; j < t.weights.size(); ++j) {
          acc += t.weights[j] * src[(static_cast<size_t>(y) * old_w + t.begin + j) * dim + c];
        }
        o[c] = acc;
      }
    }
  }
  // Height pass: {old_h, new_w, dim} -> {new_h, new_w, dim}.
  const std::vector<Taps> th = ComputeTaps(old_h, new_h);
  std::vector<float> out(static_cast<size_t>(new_h) * new_w * dim, 0.0f);
  for (int y = 0; y < new_h; ++y) {
    const Taps& t = th[y];
    for (int x = 0; x < new_w; ++x) {
      float* o = out.data() + (static_cast<size_t>(y) * new_w + x) * dim;
      for (int c = 0; c < dim; ++c) {
        float acc = 0.0f;
        for (size_t j = 0; j < t.weights.size(); ++j) {
          acc += t.weights[j] * mid[((t.begin + j) * new_w + x) * dim + c];
        }
        o[c] = acc;
      }
    }
  }
  return out;
}

}  // namespace lookalike
