#include "models/cpu/preprocess.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "models/cpu/threads.h"

namespace lookalike {
namespace {

// PIL's 8-bit resampling keeps coefficients in fixed point with this many
// fractional bits (32 - 8 - 2: room for 8-bit pixels and negative lobes).
constexpr int kPrecisionBits = 32 - 8 - 2;

double BilinearFilter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// Keys cubic with a = -0.5 (PIL's BICUBIC).
double BicubicFilter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Filter taps of one axis: for output index i, taps [xmin[i], xmin[i] + count[i])
// with fixed-point weights kk[i * ksize + j].
struct AxisCoeffs {
  int ksize = 0;
  std::vector<int> xmin;
  std::vector<int> count;
  std::vector<int> kk;
};

// The same arithmetic as PIL's precompute_coeffs + normalize_coeffs_8bpc
// (double precision weights, normalized per output pixel, then rounded half
// away from zero to 22-bit fixed point).
AxisCoeffs ComputeCoeffs(int in_size, int out_size, Interpolation interp, bool antialias) {
  const double base_support = interp == Interpolation::kBicubic ? 2.0 : 1.0;
  double (*filter)(double) = interp == Interpolation::kBicubic ? BicubicFilter : BilinearFilter;
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale;
  if (filterscale < 1.0 || !antialias) filterscale = 1.0;
  const double support = base_support * filterscale;
  AxisCoeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(out_size);
  c.count.resize(out_size);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(c.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = k[x] * (1 << kPrecisionBits);
      c.kk[static_cast<size_t>(xx) * c.ksize + x] =
          k[x] < 0 ? static_cast<int>(-0.5 + v) : static_cast<int>(0.5 + v);
    }
    c.xmin[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t Clip8(int v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// Resamples the window [x0, x1) x [y0, y1) of the full out_w x out_h resize of
// `image` into `dst` (rows of (x1 - x0) * 3 bytes, `dst_stride` apart).
// Horizontal pass first into an 8-bit intermediate, as PIL does; each pass is
// skipped when its axis keeps its size (PIL skips it too; it would be the
// identity anyway).
void ResampleWindow(const ImageView& image, int out_w, int out_h, int x0, int x1, int y0, int y1,
                    Interpolation interp, bool antialias, uint8_t* dst, size_t dst_stride) {
  const int ww = x1 - x0;
  const int wh = y1 - y0;
  if (ww <= 0 || wh <= 0) return;
  const bool need_h = out_w != image.width;
  const bool need_v = out_h != image.height;

  AxisCoeffs ch, cv;
  if (need_h) ch = ComputeCoeffs(image.width, out_w, interp, antialias);
  if (need_v) cv = ComputeCoeffs(image.height, out_h, interp, antialias);
  // Threads by work (models/cpu/threads.h): one multiply and one add per tap
  // and output byte of each pass. A 224x224 crop is a few MFLOP: one thread.
  const double ops = 2.0 * ww * 3 * ((need_h ? wh * ch.ksize : 0) + (need_v ? wh * cv.ksize : 0));
  const int threads = cpu::ThreadsFor(ops, omp_get_max_threads());

  // Source rows the window needs.
  int row_first = y0, row_last = y1;
  if (need_v) {
    row_first = cv.xmin[y0];
    row_last = 0;
    for (int y = y0; y < y1; ++y) row_last = std::max(row_last, cv.xmin[y] + cv.count[y]);
  }

  // Horizontal pass: source rows [row_first, row_last) -> tmp {rows, ww, 3}.
  std::vector<uint8_t> tmp;
  const uint8_t* hsrc;  // row r of the horizontal result (r relative to row_first)
  size_t hstride;
  int hx_offset;  // column of window x0 inside hsrc rows
  if (need_h) {
    const int rows = row_last - row_first;
    tmp.resize(static_cast<size_t>(rows) * ww * 3);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int r = 0; r < rows; ++r) {
      const uint8_t* src = image.data + static_cast<size_t>(row_first + r) * image.stride_bytes;
      uint8_t* out = tmp.data() + static_cast<size_t>(r) * ww * 3;
      for (int xx = x0; xx < x1; ++xx) {
        const int* k = &ch.kk[static_cast<size_t>(xx) * ch.ksize];
        const uint8_t* p = src + static_cast<size_t>(ch.xmin[xx]) * 3;
        int s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < ch.count[xx]; ++x) {
          s0 += p[x * 3 + 0] * k[x];
          s1 += p[x * 3 + 1] * k[x];
          s2 += p[x * 3 + 2] * k[x];
        }
        uint8_t* o = out + static_cast<size_t>(xx - x0) * 3;
        o[0] = Clip8(s0);
        o[1] = Clip8(s1);
        o[2] = Clip8(s2);
      }
    }
    hsrc = tmp.data();
    hstride = static_cast<size_t>(ww) * 3;
    hx_offset = 0;
  } else {
    hsrc = image.data + static_cast<size_t>(row_first) * image.stride_bytes;
    hstride = image.stride_bytes;
    hx_offset = x0;
  }

  // Vertical pass (or a copy of the window rows when the height is kept).
  // Each output row accumulates its taps' source rows into 32-bit sums, one
  // tap at a time over the whole row (contiguous, so the compiler vectorizes
  // it): the same integer sums as PIL's per-column loop, hence the same bytes.
#pragma omp parallel num_threads(threads)
  {
    std::vector<int32_t> acc(need_v ? static_cast<size_t>(ww) * 3 : 0);
#pragma omp for schedule(static)
    for (int yy = y0; yy < y1; ++yy) {
      uint8_t* out = dst + static_cast<size_t>(yy - y0) * dst_stride;
      if (!need_v) {
        const uint8_t* src = hsrc + static_cast<size_t>(yy - row_first) * hstride + hx_offset * 3;
        std::copy(src, src + static_cast<size_t>(ww) * 3, out);
        continue;
      }
      const int* k = &cv.kk[static_cast<size_t>(yy) * cv.ksize];
      const uint8_t* first =
          hsrc + static_cast<size_t>(cv.xmin[yy] - row_first) * hstride + hx_offset * 3;
      const int n = ww * 3;
      int32_t* a = acc.data();
      std::fill(a, a + n, 1 << (kPrecisionBits - 1));
      for (int y = 0; y < cv.count[yy]; ++y) {
        const uint8_t* row = first + static_cast<size_t>(y) * hstride;
        const int32_t ky = k[y];
        for (int i = 0; i < n; ++i) a[i] += row[i] * ky;
      }
      for (int i = 0; i < n; ++i) out[i] = Clip8(a[i]);
    }
  }
}

}  // namespace

void ResizedSize(int width, int height, int resize_shorter, int* out_width, int* out_height) {
  const bool w_short = width <= height;
  const int64_t shorter = w_short ? width : height;
  const int64_t longer = w_short ? height : width;
  // Python: int(size * long / short), true division in double.
  const int new_long =
      static_cast<int>(static_cast<double>(resize_shorter * longer) / static_cast<double>(shorter));
  *out_width = w_short ? resize_shorter : new_long;
  *out_height = w_short ? new_long : resize_shorter;
}

Status ResizeRgb8(const ImageView& image, int out_width, int out_height,
                  Interpolation interpolation, bool antialias, std::vector<uint8_t>* out) {
  RETURN_IF_ERROR(CheckImage(image).WithPrefix("ResizeRgb8"));
  if (out_width <= 0 || out_height <= 0) {
    return InvalidArgumentError("ResizeRgb8: output size " + std::to_string(out_width) + "x" +
                                std::to_string(out_height) + " is not positive");
  }
  out->resize(static_cast<size_t>(out_width) * out_height * 3);
  ResampleWindow(image, out_width, out_height, 0, out_width, 0, out_height, interpolation,
                 antialias, out->data(), static_cast<size_t>(out_width) * 3);
  return Status::Ok();
}

Status PreprocessImage(const ImageView& image, const PreprocessSpec& spec, float* out) {
  RETURN_IF_ERROR(CheckImage(image).WithPrefix("Preprocess"));
  RETURN_IF_ERROR(CheckPreprocessSpec(spec).WithPrefix("Preprocess"));
  PreprocessCheckedImage(image, spec, out);
  return Status::Ok();
}

void PreprocessCheckedImage(const ImageView& image, const PreprocessSpec& spec, float* out) {
  int rw, rh;
  ResizedSize(image.width, image.height, spec.resize_shorter, &rw, &rh);
  const int ch = spec.crop_height, cw = spec.crop_width;
  // torchvision CenterCrop: zero-pad to at least the crop size ((crop - size)
  // // 2 before), then top/left = round((size - crop) / 2), half to even.
  const int pad_top = rh < ch ? (ch - rh) / 2 : 0;
  const int pad_left = rw < cw ? (cw - rw) / 2 : 0;
  const int ph = std::max(rh, ch), pw = std::max(rw, cw);
  const int top = static_cast<int>(std::nearbyint((ph - ch) / 2.0)) - pad_top;
  const int left = static_cast<int>(std::nearbyint((pw - cw) / 2.0)) - pad_left;
  // Window of the resized image that lands inside the crop.
  const int x0 = std::max(left, 0), x1 = std::min(left + cw, rw);
  const int y0 = std::max(top, 0), y1 = std::min(top + ch, rh);

  std::vector<uint8_t> crop(static_cast<size_t>(ch) * cw * 3, 0);  // zero = padding
  if (x1 > x0 && y1 > y0) {
    uint8_t* dst = crop.data() + (static_cast<size_t>(y0 - top) * cw + (x0 - left)) * 3;
    ResampleWindow(image, rw, rh, x0, x1, y0, y1, spec.interpolation, spec.antialias, dst,
                   static_cast<size_t>(cw) * 3);
  }
  // ToTensor + Normalize in fp32, exactly as torch does it.
  float scale_lut[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int u = 0; u < 256; ++u) {
      const float v = static_cast<float>(u) / 255.0f;
      scale_lut[c][u] = (v - spec.mean[c]) / spec.std[c];
    }
  }
  const size_t pixels = crop.size() / 3;
  for (size_t p = 0; p < pixels; ++p) {
    for (int c = 0; c < 3; ++c) out[p * 3 + c] = scale_lut[c][crop[p * 3 + c]];
  }
}

}  // namespace lookalike
