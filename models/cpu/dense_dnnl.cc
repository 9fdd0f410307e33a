// Dense math on oneDNN (models/cpu/dense.h): convolutions and linear layers
// as oneDNN primitives (NHWC tensors in and out; dense k > 1 convolutions
// reorder to oneDNN's blocked layout around the kernel; conv weights
// reordered once into the kernel's layout, linear weights used as PyTorch
// stores them; bias / activation / residual fused as post-ops), attention's
// products on oneDNN's sgemm. docs/benchmarks/cpu.md records why.
#include <cpuid.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>

#include "dnnl.hpp"
#include "models/cpu/dense.h"
#include "models/cpu/threads.h"

namespace lookalike {
namespace cpu {
namespace {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using Dt = dnnl::memory::data_type;

// Activation -> oneDNN eltwise post-op (algorithm, alpha, beta).
void AppendActivation(dnnl::post_ops* ops, Activation act) {
  switch (act) {
    case Activation::kNone:
      return;
    case Activation::kRelu:
      ops->append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
      return;
    case Activation::kRelu6:
      ops->append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, 0.f, 6.f);
      return;
    case Activation::kGelu:
      ops->append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
      return;
    case Activation::kGeluTanh:
      ops->append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f);
      return;
    case Activation::kQuickGelu:
      // x * sigmoid(1.702 x) is oneDNN's swish with alpha = 1.702.
      ops->append_eltwise(1.0f, dnnl::algorithm::eltwise_swish, 1.702f, 0.f);
      return;
    case Activation::kHardSwish:
      ops->append_eltwise(1.0f, dnnl::algorithm::eltwise_hardswish, 0.f, 0.f);
      return;
    case Activation::kHardSigmoid:  // oneDNN 2.6 has none: clip(x / 6 + 1/2, 0, 1)
      ops->append_eltwise(1.0f, dnnl::algorithm::eltwise_linear, 1.f / 6.f, 0.5f);
      ops->append_eltwise(1.0f, dnnl::algorithm::eltwise_clip, 0.f, 1.f);
      return;
  }
}

// Returns a memory in layout `md` holding the layer's weights, reusing one
// of `pool` when a previous primitive asked for the same layout. The first
// reorder reads `user` (the PyTorch-layout copy, which the caller then
// frees); later ones read the first reordered copy, so each layer keeps its
// weights once per distinct layout, not twice.
memory ReorderedWeights(const dnnl::engine& eng, dnnl::stream& strm, const memory::desc& user_md,
                        std::vector<float>* user, const memory::desc& md,
                        std::vector<memory>* pool) {
  for (const memory& m : *pool) {
    if (m.get_desc() == md) return m;
  }
  memory m(md, eng);
  memory src = pool->empty() ? memory(user_md, eng, user->data()) : pool->front();
  dnnl::reorder(src, m).execute(strm, src, m);
  strm.wait();
  pool->push_back(m);
  if (pool->size() == 1) {
    user->clear();
    user->shrink_to_fit();
  }
  return m;
}

// LOOKALIKE_CPU_NHWC_ONLY=1 runs every convolution on NHWC: the A/B switch
// for the layout measurement in docs/benchmarks/cpu.md (results are the same
// either way up to fp32 rounding).
bool BlockedSpatialConvs() {
  static const bool enabled = [] {
    const char* v = std::getenv("LOOKALIKE_CPU_NHWC_ONLY");
    return !(v != nullptr && v[0] == '1');
  }();
  return enabled;
}
// The engine, stream and scratch pool every layer of one backend shares.
struct DnnlState {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::shared_ptr<BufferPool> pool;
  // Precision bf16: convolutions and matmuls may compute in bf16 (oneDNN's
  // fpmath_mode; fp32 tensors in and out, fp32 accumulation).
  bool bf16 = false;
};

// The attribute every convolution and linear layer is created with.
dnnl::primitive_attr LayerAttr(const DnnlState& state, const dnnl::post_ops& ops) {
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  if (state.bf16) attr.set_fpmath_mode(dnnl::fpmath_mode::bf16);
  return attr;
}

// CPUID leaf 7: sub-leaf 1 EAX bit 5 = AVX512_BF16; sub-leaf 0 EDX bit 22 =
// AMX_BF16 (Linux /proc/cpuinfo flags avx512_bf16, amx_bf16).
bool CpuHasFeature(unsigned subleaf, int reg, int bit) {
  unsigned r[4] = {0, 0, 0, 0};
  if (__get_cpuid_count(7, subleaf, &r[0], &r[1], &r[2], &r[3]) == 0) return false;
  return (r[reg] >> bit) & 1u;
}

class DnnlConv : public DenseConv {
 public:
  DnnlConv(DnnlState* dense, const ConvSpec& spec, std::vector<float> weight,
           std::vector<float> bias)
      : dense_(dense), spec_(spec), weight_(std::move(weight)), bias_(std::move(bias)) {}

