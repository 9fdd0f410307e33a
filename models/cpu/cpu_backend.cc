#include "models/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "models/cpu/buffer_pool.h"
#include "models/cpu/dense.h"
#include "models/cpu/preprocess.h"
#include "models/cpu/threads.h"

namespace lookalike {
namespace {

using cpu::BufferPool;

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
  std::unique_ptr<cpu::DenseConv> dense;
};

struct CpuLinearLayer : PreparedLayer {
  std::unique_ptr<cpu::DenseLinear> dense;
};

struct CpuLayerNormLayer : PreparedLayer {
  int dim = 0;
  float eps = 1e-5f;
  std::vector<float> gamma, beta;
};

}  // namespace

struct CpuBackend::Impl {
  explicit Impl(DType dtype) : dense(cpu::Dense::Create(pool, dtype)) {}
  std::shared_ptr<BufferPool> pool = std::make_shared<BufferPool>(size_t{1} << 30);
  std::unique_ptr<cpu::Dense> dense;
};

std::string CpuBf16UnavailableReason() { return cpu::Dense::Bf16UnavailableReason(); }

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : impl_(std::make_unique<Impl>(options.dtype)) {
  num_threads_ = options.num_threads > 0 ? options.num_threads : omp_get_num_procs();
  ApplyThreads();
}

StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(const CpuBackendOptions& options) {
  if (options.dtype == DType::kF16) {
    return InvalidArgumentError("precision fp16: the CPU backend computes in fp32 or bf16");
  }
  if (options.dtype == DType::kBF16) {
    const std::string why = CpuBf16UnavailableReason();
    if (!why.empty()) return FailedPreconditionError("precision bf16 on the CPU: " + why);
  }
  return std::make_unique<CpuBackend>(options);
}

CpuBackend::~CpuBackend() = default;

void CpuBackend::ApplyThreads() const { omp_set_num_threads(num_threads_); }

StatusOr<Tensor> CpuBackend::Allocate(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0)
      return InvalidArgumentError("Allocate: shape " + ShapeString(shape) + " is not positive");
    n *= d;
  }
  std::shared_ptr<void> buf = impl_->pool->Get(static_cast<size_t>(n) * sizeof(float));
  if (!buf) {
    return ResourceExhaustedError("Allocate: out of host memory for " + ShapeString(shape));
  }
  void* p = buf.get();
  return Tensor(shape, DType::kF32, DeviceKind::kCpu, p, std::move(buf));
}

// ---- preparation --------------------------------------------------------------

StatusOr<LayerPtr> CpuBackend::PrepareConvImpl(const ConvSpec& s, const float* weight,
                                               const float* bias) {
  const size_t wn =
      static_cast<size_t>(s.out_channels) * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
  std::vector<float> b(s.out_channels, 0.0f);
  if (bias != nullptr) std::copy(bias, bias + s.out_channels, b.begin());
  auto layer = std::make_unique<CpuConvLayer>();
  layer->dense =
      impl_->dense->PrepareConv(s, std::vector<float>(weight, weight + wn), std::move(b));
  return LayerPtr(std::move(layer));
}

StatusOr<LayerPtr> CpuBackend::PrepareLinearImpl(int in_features, int out_features,
                                                 const float* weight, const float* bias) {
  std::vector<float> b(out_features, 0.0f);
  if (bias != nullptr) std::copy(bias, bias + out_features, b.begin());
  auto layer = std::make_unique<CpuLinearLayer>();
  layer->dense = impl_->dense->PrepareLinear(
      in_features, out_features,
      std::vector<float>(weight, weight + static_cast<size_t>(in_features) * out_features),
      std::move(b));
  return LayerPtr(std::move(layer));
}

StatusOr<LayerPtr> CpuBackend::PrepareLayerNormImpl(int dim, const float* gamma, const float* beta,
                                                    float eps) {
  auto layer = std::make_unique<CpuLayerNormLayer>();
  layer->dim = dim;
  layer->eps = eps;
  layer->gamma.assign(gamma, gamma + dim);
  layer->beta.assign(beta, beta + dim);
  return LayerPtr(std::move(layer));
}

