#include "models/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "models/cpu/preprocess.h"

// LOOKALIKE_CPU_HAVE_DNNL=0 (no oneDNN on the build machine, e.g. the GPU
// build island) keeps every op with portable OpenMP loops: the same results
// up to fp32 rounding, far slower; meant for reference use in tests there.
#ifndef LOOKALIKE_CPU_HAVE_DNNL
#define LOOKALIKE_CPU_HAVE_DNNL 1
#endif
#if LOOKALIKE_CPU_HAVE_DNNL
#include "dnnl.hpp"
#endif

namespace lookalike {
namespace {

#if LOOKALIKE_CPU_HAVE_DNNL
using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using Dt = dnnl::memory::data_type;
#endif

std::string ShapeStr(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Host buffers recycled by exact (64-byte rounded) size: a forward pass asks
// for the same few sizes over and over, and large fresh allocations would be
// page-faulted in again each time. Freed buffers beyond `cap_bytes` go back
// to the allocator.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  explicit BufferPool(size_t cap_bytes) : cap_bytes_(cap_bytes) {}
  ~BufferPool() {
    for (auto& [size, list] : free_) {
      for (void* p : list) std::free(p);
    }
  }

  // nullptr on allocation failure.
  std::shared_ptr<void> Get(size_t bytes) {
    bytes = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= bytes;
      }
    }
    if (p == nullptr) p = std::aligned_alloc(64, bytes);
    if (p == nullptr) return nullptr;
    std::shared_ptr<BufferPool> self = shared_from_this();
    return std::shared_ptr<void>(p, [self, bytes](void* q) { self->Put(q, bytes); });
  }

 private:
  void Put(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_bytes_ + bytes > cap_bytes_) {
      std::free(p);
      return;
    }
    free_[bytes].push_back(p);
    cached_bytes_ += bytes;
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
  size_t cap_bytes_;
};

// Scalar activation (portable path).
inline float ApplyActivation(float x, Activation act) {
  switch (act) {
    case Activation::kNone:
      return x;
    case Activation::kRelu:
      return x > 0.0f ? x : 0.0f;
    case Activation::kRelu6:
      return std::min(std::max(x, 0.0f), 6.0f);
    case Activation::kGelu:
      return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Activation::kGeluTanh:
      return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case Activation::kQuickGelu:
      return x / (1.0f + std::exp(-1.702f * x));
  }
  return x;
}

// Row-major C {M, N} = alpha * A {M, K} * op(B) (+ beta C); op(B) = B {K, N}
// or, with trans_b, B^T where B is {N, K}. oneDNN's sgemm, or a plain loop.
void Sgemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float* c, int64_t ldc, bool* ok) {
#if LOOKALIKE_CPU_HAVE_DNNL
  if (dnnl_sgemm('N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc) !=
      dnnl_success) {
    *ok = false;
  }
#else
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
  (void)ok;
#endif
}

#if LOOKALIKE_CPU_HAVE_DNNL
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
  }
}

#endif  // LOOKALIKE_CPU_HAVE_DNNL

Status CheckF32Host(const char* op, const char* what, const Tensor& t) {
  if (t.empty()) return InvalidArgumentError(std::string(op) + ": " + what + " is empty");
  if (t.dtype() != DType::kF32) {
    return InvalidArgumentError(std::string(op) + ": " + what + " " + t.ShapeString() +
                                " has dtype " + DTypeName(t.dtype()) + ", expected f32");
  }
  if (t.device() != DeviceKind::kCpu) {
    return InvalidArgumentError(std::string(op) + ": " + what + " " + t.ShapeString() +
                                " is not a host tensor");
  }
  for (int64_t d : t.shape()) {
    if (d <= 0) {
      return InvalidArgumentError(std::string(op) + ": " + what + " " + t.ShapeString() +
                                  " has a non-positive dimension");
    }
  }
  return Status::Ok();
}

Status CheckResidual(const char* op, const Tensor* residual, const std::vector<int64_t>& out) {
  if (residual == nullptr) return Status::Ok();
  RETURN_IF_ERROR(CheckF32Host(op, "residual", *residual));
  if (residual->shape() != out) {
    return InvalidArgumentError(std::string(op) + ": residual " + residual->ShapeString() +
                                " does not match output " + ShapeStr(out));
  }
  return Status::Ok();
}

// Softmax rows, four lanes at a time with GCC/Clang vector extensions
// (16-byte vectors: SSE2 on x86-64, NEON on arm64, always available). The
// scalar loop was latency-bound on std::exp and on the max / sum chains.
typedef float F4 __attribute__((vector_size(16)));
typedef int32_t I4 __attribute__((vector_size(16)));