  Status Run(const Tensor& x, Activation act, const Tensor* residual,
             const Tensor& y) const override {
    const ConvSpec& s = spec_;
    const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
    const int64_t oh = y.dim(1), ow = y.dim(2);
    // Threads by work (models/cpu/threads.h): oneDNN sizes a primitive's
    // thread split when it is created, so the count is part of the key.
    const double flops =
        2.0 * n * oh * ow * s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
    const int threads = ThreadsFor(flops, omp_get_max_threads());
    ScopedThreads scoped_threads(threads);
    try {
      std::lock_guard<std::mutex> lock(mu_);
      auto key = std::make_tuple(n, h, w, static_cast<int>(act), residual != nullptr, threads);
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        const memory::dim g = s.groups;
        const memory::dim ic = s.in_channels, oc = s.out_channels;
        memory::desc src_md({n, ic, h, w}, Dt::f32, Tag::nhwc);
        memory::desc dst_md({n, oc, oh, ow}, Dt::f32, Tag::nhwc);
        memory::desc bias_md({oc}, Dt::f32, Tag::x);
        memory::dims wdims = g == 1 ? memory::dims{oc, ic, s.kernel_h, s.kernel_w}
                                    : memory::dims{g, oc / g, ic / g, s.kernel_h, s.kernel_w};
        memory::desc w_any(wdims, Dt::f32, Tag::any);
        memory::desc w_user(wdims, Dt::f32, g == 1 ? Tag::oihw : Tag::goihw);
        // Blocked candidates: dense spatial convolutions with enough channels to
        // fill the 8-wide blocks (not the RGB stem / patch embedding, not 1x1).
        const bool try_blocked = g == 1 && (s.kernel_h > 1 || s.kernel_w > 1) && ic % 8 == 0 &&
                                 oc % 8 == 0 && BlockedSpatialConvs();
        memory::desc conv_src =
            try_blocked ? memory::desc({n, ic, h, w}, Dt::f32, Tag::any) : src_md;
        memory::desc conv_dst =
            try_blocked ? memory::desc({n, oc, oh, ow}, Dt::f32, Tag::any) : dst_md;
        dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                          dnnl::algorithm::convolution_direct, conv_src, w_any,
                                          bias_md, conv_dst, {s.stride_h, s.stride_w},
                                          {s.pad_h, s.pad_w}, {s.pad_h_end, s.pad_w_end});
        dnnl::post_ops ops;
        if (residual != nullptr) ops.append_sum(1.0f);
        AppendActivation(&ops, act);
        dnnl::convolution_forward::primitive_desc pd(d, LayerAttr(*dense_, ops), dense_->engine);
        Entry e;
        e.prim = dnnl::convolution_forward(pd);
        e.weights = ReorderedWeights(dense_->engine, dense_->stream, w_user, &weight_,
                                     pd.weights_desc(), &reordered_weights_);
        e.bias = memory(bias_md, dense_->engine, const_cast<float*>(bias_.data()));
        e.src_md = src_md;
        e.dst_md = dst_md;
        e.conv_src_md = pd.src_desc();
        e.conv_dst_md = pd.dst_desc();
        e.blocked = e.conv_src_md != src_md || e.conv_dst_md != dst_md;
        if (e.blocked) {
          e.src_in = dnnl::reorder(
              dnnl::reorder::primitive_desc(dense_->engine, src_md, dense_->engine, e.conv_src_md));
          e.dst_out = dnnl::reorder(
              dnnl::reorder::primitive_desc(dense_->engine, e.conv_dst_md, dense_->engine, dst_md));
          if (residual != nullptr) {
            e.residual_in = dnnl::reorder(dnnl::reorder::primitive_desc(
                dense_->engine, dst_md, dense_->engine, e.conv_dst_md));
          }
        }
        it = cache_.emplace(key, std::move(e)).first;
      }
      Entry& e = it->second;
      memory src(e.src_md, dense_->engine, x.data());
      memory dst(e.dst_md, dense_->engine, y.data());
      if (!e.blocked) {
        // The sum post-op adds the destination's prior contents: the residual.
        if (residual != nullptr) std::memcpy(y.data(), residual->data(), y.nbytes());
        e.prim.execute(dense_->stream, {{DNNL_ARG_SRC, src},
                                        {DNNL_ARG_WEIGHTS, e.weights},
                                        {DNNL_ARG_BIAS, e.bias},
                                        {DNNL_ARG_DST, dst}});
      } else {
        // Blocked scratch from the buffer pool (sizes include any block padding).
        std::shared_ptr<void> src_buf = dense_->pool->Get(e.conv_src_md.get_size());
        std::shared_ptr<void> dst_buf = dense_->pool->Get(e.conv_dst_md.get_size());
        if (!src_buf || !dst_buf) {
          return ResourceExhaustedError("Conv2d: out of host memory for input " + x.ShapeString());
        }
        memory bsrc(e.conv_src_md, dense_->engine, src_buf.get());
        memory bdst(e.conv_dst_md, dense_->engine, dst_buf.get());
        e.src_in.execute(dense_->stream, src, bsrc);
        if (residual != nullptr) {
          memory res(e.dst_md, dense_->engine, residual->data());
          e.residual_in.execute(dense_->stream, res, bdst);
        }
        e.prim.execute(dense_->stream, {{DNNL_ARG_SRC, bsrc},
                                        {DNNL_ARG_WEIGHTS, e.weights},
                                        {DNNL_ARG_BIAS, e.bias},
                                        {DNNL_ARG_DST, bdst}});
        e.dst_out.execute(dense_->stream, bdst, dst);
        dense_->stream.wait();
      }
      dense_->stream.wait();
    } catch (const dnnl::error& err) {
      return InternalError(std::string("Conv2d: oneDNN: ") + err.what() + " (input " +
                           x.ShapeString() + ")");
    }
    return Status::Ok();
  }

 private:
  // One primitive per (N, H, W, activation, residual?, threads) seen, with weights in
  // that primitive's preferred layout (shared between entries whose layouts agree).
  struct Entry {
    dnnl::convolution_forward prim;
    memory weights;
    memory bias;
    memory::desc src_md, dst_md;  // the public NHWC tensors
    // Spatial (k > 1) dense convolutions run on oneDNN's blocked layouts,
    // measured faster than NHWC even counting the reorders in and out
    // (docs/benchmarks/cpu.md); then these are set. Public tensors stay NHWC.
    bool blocked = false;
    memory::desc conv_src_md, conv_dst_md;
    dnnl::reorder src_in, dst_out, residual_in;
  };

  DnnlState* dense_;
  ConvSpec spec_;
  // PyTorch {out, in/groups, kh, kw}; freed once the first reordered copy exists.
  mutable std::vector<float> weight_;
  std::vector<float> bias_;  // {out}
  mutable std::mutex mu_;
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int, bool, int>, Entry> cache_;
  mutable std::vector<memory> reordered_weights_;
};