StatusOr<Tensor> CpuBackend::ConstantImpl(const std::vector<int64_t>& shape, const float* data) {
  ASSIGN_OR_RETURN(Tensor t, Allocate(shape));
  std::memcpy(t.data(), data, t.nbytes());
  return t;
}

// ---- ops ----------------------------------------------------------------------

StatusOr<Tensor> CpuBackend::PreprocessImpl(const std::vector<ImageView>& images,
                                            const PreprocessSpec& spec) {
  ApplyThreads();
  const int64_t n = static_cast<int64_t>(images.size());
  ASSIGN_OR_RETURN(Tensor out, Allocate({n, spec.crop_height, spec.crop_width, 3}));
  const size_t per = static_cast<size_t>(spec.crop_height) * spec.crop_width * 3;
  float* o = out.data_as<float>();
  // Across images when there are several; PreprocessCheckedImage parallelizes
  // its rows when called alone (nested regions run serially).
#pragma omp parallel for schedule(dynamic) if (n > 1)
  for (int64_t i = 0; i < n; ++i) PreprocessCheckedImage(images[i], spec, o + per * i);
  return out;
}

StatusOr<Tensor> CpuBackend::Conv2dImpl(const PreparedLayer& conv, const Tensor& x, Activation act,
                                        const Tensor* residual,
                                        const std::vector<int64_t>& out_shape) {
  const auto& layer = static_cast<const CpuConvLayer&>(conv);
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(out_shape));
  RETURN_IF_ERROR(layer.dense->Run(x, act, residual, y));
  return y;
}

StatusOr<Tensor> CpuBackend::LinearImpl(const PreparedLayer& linear, const Tensor& x,
                                        Activation act, const Tensor* residual,
                                        const std::vector<int64_t>& out_shape) {
  const auto& layer = static_cast<const CpuLinearLayer&>(linear);
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(out_shape));
  RETURN_IF_ERROR(layer.dense->Run(x, act, residual, y));
  return y;
}

StatusOr<Tensor> CpuBackend::LayerNormImpl(const PreparedLayer& norm, const Tensor& x) {
  return RunLayerNorm(norm, x, nullptr, nullptr);
}

StatusOr<Tensor> CpuBackend::AddLayerNormImpl(const PreparedLayer& norm, const Tensor& a,
                                              const Tensor& b, Tensor* sum) {
  ASSIGN_OR_RETURN(*sum, Allocate(a.shape()));
  return RunLayerNorm(norm, a, &b, sum);
}

StatusOr<Tensor> CpuBackend::RunLayerNorm(const PreparedLayer& norm, const Tensor& x,
                                          const Tensor* add, const Tensor* sum) {
  const auto* layer = static_cast<const CpuLayerNormLayer*>(&norm);
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate(x.shape()));
  const int64_t d = layer->dim, rows = x.numel() / d;
  const float* in = x.data_as<float>();
  const float* in2 = add != nullptr ? add->data_as<float>() : nullptr;
  float* summed = sum != nullptr ? sum->data_as<float>() : nullptr;
  float* out = y.data_as<float>();
  const float* gamma = layer->gamma.data();
  const float* beta = layer->beta.data();
  const float eps = layer->eps;
  // About 8 floating-point operations per element (three passes).
  const int threads = cpu::ThreadsFor(8.0 * rows * d, num_threads_);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = in + r * d;
    if (in2 != nullptr) {  // AddLayerNorm: the row's sum, written once, normalized while in cache
      const float* br = in2 + r * d;
      float* sr = summed + r * d;
      for (int64_t i = 0; i < d; ++i) sr[i] = xr[i] + br[i];
      xr = sr;
    }
    float* yr = out + r * d;
    // Two passes (mean, then centred variance) in double: biased variance as torch.
    double total = 0.0;
    for (int64_t i = 0; i < d; ++i) total += xr[i];
    const double mean = total / d;
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