// exp(x) for x <= 0: Cody-Waite range reduction x = n ln2 + r with n rounded
// by the 1.5 * 2^23 trick, Cephes' degree-6 polynomial for e^r on
// [-ln2/2, ln2/2] (about 1 ulp), and 2^n built in the exponent bits. Inputs
// below -87 (results below FLT_MIN) give 0.
inline F4 ExpNonPositive(F4 x) {
  const F4 kMagic = F4{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const I4 underflow = x < -87.0f;
  x = underflow ? F4{} - 87.0f : x;
  const F4 t = x * 1.44269504088896341f + kMagic;
  const F4 n = t - kMagic;
  F4 r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  F4 p = F4{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const F4 y = p * r * r + r + 1.0f;
  const I4 e = ((I4)t - 0x4B400000 + 127) << 23;  // n + bias in the exponent field
  return underflow ? F4{} : y * (F4)e;
}

inline F4 Load4(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
inline void Store4(float* p, F4 v) { std::memcpy(p, &v, sizeof(v)); }

// In-place softmax of one row: max subtraction, exp, normalization.
void SoftmaxRow(float* row, int64_t n) {
  const float kNegInf = -std::numeric_limits<float>::infinity();
  const int64_t n4 = n / 4 * 4;
  F4 vmax = F4{} + kNegInf;
  for (int64_t j = 0; j < n4; j += 4) {
    const F4 v = Load4(row + j);
    vmax = v > vmax ? v : vmax;
  }
  float mx = std::max(std::max(vmax[0], vmax[1]), std::max(vmax[2], vmax[3]));
  for (int64_t j = n4; j < n; ++j) mx = std::max(mx, row[j]);
  F4 vsum = F4{};
  for (int64_t j = 0; j < n4; j += 4) {
    const F4 e = ExpNonPositive(Load4(row + j) - mx);
    Store4(row + j, e);
    vsum += e;
  }
  float sum = (vsum[0] + vsum[1]) + (vsum[2] + vsum[3]);
  if (n4 < n) {  // tail, padded with -inf lanes (exp -> 0)
    F4 v = F4{} + kNegInf;
    std::memcpy(&v, row + n4, (n - n4) * sizeof(float));
    const F4 e = ExpNonPositive(v - mx);
    std::memcpy(row + n4, &e, (n - n4) * sizeof(float));
    sum += (e[0] + e[1]) + (e[2] + e[3]);
  }
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) row[j] *= inv;
}

// ---- prepared layers --------------------------------------------------------

struct CpuConvLayer : PreparedLayer {
  ConvSpec spec;
  int pad_b = 0, pad_r = 0;
  // PyTorch {out, in/groups, kh, kw}; freed once the first reordered copy exists.
  mutable std::vector<float> weight;
  std::vector<float> bias;  // {out}; zeros when the layer has none
  // One primitive per (N, H, W, activation, residual?) seen, with weights in
  // that primitive's preferred layout (shared between entries whose layouts agree).
#if LOOKALIKE_CPU_HAVE_DNNL
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
  mutable std::mutex mu;
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int, bool>, Entry> cache;
  mutable std::vector<memory> reordered_weights;
#endif
};

struct CpuLinearLayer : PreparedLayer {
  int in = 0, out = 0;
  std::vector<float> weight;  // {out, in}
  std::vector<float> bias;    // {out}; zeros when none
#if LOOKALIKE_CPU_HAVE_DNNL
  struct Entry {
    dnnl::matmul prim;
    memory weights;
    memory bias;
    memory::desc src_md, dst_md;
  };
  mutable std::mutex mu;
  mutable std::map<std::tuple<int64_t, int, bool>, Entry> cache;
#endif
};

struct CpuLayerNormLayer : PreparedLayer {
  int dim = 0;
  float eps = 1e-5f;
  std::vector<float> gamma, beta;
};

#if LOOKALIKE_CPU_HAVE_DNNL
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
#endif  // LOOKALIKE_CPU_HAVE_DNNL

}  // namespace

struct CpuBackend::Impl {
#if LOOKALIKE_CPU_HAVE_DNNL
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
#endif
  std::shared_ptr<BufferPool> pool = std::make_shared<BufferPool>(size_t{1} << 30);
};

CpuBackend::CpuBackend(const CpuBackendOptions& options) : impl_(std::make_unique<Impl>()) {
  num_threads_ = options.num_threads > 0 ? options.num_threads : omp_get_num_procs();
  ApplyThreads();
}

CpuBackend::~CpuBackend() = default;

void CpuBackend::ApplyThreads() const { omp_set_num_threads(num_threads_); }

StatusOr<Tensor> CpuBackend::Allocate(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0)
      return InvalidArgumentError("Allocate: shape " + ShapeStr(shape) + " is not positive");
    n *= d;
  }
  std::shared_ptr<void> buf = impl_->pool->Get(static_cast<size_t>(n) * sizeof(float));
  if (!buf) {
    return ResourceExhaustedError("Allocate: out of host memory for " + ShapeStr(shape));
  }
  void* p = buf.get();
  return Tensor(shape, DType::kF32, DeviceKind::kCpu, p, std::move(buf));
}

