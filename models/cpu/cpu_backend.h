// CpuBackend: the embedded default backend and the reference the CUDA
// backend is tested against.
//
// All activations are fp32 on the host, dense and row-major in the layouts of
// models/tensor.h (NHWC feature maps, NTD token sequences, ND vectors).
// Convolutions and linear layers run on oneDNN (NHWC tensors in and out;
// dense k > 1 convolutions reorder to oneDNN's blocked layout around the
// kernel, the rest read NHWC directly; conv weights reordered once into the
// kernel's layout, linear weights used as PyTorch stores them; bias /
// activation / residual fused as post-ops); attention runs oneDNN's sgemm per
// (image, head, block of query rows) with an exact softmax between; the
// element-wise ops are plain OpenMP loops. docs/benchmarks/cpu.md records why (measurements). Built
// without oneDNN (LOOKALIKE_CPU_USE_DNNL=OFF, or no libdnnl on the machine),
// the dense math runs on portable loops instead (models/cpu/dense.h: one
// file per implementation, chosen by CMake): same results up to fp32
// rounding, far slower (reference use on machines without oneDNN).
//
// Threads: up to `num_threads` OpenMP threads per op (0 = all cores), fewer
// for small ops (models/cpu/threads.h: one thread per 2 MFLOP of work). The
// setting applies to the calling thread's OpenMP parallel regions, so each
// op re-applies it; one CpuBackend per model replica, not thread-safe (as
// models/backend.h states). Argument checks are Backend's (models/backend.h);
// the ...Impl methods here only compute.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/backend.h"

namespace lookalike {

struct CpuBackendOptions {
  int num_threads = 0;  // 0 = all cores (omp_get_num_procs())
  // The precision convolutions and linear layers compute in (the config's
  // `precision`; CudaBackendOptions::dtype is the same concept): kF32, or
  // kBF16 (oneDNN's bf16 fpmath mode: bf16 products, fp32 accumulation,
  // activations stay fp32) where CpuBf16UnavailableReason() is "".
  DType dtype = DType::kF32;
};

// "" when this CPU (and build) can run CpuBackend in bf16; otherwise why not,
// naming the missing CPU feature (avx512_bf16 / amx_bf16).
std::string CpuBf16UnavailableReason();

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options = {});
  // Checks options.dtype first: INVALID_ARGUMENT for kF16 (not a CPU
  // precision), FAILED_PRECONDITION naming the missing CPU feature for kBF16
  // where CpuBf16UnavailableReason() is not "". The constructor assumes both.
  static StatusOr<std::unique_ptr<CpuBackend>> Create(const CpuBackendOptions& options);
  ~CpuBackend() override;

  std::string name() const override { return "cpu"; }
  DeviceKind device() const override { return DeviceKind::kCpu; }
  DType compute_dtype() const override { return DType::kF32; }
  int num_threads() const { return num_threads_; }

  // A fresh host fp32 tensor of `shape` from this backend's buffer pool
  // (contents unspecified). Public for tests and callers that fill inputs.
  StatusOr<Tensor> Allocate(const std::vector<int64_t>& shape);

  struct Impl;  // oneDNN engine/stream and the buffer pool (cpu_backend.cc)

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
  StatusOr<Tensor> SelectTokensImpl(const Tensor& x, const std::vector<int32_t>& index) override;
  StatusOr<Tensor> EmbedTokensImpl(const Tensor& table, const Tensor& pos,
                                   const std::vector<int32_t>& ids, int64_t batch,
                                   int64_t tokens) override;
  StatusOr<Tensor> PrependTokensAddPosImpl(const Tensor& patches, const Tensor* prefix_tokens,
                                           int64_t prefix, const Tensor& pos,
                                           bool pos_applies_to_prefix) override;
  StatusOr<Tensor> AddImpl(const Tensor& a, const Tensor& b) override;
  StatusOr<Tensor> AddLayerNormImpl(const PreparedLayer& norm, const Tensor& a, const Tensor& b,
                                    Tensor* sum) override;
  StatusOr<Tensor> L2NormalizeImpl(const Tensor& x) override;
  Status ToHostImpl(const Tensor& x, std::vector<float>* out) override;
  // ConvNeXt / Swin ops (GRN and windows in cpu_backend_windows.cc).
  StatusOr<Tensor> GlobalResponseNormImpl(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          float eps) override;
  StatusOr<Tensor> WindowPartitionImpl(const Tensor& x, int window, int shift) override;
  StatusOr<Tensor> WindowMergeImpl(const Tensor& windows, int height, int width, int window,
                                   int shift) override;
  StatusOr<Tensor> AttentionWithBiasImpl(const Tensor& qkv, int heads, const Tensor& bias) override;
  // MobileNet, VGG, DenseNet, GoogLeNet / Inception ops (cpu_channel_ops.cc).
  StatusOr<Tensor> Pool2dImpl(const Tensor& x, const PoolSpec& spec,
                              const std::vector<int64_t>& out_shape) override;
  StatusOr<Tensor> ScaleChannelsImpl(const Tensor& x, const Tensor& scale) override;
  StatusOr<Tensor> ChannelAffineImpl(const Tensor& x, const Tensor& scale, const Tensor& shift,
                                     Activation act) override;
  StatusOr<Tensor> ConcatChannelsImpl(const std::vector<Tensor>& parts,
                                      const std::vector<int64_t>& out_shape) override;
  Status WriteChannelsImpl(const Tensor& dst, const Tensor& src, int offset) override;

 private:
  void ApplyThreads() const;
  // LayerNorm of x, or with `add` of x + add (AddLayerNorm: the sum written to *sum).
  StatusOr<Tensor> RunLayerNorm(const PreparedLayer& norm, const Tensor& x, const Tensor* add,
                                const Tensor* sum);
  // Attention and AttentionWithBias: bias {G, heads, T, T} or null.
  StatusOr<Tensor> RunAttention(const Tensor& qkv, int heads, bool causal, const Tensor* bias);

  int num_threads_ = 1;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lookalike
