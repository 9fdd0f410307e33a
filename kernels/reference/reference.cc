#include "kernels/reference/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lookalike {
namespace kernels {
namespace ref {

void Attention(const float* qkv, float* out, int batch, int seq, int heads, int head_dim,
               float scale, bool causal) {
  const int64_t dim = static_cast<int64_t>(heads) * head_dim;
  std::vector<float> scores(seq);
  std::vector<double> acc(head_dim);
  for (int n = 0; n < batch; ++n) {
    const float* base = qkv + static_cast<int64_t>(n) * seq * 3 * dim;
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < seq; ++i) {
        const float* q = base + i * 3 * dim + h * head_dim;
        float mx = -std::numeric_limits<float>::infinity();
        const int keys = causal ? i + 1 : seq;
        for (int j = 0; j < keys; ++j) {
          const float* k = base + j * 3 * dim + dim + h * head_dim;
          float s = 0.f;
          for (int d = 0; d < head_dim; ++d) s += q[d] * k[d];
          scores[j] = s * scale;
          mx = std::max(mx, scores[j]);
        }
        double sum = 0.0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int j = 0; j < keys; ++j) {
          const float p = std::exp(scores[j] - mx);
          sum += p;
          const float* v = base + j * 3 * dim + 2 * dim + h * head_dim;
          for (int d = 0; d < head_dim; ++d) acc[d] += static_cast<double>(p) * v[d];
        }
        float* o = out + (static_cast<int64_t>(n) * seq + i) * dim + h * head_dim;
        for (int d = 0; d < head_dim; ++d) o[d] = static_cast<float>(acc[d] / sum);
      }
    }
  }
}

void Conv2dGemm(const float* x, const float* w, int64_t row_stride, const float* bias,
                const float* residual, float* y, const ConvShape& s, Activation act) {
  const int oh = s.out_h(), ow = s.out_w();
  const int k_total = s.kernel_h * s.kernel_w * s.in_channels;
  std::vector<float> a_row(k_total);
  for (int n = 0; n < s.batch; ++n)
    for (int ho = 0; ho < oh; ++ho)
      for (int wo = 0; wo < ow; ++wo) {
        // Gather the im2col row of this output pixel.
        for (int k = 0; k < k_total; ++k) {
          const int c = k % s.in_channels;
          const int rs = k / s.in_channels;
          const int r = rs / s.kernel_w, q = rs % s.kernel_w;
          const int hi = ho * s.stride_h - s.pad_top + r;
          const int wi = wo * s.stride_w - s.pad_left + q;
          a_row[k] =
              (hi >= 0 && hi < s.in_h && wi >= 0 && wi < s.in_w)
                  ? x[((static_cast<int64_t>(n) * s.in_h + hi) * s.in_w + wi) * s.in_channels + c]
                  : 0.f;
        }
        const int64_t m = (static_cast<int64_t>(n) * oh + ho) * ow + wo;
        for (int o = 0; o < s.out_channels; ++o) {
          const float* wr = w + o * row_stride;
          float acc = 0.f;
          for (int k = 0; k < k_total; ++k) acc += a_row[k] * wr[k];
          if (bias) acc += bias[o];
          if (residual) acc += residual[m * s.out_channels + o];
          y[m * s.out_channels + o] = ApplyActivation(acc, act);
        }
      }
}

void DepthwiseConv2d(const float* x, const float* w, const float* bias, const float* residual,
                     float* y, const ConvShape& s, Activation act) {
  const int oh = s.out_h(), ow = s.out_w(), ch = s.in_channels;
  for (int n = 0; n < s.batch; ++n)
    for (int ho = 0; ho < oh; ++ho)
      for (int wo = 0; wo < ow; ++wo) {
        const int64_t m = (static_cast<int64_t>(n) * oh + ho) * ow + wo;
        for (int c = 0; c < ch; ++c) {
          float acc = bias ? bias[c] : 0.f;
          for (int r = 0; r < s.kernel_h; ++r) {
            const int hi = ho * s.stride_h - s.pad_top + r;
            if (hi < 0 || hi >= s.in_h) continue;
            for (int q = 0; q < s.kernel_w; ++q) {
              const int wi = wo * s.stride_w - s.pad_left + q;
              if (wi < 0 || wi >= s.in_w) continue;
              acc += x[((static_cast<int64_t>(n) * s.in_h + hi) * s.in_w + wi) * ch + c] *
                     w[(r * s.kernel_w + q) * ch + c];
            }
          }
          if (residual) acc += residual[m * ch + c];
          y[m * ch + c] = ApplyActivation(acc, act);
        }
      }
}