// ---- preparation --------------------------------------------------------------

StatusOr<LayerPtr> CpuBackend::PrepareConv(const ConvSpec& spec, const float* weight,
                                           const float* bias) {
  const ConvSpec& s = spec;
  if (s.in_channels <= 0 || s.out_channels <= 0 || s.kernel_h <= 0 || s.kernel_w <= 0 ||
      s.stride_h <= 0 || s.stride_w <= 0 || s.pad_h < 0 || s.pad_w < 0 || s.groups <= 0 ||
      s.pad_h_end < -1 || s.pad_w_end < -1) {
    return InvalidArgumentError(
        "PrepareConv: invalid spec (in " + std::to_string(s.in_channels) + ", out " +
        std::to_string(s.out_channels) + ", kernel " + std::to_string(s.kernel_h) + "x" +
        std::to_string(s.kernel_w) + ", stride " + std::to_string(s.stride_h) + "x" +
        std::to_string(s.stride_w) + ", groups " + std::to_string(s.groups) + ")");
  }
  if (s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0) {
    return InvalidArgumentError("PrepareConv: channels in " + std::to_string(s.in_channels) +
                                " / out " + std::to_string(s.out_channels) +
                                " not divisible by groups " + std::to_string(s.groups));
  }
  if (weight == nullptr) return InvalidArgumentError("PrepareConv: weight is null");
  auto layer = std::make_unique<CpuConvLayer>();
  layer->spec = s;
  layer->pad_b = s.pad_h_end < 0 ? s.pad_h : s.pad_h_end;
  layer->pad_r = s.pad_w_end < 0 ? s.pad_w : s.pad_w_end;
  const size_t wn =
      static_cast<size_t>(s.out_channels) * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
  layer->weight.assign(weight, weight + wn);
  layer->bias.assign(s.out_channels, 0.0f);
  if (bias != nullptr) std::copy(bias, bias + s.out_channels, layer->bias.begin());
  return LayerPtr(std::move(layer));
}

StatusOr<LayerPtr> CpuBackend::PrepareLinear(int in_features, int out_features, const float* weight,
                                             const float* bias) {
  if (in_features <= 0 || out_features <= 0) {
    return InvalidArgumentError("PrepareLinear: features in " + std::to_string(in_features) +
                                ", out " + std::to_string(out_features) + " must be positive");
  }
  if (weight == nullptr) return InvalidArgumentError("PrepareLinear: weight is null");
  auto layer = std::make_unique<CpuLinearLayer>();
  layer->in = in_features;
  layer->out = out_features;
  layer->weight.assign(weight, weight + static_cast<size_t>(in_features) * out_features);
  layer->bias.assign(out_features, 0.0f);
  if (bias != nullptr) std::copy(bias, bias + out_features, layer->bias.begin());
  return LayerPtr(std::move(layer));
}

StatusOr<LayerPtr> CpuBackend::PrepareLayerNorm(int dim, const float* gamma, const float* beta,
                                                float eps) {
  if (dim <= 0)
    return InvalidArgumentError("PrepareLayerNorm: dim " + std::to_string(dim) +
                                " must be positive");
  if (!(eps >= 0.0f)) return InvalidArgumentError("PrepareLayerNorm: eps must be >= 0");
  auto layer = std::make_unique<CpuLayerNormLayer>();
  layer->dim = dim;
  layer->eps = eps;
  layer->gamma.assign(dim, 1.0f);
  layer->beta.assign(dim, 0.0f);
  if (gamma != nullptr) std::copy(gamma, gamma + dim, layer->gamma.begin());
  if (beta != nullptr) std::copy(beta, beta + dim, layer->beta.begin());
  return LayerPtr(std::move(layer));
}

StatusOr<Tensor> CpuBackend::Constant(const std::vector<int64_t>& shape, const float* data) {
  if (data == nullptr) return InvalidArgumentError("Constant: data is null for " + ShapeStr(shape));
  if (shape.empty()) return InvalidArgumentError("Constant: shape is empty");
  ASSIGN_OR_RETURN(Tensor t, Allocate(shape));
  std::memcpy(t.data(), data, t.nbytes());
  return t;
}

// ---- ops ----------------------------------------------------------------------

