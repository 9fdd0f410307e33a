// Dense math on portable OpenMP loops (models/cpu/dense.h): the build
// without oneDNN.
#include <algorithm>
#include <utility>

#include "models/cpu/dense.h"

namespace lookalike {
namespace cpu {
namespace {

class LoopConv : public DenseConv {
 public:
  LoopConv(const ConvSpec& spec, std::vector<float> weight, std::vector<float> bias)
      : spec_(spec), weight_(std::move(weight)), bias_(std::move(bias)) {}

  Status Run(const Tensor& x, Activation act, const Tensor* residual,
             const Tensor& y) const override {
    const ConvSpec& s = spec_;
    const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
    const int64_t oh = y.dim(1), ow = y.dim(2);

    const int g = s.groups, cig = s.in_channels / g, cog = s.out_channels / g;
    const float* xi = x.data_as<float>();
    const float* wt = weight_.data();
    const float* res = residual ? residual->data_as<float>() : nullptr;
    float* yo = y.data_as<float>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          const size_t obase = ((static_cast<size_t>(b) * oh + oy) * ow + ox) * s.out_channels;
          for (int o = 0; o < s.out_channels; ++o) {
            const int gi = o / cog;
            float acc = bias_[o];
            for (int ky = 0; ky < s.kernel_h; ++ky) {
              const int64_t iy = oy * s.stride_h - s.pad_h + ky;
              if (iy < 0 || iy >= h) continue;
              for (int kx = 0; kx < s.kernel_w; ++kx) {
                const int64_t ix = ox * s.stride_w - s.pad_w + kx;
                if (ix < 0 || ix >= w) continue;
                const float* xp = xi + ((b * h + iy) * w + ix) * s.in_channels + gi * cig;
                const float* wp =
                    wt + (static_cast<size_t>(o) * cig * s.kernel_h + ky) * s.kernel_w + kx;
                for (int i = 0; i < cig; ++i)
                  acc += xp[i] * wp[static_cast<size_t>(i) * s.kernel_h * s.kernel_w];
              }
            }
            if (res) acc += res[obase + o];
            yo[obase + o] = ApplyActivation(acc, act);
          }
        }
      }
    }
    return Status::Ok();
  }

 private:
  ConvSpec spec_;
  std::vector<float> weight_;  // {out, in/groups, kh, kw}
  std::vector<float> bias_;    // {out}
};

class LoopLinear : public DenseLinear {
 public:
  LoopLinear(int in, int out, std::vector<float> weight, std::vector<float> bias)
      : in_(in), out_(out), weight_(std::move(weight)), bias_(std::move(bias)) {}

  Status Run(const Tensor& x, Activation act, const Tensor* residual,
             const Tensor& y) const override {
    const int64_t m = x.numel() / in_;

    const int64_t k = in_, nout = out_;
    const float* xi = x.data_as<float>();
    const float* wt = weight_.data();
    const float* res = residual ? residual->data_as<float>() : nullptr;
    float* yo = y.data_as<float>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t o = 0; o < nout; ++o) {
        const float* wr = wt + o * k;
        const float* xr = xi + r * k;
        float acc = 0.0f;
        for (int64_t i = 0; i < k; ++i) acc += xr[i] * wr[i];
        float v = ApplyActivation(acc + bias_[o], act);
        if (res) v += res[r * nout + o];
        yo[r * nout + o] = v;
      }
    }
    return Status::Ok();
  }

 private:
  int in_, out_;
  std::vector<float> weight_;  // {out, in}
  std::vector<float> bias_;    // {out}
};

class LoopDense : public Dense {
 public:
  std::unique_ptr<DenseConv> PrepareConv(const ConvSpec& spec, std::vector<float> weight,
                                         std::vector<float> bias) override {
    return std::make_unique<LoopConv>(spec, std::move(weight), std::move(bias));
  }
  std::unique_ptr<DenseLinear> PrepareLinear(int in, int out, std::vector<float> weight,
                                             std::vector<float> bias) override {
    return std::make_unique<LoopLinear>(in, out, std::move(weight), std::move(bias));
  }
};

}  // namespace

std::unique_ptr<Dense> Dense::Create(std::shared_ptr<BufferPool>, DType) {
  return std::make_unique<LoopDense>();
}

std::string Dense::Bf16UnavailableReason() {
  return "this build's CPU backend has no oneDNN (portable loops compute fp32 only)";
}

Status Sgemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    const float* ai = a + i * lda;
    float* ci = c + i * ldc;
    if (trans_b) {
      for (int64_t j = 0; j < n; ++j) {
        const float* bj = b + j * ldb;
        float acc = 0.0f;
        for (int64_t p = 0; p < k; ++p) acc += ai[p] * bj[p];
        ci[j] = alpha * acc;
      }
    } else {
      std::fill(ci, ci + n, 0.0f);
      for (int64_t p = 0; p < k; ++p) {
        const float av = alpha * ai[p];
        const float* bp = b + p * ldb;
        for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
      }
    }
  }
  return Status::Ok();
}

}  // namespace cpu
}  // namespace lookalike
