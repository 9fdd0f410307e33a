// CudaBackend: the Backend op set (models/backend.h) on one GPU, running the
// kernels of kernels/ on the backend's own CUDA stream.
//
// - Activations are f16 (default) or bf16 NHWC / NTD tensors in device memory;
//   every reduction, softmax and epilogue computes in fp32.
// - Weights are converted, reordered (kernels/weight_layout.h: conv OHWI rows
//   padded to 8; depthwise tap-major) and uploaded once by Prepare*(); biases stay fp32 (plus a
//   compute-dtype copy for cuBLASLt's bias epilogue).
// - Activation buffers come from a per-backend caching pool: a released
//   tensor's block goes back to a free list and is reused by later ops on the
//   same stream (stream order makes that safe), so after the first inference
//   at a batch size no cudaMalloc happens. A failed cudaMalloc first returns
//   the cached free blocks to the driver, then fails with RESOURCE_EXHAUSTED
//   naming the bytes.
// - Ops enqueue work and return; ToHost() synchronizes and reports errors of
//   kernels that failed asynchronously.
// - RunRecorded() records the forward pass into a CUDA graph per input shape
//   (its second run at that shape; the first runs eagerly) and replays it
//   afterwards: one launch instead of one per op. Graph activations live in
//   a pool of their own that eager work never touches; graphs run one at a
//   time on the stream, so they share it, except for each graph's input and
//   output buffers. A capture that fails (out of memory, say) leaves that
//   shape eager. Off with CudaBackendOptions::cuda_graphs = false or the
//   environment variable LOOKALIKE_CUDA_GRAPHS=0.
// - Argument checks are Backend's (models/backend.h); the ...Impl methods
//   here only enqueue work.
// - Not thread-safe (one backend per model replica / stream), as Backend says.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/backend.h"

namespace lookalike {

struct CudaBackendOptions {
  int device = 0;                             // CUDA device index
  DType dtype = DType::kF16;                  // activation / weight dtype: kF16 or kBF16
  size_t matmul_workspace_bytes = 32u << 20;  // cuBLASLt workspace
  bool cuda_graphs = true;                    // record RunRecorded() forwards as CUDA graphs
  int max_graphs = 16;                        // input shapes recorded at most; others run eagerly
};

class CudaBackend : public Backend {
 public:
  // FAILED_PRECONDITION when no CUDA device is usable or the device is older
  // than compute capability 8.0 (the kernels use bf16 mma.sync); NOT_FOUND
  // when `device` is out of range; INVALID_ARGUMENT for a dtype other than
  // f16 / bf16.
  static StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options);
  ~CudaBackend() override;

  std::string name() const override;
  DeviceKind device() const override { return DeviceKind::kCuda; }
  DType compute_dtype() const override;

  StatusOr<Tensor> RunRecorded(const Tensor& input, const ForwardFn& forward) override;

  // Host fp32 {shape} -> a device tensor in the compute dtype (tests, benchmarks).
  StatusOr<Tensor> Upload(const std::vector<int64_t>& shape, const float* data);
  // Blocks until the stream's work is done; reports asynchronous kernel errors.
  Status Synchronize();
  // Bytes held by the activation pool (in use + cached).
  size_t pool_bytes() const;
  // Bytes held for recorded graphs, the number of graphs, and why the last
  // capture failed ("" if none did).
  size_t graph_pool_bytes() const;
  size_t recorded_graphs() const;
  std::string last_graph_error() const;

  struct Impl;

 protected:
  StatusOr<LayerPtr> PrepareConvImpl(const ConvSpec& spec, const float* weight,
                                     const float* bias) override;
  StatusOr<LayerPtr> PrepareLinearImpl(int in_features, int out_features, const float* weight,
                                       const float* bias) override;
  StatusOr<LayerPtr> PrepareLayerNormImpl(int dim, const float* gamma, const float* beta,
                                          float eps) override;
  StatusOr<Tensor> ConstantImpl(const std::vector<int64_t>& shape, const float* data) override;
  StatusOr<Tensor> PreprocessImpl(const std::vector<ImageView>& images,
                                  const PreprocessSpec& spec) override;
  StatusOr<Tensor> Conv2dImpl(const PreparedLayer& conv, const Tensor& x, Activation act,
                              const Tensor* residual,
                              const std::vector<int64_t>& out_shape) override;
  StatusOr<Tensor> LinearImpl(const PreparedLayer& linear, const Tensor& x, Activation act,
                              const Tensor* residual,
                              const std::vector<int64_t>& out_shape) override;
  StatusOr<Tensor> LayerNormImpl(const PreparedLayer& norm, const Tensor& x) override;
  StatusOr<Tensor> AttentionImpl(const Tensor& qkv, int heads, bool causal) override;
  StatusOr<Tensor> MaxPool2dImpl(const Tensor& x, int kernel, int stride, int pad,
                                 const std::vector<int64_t>& out_shape) override;
  StatusOr<Tensor> MeanPoolImpl(const Tensor& x, int token_begin) override;
  StatusOr<Tensor> SelectTokenImpl(const Tensor& x, int index) override;
  // Runs the SelectToken kernel once per sequence.
  StatusOr<Tensor> SelectTokensImpl(const Tensor& x, const std::vector<int32_t>& index) override;
  // Uploads the ids on the stream, then the EmbedTokens kernel.
  StatusOr<Tensor> EmbedTokensImpl(const Tensor& table, const Tensor& pos,
                                   const std::vector<int32_t>& ids, int64_t batch,
                                   int64_t tokens) override;
  StatusOr<Tensor> PrependTokensAddPosImpl(const Tensor& patches, const Tensor* prefix_tokens,
                                           int64_t prefix, const Tensor& pos,
                                           bool pos_applies_to_prefix) override;
  StatusOr<Tensor> AddImpl(const Tensor& a, const Tensor& b) override;
  StatusOr<Tensor> L2NormalizeImpl(const Tensor& x) override;
  Status ToHostImpl(const Tensor& x, std::vector<float>* out) override;
  // ConvNeXt / Swin ops.
  StatusOr<Tensor> GlobalResponseNormImpl(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          float eps) override;
  StatusOr<Tensor> WindowPartitionImpl(const Tensor& x, int window, int shift) override;
  StatusOr<Tensor> WindowMergeImpl(const Tensor& windows, int height, int width, int window,
                                   int shift) override;
  StatusOr<Tensor> AttentionWithBiasImpl(const Tensor& qkv, int heads, const Tensor& bias) override;
  // MobileNet, VGG, DenseNet, GoogLeNet / Inception ops (kernels/pool2d.h,
  // kernels/channels.h).
  StatusOr<Tensor> Pool2dImpl(const Tensor& x, const PoolSpec& spec,
                              const std::vector<int64_t>& out_shape) override;
  StatusOr<Tensor> ScaleChannelsImpl(const Tensor& x, const Tensor& scale) override;
  StatusOr<Tensor> ChannelAffineImpl(const Tensor& x, const Tensor& scale, const Tensor& shift,
                                     Activation act) override;
  StatusOr<Tensor> ConcatChannelsImpl(const std::vector<Tensor>& parts,
                                      const std::vector<int64_t>& out_shape) override;
  Status WriteChannelsImpl(const Tensor& dst, const Tensor& src, int offset) override;

 private:
  explicit CudaBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace lookalike