StatusOr<Tensor> CpuBackend::Preprocess(const std::vector<ImageView>& images,
                                        const PreprocessSpec& spec) {
  if (images.empty()) return InvalidArgumentError("Preprocess: no images");
  for (size_t i = 0; i < images.size(); ++i) {
    RETURN_IF_ERROR(
        ValidatePreprocessInput(images[i], spec).WithPrefix("item " + std::to_string(i)));
  }
  ApplyThreads();
  const int64_t n = static_cast<int64_t>(images.size());
  ASSIGN_OR_RETURN(Tensor out, Allocate({n, spec.crop_height, spec.crop_width, 3}));
  const size_t per = static_cast<size_t>(spec.crop_height) * spec.crop_width * 3;
  float* o = out.data_as<float>();
  std::vector<Status> errors(images.size());
  // Across images when there are several; PreprocessImage parallelizes its
  // rows when called alone (nested regions run serially).
#pragma omp parallel for schedule(dynamic) if (n > 1)
  for (int64_t i = 0; i < n; ++i) {
    errors[i] = PreprocessImage(images[i], spec, o + per * i);
  }
  for (size_t i = 0; i < errors.size(); ++i) {
    RETURN_IF_ERROR(errors[i].WithPrefix("item " + std::to_string(i)));
  }
  return out;
}

StatusOr<Tensor> CpuBackend::Conv2d(const PreparedLayer& conv, const Tensor& x, Activation act,
                                    const Tensor* residual) {
  const auto* layer = dynamic_cast<const CpuConvLayer*>(&conv);
  if (layer == nullptr)
    return InvalidArgumentError("Conv2d: layer was not prepared by CpuBackend::PrepareConv");
  RETURN_IF_ERROR(CheckF32Host("Conv2d", "input", x));
  const ConvSpec& s = layer->spec;
  if (x.rank() != 4 || x.dim(3) != s.in_channels) {
    return InvalidArgumentError("Conv2d: input " + x.ShapeString() +
                                " does not match layer input [N, H, W, " +
                                std::to_string(s.in_channels) + "]");
  }
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2);
  const int64_t oh_num = h + s.pad_h + layer->pad_b - s.kernel_h;
  const int64_t ow_num = w + s.pad_w + layer->pad_r - s.kernel_w;
  if (oh_num < 0 || ow_num < 0) {
    return InvalidArgumentError("Conv2d: input " + x.ShapeString() + " is smaller than kernel [" +
                                std::to_string(s.kernel_h) + ", " + std::to_string(s.kernel_w) +
                                "] with padding");
  }
  const int64_t oh = oh_num / s.stride_h + 1, ow = ow_num / s.stride_w + 1;
  const std::vector<int64_t> out_shape = {n, oh, ow, s.out_channels};
  RETURN_IF_ERROR(CheckResidual("Conv2d", residual, out_shape));
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(out_shape));
#if !LOOKALIKE_CPU_HAVE_DNNL
  {
    const int g = s.groups, cig = s.in_channels / g, cog = s.out_channels / g;
    const float* xi = x.data_as<float>();
    const float* wt = layer->weight.data();
    const float* res = residual ? residual->data_as<float>() : nullptr;
    float* yo = y.data_as<float>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          const size_t obase = ((static_cast<size_t>(b) * oh + oy) * ow + ox) * s.out_channels;
          for (int o = 0; o < s.out_channels; ++o) {
            const int gi = o / cog;
            float acc = layer->bias[o];
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
  }
  return y;
#else
  try {
    std::lock_guard<std::mutex> lock(layer->mu);
    auto key = std::make_tuple(n, h, w, static_cast<int>(act), residual != nullptr);
    auto it = layer->cache.find(key);
    if (it == layer->cache.end()) {
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
      memory::desc conv_src = try_blocked ? memory::desc({n, ic, h, w}, Dt::f32, Tag::any) : src_md;
      memory::desc conv_dst =
          try_blocked ? memory::desc({n, oc, oh, ow}, Dt::f32, Tag::any) : dst_md;
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                        dnnl::algorithm::convolution_direct, conv_src, w_any,
                                        bias_md, conv_dst, {s.stride_h, s.stride_w},
                                        {s.pad_h, s.pad_w}, {layer->pad_b, layer->pad_r});
      dnnl::post_ops ops;
      if (residual != nullptr) ops.append_sum(1.0f);
      AppendActivation(&ops, act);
      dnnl::primitive_attr attr;
      attr.set_post_ops(ops);
      dnnl::convolution_forward::primitive_desc pd(d, attr, impl_->engine);
      CpuConvLayer::Entry e;
      e.prim = dnnl::convolution_forward(pd);
      e.weights = ReorderedWeights(impl_->engine, impl_->stream, w_user, &layer->weight,
                                   pd.weights_desc(), &layer->reordered_weights);
      e.bias = memory(bias_md, impl_->engine, const_cast<float*>(layer->bias.data()));
      e.src_md = src_md;
      e.dst_md = dst_md;
      e.conv_src_md = pd.src_desc();
      e.conv_dst_md = pd.dst_desc();
      e.blocked = e.conv_src_md != src_md || e.conv_dst_md != dst_md;
      if (e.blocked) {
        e.src_in = dnnl::reorder(
            dnnl::reorder::primitive_desc(impl_->engine, src_md, impl_->engine, e.conv_src_md));
        e.dst_out = dnnl::reorder(
            dnnl::reorder::primitive_desc(impl_->engine, e.conv_dst_md, impl_->engine, dst_md));
        if (residual != nullptr) {
          e.residual_in = dnnl::reorder(
              dnnl::reorder::primitive_desc(impl_->engine, dst_md, impl_->engine, e.conv_dst_md));
        }
      }
      it = layer->cache.emplace(key, std::move(e)).first;
    }
    CpuConvLayer::Entry& e = it->second;
    memory src(e.src_md, impl_->engine, x.data());
    memory dst(e.dst_md, impl_->engine, y.data());
    if (!e.blocked) {
      // The sum post-op adds the destination's prior contents: the residual.
      if (residual != nullptr) std::memcpy(y.data(), residual->data(), y.nbytes());
      e.prim.execute(impl_->stream, {{DNNL_ARG_SRC, src},
                                     {DNNL_ARG_WEIGHTS, e.weights},
                                     {DNNL_ARG_BIAS, e.bias},
                                     {DNNL_ARG_DST, dst}});
    } else {
      // Blocked scratch from the buffer pool (sizes include any block padding).
      std::shared_ptr<void> src_buf = impl_->pool->Get(e.conv_src_md.get_size());
      std::shared_ptr<void> dst_buf = impl_->pool->Get(e.conv_dst_md.get_size());
      if (!src_buf || !dst_buf) {
        return ResourceExhaustedError("Conv2d: out of host memory for input " + x.ShapeString());
      }
      memory bsrc(e.conv_src_md, impl_->engine, src_buf.get());
      memory bdst(e.conv_dst_md, impl_->engine, dst_buf.get());
      e.src_in.execute(impl_->stream, src, bsrc);
      if (residual != nullptr) {
        memory res(e.dst_md, impl_->engine, residual->data());
        e.residual_in.execute(impl_->stream, res, bdst);
      }
      e.prim.execute(impl_->stream, {{DNNL_ARG_SRC, bsrc},
                                     {DNNL_ARG_WEIGHTS, e.weights},
                                     {DNNL_ARG_BIAS, e.bias},
                                     {DNNL_ARG_DST, bdst}});
      e.dst_out.execute(impl_->stream, bdst, dst);
      impl_->stream.wait();
    }
    impl_->stream.wait();
  } catch (const dnnl::error& err) {
    return InternalError(std::string("Conv2d: oneDNN: ") + err.what() + " (input " +
                         x.ShapeString() + ")");
  }
  return y;
