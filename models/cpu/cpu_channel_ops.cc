// CpuBackend's channel-wise and pooling ops for the MobileNet, VGG, DenseNet
// and GoogLeNet / Inception definitions: OpenMP loops over NHWC pixels, each
// pixel's channels contiguous (memory-bound; the convolutions around them
// dominate). Argument checks are Backend's (models/backend.cc).
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "models/cpu/cpu_backend.h"

namespace lookalike {

StatusOr<Tensor> CpuBackend::Pool2dImpl(const Tensor& x, const PoolSpec& s,
                                        const std::vector<int64_t>& out_shape) {
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  const int64_t oh = out_shape[1], ow = out_shape[2];
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(out_shape));
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  const bool is_max = s.kind == PoolSpec::Kind::kMax;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      // torch's window: [start, start + k) clipped to the padded input for
      // the divisor, then to the input for the pixels read.
      const int64_t y0 = oy * s.stride_h - s.pad_h;
      const int64_t y1p = std::min<int64_t>(y0 + s.kernel_h, h + s.pad_h);
      const int64_t ys = std::max<int64_t>(y0, 0), ye = std::min<int64_t>(y1p, h);
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t x0 = ox * s.stride_w - s.pad_w;
        const int64_t x1p = std::min<int64_t>(x0 + s.kernel_w, w + s.pad_w);
        const int64_t xs = std::max<int64_t>(x0, 0), xe = std::min<int64_t>(x1p, w);
        float* o = out + ((b * oh + oy) * ow + ox) * c;
        std::fill(o, o + c, is_max ? -std::numeric_limits<float>::infinity() : 0.0f);
        for (int64_t iy = ys; iy < ye; ++iy) {
          for (int64_t ix = xs; ix < xe; ++ix) {
            const float* p = in + ((b * h + iy) * w + ix) * c;
            if (is_max) {
              for (int64_t ch = 0; ch < c; ++ch) o[ch] = std::max(o[ch], p[ch]);
            } else {
              for (int64_t ch = 0; ch < c; ++ch) o[ch] += p[ch];
            }
          }
        }
        if (!is_max) {
          const int64_t count =
              s.count_include_pad ? (y1p - y0) * (x1p - x0) : (ye - ys) * (xe - xs);
          const float inv = 1.0f / static_cast<float>(std::max<int64_t>(count, 1));
          for (int64_t ch = 0; ch < c; ++ch) o[ch] *= inv;
        }
      }
    }
  }
  return y;
}

StatusOr<Tensor> CpuBackend::ScaleChannelsImpl(const Tensor& x, const Tensor& scale) {
  const int64_t n = x.dim(0), hw = x.dim(1) * x.dim(2), c = x.dim(3);
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(x.shape()));
  const float* in = x.data_as<float>();
  const float* sc = scale.data_as<float>();
  float* out = y.data_as<float>();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t p = 0; p < hw; ++p) {
      const float* xi = in + (b * hw + p) * c;
      const float* si = sc + b * c;
      float* o = out + (b * hw + p) * c;
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = xi[ch] * si[ch];
    }
  }
  return y;
}

StatusOr<Tensor> CpuBackend::ChannelAffineImpl(const Tensor& x, const Tensor& scale,
                                               const Tensor& shift, Activation act) {
  const int64_t pixels = x.dim(0) * x.dim(1) * x.dim(2), c_in = x.dim(3), c = scale.dim(0);
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate({x.dim(0), x.dim(1), x.dim(2), c}));
  const float* in = x.data_as<float>();
  const float* sc = scale.data_as<float>();
  const float* sh = shift.data_as<float>();
  float* out = y.data_as<float>();
  // ReLU (DenseNet) inlined so the loop vectorizes; other activations through
  // the one scalar formula.
  const bool relu = act == Activation::kRelu;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pixels; ++p) {
    const float* xi = in + p * c_in;
    float* o = out + p * c;
    if (relu) {
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = std::max(xi[ch] * sc[ch] + sh[ch], 0.0f);
    } else {
      for (int64_t ch = 0; ch < c; ++ch) o[ch] = ApplyActivation(xi[ch] * sc[ch] + sh[ch], act);
    }
  }
  return y;
}

StatusOr<Tensor> CpuBackend::ConcatChannelsImpl(const std::vector<Tensor>& parts,
                                                const std::vector<int64_t>& out_shape) {
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(out_shape));
  int offset = 0;
  for (const Tensor& p : parts) {
    RETURN_IF_ERROR(WriteChannelsImpl(y, p, offset));
    offset += static_cast<int>(p.dim(3));
  }
  return y;
}

Status CpuBackend::WriteChannelsImpl(const Tensor& dst, const Tensor& src, int offset) {
  const int64_t pixels = src.dim(0) * src.dim(1) * src.dim(2);
  const int64_t c = src.dim(3), c_dst = dst.dim(3);
  ApplyThreads();
  const float* in = src.data_as<float>();
  float* out = dst.data_as<float>();
#pragma omp parallel for schedule(static) if (pixels * c > (1 << 14))
  for (int64_t p = 0; p < pixels; ++p) {
    std::memcpy(out + p * c_dst + offset, in + p * c, static_cast<size_t>(c) * sizeof(float));
  }
  return Status::Ok();
}

}  // namespace lookalike