void LayerNorm(const float* x, float* y, const float* gamma, const float* beta, int64_t rows,
               int dim, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double mean = 0.0;
    for (int i = 0; i < dim; ++i) mean += xr[i];
    mean /= dim;
    double var = 0.0;
    for (int i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    var /= dim;
    const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
    for (int i = 0; i < dim; ++i) {
      y[r * dim + i] = static_cast<float>(xr[i] - mean) * rstd * gamma[i] + beta[i];
    }
  }
}

void BiasAct(float* y, const float* bias, const float* residual, int64_t rows, int cols,
             Activation act) {
  for (int64_t i = 0; i < rows * cols; ++i) {
    float v = y[i] + (bias ? bias[i % cols] : 0.f);
    v = ApplyActivation(v, act);
    if (residual) v += residual[i];
    y[i] = v;
  }
}

void MaxPool2d(const float* x, float* y, int batch, int in_h, int in_w, int c, int kernel,
               int stride, int pad) {
  const int oh = (in_h + 2 * pad - kernel) / stride + 1;
  const int ow = (in_w + 2 * pad - kernel) / stride + 1;
  for (int n = 0; n < batch; ++n)
    for (int ho = 0; ho < oh; ++ho)
      for (int wo = 0; wo < ow; ++wo)
        for (int ch = 0; ch < c; ++ch) {
          float best = -std::numeric_limits<float>::infinity();
          for (int r = 0; r < kernel; ++r)
            for (int q = 0; q < kernel; ++q) {
              const int hi = ho * stride - pad + r, wi = wo * stride - pad + q;
              if (hi < 0 || hi >= in_h || wi < 0 || wi >= in_w) continue;
              best =
                  std::max(best, x[((static_cast<int64_t>(n) * in_h + hi) * in_w + wi) * c + ch]);
            }
          y[((static_cast<int64_t>(n) * oh + ho) * ow + wo) * c + ch] = best;
        }
}

void MeanPool(const float* x, float* y, int batch, int tokens, int c, int token_begin) {
  for (int n = 0; n < batch; ++n)
    for (int ch = 0; ch < c; ++ch) {
      double s = 0.0;
      for (int t = token_begin; t < tokens; ++t)
        s += x[(static_cast<int64_t>(n) * tokens + t) * c + ch];
      y[static_cast<int64_t>(n) * c + ch] = static_cast<float>(s / (tokens - token_begin));
    }
}

void SelectToken(const float* x, float* y, int batch, int tokens, int dim, int index) {
  for (int n = 0; n < batch; ++n)
    for (int d = 0; d < dim; ++d)
      y[static_cast<int64_t>(n) * dim + d] =
          x[(static_cast<int64_t>(n) * tokens + index) * dim + d];
}

void PrependTokensAddPos(const float* patches, const float* prefix_tokens, const float* pos,
                         float* y, int batch, int num_patches, int prefix, int dim,
                         bool pos_applies_to_prefix) {
  const int rows = prefix + num_patches;
  for (int n = 0; n < batch; ++n)
    for (int r = 0; r < rows; ++r)
      for (int d = 0; d < dim; ++d) {
        float v;
        if (r < prefix) {
          v = prefix_tokens[static_cast<int64_t>(r) * dim + d];
          if (pos && pos_applies_to_prefix) v += pos[static_cast<int64_t>(r) * dim + d];
        } else {
          v = patches[(static_cast<int64_t>(n) * num_patches + (r - prefix)) * dim + d];
          if (pos) v += pos[static_cast<int64_t>(pos_applies_to_prefix ? r : r - prefix) * dim + d];
        }
        y[(static_cast<int64_t>(n) * rows + r) * dim + d] = v;
      }
}

void L2Normalize(const float* x, float* y, int64_t rows, int dim, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0.0;
    for (int i = 0; i < dim; ++i) s += static_cast<double>(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::max(std::sqrt(s), static_cast<double>(eps));
    for (int i = 0; i < dim; ++i) y[r * dim + i] = static_cast<float>(x[r * dim + i] * inv);
  }
}

void Linear(const float* x, const float* w, const float* bias, const float* residual, float* y,
            int64_t rows, int in, int out, Activation act) {
  for (int64_t r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      float acc = 0.f;
      for (int i = 0; i < in; ++i) acc += x[r * in + i] * w[static_cast<int64_t>(o) * in + i];
      if (bias) acc += bias[o];
      acc = ApplyActivation(acc, act);
      if (residual) acc += residual[r * out + o];
      y[r * out + o] = acc;
    }
}

}  // namespace ref
}  // namespace kernels
}  // namespace lookalike
