#include "kernels/reference/preprocess_ref.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace lookalike {
namespace kernels {
namespace ref {

StatusOr<ResizePlan> PlanResize(int width, int height, int resize_shorter, int crop_w, int crop_h) {
  if (width <= 0 || height <= 0 || resize_shorter <= 0 || crop_w <= 0 || crop_h <= 0) {
    return InvalidArgumentError("preprocess: image " + std::to_string(width) + "x" +
                                std::to_string(height) + " or target sizes not positive");
  }
  ResizePlan plan;
  // torchvision Resize(int): the shorter side becomes `size`, the longer int(size * long / short).
  if (width <= height) {
    plan.resized_w = resize_shorter;
    plan.resized_h = static_cast<int>(static_cast<double>(resize_shorter) * height / width);
  } else {
    plan.resized_h = resize_shorter;
    plan.resized_w = static_cast<int>(static_cast<double>(resize_shorter) * width / height);
  }
  if (plan.resized_w < crop_w || plan.resized_h < crop_h) {
    return InvalidArgumentError("preprocess: resized image " + std::to_string(plan.resized_w) +
                                "x" + std::to_string(plan.resized_h) + " smaller than crop " +
                                std::to_string(crop_w) + "x" + std::to_string(crop_h));
  }
  // torchvision CenterCrop: int(round((size - crop) / 2.0)), Python rounds half to even.
  plan.crop_top = static_cast<int>(std::nearbyint((plan.resized_h - crop_h) / 2.0));
  plan.crop_left = static_cast<int>(std::nearbyint((plan.resized_w - crop_w) / 2.0));
  return plan;
}

float ResampleFilter(float x, bool bicubic) {
  x = std::fabs(x);
  if (!bicubic) return x < 1.f ? 1.f - x : 0.f;
  const float a = -0.5f;
  if (x < 1.f) return ((a + 2.f) * x - (a + 3.f)) * x * x + 1.f;
  if (x < 2.f) return (((x - 5.f) * x + 8.f) * x - 4.f) * a;
  return 0.f;
}

namespace {

struct Coeffs {
  std::vector<int> first;
  std::vector<std::vector<float>> w;  // normalized weights from `first`
};

// PIL precompute_coeffs with float weights.
Coeffs Precompute(int in_size, int out_size, bool bicubic, bool antialias) {
  const float scale = static_cast<float>(in_size) / out_size;
  const float filterscale = (antialias && scale > 1.f) ? scale : 1.f;
  const float support = (bicubic ? 2.f : 1.f) * filterscale;
  Coeffs c;
  c.first.resize(out_size);
  c.w.resize(out_size);
  for (int xx = 0; xx < out_size; ++xx) {
    const float center = (xx + 0.5f) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5f), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5f), in_size);
    float sum = 0.f;
    for (int x = lo; x < hi; ++x) {
      const float w = ResampleFilter((x - center + 0.5f) * (1.f / filterscale), bicubic);
      c.w[xx].push_back(w);
      sum += w;
    }
    for (float& w : c.w[xx]) w = sum != 0.f ? w / sum : 0.f;
    c.first[xx] = lo;
  }
  return c;
}

uint8_t ToByte(float v) {
  return static_cast<uint8_t>(std::min(std::max(std::floor(v + 0.5f), 0.f), 255.f));
}

}  // namespace

std::vector<uint8_t> ResizeRgb(const uint8_t* src, int width, int height, int stride_bytes,
                               int out_w, int out_h, bool bicubic, bool antialias) {
  const Coeffs ch = Precompute(width, out_w, bicubic, antialias);
  const Coeffs cv = Precompute(height, out_h, bicubic, antialias);
  std::vector<uint8_t> tmp(static_cast<size_t>(height) * out_w * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c) {
        float acc = 0.f;
        for (size_t i = 0; i < ch.w[x].size(); ++i) {
          acc +=
              ch.w[x][i] * src[static_cast<int64_t>(y) * stride_bytes + 3 * (ch.first[x] + i) + c];
        }
        tmp[(static_cast<size_t>(y) * out_w + x) * 3 + c] = ToByte(acc);
      }
  std::vector<uint8_t> out(static_cast<size_t>(out_h) * out_w * 3);
  for (int y = 0; y < out_h; ++y)
    for (int x = 0; x < out_w; ++x)
      for (int c = 0; c < 3; ++c) {
        float acc = 0.f;
        for (size_t i = 0; i < cv.w[y].size(); ++i) {
          acc += cv.w[y][i] * tmp[((cv.first[y] + i) * out_w + x) * 3 + c];
        }
        out[(static_cast<size_t>(y) * out_w + x) * 3 + c] = ToByte(acc);
      }
  return out;
}

Status Preprocess(const uint8_t* src, int width, int height, int stride_bytes,
                  const PreprocessRefSpec& spec, std::vector<float>* out) {
  ASSIGN_OR_RETURN(ResizePlan plan,
                   PlanResize(width, height, spec.resize_shorter, spec.crop_w, spec.crop_h));
  const std::vector<uint8_t> resized = ResizeRgb(src, width, height, stride_bytes, plan.resized_w,
                                                 plan.resized_h, spec.bicubic, spec.antialias);
  for (int y = 0; y < spec.crop_h; ++y)
    for (int x = 0; x < spec.crop_w; ++x)
      for (int c = 0; c < 3; ++c) {
        const uint8_t v = resized[((static_cast<size_t>(plan.crop_top + y)) * plan.resized_w +
                                   plan.crop_left + x) *
                                      3 +
                                  c];
        out->push_back((v / 255.f - spec.mean[c]) / spec.std[c]);
      }
  return Status::Ok();
}

}  // namespace ref
}  // namespace kernels
}  // namespace lookalike
