// oneDNN 2.x vs 3.x on the CPU backend's hot shapes (docs/benchmarks/cpu.md,
// "oneDNN 3"): the same fp32 convolutions and matmuls, built once against
// each library by bench/cpu/onednn3_eval.sh, which runs the two binaries in
// alternating order. Standalone (no project code: the backend itself builds
// against 2.x only), one source for both API generations.
//
//   dnnl_version_bench [--threads 2] [--reps 10]
//
// Prints one JSON line per shape: median wall and process CPU milliseconds
// over `reps` calls after one untimed warm-up. Convolutions: NHWC in and out
// for 1x1, oneDNN's preferred (blocked) layout for k > 1, weights in the
// primitive's layout, bias + ReLU post-op, as models/cpu/dense_dnnl.cc does.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/common/process_cpu.h"
#include "dnnl.hpp"

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

using lookalike::bench::ProcessCpuMs;

template <typename F>
void Time(const char* name, double gflop, int reps, F&& run) {
  run();  // warm-up
  std::vector<double> ms, cpu;
  for (int r = 0; r < reps; ++r) {
    const double c0 = ProcessCpuMs();
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    cpu.push_back(ProcessCpuMs() - c0);
  }
  std::sort(ms.begin(), ms.end());
  std::sort(cpu.begin(), cpu.end());
  const dnnl::version_t* v = dnnl::version();
  std::printf(
      "{\"onednn\": \"%d.%d.%d\", \"shape\": \"%s\", \"ms\": %.3f, \"cpu_ms\": %.3f, "
      "\"gflops_per_cpu_s\": %.2f}\n",
      v->major, v->minor, v->patch, name, ms[ms.size() / 2], cpu[cpu.size() / 2],
      gflop / (cpu[cpu.size() / 2] * 1e-3));
  std::fflush(stdout);
}

void Conv(dnnl::engine& eng, dnnl::stream& strm, int reps, const char* name, int n, int ic, int oc,
          int hw, int k) {
  const int pad = k / 2;
  const bool blocked = k > 1;
  memory::desc src({n, ic, hw, hw}, Dt::f32, blocked ? Tag::any : Tag::nhwc);
  memory::desc dst({n, oc, hw, hw}, Dt::f32, blocked ? Tag::any : Tag::nhwc);
  memory::desc wts({oc, ic, k, k}, Dt::f32, Tag::any);
  memory::desc bias({oc}, Dt::f32, Tag::x);
  dnnl::post_ops ops;
#if DNNL_VERSION_MAJOR >= 3
  ops.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
#else
  ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
#endif
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
#if DNNL_VERSION_MAJOR >= 3
  dnnl::convolution_forward::primitive_desc pd(eng, dnnl::prop_kind::forward_inference,
                                               dnnl::algorithm::convolution_direct, src, wts, bias,
                                               dst, {1, 1}, {pad, pad}, {pad, pad}, attr);
#else
  dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct, src, wts, bias, dst,
                                      {1, 1}, {pad, pad}, {pad, pad}),
      attr, eng);
#endif
  dnnl::convolution_forward conv(pd);
  memory x(pd.src_desc(), eng), w(pd.weights_desc(), eng), b(bias, eng), y(pd.dst_desc(), eng);
  for (memory* m : {&x, &w, &b}) {
    float* p = static_cast<float*>(m->get_data_handle());
    const size_t count = m->get_desc().get_size() / sizeof(float);
    for (size_t i = 0; i < count; ++i) p[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f;
  }
  const double gflop = 2.0 * n * oc * hw * hw * ic * k * k * 1e-9;
  Time(name, gflop, reps, [&] {
    conv.execute(strm,
                 {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}});
    strm.wait();
  });
}

void Matmul(dnnl::engine& eng, dnnl::stream& strm, int reps, const char* name, int m, int k,
            int n) {
  memory::desc src({m, k}, Dt::f32, Tag::ab);
  memory::desc wts({k, n}, Dt::f32, Tag::ba);  // torch's {out, in}, as dense_dnnl.cc
  memory::desc bias({1, n}, Dt::f32, Tag::ab);
  memory::desc dst({m, n}, Dt::f32, Tag::ab);
#if DNNL_VERSION_MAJOR >= 3
  dnnl::matmul::primitive_desc pd(eng, src, wts, bias, dst);
#else
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wts, bias, dst), eng);
#endif
  dnnl::matmul mm(pd);
  memory x(src, eng), w(wts, eng), b(bias, eng), y(dst, eng);
  for (memory* mem : {&x, &w, &b}) {
    float* p = static_cast<float*>(mem->get_data_handle());
    const size_t count = mem->get_desc().get_size() / sizeof(float);
    for (size_t i = 0; i < count; ++i) p[i] = static_cast<float>((i * 2654435761u) % 1000) * 1e-3f;
  }
  Time(name, 2.0 * m * k * n * 1e-9, reps, [&] {
    mm.execute(strm,
               {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}});
    strm.wait();
  });
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--reps") reps = std::atoi(argv[i + 1]);
    // --threads: OMP_NUM_THREADS (2.x, OpenMP) or the TBB arena is set by the
    // caller's environment; accepted for symmetry.
  }
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  // ResNet-50's convolutions (stage 1 3x3, stage 3 3x3 and 1x1), batch 1 and 16.
  Conv(eng, strm, reps, "conv3x3 64->64 56x56 n1", 1, 64, 64, 56, 3);
  Conv(eng, strm, reps, "conv3x3 256->256 14x14 n1", 1, 256, 256, 14, 3);
  Conv(eng, strm, reps, "conv1x1 1024->256 14x14 n1", 1, 1024, 256, 14, 1);
  Conv(eng, strm, reps, "conv3x3 256->256 14x14 n16", 16, 256, 256, 14, 3);
  // ViT-B/16's linear layers (197 tokens), batch 1 and 16.
  Matmul(eng, strm, reps, "matmul 197x768x2304 (qkv) b1", 197, 768, 2304);
  Matmul(eng, strm, reps, "matmul 197x768x3072 (fc1) b1", 197, 768, 3072);
  Matmul(eng, strm, reps, "matmul 3152x768x3072 (fc1) b16", 16 * 197, 768, 3072);
  return 0;
}
