// Op-level comparison behind the CPU backend's library choice
// (docs/benchmarks/cpu.md): for each hot shape, the CpuBackend op (oneDNN)
// against the same math on OpenBLAS (pthread build), measured in the same run.
//
//   build/bench/cpu/lookalike_cpu_op_bench [--threads N] [--reps R]
//
// Timing: one untimed warm-up call (primitive creation, weight reorder, page
// faults), then R timed calls; the medians of wall time and of process CPU
// time are printed, and throughput per CPU-second. Inputs rotate between
// two buffers so the timed call does not start from a warm cache of its own
// output.
#include <cblas.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bench/common/process_cpu.h"
#include "dnnl.hpp"
#include "models/cpu/cpu_backend.h"

extern "C" void openblas_set_num_threads(int);

namespace lookalike {
namespace {

using lookalike::bench::ProcessCpuMs;

struct Timing {
  double wall_ms;  // median wall time
  double cpu_ms;   // median process CPU time (all threads)
};

Timing MedianMs(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t, c;
  for (int i = 0; i < reps; ++i) {
    const double c0 = ProcessCpuMs();
    const auto a = std::chrono::steady_clock::now();
    fn();
    t.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    c.push_back(ProcessCpuMs() - c0);
  }
  std::sort(t.begin(), t.end());
  std::sort(c.begin(), c.end());
  return {t[t.size() / 2], c[c.size() / 2]};
}

std::vector<float> Rand(size_t n, int seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// GFLOP/s per CPU-second: throughput per core actually used, which a
// shared, loaded machine disturbs far less than wall time.
void Report(const char* op, const char* shape, const char* impl, Timing t, double gflop) {
  std::printf("%-10s %-32s %-31s %9.2f ms wall %9.2f ms cpu %7.1f GFLOP/cpu-s\n", op, shape, impl,
              t.wall_ms, t.cpu_ms, gflop / t.cpu_ms * 1e3);
}

Tensor Input(CpuBackend& be, const std::vector<int64_t>& shape, int seed) {
  Tensor t = *be.Allocate(shape);
  auto v = Rand(t.numel(), seed);
  std::memcpy(t.data(), v.data(), t.nbytes());
  return t;
}

// NHWC im2col for a k x k conv (stride s, symmetric pad p) + sgemm, OpenBLAS.
void Im2colConv(const float* x, int n, int h, int w, int c, const float* wt_kkc_o, int k, int s,
                int p, int oc, float* y, std::vector<float>& col) {
  const int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
  const int64_t rows = int64_t(n) * oh * ow, kk = int64_t(k) * k * c;
  col.resize(rows * kk);
#pragma omp parallel for collapse(2)
  for (int b = 0; b < n; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        float* dst = &col[((int64_t(b) * oh + oy) * ow + ox) * kk];
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx, dst += c) {
            const int iy = oy * s - p + ky, ix = ox * s - p + kx;
            if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
              std::memset(dst, 0, c * sizeof(float));
            } else {
              std::memcpy(dst, x + ((int64_t(b) * h + iy) * w + ix) * c, c * sizeof(float));
            }
          }
      }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, oc, kk, 1.0f, col.data(), kk,
              wt_kkc_o, oc, 0.0f, y, oc);
}

