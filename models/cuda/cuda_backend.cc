#include "models/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "common/device.h"
#include "common/half.h"
#include "kernels/attention.h"
#include "kernels/channels.h"
#include "kernels/conv.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/linear.h"
#include "kernels/pool2d.h"
#include "kernels/preprocess.h"
#include "kernels/weight_layout.h"
#include "kernels/window_attention.h"
#include "kernels/window_ops.h"
#include "models/backend_factory.h"

namespace lookalike {
namespace {

std::string Bytes(size_t n) { return std::to_string(n) + " bytes"; }

// A cudaMalloc block freed when the last owner goes (weights, constants).
StatusOr<std::shared_ptr<void>> DeviceAlloc(size_t bytes, const std::string& what) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return ResourceExhaustedError("cuda: cudaMalloc of " + Bytes(bytes) + " for " + what +
                                  " failed: " + cudaGetErrorString(err));
  }
  return std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
}

// Host floats -> device buffer of `type` (synchronous copy: preparation only).
StatusOr<std::shared_ptr<void>> UploadAs(const float* data, size_t n, DType type,
                                         const std::string& what) {
  ASSIGN_OR_RETURN(std::shared_ptr<void> buf, DeviceAlloc(n * DTypeSize(type), what));
  cudaError_t err;
  if (type == DType::kF32) {
    err = cudaMemcpy(buf.get(), data, n * 4, cudaMemcpyHostToDevice);
  } else {
    std::vector<uint16_t> bits(n);
    for (size_t i = 0; i < n; ++i) {
      bits[i] = type == DType::kBF16 ? FloatToBf16(data[i]) : FloatToHalf(data[i]);
    }
    err = cudaMemcpy(buf.get(), bits.data(), n * 2, cudaMemcpyHostToDevice);
  }
  RETURN_IF_ERROR(kernels::CudaStatus(err, "cuda: uploading " + what));
  // A pageable host-to-device cudaMemcpy may return before its DMA has landed,
  // and the backend's stream does not wait for the legacy stream: wait here.
  RETURN_IF_ERROR(kernels::CudaStatus(cudaStreamSynchronize(nullptr), "cuda: uploading " + what));
  return buf;
}

// Caching allocator for activations. Blocks are rounded up (512 B, then 2 MiB
// above 4 MiB) and reused best-fit within 2x of the request.
class DevicePool : public std::enable_shared_from_this<DevicePool> {
 public:
  // release_on_oom: on a failed cudaMalloc, synchronize and return the cached
  // blocks to the driver, then retry. Off for the pool of recorded graphs:
  // its blocks are baked into graphs, and it is used while capturing, where
  // no synchronization is allowed.
  explicit DevicePool(bool release_on_oom = true) : release_on_oom_(release_on_oom) {}
  ~DevicePool() {
    for (auto& kv : free_) cudaFree(kv.second);
  }

  StatusOr<std::shared_ptr<void>> Get(size_t bytes) {
    const size_t size = Round(bytes);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= 2 * size) {
        p = it->second;
        const size_t block = it->first;
        free_.erase(it);
        return Wrap(p, block);
      }
    }
    cudaError_t err = cudaMalloc(&p, size);
    if (err != cudaSuccess && release_on_oom_) {
      cudaGetLastError();
      ReleaseCached();
      err = cudaMalloc(&p, size);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      return ResourceExhaustedError("cuda: cudaMalloc of " + Bytes(size) +
                                    " for activations failed (" + cudaGetErrorString(err) +
                                    "); pool holds " + Bytes(total_));
    }
    std::lock_guard<std::mutex> lock(mu_);
    total_ += size;
    return Wrap(p, size);
  }

  size_t total() const {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }

 private:
  static size_t Round(size_t b) {
    if (b == 0) b = 1;
    if (b > (4u << 20)) return (b + (2u << 20) - 1) / (2u << 20) * (2u << 20);
    return (b + 511) / 512 * 512;
  }
  std::shared_ptr<void> Wrap(void* p, size_t size) {
    std::shared_ptr<DevicePool> self = shared_from_this();
    return std::shared_ptr<void>(p, [self, size](void* q) {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->free_.emplace(size, q);
    });
  }
  void ReleaseCached() {
    cudaStreamSynchronize(nullptr);
    std::lock_guard<std::mutex> lock(mu_);
    cudaDeviceSynchronize();
    for (auto& kv : free_) {
      cudaFree(kv.second);
      total_ -= kv.first;
    }
    free_.clear();
  }

  const bool release_on_oom_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t total_ = 0;
};