class DnnlLinear : public DenseLinear {
 public:
  DnnlLinear(DnnlState* dense, int in, int out, std::vector<float> weight, std::vector<float> bias)
      : dense_(dense), in_(in), out_(out), weight_(std::move(weight)), bias_(std::move(bias)) {}

  Status Run(const Tensor& x, Activation act, const Tensor* residual,
             const Tensor& y) const override {
    const int64_t m = x.numel() / in_;
    if (residual != nullptr) std::memcpy(y.data(), residual->data(), y.nbytes());
    const int threads = ThreadsFor(2.0 * m * in_ * out_, omp_get_max_threads());
    ScopedThreads scoped_threads(threads);  // as in DnnlConv::Run
    try {
      std::lock_guard<std::mutex> lock(mu_);
      auto key = std::make_tuple(m, static_cast<int>(act), residual != nullptr, threads);
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        const memory::dim k = in_, nout = out_;
        memory::desc src_md({m, k}, Dt::f32, Tag::ab);
        memory::desc dst_md({m, nout}, Dt::f32, Tag::ab);
        memory::desc bias_md({1, nout}, Dt::f32, Tag::ab);
        // Weights stay in torch's {out, in} row-major layout, i.e. {in, out} "ba":
        // the gemm-based matmul reads it transposed at full speed, so the layer
        // needs no second, reordered copy.
        memory::desc w_md({k, nout}, Dt::f32, Tag::ba);
        dnnl::matmul::desc d(src_md, w_md, bias_md, dst_md);
        // y = act(x W^T + b), then + residual (sum post-op reads dst's prior contents).
        dnnl::post_ops ops;
        AppendActivation(&ops, act);
        if (residual != nullptr) ops.append_sum(1.0f);
        dnnl::matmul::primitive_desc pd(d, LayerAttr(*dense_, ops), dense_->engine);
        Entry e;
        e.prim = dnnl::matmul(pd);
        if (pd.weights_desc() != w_md) {
          return InternalError("Linear: oneDNN matmul did not accept plain weights for input " +
                               x.ShapeString());
        }
        e.weights = memory(w_md, dense_->engine, const_cast<float*>(weight_.data()));
        e.bias = memory(bias_md, dense_->engine, const_cast<float*>(bias_.data()));
        e.src_md = src_md;
        e.dst_md = dst_md;
        it = cache_.emplace(key, std::move(e)).first;
      }
      Entry& e = it->second;
      memory src(e.src_md, dense_->engine, x.data());
      memory dst(e.dst_md, dense_->engine, y.data());
      e.prim.execute(dense_->stream, {{DNNL_ARG_SRC, src},
                                      {DNNL_ARG_WEIGHTS, e.weights},
                                      {DNNL_ARG_BIAS, e.bias},
                                      {DNNL_ARG_DST, dst}});
      dense_->stream.wait();
    } catch (const dnnl::error& err) {
      return InternalError(std::string("Linear: oneDNN: ") + err.what() + " (input " +
                           x.ShapeString() + ")");
    }
    return Status::Ok();
  }

 private:
  struct Entry {
    dnnl::matmul prim;
    memory weights;
    memory bias;
    memory::desc src_md, dst_md;
  };

  DnnlState* dense_;
  int in_, out_;
  std::vector<float> weight_;  // {out, in}
  std::vector<float> bias_;    // {out}
  mutable std::mutex mu_;
  mutable std::map<std::tuple<int64_t, int, bool, int>, Entry> cache_;
};