StatusOr<Tensor> CpuBackend::AttentionImpl(const Tensor& qkv, int heads, bool causal) {
  return RunAttention(qkv, heads, causal, nullptr);
}

StatusOr<Tensor> CpuBackend::AttentionWithBiasImpl(const Tensor& qkv, int heads,
                                                   const Tensor& bias) {
  return RunAttention(qkv, heads, false, &bias);
}

StatusOr<Tensor> CpuBackend::RunAttention(const Tensor& qkv, int heads, bool causal,
                                          const Tensor* bias) {
  const int64_t n = qkv.dim(0), t = qkv.dim(1), d = qkv.dim(2) / 3;
  const int64_t dh = d / heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dh));
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, t, d}));
  // Each (image, head) in blocks of query rows: a block's scores {rows, T}
  // (at most kAttentionRows x T; 39 KB for ViT-B's 197 tokens) stay in cache
  // between Q K^T, the softmax and P V, and one image gives heads x blocks
  // tasks to share between threads.
  constexpr int64_t kAttentionRows = 64;
  const int64_t blocks = (t + kAttentionRows - 1) / kAttentionRows;
  const int64_t block_rows = (t + blocks - 1) / blocks;
  const int64_t jobs = n * heads * blocks;
  const int nthr = static_cast<int>(
      std::min<int64_t>(jobs, cpu::ThreadsFor(4.0 * n * heads * t * t * dh, num_threads_)));
  // Per-thread scores {block_rows, T}.
  ASSIGN_OR_RETURN(Tensor scratch, Allocate({nthr, block_rows, t}));
  const float* base = qkv.data_as<float>();
  float* out = y.data_as<float>();
  const int64_t ld = 3 * d;
  // The first failure of any task (a Status cannot leave the parallel region).
  std::mutex failed_mu;
  Status failed;
  // oneDNN's sgemm runs single-threaded inside the parallel region; with one
  // thread there is no active region, so the thread count says so.
  cpu::ScopedThreads scoped_threads(nthr == 1 ? 1 : num_threads_);
#pragma omp parallel for schedule(dynamic) num_threads(nthr)
  for (int64_t job = 0; job < jobs; ++job) {
    const int64_t b = job / (heads * blocks), hd = job / blocks % heads;
    const int64_t r0 = job % blocks * block_rows, rows = std::min(block_rows, t - r0);
    float* s =
        scratch.data_as<float>() + static_cast<int64_t>(omp_get_thread_num()) * block_rows * t;
    const float* k = base + b * t * ld + d + hd * dh;  // {T, dh}, ld 3D
    const float* v = k + d;
    const float* q = base + (b * t + r0) * ld + hd * dh;  // this block's {rows, dh}
    // S = scale * Q K^T  (row-major: Q {rows, dh} ld 3D, K {T, dh} ld 3D).
    Status st = cpu::Sgemm(/*trans_b=*/true, rows, t, dh, scale, q, ld, k, ld, s, t);
    if (st.ok()) {
      const float* bh = bias != nullptr
                            ? bias->data_as<float>() + ((b % bias->dim(0)) * heads + hd) * t * t
                            : nullptr;
      for (int64_t i = 0; i < rows; ++i) {
        float* row = s + i * t;
        const int64_t query = r0 + i;
        // Causal: keys after the query get probability exactly 0
        // (exp(-inf) = 0); the diagonal keeps every row's max finite.
        if (causal) std::fill(row + query + 1, row + t, -std::numeric_limits<float>::infinity());
        if (bh != nullptr) {
          const float* br = bh + query * t;
          for (int64_t j = 0; j < t; ++j) row[j] += br[j];
        }
        SoftmaxRow(row, t);
      }
      // O = P V, written into head `hd`'s slice of this block's rows of {N, T, D}.
      st = cpu::Sgemm(/*trans_b=*/false, rows, dh, t, 1.0f, s, t, v, ld,
                      out + (b * t + r0) * d + hd * dh, d);
    }
    if (!st.ok()) {
      std::lock_guard<std::mutex> lock(failed_mu);
      if (failed.ok()) failed = st;
    }
  }
  RETURN_IF_ERROR(failed.WithPrefix("Attention: qkv " + qkv.ShapeString()));
  return y;
}