void ConvCase(CpuBackend& be, int threads, int reps, const char* name, int n, int h, int w, int c,
              int oc, int k, int s, int groups) {
  const int p = k / 2;
  ConvSpec spec;
  spec.in_channels = c;
  spec.out_channels = oc;
  spec.kernel_h = spec.kernel_w = k;
  spec.stride_h = spec.stride_w = s;
  spec.pad_h = spec.pad_w = p;
  spec.groups = groups;
  const auto wt = Rand(size_t(oc) * (c / groups) * k * k, 1);
  const auto bias = Rand(oc, 2);
  auto layer = be.PrepareConv(spec, wt.data(), bias.data());
  Tensor x[2] = {Input(be, {n, h, w, c}, 3), Input(be, {n, h, w, c}, 4)};
  const int oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
  const double gflop = 2.0 * n * oh * ow * oc * (c / groups) * k * k * 1e-9;
  char shape[96];
  std::snprintf(shape, sizeof(shape), "%dx%dx%dx%d k%d s%d oc%d g%d", n, h, w, c, k, s, oc, groups);
  int it = 0;
  const Timing ms_dnnl = MedianMs(reps, [&] {
    auto y = be.Conv2d(**layer, x[it++ % 2], Activation::kRelu, nullptr);
    if (!y.ok()) std::abort();
  });
  Report(name, shape, "oneDNN (CpuBackend)", ms_dnnl, gflop);
  if (groups != 1) return;  // OpenBLAS has no grouped/depthwise path
  // OpenBLAS: weights as {k, k, c, oc} for the NHWC patch matrix.
  std::vector<float> wk(size_t(k) * k * c * oc);
  for (int o = 0; o < oc; ++o)
    for (int i = 0; i < c; ++i)
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx)
          wk[((size_t(ky) * k + kx) * c + i) * oc + o] =
              wt[((size_t(o) * c + i) * k + ky) * k + kx];
  std::vector<float> y(size_t(n) * oh * ow * oc), col;
  openblas_set_num_threads(threads);
  const Timing ms_blas = MedianMs(reps, [&] {
    const float* xi = x[it++ % 2].data_as<float>();
    if (k == 1 && s == 1) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int64_t(n) * h * w, oc, c, 1.0f, xi, c,
                  wk.data(), oc, 0.0f, y.data(), oc);
    } else {
      Im2colConv(xi, n, h, w, c, wk.data(), k, s, p, oc, y.data(), col);
    }
#pragma omp parallel for
    for (int64_t r = 0; r < int64_t(n) * oh * ow; ++r)
      for (int o = 0; o < oc; ++o) y[r * oc + o] = std::max(0.0f, y[r * oc + o] + bias[o]);
  });
  Report(name, shape, k == 1 ? "OpenBLAS sgemm" : "OpenBLAS im2col+sgemm", ms_blas, gflop);
}

void LinearCase(CpuBackend& be, int threads, int reps, int m, int in, int out) {
  const auto wt = Rand(size_t(in) * out, 5);
  const auto bias = Rand(out, 6);
  auto layer = be.PrepareLinear(in, out, wt.data(), bias.data());
  Tensor x[2] = {Input(be, {m, in}, 7), Input(be, {m, in}, 8)};
  const double gflop = 2.0 * m * in * out * 1e-9;
  char shape[96];
  std::snprintf(shape, sizeof(shape), "M%d K%d N%d +bias", m, in, out);
  int it = 0;
  Report("linear", shape, "oneDNN matmul (CpuBackend)",
         MedianMs(reps,
                  [&] {
                    auto y = be.Linear(**layer, x[it++ % 2], Activation::kNone, nullptr);
                    if (!y.ok()) std::abort();
                  }),
         gflop);
  std::vector<float> y(size_t(m) * out);
  openblas_set_num_threads(threads);
  Report("linear", shape, "OpenBLAS sgemm + bias",
         MedianMs(reps,
                  [&] {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, out, in, 1.0f,
                                x[it++ % 2].data_as<float>(), in, wt.data(), in, 0.0f, y.data(),
                                out);
#pragma omp parallel for
                    for (int64_t r = 0; r < m; ++r)
                      for (int o = 0; o < out; ++o) y[r * out + o] += bias[o];
                  }),
         gflop);
}