// One recorded forward pass: a CUDA graph and the tensors it reads and writes.
struct RecordedGraph {
  cudaGraphExec_t exec = nullptr;
  Tensor input;   // the graph reads its input here (copied in before each launch)
  Tensor output;  // and leaves its result here
};

struct ConvLayer : PreparedLayer {
  ConvSpec spec;
  bool depthwise = false;
  int64_t ldw = 0;
  std::shared_ptr<void> weight;  // compute dtype
  std::shared_ptr<void> bias;    // fp32 or null
};

struct LinearLayer : PreparedLayer {
  int in = 0, out = 0;
  std::shared_ptr<void> weight;    // {out, in} compute dtype
  std::shared_ptr<void> bias;      // {out} compute dtype (cuBLASLt epilogue) or null
  std::shared_ptr<void> bias_f32;  // {out} fp32 or null
};

struct NormLayer : PreparedLayer {
  int dim = 0;
  float eps = 0.f;
  std::shared_ptr<void> gamma, beta;  // fp32
};

}  // namespace

struct CudaBackend::Impl {
  int device = 0;
  DType dtype = DType::kF16;
  cudaStream_t stream = nullptr;
  std::shared_ptr<DevicePool> pool = std::make_shared<DevicePool>();
  std::unique_ptr<kernels::LinearRunner> linear;

  // CUDA Graphs (RunRecorded). Graph activations come from graph_pool, never
  // from `pool`, so eager work can neither clobber nor free them; graphs run
  // one at a time on `stream`, so they share graph_pool's blocks, except for
  // each graph's input and output, which the graph keeps.
  bool graphs_enabled = true;
  size_t max_graphs = 16;
  std::shared_ptr<DevicePool> graph_pool = std::make_shared<DevicePool>(/*release_on_oom=*/false);
  DevicePool* active_pool = pool.get();         // graph_pool while capturing
  std::map<std::string, RecordedGraph> graphs;  // by input shape and dtype
  std::map<std::string, int> eager_runs;        // shapes seen, not yet recorded
  std::set<std::string> unrecordable;           // capture failed: always eager
  std::string last_graph_error;

  ~Impl() {
    cudaSetDevice(device);
    if (stream) {
      cudaStreamSynchronize(stream);
      for (auto& kv : graphs) cudaGraphExecDestroy(kv.second.exec);
      cudaStreamDestroy(stream);
    }
  }

  Status Activate() { return kernels::CudaStatus(cudaSetDevice(device), "cudaSetDevice"); }

  StatusOr<Tensor> NewTensor(std::vector<int64_t> shape, DType type) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    ASSIGN_OR_RETURN(std::shared_ptr<void> block,
                     active_pool->Get(static_cast<size_t>(n) * DTypeSize(type)));
    void* p = block.get();
    return Tensor(std::move(shape), type, DeviceKind::kCuda, p, std::move(block));
  }
  StatusOr<Tensor> NewTensor(std::vector<int64_t> shape) {
    return NewTensor(std::move(shape), dtype);
  }
};

namespace {

// Captures forward(copy of input) into a CUDA graph without running it.
// Activations of the capture come from the graph pool; the graph keeps its
// input and output tensors. On failure the stream is left out of capture.
StatusOr<RecordedGraph> RecordForward(CudaBackend::Impl& m, const Tensor& input,
                                      const Backend::ForwardFn& forward);

}  // namespace

CudaBackend::CudaBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaBackend::~CudaBackend() = default;

StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(const CudaBackendOptions& options) {
  if (options.dtype != DType::kF16 && options.dtype != DType::kBF16) {
    return InvalidArgumentError(
        std::string("cuda backend: compute dtype must be f16 or bf16, got ") +
        DTypeName(options.dtype));
  }
  const int count = CudaDeviceCount();
  if (count == 0) return FailedPreconditionError("cuda backend: no usable CUDA device");
  if (options.device < 0 || options.device >= count) {
    return NotFoundError("cuda backend: device cuda:" + std::to_string(options.device) +
                         " not present (" + std::to_string(count) + " device(s))");
  }
  auto impl = std::make_unique<Impl>();
  impl->device = options.device;
  impl->dtype = options.dtype;
  RETURN_IF_ERROR(impl->Activate());
  cudaDeviceProp prop{};
  RETURN_IF_ERROR(kernels::CudaStatus(cudaGetDeviceProperties(&prop, options.device),
                                      "cudaGetDeviceProperties"));
  if (prop.major < 8) {
    return FailedPreconditionError("cuda backend: " + std::string(prop.name) +
                                   " has compute capability " + std::to_string(prop.major) + "." +
                                   std::to_string(prop.minor) + "; 8.0 or newer is required");
  }
  RETURN_IF_ERROR(kernels::CudaStatus(
      cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  ASSIGN_OR_RETURN(impl->linear, kernels::LinearRunner::Create(options.matmul_workspace_bytes));
  impl->graphs_enabled = options.cuda_graphs;
  if (const char* env = std::getenv("LOOKALIKE_CUDA_GRAPHS");
      env != nullptr && std::strcmp(env, "0") == 0) {
    impl->graphs_enabled = false;
  }
  impl->max_graphs = static_cast<size_t>(std::max(0, options.max_graphs));
  return std::unique_ptr<CudaBackend>(new CudaBackend(std::move(impl)));
}

std::string CudaBackend::name() const { return "cuda:" + std::to_string(impl_->device); }
DType CudaBackend::compute_dtype() const { return impl_->dtype; }
size_t CudaBackend::pool_bytes() const { return impl_->pool->total(); }
size_t CudaBackend::graph_pool_bytes() const { return impl_->graph_pool->total(); }
size_t CudaBackend::recorded_graphs() const { return impl_->graphs.size(); }

// ---- recorded execution (CUDA Graphs) ------------------------------------------

namespace {

StatusOr<RecordedGraph> RecordForward(CudaBackend::Impl& m, const Tensor& input,
                                      const Backend::ForwardFn& forward) {
  RecordedGraph g;
  m.active_pool = m.graph_pool.get();
  StatusOr<Tensor> in = m.NewTensor(input.shape(), input.dtype());
  m.active_pool = m.pool.get();
  if (!in.ok()) return in.status();
  g.input = std::move(in).value();
  RETURN_IF_ERROR(kernels::CudaStatus(
      cudaStreamBeginCapture(m.stream, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture"));
  m.active_pool = m.graph_pool.get();
  StatusOr<Tensor> out = forward(g.input);
  m.active_pool = m.pool.get();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(m.stream, &graph);
  if (!out.ok() || ended != cudaSuccess) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    if (!out.ok()) return out.status();
    return kernels::CudaStatus(ended, "cudaStreamEndCapture");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess) {
    cudaGetLastError();
    return kernels::CudaStatus(made, "cudaGraphInstantiate");
  }
  g.exec = exec;
  g.output = std::move(out).value();
  return g;
}

}  // namespace

StatusOr<Tensor> CudaBackend::RunRecorded(const Tensor& input, const ForwardFn& forward) {
  RETURN_IF_ERROR(impl_->Activate());
  Impl& m = *impl_;
  if (!m.graphs_enabled || input.empty() || input.device() != DeviceKind::kCuda) {
    return forward(input);
  }
  const std::string key = input.ShapeString() + " " + DTypeName(input.dtype());
  auto it = m.graphs.find(key);
  if (it == m.graphs.end()) {
    // The first run at a shape is eager: kernel modules load and cuBLASLt
    // picks its algorithms outside of any capture. The second is recorded.
    if (m.unrecordable.count(key) != 0 || m.graphs.size() >= m.max_graphs ||
        m.eager_runs[key]++ == 0) {
      return forward(input);
    }
    StatusOr<RecordedGraph> recorded = RecordForward(m, input, forward);
    m.eager_runs.erase(key);
    if (!recorded.ok()) {
      // Out of memory may pass: try again after another eager run. Anything
      // else (an op that cannot be captured) keeps this shape eager for good.
      // Either way the result is the same.
      if (recorded.status().code() != StatusCode::kResourceExhausted) m.unrecordable.insert(key);
      m.last_graph_error = recorded.status().ToString();
      return forward(input);
    }
    it = m.graphs.emplace(key, std::move(recorded).value()).first;
  }
  RecordedGraph& g = it->second;
  RETURN_IF_ERROR(kernels::CudaStatus(cudaMemcpyAsync(g.input.data(), input.data(), input.nbytes(),
                                                      cudaMemcpyDeviceToDevice, m.stream),
                                      "RunRecorded: copying the input"));
  RETURN_IF_ERROR(kernels::CudaStatus(cudaGraphLaunch(g.exec, m.stream), "cudaGraphLaunch"));
  return g.output;
}

std::string CudaBackend::last_graph_error() const { return impl_->last_graph_error; }

// ---- preparation -------------------------------------------------------------

StatusOr<LayerPtr> CudaBackend::PrepareConvImpl(const ConvSpec& spec, const float* weight,
                                                const float* bias) {
  RETURN_IF_ERROR(impl_->Activate());
  auto layer = std::make_unique<ConvLayer>();
  layer->spec = spec;
  const int kh = spec.kernel_h, kw = spec.kernel_w;
  if (spec.groups == 1) {
    layer->ldw = kernels::ConvWeightRowStride(static_cast<int64_t>(kh) * kw * spec.in_channels);
    const std::vector<float> ohwi =
        kernels::ConvWeightToOhwi(weight, spec.out_channels, spec.in_channels, kh, kw, layer->ldw);
    ASSIGN_OR_RETURN(layer->weight,
                     UploadAs(ohwi.data(), ohwi.size(), impl_->dtype, "conv weight"));
  } else if (spec.groups == spec.in_channels && spec.groups == spec.out_channels) {
    layer->depthwise = true;
    const std::vector<float> taps =
        kernels::DepthwiseWeightToTapMajor(weight, spec.in_channels, kh, kw);
    ASSIGN_OR_RETURN(layer->weight,
                     UploadAs(taps.data(), taps.size(), impl_->dtype, "depthwise weight"));
  } else {
    return UnimplementedError("PrepareConv: groups " + std::to_string(spec.groups) +
                              " (only 1 and depthwise are supported on cuda)");
  }
  if (bias != nullptr) {
    ASSIGN_OR_RETURN(layer->bias, UploadAs(bias, spec.out_channels, DType::kF32, "conv bias"));
  }
  return LayerPtr(std::move(layer));
}

StatusOr<LayerPtr> CudaBackend::PrepareLinearImpl(int in_features, int out_features,
                                                  const float* weight, const float* bias) {
  RETURN_IF_ERROR(impl_->Activate());
  auto layer = std::make_unique<LinearLayer>();
  layer->in = in_features;
  layer->out = out_features;
  ASSIGN_OR_RETURN(layer->weight, UploadAs(weight, static_cast<size_t>(in_features) * out_features,
                                           impl_->dtype, "linear weight"));
  if (bias != nullptr) {
    ASSIGN_OR_RETURN(layer->bias, UploadAs(bias, out_features, impl_->dtype, "linear bias"));
    ASSIGN_OR_RETURN(layer->bias_f32, UploadAs(bias, out_features, DType::kF32, "linear bias"));
  }
  return LayerPtr(std::move(layer));
}

StatusOr<LayerPtr> CudaBackend::PrepareLayerNormImpl(int dim, const float* gamma, const float* beta,
                                                     float eps) {
  RETURN_IF_ERROR(impl_->Activate());
  auto layer = std::make_unique<NormLayer>();
  layer->dim = dim;
  layer->eps = eps;
  ASSIGN_OR_RETURN(layer->gamma, UploadAs(gamma, dim, DType::kF32, "layer norm gamma"));
  ASSIGN_OR_RETURN(layer->beta, UploadAs(beta, dim, DType::kF32, "layer norm beta"));
  return LayerPtr(std::move(layer));
}

StatusOr<Tensor> CudaBackend::ConstantImpl(const std::vector<int64_t>& shape, const float* data) {
  RETURN_IF_ERROR(impl_->Activate());
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  ASSIGN_OR_RETURN(std::shared_ptr<void> buf, UploadAs(data, n, impl_->dtype, "constant"));
  void* p = buf.get();
  return Tensor(shape, impl_->dtype, DeviceKind::kCuda, p, std::move(buf));
}

StatusOr<Tensor> CudaBackend::Upload(const std::vector<int64_t>& shape, const float* data) {
  return Constant(shape, data);
}

Status CudaBackend::Synchronize() {
  RETURN_IF_ERROR(impl_->Activate());
  return kernels::CudaStatus(cudaStreamSynchronize(impl_->stream), "cuda: stream execution");
}

// ---- ops ------------------------------------------------------------------------

StatusOr<Tensor> CudaBackend::PreprocessImpl(const std::vector<ImageView>& images,
                                             const PreprocessSpec& spec) {
  RETURN_IF_ERROR(impl_->Activate());
  size_t total = 0;
  for (const ImageView& im : images) {
    total += (static_cast<size_t>(im.width) * 3 * im.height + 15) / 16 * 16;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<void> pixels, impl_->pool->Get(total));
  std::vector<kernels::DeviceImage> descs(images.size());
  size_t offset = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageView& im = images[i];
    uint8_t* dst = static_cast<uint8_t*>(pixels.get()) + offset;
    // Pageable source: the call returns once the pixels are staged.
    RETURN_IF_ERROR(
        kernels::CudaStatus(cudaMemcpy2DAsync(dst, static_cast<size_t>(im.width) * 3, im.data,
                                              im.stride_bytes, static_cast<size_t>(im.width) * 3,
                                              im.height, cudaMemcpyHostToDevice, impl_->stream),
                            "Preprocess: uploading image " + std::to_string(i)));
    descs[i] = {dst, im.width, im.height, im.width * 3};
    offset += (static_cast<size_t>(im.width) * 3 * im.height + 15) / 16 * 16;
  }
  kernels::PreprocessParams p;
  p.type = impl_->dtype;
  p.images = descs.data();
  p.count = static_cast<int>(descs.size());
  p.resize_shorter = spec.resize_shorter;
  p.crop_h = spec.crop_height;
  p.crop_w = spec.crop_width;
  p.bicubic = spec.interpolation == Interpolation::kBicubic;
  p.antialias = spec.antialias;
  for (int c = 0; c < 3; ++c) {
    p.mean[c] = spec.mean[c];
    p.std[c] = spec.std[c];
  }
  ASSIGN_OR_RETURN(size_t ws_bytes, kernels::PreprocessWorkspaceBytes(p));
  ASSIGN_OR_RETURN(std::shared_ptr<void> ws, impl_->pool->Get(ws_bytes));
  ASSIGN_OR_RETURN(Tensor out, impl_->NewTensor({static_cast<int64_t>(images.size()),
                                                 spec.crop_height, spec.crop_width, 3}));
  p.workspace = ws.get();
  p.workspace_bytes = ws_bytes;
  p.output = out.data();
  RETURN_IF_ERROR(kernels::Preprocess(p, impl_->stream));
  return out;  // `pixels` and `ws` return to the pool; later ops are stream-ordered after this one
}

StatusOr<Tensor> CudaBackend::Conv2dImpl(const PreparedLayer& layer, const Tensor& x,
                                         Activation act, const Tensor* residual,
                                         const std::vector<int64_t>& out_shape) {
  RETURN_IF_ERROR(impl_->Activate());
  const auto* conv = static_cast<const ConvLayer*>(&layer);
  const ConvSpec& s = conv->spec;
  kernels::ConvGeometry g;
  g.batch = static_cast<int>(x.dim(0));
  g.in_h = static_cast<int>(x.dim(1));
  g.in_w = static_cast<int>(x.dim(2));
  g.in_channels = s.in_channels;
  g.out_channels = s.out_channels;
  g.kernel_h = s.kernel_h;
  g.kernel_w = s.kernel_w;
  g.stride_h = s.stride_h;
  g.stride_w = s.stride_w;
  g.pad_top = s.pad_h;
  g.pad_left = s.pad_w;
  g.pad_bottom = s.pad_h_end;
  g.pad_right = s.pad_w_end;
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(out_shape));
  if (conv->depthwise) {
    kernels::DepthwiseParams p;
    p.type = impl_->dtype;
    p.geo = g;
    p.input = x.data();
    p.weight = conv->weight.get();
    p.bias = static_cast<const float*>(conv->bias.get());
    p.residual = residual ? residual->data() : nullptr;
    p.output = y.data();
    p.act = act;
    RETURN_IF_ERROR(kernels::DepthwiseConv2d(p, impl_->stream));
  } else {
    kernels::ConvParams p;
    p.type = impl_->dtype;
    p.geo = g;
    p.input = x.data();
    p.weight = conv->weight.get();
    p.weight_row_stride = conv->ldw;
    p.bias = static_cast<const float*>(conv->bias.get());
    p.residual = residual ? residual->data() : nullptr;
    p.output = y.data();
    p.act = act;
    RETURN_IF_ERROR(kernels::Conv2d(p, impl_->stream));
  }
  return y;
}

StatusOr<Tensor> CudaBackend::LinearImpl(const PreparedLayer& layer, const Tensor& x,
                                         Activation act, const Tensor* residual,
                                         const std::vector<int64_t>& out_shape) {
  RETURN_IF_ERROR(impl_->Activate());
  const auto* lin = static_cast<const LinearLayer*>(&layer);
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(out_shape));
  kernels::LinearParams p;
  p.type = impl_->dtype;
  p.x = x.data();
  p.weight = lin->weight.get();
  p.bias = lin->bias.get();
  p.bias_f32 = static_cast<const float*>(lin->bias_f32.get());
  p.residual = residual ? residual->data() : nullptr;
  p.y = y.data();
  p.rows = x.numel() / lin->in;
  p.in_features = lin->in;
  p.out_features = lin->out;
  p.act = act;
  RETURN_IF_ERROR(impl_->linear->Run(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::LayerNormImpl(const PreparedLayer& layer, const Tensor& x) {
  RETURN_IF_ERROR(impl_->Activate());
  const auto* norm = static_cast<const NormLayer*>(&layer);
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(x.shape()));
  kernels::LayerNormParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.output = y.data();
  p.gamma = static_cast<const float*>(norm->gamma.get());
  p.beta = static_cast<const float*>(norm->beta.get());
  p.rows = x.numel() / norm->dim;
  p.dim = norm->dim;
  p.eps = norm->eps;
  RETURN_IF_ERROR(kernels::LayerNorm(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::AttentionImpl(const Tensor& qkv, int heads, bool causal) {
  RETURN_IF_ERROR(impl_->Activate());
  const int64_t d = qkv.dim(2) / 3;
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({qkv.dim(0), qkv.dim(1), d}));
  kernels::AttentionParams p;
  p.type = impl_->dtype;
  p.qkv = qkv.data();
  p.out = y.data();
  p.batch = static_cast<int>(qkv.dim(0));
  p.seq = static_cast<int>(qkv.dim(1));
  p.heads = heads;
  p.head_dim = static_cast<int>(d / heads);
  p.qkv_row_stride = 3 * d;
  p.out_row_stride = d;
  p.causal = causal;
  RETURN_IF_ERROR(kernels::Attention(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::MaxPool2dImpl(const Tensor& x, int kernel, int stride, int pad,
                                            const std::vector<int64_t>& out_shape) {
  PoolSpec s;  // the general pooling kernel (kernels/pool2d.h)
  s.kind = PoolSpec::Kind::kMax;
  s.kernel_h = s.kernel_w = kernel;
  s.stride_h = s.stride_w = stride;
  s.pad_h = s.pad_w = pad;
  return Pool2dImpl(x, s, out_shape);
}

StatusOr<Tensor> CudaBackend::MeanPoolImpl(const Tensor& x, int token_begin) {
  RETURN_IF_ERROR(impl_->Activate());
  const int64_t tokens = x.dim(1);
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({x.dim(0), x.dim(-1)}));
  kernels::MeanPoolParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.output = y.data();
  p.batch = static_cast<int>(x.dim(0));
  p.tokens = static_cast<int>(tokens);
  p.channels = static_cast<int>(x.dim(-1));
  p.token_begin = token_begin;
  RETURN_IF_ERROR(kernels::MeanPool(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::SelectTokenImpl(const Tensor& x, int index) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({x.dim(0), x.dim(2)}));
  kernels::SelectTokenParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.output = y.data();
  p.batch = static_cast<int>(x.dim(0));
  p.tokens = static_cast<int>(x.dim(1));
  p.dim = static_cast<int>(x.dim(2));
  p.index = index;
  RETURN_IF_ERROR(kernels::SelectToken(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::SelectTokensImpl(const Tensor& x, const std::vector<int32_t>& index) {
  RETURN_IF_ERROR(impl_->Activate());
  const int64_t t = x.dim(1), d = x.dim(2);
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({x.dim(0), d}));
  const size_t row_bytes = static_cast<size_t>(d) * DTypeSize(x.dtype());
  for (int64_t b = 0; b < x.dim(0); ++b) {
    kernels::SelectTokenParams p;
    p.type = impl_->dtype;
    p.input = static_cast<const char*>(x.data()) + static_cast<size_t>(b * t) * row_bytes;
    p.output = static_cast<char*>(y.data()) + static_cast<size_t>(b) * row_bytes;
    p.batch = 1;
    p.tokens = static_cast<int>(t);
    p.dim = static_cast<int>(d);
    p.index = index[b];
    RETURN_IF_ERROR(kernels::SelectToken(p, impl_->stream));
  }
  return y;
}

StatusOr<Tensor> CudaBackend::EmbedTokensImpl(const Tensor& table, const Tensor& pos,
                                              const std::vector<int32_t>& ids, int64_t batch,
                                              int64_t tokens) {
  RETURN_IF_ERROR(impl_->Activate());
  const int64_t d = table.dim(1);
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({batch, tokens, d}));
  // The ids go up with the stream; from pageable memory cudaMemcpyAsync
  // returns once they are staged, so `ids` may go away after it.
  const size_t id_bytes = ids.size() * sizeof(int32_t);
  ASSIGN_OR_RETURN(std::shared_ptr<void> device_ids, impl_->active_pool->Get(id_bytes));
  RETURN_IF_ERROR(kernels::CudaStatus(cudaMemcpyAsync(device_ids.get(), ids.data(), id_bytes,
                                                      cudaMemcpyHostToDevice, impl_->stream),
                                      "EmbedTokens: uploading ids"));
  kernels::EmbedTokensParams p;
  p.type = impl_->dtype;
  p.table = table.data();
  p.pos = pos.data();
  p.ids = static_cast<const int32_t*>(device_ids.get());
  p.output = y.data();
  p.batch = static_cast<int>(batch);
  p.tokens = static_cast<int>(tokens);
  p.dim = static_cast<int>(d);
  p.vocab = static_cast<int>(table.dim(0));
  RETURN_IF_ERROR(kernels::EmbedTokens(p, impl_->stream));
  return y;  // device_ids returns to the pool; later users are stream-ordered after this kernel
}

StatusOr<Tensor> CudaBackend::PrependTokensAddPosImpl(const Tensor& patches,
                                                      const Tensor* prefix_tokens, int64_t prefix,
                                                      const Tensor& pos,
                                                      bool pos_applies_to_prefix) {
  RETURN_IF_ERROR(impl_->Activate());
  const int64_t d = patches.dim(2);
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({patches.dim(0), prefix + patches.dim(1), d}));
  kernels::PrependTokensParams p;
  p.type = impl_->dtype;
  p.patches = patches.data();
  p.prefix_tokens = prefix > 0 ? prefix_tokens->data() : nullptr;
  p.pos = pos.data();
  p.output = y.data();
  p.batch = static_cast<int>(patches.dim(0));
  p.num_patches = static_cast<int>(patches.dim(1));
  p.prefix = static_cast<int>(prefix);
  p.dim = static_cast<int>(d);
  p.pos_applies_to_prefix = pos_applies_to_prefix;
  RETURN_IF_ERROR(kernels::PrependTokensAddPos(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::AddImpl(const Tensor& a, const Tensor& b) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(a.shape()));
  kernels::AddParams p;
  p.type = impl_->dtype;
  p.a = a.data();
  p.b = b.data();
  p.out = y.data();
  p.n = a.numel();
  RETURN_IF_ERROR(kernels::Add(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::L2NormalizeImpl(const Tensor& x) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(x.shape()));
  kernels::L2NormalizeParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.output = y.data();
  p.rows = x.dim(0);
  p.dim = static_cast<int>(x.dim(1));
  RETURN_IF_ERROR(kernels::L2Normalize(p, impl_->stream));
  return y;
}

// ---- ConvNeXt / Swin ops ---------------------------------------------------------

StatusOr<Tensor> CudaBackend::GlobalResponseNormImpl(const Tensor& x, const Tensor& gamma,
                                                     const Tensor& beta, float eps) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(x.shape()));
  ASSIGN_OR_RETURN(Tensor work, impl_->NewTensor({x.dim(0), x.dim(3)}, DType::kF32));
  kernels::GlobalResponseNormParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.gamma = gamma.data();
  p.beta = beta.data();
  p.output = y.data();
  p.workspace = work.data_as<float>();
  p.batch = static_cast<int>(x.dim(0));
  p.pixels = static_cast<int>(x.dim(1) * x.dim(2));
  p.channels = static_cast<int>(x.dim(3));
  p.eps = eps;
  RETURN_IF_ERROR(kernels::GlobalResponseNorm(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::WindowPartitionImpl(const Tensor& x, int window, int shift) {
  RETURN_IF_ERROR(impl_->Activate());
  const int64_t h = x.dim(1), w = x.dim(2);
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({x.dim(0) * (h / window) * (w / window),
                                               static_cast<int64_t>(window) * window, x.dim(3)}));
  kernels::WindowShuffleParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.output = y.data();
  p.batch = static_cast<int>(x.dim(0));
  p.height = static_cast<int>(h);
  p.width = static_cast<int>(w);
  p.channels = static_cast<int>(x.dim(3));
  p.window = window;
  p.shift = shift;
  p.to_windows = true;
  RETURN_IF_ERROR(kernels::WindowShuffle(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::WindowMergeImpl(const Tensor& windows, int height, int width,
                                              int window, int shift) {
  RETURN_IF_ERROR(impl_->Activate());
  const int64_t n = windows.dim(0) / ((height / window) * (width / window));
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({n, height, width, windows.dim(2)}));
  kernels::WindowShuffleParams p;
  p.type = impl_->dtype;
  p.input = windows.data();
  p.output = y.data();
  p.batch = static_cast<int>(n);
  p.height = height;
  p.width = width;
  p.channels = static_cast<int>(windows.dim(2));
  p.window = window;
  p.shift = shift;
  p.to_windows = false;
  RETURN_IF_ERROR(kernels::WindowShuffle(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::AttentionWithBiasImpl(const Tensor& qkv, int heads,
                                                    const Tensor& bias) {
  RETURN_IF_ERROR(impl_->Activate());
  const int64_t d = qkv.dim(2) / 3;
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({qkv.dim(0), qkv.dim(1), d}));
  kernels::WindowAttentionParams p;
  p.type = impl_->dtype;
  p.qkv = qkv.data();
  p.bias = bias.data();
  p.out = y.data();
  p.batch = static_cast<int>(qkv.dim(0));
  p.seq = static_cast<int>(qkv.dim(1));
  p.heads = heads;
  p.head_dim = static_cast<int>(d / heads);
  p.groups = static_cast<int>(bias.dim(0));
  RETURN_IF_ERROR(kernels::WindowAttention(p, impl_->stream));
  return y;
}

Status CudaBackend::ToHostImpl(const Tensor& x, std::vector<float>* out) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor f, impl_->NewTensor(x.shape(), DType::kF32));
  kernels::ConvertParams p;
  p.src_type = x.dtype();
  p.dst_type = DType::kF32;
  p.src = x.data();
  p.dst = f.data();
  p.n = x.numel();
  RETURN_IF_ERROR(kernels::Convert(p, impl_->stream));
  out->resize(static_cast<size_t>(x.numel()));
  RETURN_IF_ERROR(kernels::CudaStatus(
      cudaMemcpyAsync(out->data(), f.data(), f.nbytes(), cudaMemcpyDeviceToHost, impl_->stream),
      "ToHost: copy to host"));
  return kernels::CudaStatus(cudaStreamSynchronize(impl_->stream),
                             "ToHost: executing the queued CUDA work");
}

// ---- MobileNet, VGG, DenseNet, GoogLeNet / Inception ops ---------------------------

StatusOr<Tensor> CudaBackend::Pool2dImpl(const Tensor& x, const PoolSpec& s,
                                         const std::vector<int64_t>& out_shape) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(out_shape));
  kernels::Pool2dParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.output = y.data();
  p.batch = static_cast<int>(x.dim(0));
  p.in_h = static_cast<int>(x.dim(1));
  p.in_w = static_cast<int>(x.dim(2));
  p.channels = static_cast<int>(x.dim(3));
  p.out_h = static_cast<int>(out_shape[1]);
  p.out_w = static_cast<int>(out_shape[2]);
  p.kernel_h = s.kernel_h;
  p.kernel_w = s.kernel_w;
  p.stride_h = s.stride_h;
  p.stride_w = s.stride_w;
  p.pad_h = s.pad_h;
  p.pad_w = s.pad_w;
  p.average = s.kind == PoolSpec::Kind::kAvg;
  p.count_include_pad = s.count_include_pad;
  RETURN_IF_ERROR(kernels::Pool2d(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::ScaleChannelsImpl(const Tensor& x, const Tensor& scale) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(x.shape()));
  kernels::ScaleChannelsParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.scale = scale.data();
  p.output = y.data();
  p.batch = static_cast<int>(x.dim(0));
  p.pixels = x.dim(1) * x.dim(2);
  p.channels = static_cast<int>(x.dim(3));
  RETURN_IF_ERROR(kernels::ScaleChannels(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::ChannelAffineImpl(const Tensor& x, const Tensor& scale,
                                                const Tensor& shift, Activation act) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor({x.dim(0), x.dim(1), x.dim(2), scale.dim(0)}));
  kernels::ChannelAffineParams p;
  p.type = impl_->dtype;
  p.input = x.data();
  p.scale = scale.data();
  p.shift = shift.data();
  p.output = y.data();
  p.pixels = x.dim(0) * x.dim(1) * x.dim(2);
  p.channels = static_cast<int>(scale.dim(0));
  p.in_stride = static_cast<int>(x.dim(3));
  p.act = act;
  RETURN_IF_ERROR(kernels::ChannelAffine(p, impl_->stream));
  return y;
}

StatusOr<Tensor> CudaBackend::ConcatChannelsImpl(const std::vector<Tensor>& parts,
                                                 const std::vector<int64_t>& out_shape) {
  RETURN_IF_ERROR(impl_->Activate());
  ASSIGN_OR_RETURN(Tensor y, impl_->NewTensor(out_shape));
  int offset = 0;
  for (const Tensor& part : parts) {
    RETURN_IF_ERROR(WriteChannelsImpl(y, part, offset));
    offset += static_cast<int>(part.dim(3));
  }
  return y;
}

Status CudaBackend::WriteChannelsImpl(const Tensor& dst, const Tensor& src, int offset) {
  RETURN_IF_ERROR(impl_->Activate());
  kernels::WriteChannelsParams p;
  p.type = impl_->dtype;
  p.src = src.data();
  p.dst = dst.data();
  p.pixels = src.dim(0) * src.dim(1) * src.dim(2);
  p.channels = static_cast<int>(src.dim(3));
  p.dst_stride = static_cast<int>(dst.dim(3));
  p.offset = offset;
  return kernels::WriteChannels(p, impl_->stream);
}

// ---- factory hooks (models/backend_factory.h) ---------------------------------------

StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device_index, DType dtype) {
  CudaBackendOptions options;
  options.device = device_index;
  options.dtype = dtype;
  ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> backend, CudaBackend::Create(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace lookalike
