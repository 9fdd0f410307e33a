// EfficientNet-Lite0's convolutions on raw oneDNN (docs/benchmarks/cpu.md,
// "EfficientNet-Lite0 at batch 1"): where the backbone's CPU time goes and
// what two alternatives to the CPU backend's choices would save.
//
//   lookalike_cpu_mbconv_bench [--batch 1] [--reps 20]
//
// Runs on the calling thread's OpenMP setting (OMP_NUM_THREADS=1 for the
// per-core figures in the docs). Three parts, each the median over `reps`
// of process CPU time after one untimed warm-up:
//  1. layers: the 49 convolutions of EfficientNet-Lite0 (224x224, TF "SAME"
//     padding, bias + ReLU6 post-op) as the CPU backend runs them (NHWC in
//     and out, weights in the primitive's layout), one line per layer with
//     its GFLOP/s, then the totals for pointwise (1x1), depthwise and stem.
//  2. layout: the whole chain with every activation in NHWC against every
//     activation in oneDNN's blocked nChw8c (reordered once at the input).
//  3. fusion: each 3x3 MBConv pair (expand 1x1 + ReLU6, then 3x3 depthwise +
//     ReLU6) as two primitives against one 1x1 convolution with oneDNN's
//     depthwise post-op (post_ops::append_dw), with the implementation
//     oneDNN picked for the fused one.
// Standalone (no project code): the shapes come from the model's stage table
// (models/efficientnet_lite.cc), weights are arbitrary (speed does not
// depend on them).
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "bench/common/process_cpu.h"
#include "dnnl.hpp"

namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

using lookalike::bench::ProcessCpuMs;