class DnnlDense : public Dense {
 public:
  DnnlDense(std::shared_ptr<BufferPool> pool, DType dtype) {
    state_.pool = std::move(pool);
    state_.bf16 = dtype == DType::kBF16;
  }

  std::unique_ptr<DenseConv> PrepareConv(const ConvSpec& spec, std::vector<float> weight,
                                         std::vector<float> bias) override {
    return std::make_unique<DnnlConv>(&state_, spec, std::move(weight), std::move(bias));
  }
  std::unique_ptr<DenseLinear> PrepareLinear(int in, int out, std::vector<float> weight,
                                             std::vector<float> bias) override {
    return std::make_unique<DnnlLinear>(&state_, in, out, std::move(weight), std::move(bias));
  }

 private:
  DnnlState state_;
};

}  // namespace

std::unique_ptr<Dense> Dense::Create(std::shared_ptr<BufferPool> pool, DType dtype) {
  return std::make_unique<DnnlDense>(std::move(pool), dtype);
}

std::string Dense::Bf16UnavailableReason() {
  const bool avx512_bf16 = CpuHasFeature(1, 0, 5), amx_bf16 = CpuHasFeature(0, 3, 22);
  if (!avx512_bf16 && !amx_bf16) {
    return "this CPU lacks avx512_bf16 and amx_bf16 (the bf16 dot-product instructions "
           "precision bf16 needs)";
  }
  // The CPU has them; oneDNN must also use them (the OS may not enable
  // AVX-512 state, or ONEDNN_MAX_CPU_ISA may cap the ISA).
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto need = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  if ((isa & need) != need) {
    char text[256];
    std::snprintf(text, sizeof(text),
                  "this CPU has %s but oneDNN's effective ISA (0x%x) excludes avx512_core_bf16 "
                  "(AVX-512 state not enabled by the OS, or capped by ONEDNN_MAX_CPU_ISA)",
                  amx_bf16 ? "amx_bf16" : "avx512_bf16", isa);
    return text;
  }
  return "";
}

Status Sgemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  const dnnl_status_t st =
      dnnl_sgemm('N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc);
  if (st != dnnl_success) {
    return InternalError("oneDNN sgemm " + std::to_string(m) + "x" + std::to_string(n) + "x" +
                         std::to_string(k) + " failed with status " +
                         std::to_string(static_cast<int>(st)));
  }
  return Status::Ok();
}

}  // namespace cpu
}  // namespace lookalike