StatusOr<Tensor> CpuBackend::MaxPool2dImpl(const Tensor& x, int kernel, int stride, int pad,
                                           const std::vector<int64_t>& out_shape) {
  PoolSpec s;  // the general pooling loop (cpu_channel_ops.cc)
  s.kind = PoolSpec::Kind::kMax;
  s.kernel_h = s.kernel_w = kernel;
  s.stride_h = s.stride_w = stride;
  s.pad_h = s.pad_w = pad;
  return Pool2dImpl(x, s, out_shape);
}

StatusOr<Tensor> CpuBackend::MeanPoolImpl(const Tensor& x, int token_begin) {
  const int64_t n = x.dim(0), rows = x.dim(1), d = x.dim(2), begin = token_begin;
  ApplyThreads();
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, d}));
  const float* in = x.data_as<float>();
  float* out = y.data_as<float>();
  const int64_t count = rows - begin;
  // One add per element (a batch-1 feature map: one thread, no team).
  const int threads = cpu::ThreadsFor(static_cast<double>(n) * count * d, num_threads_);
#pragma omp parallel for schedule(static) num_threads(threads)
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

StatusOr<Tensor> CpuBackend::SelectTokenImpl(const Tensor& x, int index) {
  const int64_t n = x.dim(0), t = x.dim(1), d = x.dim(2);
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, d}));
  for (int64_t b = 0; b < n; ++b) {
    std::memcpy(y.data_as<float>() + b * d, x.data_as<float>() + (b * t + index) * d,
                d * sizeof(float));
  }
  return y;
}

StatusOr<Tensor> CpuBackend::SelectTokensImpl(const Tensor& x, const std::vector<int32_t>& index) {
  const int64_t n = x.dim(0), t = x.dim(1), d = x.dim(2);
  ASSIGN_OR_RETURN(Tensor y, Allocate({n, d}));
  for (int64_t b = 0; b < n; ++b) {
    std::memcpy(y.data_as<float>() + b * d, x.data_as<float>() + (b * t + index[b]) * d,
                d * sizeof(float));
  }
  return y;
}

StatusOr<Tensor> CpuBackend::EmbedTokensImpl(const Tensor& table, const Tensor& pos,
                                             const std::vector<int32_t>& ids, int64_t batch,
                                             int64_t tokens) {
  const int64_t d = table.dim(1);
  ASSIGN_OR_RETURN(Tensor y, Allocate({batch, tokens, d}));
  const float* tab = table.data_as<float>();
  const float* p = pos.data_as<float>();
  float* out = y.data_as<float>();
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < tokens; ++t) {
      const float* row = tab + static_cast<int64_t>(ids[b * tokens + t]) * d;
      const float* pr = p + t * d;
      float* o = out + (b * tokens + t) * d;
      for (int64_t i = 0; i < d; ++i) o[i] = row[i] + pr[i];
    }
  }
  return y;
}

StatusOr<Tensor> CpuBackend::PrependTokensAddPosImpl(const Tensor& patches,
                                                     const Tensor* prefix_tokens, int64_t prefix,
                                                     const Tensor& pos,
                                                     bool pos_applies_to_prefix) {
  const int64_t n = patches.dim(0), p = patches.dim(1), d = patches.dim(2);
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

StatusOr<Tensor> CpuBackend::AddImpl(const Tensor& a, const Tensor& b) {
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

StatusOr<Tensor> CpuBackend::L2NormalizeImpl(const Tensor& x) {
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

Status CpuBackend::ToHostImpl(const Tensor& x, std::vector<float>* out) {
  out->assign(x.data_as<float>(), x.data_as<float>() + x.numel());
  return Status::Ok();
}

}  // namespace lookalike