// Median process CPU milliseconds of `reps` calls after one warm-up.
double MedianCpuMs(int reps, const std::function<void()>& run) {
  run();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double c0 = ProcessCpuMs();
    run();
    t.push_back(ProcessCpuMs() - c0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Layer {
  int in_channels, out_channels, kernel, stride, size;  // size: input height = width
  bool depthwise;
  int out_size() const { return (size + stride - 1) / stride; }
  double flops(int n) const {
    return 2.0 * n * out_size() * out_size() * out_channels * (depthwise ? 1 : in_channels) *
           kernel * kernel;
  }
};

// models/efficientnet_lite.cc's stages at width and depth 1.0 (Lite0).
std::vector<Layer> Lite0Layers() {
  struct Stage {
    int repeats, kernel, stride, expand, in, out;
  };
  const Stage stages[] = {{1, 3, 1, 1, 32, 16},  {2, 3, 2, 6, 16, 24},  {2, 5, 2, 6, 24, 40},
                          {3, 3, 2, 6, 40, 80},  {3, 5, 1, 6, 80, 112}, {4, 5, 2, 6, 112, 192},
                          {1, 3, 1, 6, 192, 320}};
  std::vector<Layer> layers = {{3, 32, 3, 2, 224, false}};
  int size = 112;
  for (const Stage& s : stages) {
    int in = s.in;
    for (int r = 0; r < s.repeats; ++r) {
      const int stride = r == 0 ? s.stride : 1, mid = in * s.expand;
      if (s.expand != 1) layers.push_back({in, mid, 1, 1, size, false});
      layers.push_back({mid, mid, s.kernel, stride, size, true});
      size = (size + stride - 1) / stride;
      layers.push_back({mid, s.out, 1, 1, size, false});
      in = s.out;
    }
  }
  layers.push_back({320, 1280, 1, 1, 7, false});
  return layers;
}

void Fill(const memory& m) {
  float* p = static_cast<float*>(m.get_data_handle());
  const size_t n = m.get_desc().get_size() / sizeof(float);
  for (size_t i = 0; i < n; ++i) p[i] = 0.01f * static_cast<float>(i % 13) - 0.05f;
}

dnnl::primitive_attr Relu6(dnnl::post_ops ops = {}) {
  ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, 0.0f, 6.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  return attr;
}

// TF "SAME" padding of one axis (models/efficientnet_lite.cc).
void SamePadding(const Layer& l, memory::dim* before, memory::dim* after) {
  const int total = std::max((l.out_size() - 1) * l.stride + l.kernel - l.size, 0);
  *before = total / 2;
  *after = total - total / 2;
}

// One convolution with its memories, src / dst in `src_tag` / `dst_tag`.
struct Conv {
  dnnl::convolution_forward prim;
  memory weights, bias, dst;
};

Conv MakeConv(const dnnl::engine& eng, const Layer& l, int n, const memory::desc& src_md,
              Tag dst_tag) {
  memory::dim pb, pa;
  SamePadding(l, &pb, &pa);
  const memory::dim oc = l.out_channels, k = l.kernel;
  memory::desc w_md = l.depthwise ? memory::desc({oc, 1, 1, k, k}, Dt::f32, Tag::any)
                                  : memory::desc({oc, l.in_channels, k, k}, Dt::f32, Tag::any);
  memory::desc b_md({oc}, Dt::f32, Tag::x);
  memory::desc dst_md({n, oc, l.out_size(), l.out_size()}, Dt::f32, dst_tag);
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                    dnnl::algorithm::convolution_direct, src_md, w_md, b_md, dst_md,
                                    {l.stride, l.stride}, {pb, pb}, {pa, pa});
  dnnl::convolution_forward::primitive_desc pd(d, Relu6(), eng);
  Conv c{dnnl::convolution_forward(pd), memory(pd.weights_desc(), eng), memory(b_md, eng),
         memory(pd.dst_desc(), eng)};
  Fill(c.weights);
  Fill(c.bias);
  return c;
}

void Run(dnnl::stream& strm, const Conv& c, const memory& src) {
  c.prim.execute(strm, {{DNNL_ARG_SRC, src},
                        {DNNL_ARG_WEIGHTS, c.weights},
                        {DNNL_ARG_BIAS, c.bias},
                        {DNNL_ARG_DST, c.dst}});
  strm.wait();
}

// The chain with every activation in `tag` (the RGB input stays NHWC; for
// a blocked chain it is reordered once, counted in the time).
double ChainMs(const dnnl::engine& eng, dnnl::stream& strm, const std::vector<Layer>& layers, int n,
               Tag tag, int reps) {
  memory input({{n, 3, 224, 224}, Dt::f32, Tag::nhwc}, eng);
  Fill(input);
  // The stem reads planar RGB best in either layout: nchw for the blocked
  // chain (oneDNN's first-layer kernel), NHWC for the NHWC one.
  const Tag stem_src = tag == Tag::nhwc ? Tag::nhwc : Tag::nchw;
  memory stem_in({{n, 3, 224, 224}, Dt::f32, stem_src}, eng);
  dnnl::reorder to_stem(input, stem_in);
  std::vector<Conv> convs;
  memory::desc src = stem_in.get_desc();
  for (const Layer& l : layers) {
    convs.push_back(MakeConv(eng, l, n, src, tag));
    src = convs.back().dst.get_desc();
  }
  return MedianCpuMs(reps, [&] {
    if (stem_src != Tag::nhwc) to_stem.execute(strm, input, stem_in);
    const memory* x = stem_src != Tag::nhwc ? &stem_in : &input;
    for (const Conv& c : convs) {
      Run(strm, c, *x);
      x = &c.dst;
    }
  });
}

// Expand 1x1 + ReLU6 then 3x3 depthwise + ReLU6 (`dw` gives the depthwise
// stride and input size), NHWC: two primitives vs one with append_dw.
void FusionPair(const dnnl::engine& eng, dnnl::stream& strm, const Layer& expand, const Layer& dw,
                int n, int reps) {
  memory src({{n, expand.in_channels, expand.size, expand.size}, Dt::f32, Tag::nhwc}, eng);
  Fill(src);
  Conv first = MakeConv(eng, expand, n, src.get_desc(), Tag::nhwc);
  Conv second = MakeConv(eng, dw, n, first.dst.get_desc(), Tag::nhwc);
  const double two = MedianCpuMs(reps, [&] {
    Run(strm, first, src);
    Run(strm, second, first.dst);
  });

  memory::dim pb, pa;
  SamePadding(dw, &pb, &pa);
  dnnl::post_ops ops;
  ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, 0.0f, 6.0f);
  // oneDNN 2.6 derives the depthwise output size and end padding itself from
  // the stride and the begin padding; for TF "SAME" padding these agree with
  // the unfused convolution (checked against dst dims below).
  ops.append_dw(Dt::f32, Dt::f32, Dt::f32, 3, dw.stride, pb, 0, {});
  const memory::dim mid = expand.out_channels;
  memory::desc w_md({mid, expand.in_channels, 1, 1}, Dt::f32, Tag::any);
  memory::desc b_md({mid}, Dt::f32, Tag::x);
  memory::desc mid_md({n, mid, expand.size, expand.size}, Dt::f32, Tag::nhwc);
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                    dnnl::algorithm::convolution_direct, src.get_desc(), w_md, b_md,
                                    mid_md, {1, 1}, {0, 0}, {0, 0});
  dnnl::convolution_forward::primitive_desc pd(d, Relu6(ops), eng);
  const memory::dims out = pd.dst_desc().dims();
  if (out[2] != dw.out_size() || out[3] != dw.out_size()) {
    std::printf("fusion %dx%d->%d s%d: oneDNN's fused output %ldx%ld differs from %dx%d\n",
                expand.size, expand.size, mid, dw.stride, static_cast<long>(out[2]),
                static_cast<long>(out[3]), dw.out_size(), dw.out_size());
    return;
  }
  dnnl::convolution_forward fused(pd);
  memory w(pd.weights_desc(), eng), b(b_md, eng), dst(pd.dst_desc(), eng);
  memory dw_w(pd.query_md(dnnl::query::exec_arg_md, DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS),
              eng);
  memory dw_b({{mid}, Dt::f32, Tag::x}, eng);
  Fill(w);
  Fill(b);
  Fill(dw_w);
  Fill(dw_b);
  const double one = MedianCpuMs(reps, [&] {
    fused.execute(strm, {{DNNL_ARG_SRC, src},
                         {DNNL_ARG_WEIGHTS, w},
                         {DNNL_ARG_BIAS, b},
                         {DNNL_ARG_DST, dst},
                         {DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS, dw_w},
                         {DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS, dw_b}});
    strm.wait();
  });
  std::printf(
      "fusion %3dx%-3d %4d->%4d + dw3x3 s%d   two primitives %7.3f ms   fused %7.3f ms"
      "   (%.2fx)   %s\n",
      expand.size, expand.size, expand.in_channels, mid, dw.stride, two, one, two / one,
      pd.impl_info_str());
}

}  // namespace