#endif
}

StatusOr<Tensor> CpuBackend::Linear(const PreparedLayer& linear, const Tensor& x, Activation act,
                                    const Tensor* residual) {
  const auto* layer = dynamic_cast<const CpuLinearLayer*>(&linear);
  if (layer == nullptr)
    return InvalidArgumentError("Linear: layer was not prepared by CpuBackend::PrepareLinear");
  RETURN_IF_ERROR(CheckF32Host("Linear", "input", x));
  if (x.rank() < 2 || x.dim(-1) != layer->in) {
    return InvalidArgumentError("Linear: input " + x.ShapeString() +
                                " does not match layer input [..., " + std::to_string(layer->in) +
                                "]");
  }
  std::vector<int64_t> out_shape = x.shape();
  out_shape.back() = layer->out;
  RETURN_IF_ERROR(CheckResidual("Linear", residual, out_shape));
  const int64_t m = x.numel() / layer->in;
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(out_shape));
#if !LOOKALIKE_CPU_HAVE_DNNL
  {
    const int64_t k = layer->in, nout = layer->out;
    const float* xi = x.data_as<float>();
    const float* wt = layer->weight.data();
    const float* res = residual ? residual->data_as<float>() : nullptr;
    float* yo = y.data_as<float>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < m; ++r) {
      for (int64_t o = 0; o < nout; ++o) {
        const float* wr = wt + o * k;
        const float* xr = xi + r * k;
        float acc = 0.0f;
        for (int64_t i = 0; i < k; ++i) acc += xr[i] * wr[i];
        float v = ApplyActivation(acc + layer->bias[o], act);
        if (res) v += res[r * nout + o];
        yo[r * nout + o] = v;
      }
    }
  }
  return y;