void AttentionCase(CpuBackend& be, int threads, int reps, int n, int heads, int t, int dh) {
  const int d = heads * dh;
  Tensor qkv[2] = {Input(be, {n, t, 3 * d}, 9), Input(be, {n, t, 3 * d}, 10)};
  const double gflop = 4.0 * n * heads * double(t) * t * dh * 1e-9;
  char shape[96];
  std::snprintf(shape, sizeof(shape), "(%d,%d,%d,%d)", n, heads, t, dh);
  int it = 0;
  Report("attention", shape, "oneDNN sgemm/head (CpuBackend)",
         MedianMs(reps,
                  [&] {
                    auto y = be.Attention(qkv[it++ % 2], heads);
                    if (!y.ok()) std::abort();
                  }),
         gflop);
  // OpenBLAS, one (image, head) per OpenMP task with single-threaded sgemm.
  std::vector<float> y(size_t(n) * t * d), s(size_t(threads) * t * t);
  const float scale = 1.0f / std::sqrt(float(dh));
  Report("attention", shape, "OpenBLAS sgemm/head, std::exp",
         MedianMs(reps,
                  [&] {
                    openblas_set_num_threads(1);
                    const float* base = qkv[it++ % 2].data_as<float>();
#pragma omp parallel for schedule(dynamic) num_threads(threads)
                    for (int job = 0; job < n * heads; ++job) {
                      const int b = job / heads, h = job % heads;
                      float* sc = &s[size_t(omp_get_thread_num()) * t * t];
                      const float* q = base + size_t(b) * t * 3 * d + h * dh;
                      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t, t, dh, scale, q,
                                  3 * d, q + d, 3 * d, 0.0f, sc, t);
                      for (int i = 0; i < t; ++i) {
                        float* row = sc + size_t(i) * t;
                        float mx = *std::max_element(row, row + t), sum = 0;
                        for (int j = 0; j < t; ++j) sum += (row[j] = std::exp(row[j] - mx));
                        for (int j = 0; j < t; ++j) row[j] /= sum;
                      }
                      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t, dh, t, 1.0f, sc, t,
                                  q + 2 * d, 3 * d, 0.0f, &y[size_t(b) * t * d + h * dh], d);
                    }
                    openblas_set_num_threads(threads);
                  }),
         gflop);
}

// Layout question behind keeping NHWC: the same oneDNN convolution with
// NHWC source/destination vs oneDNN's preferred (blocked) layouts, the latter
// including the reorders in and out that NHWC public tensors would need.
void ConvLayoutCase(int reps, int n, int h, int c, int oc, int k) {
  using dnnl::memory;
  using Tag = memory::format_tag;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const int p = k / 2;
  char shape[96];
  std::snprintf(shape, sizeof(shape), "%dx%dx%dx%d k%d oc%d", n, h, h, c, k, oc);
  const double gflop = 2.0 * n * h * h * oc * c * k * k * 1e-9;
  for (Tag tag : {Tag::nhwc, Tag::any}) {
    memory::desc src({n, c, h, h}, memory::data_type::f32, tag);
    memory::desc dst({n, oc, h, h}, memory::data_type::f32, tag);
    memory::desc wts({oc, c, k, k}, memory::data_type::f32, Tag::any);
    memory::desc bias({oc}, memory::data_type::f32, Tag::x);
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    dnnl::convolution_forward::primitive_desc pd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                        dnnl::algorithm::convolution_direct, src, wts, bias, dst,
                                        {1, 1}, {p, p}, {p, p}),
        attr, eng);
    dnnl::convolution_forward conv(pd);
    memory x_nhwc({{n, c, h, h}, memory::data_type::f32, Tag::nhwc}, eng);
    memory y_nhwc({{n, oc, h, h}, memory::data_type::f32, Tag::nhwc}, eng);
    auto xv = Rand(size_t(n) * c * h * h, 11);
    std::memcpy(x_nhwc.get_data_handle(), xv.data(), xv.size() * sizeof(float));
    memory x(pd.src_desc(), eng), w(pd.weights_desc(), eng), b(bias, eng), y(pd.dst_desc(), eng);
    const bool blocked = tag == Tag::any;
    const Timing t = MedianMs(reps, [&] {
      if (blocked) dnnl::reorder(x_nhwc, x).execute(strm, x_nhwc, x);
      conv.execute(strm, {{DNNL_ARG_SRC, blocked ? x : x_nhwc},
                          {DNNL_ARG_WEIGHTS, w},
                          {DNNL_ARG_BIAS, b},
                          {DNNL_ARG_DST, blocked ? y : y_nhwc}});
      if (blocked) dnnl::reorder(y, y_nhwc).execute(strm, y, y_nhwc);
      strm.wait();
    });
    Report("layout", shape, blocked ? "oneDNN blocked + 2 reorders" : "oneDNN NHWC", t, gflop);
  }
}