int main(int argc, char** argv) {
  int batch = 1, reps = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--batch") {
      batch = std::atoi(argv[i + 1]);
    } else if (k == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: %s [--batch 1] [--reps 20]\n", argv[0]);
      return 2;
    }
  }
  if (batch < 1 || reps < 1) {
    std::fprintf(stderr, "--batch and --reps must be >= 1\n");
    return 2;
  }
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const std::vector<Layer> layers = Lite0Layers();

  // 1. Per layer, NHWC (the CPU backend's layout).
  double pointwise = 0, depthwise = 0, stem = 0, flops = 0;
  memory::desc src({batch, 3, 224, 224}, Dt::f32, Tag::nhwc);
  for (const Layer& l : layers) {
    memory x(src, eng);
    Fill(x);
    Conv c = MakeConv(eng, l, batch, src, Tag::nhwc);
    const double ms = MedianCpuMs(reps, [&] { Run(strm, c, x); });
    std::printf("layer %-9s %4d->%4d k%d s%d %3dx%-3d %8.3f ms %6.1f GFLOP/s\n",
                l.depthwise ? "depthwise" : (l.kernel == 1 ? "pointwise" : "stem"), l.in_channels,
                l.out_channels, l.kernel, l.stride, l.size, l.size, ms, l.flops(batch) / ms * 1e-6);
    (l.depthwise ? depthwise : (l.kernel == 1 ? pointwise : stem)) += ms;
    flops += l.flops(batch);
    src = c.dst.get_desc();
  }
  const double total = pointwise + depthwise + stem;
  std::printf(
      "layers total %.2f ms (%.0f MFLOP, %.1f GFLOP/s): pointwise %.2f, depthwise %.2f, "
      "stem %.2f ms\n",
      total, flops * 1e-6, flops / total * 1e-6, pointwise, depthwise, stem);

  // 2. Layout of the whole chain.
  const double nhwc = ChainMs(eng, strm, layers, batch, Tag::nhwc, reps);
  const double blocked = ChainMs(eng, strm, layers, batch, Tag::nChw8c, reps);
  std::printf("chain nhwc %.2f ms, nChw8c %.2f ms (%.2fx)\n", nhwc, blocked, nhwc / blocked);

  // 3. Every 3x3 MBConv pair with an expand convolution.
  for (size_t i = 0; i + 1 < layers.size(); ++i) {
    const Layer& a = layers[i];
    const Layer& b = layers[i + 1];
    if (!a.depthwise && a.kernel == 1 && b.depthwise && b.kernel == 3) {
      FusionPair(eng, strm, a, b, batch, reps);
    }
  }
  std::printf("batch %d, %d OpenMP threads, %s\n", batch, omp_get_max_threads(),
              "median process CPU ms of the reps");
  return 0;
}