#else
  if (residual != nullptr) std::memcpy(y.data(), residual->data(), y.nbytes());
  try {
    std::lock_guard<std::mutex> lock(layer->mu);
    auto key = std::make_tuple(m, static_cast<int>(act), residual != nullptr);
    auto it = layer->cache.find(key);
    if (it == layer->cache.end()) {
      const memory::dim k = layer->in, nout = layer->out;
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
      dnnl::primitive_attr attr;
      attr.set_post_ops(ops);
      dnnl::matmul::primitive_desc pd(d, attr, impl_->engine);
      CpuLinearLayer::Entry e;
      e.prim = dnnl::matmul(pd);
      if (pd.weights_desc() != w_md) {
        return InternalError("Linear: oneDNN matmul did not accept plain weights for input " +
                             x.ShapeString());
      }
      e.weights = memory(w_md, impl_->engine, const_cast<float*>(layer->weight.data()));
      e.bias = memory(bias_md, impl_->engine, const_cast<float*>(layer->bias.data()));
      e.src_md = src_md;
      e.dst_md = dst_md;
      it = layer->cache.emplace(key, std::move(e)).first;
    }
    CpuLinearLayer::Entry& e = it->second;
    memory src(e.src_md, impl_->engine, x.data());
    memory dst(e.dst_md, impl_->engine, y.data());
    e.prim.execute(impl_->stream, {{DNNL_ARG_SRC, src},
                                   {DNNL_ARG_WEIGHTS, e.weights},
                                   {DNNL_ARG_BIAS, e.bias},
                                   {DNNL_ARG_DST, dst}});
    impl_->stream.wait();
  } catch (const dnnl::error& err) {
    return InternalError(std::string("Linear: oneDNN: ") + err.what() + " (input " +
                         x.ShapeString() + ")");
  }
  return y;
#endif
}

StatusOr<Tensor> CpuBackend::LayerNorm(const PreparedLayer& norm, const Tensor& x) {
  const auto* layer = dynamic_cast<const CpuLayerNormLayer*>(&norm);
  if (layer == nullptr)
    return InvalidArgumentError(
        "LayerNorm: layer was not prepared by CpuBackend::PrepareLayerNorm");
  RETURN_IF_ERROR(CheckF32Host("LayerNorm", "input", x));
  if (x.dim(-1) != layer->dim) {
    return InvalidArgumentError("LayerNorm: input " + x.ShapeString() +
                                " does not match layer [..., " + std::to_string(layer->dim) + "]");
  }
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(x.shape()));
  const int64_t d = layer->dim, rows = x.numel() / d;
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  const float* gamma = layer->gamma.data();
  const float* beta = layer->beta.data();
  const float eps = layer->eps;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = in + r * d;
    float* yr = out + r * d;
    // Two passes (mean, then centred variance) in double: biased variance as torch.
    double sum = 0.0;
    for (int64_t i = 0; i < d; ++i) sum += xr[i];
    const double mean = sum / d;
    double sq = 0.0;
    for (int64_t i = 0; i < d; ++i) {
      const double c = xr[i] - mean;
      sq += c * c;
    }
    const float rstd = static_cast<float>(1.0 / std::sqrt(sq / d + eps));
    const float meanf = static_cast<float>(mean);
    for (int64_t i = 0; i < d; ++i) yr[i] = (xr[i] - meanf) * rstd * gamma[i] + beta[i];
  }
  return y;
}

StatusOr<Tensor> CpuBackend::Attention(const Tensor& qkv, int heads) {
  RETURN_IF_ERROR(CheckF32Host("Attention", "qkv", qkv));
  if (qkv.rank() != 3 || qkv.dim(2) % 3 != 0) {
    return InvalidArgumentError("Attention: qkv " + qkv.ShapeString() + " is not [N, T, 3*D]");
  }
  const int64_t n = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(2) / 3;
  if (heads <= 0 || d % heads != 0) {
    return InvalidArgumentError("Attention: qkv " + qkv.ShapeString() +
                                " width D=" + std::to_string(d) +
                                " is not divisible into heads=" + std::to_string(heads));
  }
  const int64_t dh = d / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, t, d}));
  // Per-thread scores {T, T}.
  const int nthr = num_threads_;
  ASSIGN_OR_RETURN(Tensor scratch, Allocate({nthr, t, t}));
  const float* base = qkv.data_as<float>();
  float* out = y.data_as<float>();
  const int64_t ld = 3 * d;
  int failed = 0;
  // One (image, head) per task; oneDNN's sgemm runs single-threaded inside
  // the parallel region.
#pragma omp parallel for schedule(dynamic) num_threads(nthr) reduction(+ : failed)
  for (int64_t job = 0; job < n * heads; ++job) {
    const int64_t b = job / heads, hd = job % heads;
    float* s = scratch.data_as<float>() + static_cast<int64_t>(omp_get_thread_num()) * t * t;
    const float* q = base + b * t * ld + hd * dh;
    const float* k = q + d;
    const float* v = q + 2 * d;
    // S = scale * Q K^T  (row-major: Q {T, dh} ld 3D, K {T, dh} ld 3D).
    bool ok = true;
    Sgemm(/*trans_b=*/true, t, t, dh, scale, q, ld, k, ld, s, t, &ok);
    if (!ok) {
      ++failed;
      continue;
    }
    for (int64_t i = 0; i < t; ++i) SoftmaxRow(s + i * t, t);
    // O = P V, written into head `hd`'s slice of {N, T, D}.
    Sgemm(/*trans_b=*/false, t, dh, t, 1.0f, s, t, v, ld, out + b * t * d + hd * dh, d, &ok);
    if (!ok) ++failed;
  }
  if (failed) return InternalError("Attention: oneDNN sgemm failed for qkv " + qkv.ShapeString());
  return y;
}

