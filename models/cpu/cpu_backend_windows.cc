// CpuBackend's ConvNeXt V2 and Swin ops: GlobalResponseNorm and the window
// partition / merge (models/backend.h states the contracts). Plain OpenMP
// loops: they move or scale each element once, memory-bound.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "models/cpu/cpu_backend.h"

namespace lookalike {
namespace {

// Row (y, x) of the rolled map that window position (wy, wx, iy, ix) reads:
// torch.roll(x, -shift) puts source row (r + shift) mod H at row r.
inline int64_t Rolled(int64_t r, int shift, int64_t size) { return (r + shift) % size; }

// Copies between {N, H, W, C} and windows {N * nwh * nww, w * w, C};
// to_windows: map -> windows (partition), else windows -> map (merge).
void CopyWindows(const float* src, float* dst, int64_t n, int64_t h, int64_t w, int64_t c,
                 int window, int shift, bool to_windows) {
  const int64_t nwh = h / window, nww = w / window;
  const size_t row_bytes = static_cast<size_t>(c) * sizeof(float);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t y = 0; y < h; ++y) {
      const int64_t wy = y / window, iy = y % window;
      const int64_t sy = Rolled(y, shift, h);
      for (int64_t x = 0; x < w; ++x) {
        const int64_t wx = x / window, ix = x % window;
        const int64_t sx = Rolled(x, shift, w);
        const int64_t win = (b * nwh + wy) * nww + wx;
        const int64_t tok = iy * window + ix;
        const int64_t map_row = (b * h + sy) * w + sx;
        const int64_t win_row = win * window * window + tok;
        if (to_windows) {
          std::memcpy(dst + win_row * c, src + map_row * c, row_bytes);
        } else {
          std::memcpy(dst + map_row * c, src + win_row * c, row_bytes);
        }
      }
    }
  }
}

}  // namespace

StatusOr<Tensor> CpuBackend::GlobalResponseNormImpl(const Tensor& x, const Tensor& gamma,
                                                    const Tensor& beta, float eps) {
  const int64_t n = x.dim(0), hw = x.dim(1) * x.dim(2), c = x.dim(3);
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(x.shape()));
  const float* in = x.data_as<float>();
  const float* g = gamma.data_as<float>();
  const float* bt = beta.data_as<float>();
  float* out = y.data_as<float>();
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    const float* xb = in + b * hw * c;
    float* yb = out + b * hw * c;
    // Sums of squares per channel in double (the spatial L2 norm).
    std::vector<double> sq(c, 0.0);
    for (int64_t p = 0; p < hw; ++p) {
      const float* row = xb + p * c;
      for (int64_t ch = 0; ch < c; ++ch) sq[ch] += static_cast<double>(row[ch]) * row[ch];
    }
    double mean = 0.0;
    for (int64_t ch = 0; ch < c; ++ch) {
      sq[ch] = std::sqrt(sq[ch]);
      mean += sq[ch];
    }
    mean /= c;
    // y = x * (1 + gamma * r) + beta.
    std::vector<float> scale(c);
    for (int64_t ch = 0; ch < c; ++ch) {
      scale[ch] = 1.0f + g[ch] * static_cast<float>(sq[ch] / (mean + eps));
    }
    for (int64_t p = 0; p < hw; ++p) {
      const float* row = xb + p * c;
      float* o = yb + p * c;
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = row[ch] * scale[ch] + bt[ch];
    }
  }
  return y;
}

StatusOr<Tensor> CpuBackend::WindowPartitionImpl(const Tensor& x, int window, int shift) {
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate({n * (h / window) * (w / window),
                                       static_cast<int64_t>(window) * window, c}));
  CopyWindows(x.data_as<float>(), y.data_as<float>(), n, h, w, c, window, shift, true);
  return y;
}

StatusOr<Tensor> CpuBackend::WindowMergeImpl(const Tensor& windows, int height, int width,
                                             int window, int shift) {
  const int64_t c = windows.dim(2);
  const int64_t n = windows.dim(0) / ((height / window) * (width / window));
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, height, width, c}));
  CopyWindows(windows.data_as<float>(), y.data_as<float>(), n, height, width, c, window, shift,
              false);
  return y;
}

}  // namespace lookalike