// Weight layout for Linear: torch's {out, in} as is ("ba" of {in, out}) vs
// the layout oneDNN picks when asked ("any").
void MatmulWeightsCase(int reps, int m, int k, int nout) {
  using dnnl::memory;
  using Tag = memory::format_tag;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  char shape[96];
  std::snprintf(shape, sizeof(shape), "M%d K%d N%d", m, k, nout);
  const double gflop = 2.0 * m * k * nout * 1e-9;
  for (Tag tag : {Tag::ba, Tag::any}) {
    memory::desc src({m, k}, memory::data_type::f32, Tag::ab);
    memory::desc wts({k, nout}, memory::data_type::f32, tag);
    memory::desc dst({m, nout}, memory::data_type::f32, Tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wts, dst), eng);
    dnnl::matmul mm(pd);
    memory x(src, eng), w(pd.weights_desc(), eng), y(dst, eng);
    auto xv = Rand(size_t(m) * k, 12);
    std::memcpy(x.get_data_handle(), xv.data(), xv.size() * sizeof(float));
    const Timing t = MedianMs(reps, [&] {
      mm.execute(strm, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, y}});
      strm.wait();
    });
    Report("weights", shape,
           tag == Tag::ba ? "matmul, torch layout (ba)" : "matmul, oneDNN's choice (any)", t,
           gflop);
  }
}

}  // namespace
}  // namespace lookalike

int main(int argc, char** argv) {
  int threads = 0, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--threads") threads = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--reps") reps = std::atoi(argv[i + 1]);
  }
  lookalike::CpuBackend be({threads});
  threads = be.num_threads();
  std::printf("threads %d, median of %d after one warm-up\n", threads, reps);
  using lookalike::ConvCase;
  ConvCase(be, threads, reps, "conv3x3", 8, 56, 56, 64, 64, 3, 1, 1);       // ResNet-50 layer1
  ConvCase(be, threads, reps, "conv3x3", 8, 14, 14, 256, 256, 3, 1, 1);     // ResNet-50 layer3
  ConvCase(be, threads, reps, "conv1x1", 8, 56, 56, 64, 256, 1, 1, 1);      // ResNet-50 expand
  ConvCase(be, threads, reps, "conv1x1", 8, 14, 14, 1024, 256, 1, 1, 1);    // ResNet-50 reduce
  ConvCase(be, threads, reps, "conv7x7", 8, 224, 224, 3, 64, 7, 2, 1);      // ResNet stem
  ConvCase(be, threads, reps, "dwconv3x3", 8, 112, 112, 32, 32, 3, 1, 32);  // EfficientNet-Lite0
  ConvCase(be, threads, reps, "dwconv5x5", 8, 28, 28, 240, 240, 5, 1, 240);
  lookalike::LinearCase(be, threads, reps, 16 * 197, 768, 3072);  // ViT-B MLP fc1, batch 16
  lookalike::LinearCase(be, threads, reps, 197, 768, 2304);       // ViT-B qkv, batch 1
  lookalike::AttentionCase(be, threads, reps, 16, 12, 197, 64);
  lookalike::AttentionCase(be, threads, reps, 1, 12, 197, 64);
  lookalike::ConvLayoutCase(reps, 8, 56, 64, 64, 3);
  lookalike::ConvLayoutCase(reps, 8, 14, 256, 256, 3);
  lookalike::ConvLayoutCase(reps, 8, 56, 64, 256, 1);
  lookalike::MatmulWeightsCase(reps, 197, 768, 3072);
  lookalike::MatmulWeightsCase(reps, 16 * 197, 768, 3072);
  return 0;
}