StatusOr<Tensor> CpuBackend::MaxPool2d(const Tensor& x, int kernel, int stride, int pad) {
  RETURN_IF_ERROR(CheckF32Host("MaxPool2d", "input", x));
  if (x.rank() != 4)
    return InvalidArgumentError("MaxPool2d: input " + x.ShapeString() + " is not [N, H, W, C]");
  if (kernel <= 0 || stride <= 0 || pad < 0 || pad > kernel / 2) {
    return InvalidArgumentError("MaxPool2d: kernel " + std::to_string(kernel) + ", stride " +
                                std::to_string(stride) + ", pad " + std::to_string(pad) +
                                " invalid (need kernel, stride > 0 and 0 <= pad <= kernel/2)");
  }
  const int64_t n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3);
  if (h + 2 * pad < kernel || w + 2 * pad < kernel) {
    return InvalidArgumentError("MaxPool2d: input " + x.ShapeString() + " smaller than kernel " +
                                std::to_string(kernel));
  }
  const int64_t oh = (h + 2 * pad - kernel) / stride + 1, ow = (w + 2 * pad - kernel) / stride + 1;
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, oh, ow, c}));
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        float* o = out + ((b * oh + oy) * ow + ox) * c;
        std::fill(o, o + c, -std::numeric_limits<float>::infinity());
        for (int ky = 0; ky < kernel; ++ky) {
          const int64_t iy = oy * stride - pad + ky;
          if (iy < 0 || iy >= h) continue;
          for (int kx = 0; kx < kernel; ++kx) {
            const int64_t ix = ox * stride - pad + kx;
            if (ix < 0 || ix >= w) continue;
            const float* p = in + ((b * h + iy) * w + ix) * c;
            for (int64_t ch = 0; ch < c; ++ch) o[ch] = std::max(o[ch], p[ch]);
          }
        }
      }
    }
  }
  return y;
}

StatusOr<Tensor> CpuBackend::MeanPool(const Tensor& x, int token_begin) {
  RETURN_IF_ERROR(CheckF32Host("MeanPool", "input", x));
  int64_t n, rows, d, begin;
  if (x.rank() == 4) {
    if (token_begin != 0) {
      return InvalidArgumentError("MeanPool: token_begin " + std::to_string(token_begin) +
                                  " must be 0 for a feature map " + x.ShapeString());
    }
    n = x.dim(0), rows = x.dim(1) * x.dim(2), d = x.dim(3), begin = 0;
  } else if (x.rank() == 3) {
    n = x.dim(0), rows = x.dim(1), d = x.dim(2), begin = token_begin;
    if (token_begin < 0 || token_begin >= rows) {
      return InvalidArgumentError("MeanPool: token_begin " + std::to_string(token_begin) +
                                  " out of range for tokens " + x.ShapeString());
    }
  } else {
    return InvalidArgumentError("MeanPool: input " + x.ShapeString() +
                                " is not [N, H, W, C] or [N, T, D]");
  }
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, d}));
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  const int64_t count = rows - begin;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    std::vector<double> acc(d, 0.0);
    for (int64_t r = begin; r < rows; ++r) {
      const float* p = in + (b * rows + r) * d;
      for (int64_t i = 0; i < d; ++i) acc[i] += p[i];
    }
    for (int64_t i = 0; i < d; ++i) out[b * d + i] = static_cast<float>(acc[i] / count);
  }
  return y;
}

StatusOr<Tensor> CpuBackend::SelectToken(const Tensor& x, int index) {
  RETURN_IF_ERROR(CheckF32Host("SelectToken", "input", x));
  if (x.rank() != 3)
    return InvalidArgumentError("SelectToken: input " + x.ShapeString() + " is not [N, T, D]");
  if (index < 0 || index >= x.dim(1)) {
    return InvalidArgumentError("SelectToken: index " + std::to_string(index) +
                                " out of range for " + x.ShapeString());
  }
  const int64_t n = x.dim(0), t = x.dim(1), d = x.dim(2);
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, d}));
  for (int64_t b = 0; b < n; ++b) {
    std::memcpy(y.data_as<float>() + b * d, x.data_as<float>() + (b * t + index) * d,
                d * sizeof(float));
  }
  return y;
}

StatusOr<Tensor> CpuBackend::PrependTokensAddPos(const Tensor& patches, const Tensor* prefix_tokens,
                                                 const Tensor& pos, bool pos_applies_to_prefix) {
  RETURN_IF_ERROR(CheckF32Host("PrependTokensAddPos", "patches", patches));
  RETURN_IF_ERROR(CheckF32Host("PrependTokensAddPos", "pos", pos));
  if (patches.rank() != 3) {
    return InvalidArgumentError("PrependTokensAddPos: patches " + patches.ShapeString() +
                                " is not [N, P, D]");
  }
  const int64_t n = patches.dim(0), p = patches.dim(1), d = patches.dim(2);
  int64_t prefix = 0;
  if (prefix_tokens != nullptr) {
    RETURN_IF_ERROR(CheckF32Host("PrependTokensAddPos", "prefix_tokens", *prefix_tokens));
    const Tensor& pt = *prefix_tokens;
    const bool ok =
        (pt.rank() == 2 && pt.dim(1) == d) || (pt.rank() == 3 && pt.dim(0) == 1 && pt.dim(2) == d);
    if (!ok) {
      return InvalidArgumentError("PrependTokensAddPos: prefix_tokens " + pt.ShapeString() +
                                  " does not match patches " + patches.ShapeString() +
                                  " (expected [prefix, D] or [1, prefix, D])");
    }
    prefix = pt.rank() == 2 ? pt.dim(0) : pt.dim(1);
  }
  const int64_t pos_rows = pos_applies_to_prefix ? prefix + p : p;
  const bool pos_ok =
      (pos.rank() == 3 && pos.dim(0) == 1 && pos.dim(1) == pos_rows && pos.dim(2) == d) ||
      (pos.rank() == 2 && pos.dim(0) == pos_rows && pos.dim(1) == d);
  if (!pos_ok) {
    return InvalidArgumentError("PrependTokensAddPos: pos " + pos.ShapeString() +
                                " does not match patches " + patches.ShapeString() +
                                " (expected [1, " + std::to_string(pos_rows) + ", " +
                                std::to_string(d) + "])");
  }
  ApplyThreads();
  const int64_t t = prefix + p;
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, t, d}));
  const float* pin = patches.data_as<float>();
  const float* pre = prefix_tokens ? prefix_tokens->data_as<float>() : nullptr;
  const float* ps = pos.data_as<float>();
  float* out = y.data_as<float>();
  const int64_t pos_offset = pos_applies_to_prefix ? 0 : prefix;  // token row -> pos row
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t r = 0; r < t; ++r) {
      const float* src = r < prefix ? pre + r * d : pin + (b * p + (r - prefix)) * d;
      float* o = out + (b * t + r) * d;
      const int64_t pr = r - pos_offset;
      if (pr >= 0) {
        const float* pp = ps + pr * d;
        for (int64_t i = 0; i < d; ++i) o[i] = src[i] + pp[i];
      } else {
        std::memcpy(o, src, d * sizeof(float));
      }
    }
  }
  return y;
}

StatusOr<Tensor> CpuBackend::Add(const Tensor& a, const Tensor& b) {
  RETURN_IF_ERROR(CheckF32Host("Add", "a", a));
  RETURN_IF_ERROR(CheckF32Host("Add", "b", b));
  if (a.shape() != b.shape()) {
    return InvalidArgumentError("Add: a " + a.ShapeString() + " and b " + b.ShapeString() +
                                " differ");
  }
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(a.shape()));
  const float* pa = a.data_as<float>();
  const float* pb = b.data_as<float>();
  float* o = y.data_as<float>();
  const int64_t n = a.numel();
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) o[i] = pa[i] + pb[i];
  return y;
}

StatusOr<Tensor> CpuBackend::L2Normalize(const Tensor& x) {
  RETURN_IF_ERROR(CheckF32Host("L2Normalize", "input", x));
  if (x.rank() != 2)
    return InvalidArgumentError("L2Normalize: input " + x.ShapeString() + " is not [N, D]");
  const int64_t n = x.dim(0), d = x.dim(1);
  ASSIGN_OR_RETURN(Tensor y, Allocate(x.shape()));
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  for (int64_t b = 0; b < n; ++b) {
    double sq = 0.0;
    for (int64_t i = 0; i < d; ++i) sq += static_cast<double>(in[b * d + i]) * in[b * d + i];
    // torch.nn.functional.normalize: x / max(||x||, 1e-12).
    const double norm = std::max(std::sqrt(sq), 1e-12);
    const float inv = static_cast<float>(1.0 / norm);
    for (int64_t i = 0; i < d; ++i) out[b * d + i] = in[b * d + i] * inv;
  }
  return y;
}

Status CpuBackend::ToHost(const Tensor& x, std::vector<float>* out) {
  if (out == nullptr) return InvalidArgumentError("ToHost: out is null");
  RETURN_IF_ERROR(CheckF32Host("ToHost", "input", x));
  out->assign(x.data_as<float>(), x.data_as<float>() + x.numel());
  return Status::Ok();
}

}  // namespace lookalike
