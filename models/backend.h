// Backend: the op set the backbone definitions (models/*.cc) are written
// against, once for every device. The CPU backend (models/cpu/) is the
// embedded default and the reference; the CUDA backend (models/cuda/) runs the
// same definitions through kernels/.
//
// Life cycle: a model is built by Prepare*() calls (weights arrive as fp32 host
// arrays in PyTorch layouts; the backend converts, folds, reorders and uploads
// them once and returns an opaque layer), then run many times by the op calls.
// Op calls on one Backend object are not thread-safe: one Backend per model
// replica / stream. Every op validates shapes and returns INVALID_ARGUMENT
// naming the op and both shapes on mismatch; device OOM is RESOURCE_EXHAUSTED.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/tensor.h"

namespace lookalike {

enum class Activation {
  kNone,
  kRelu,
  kRelu6,
  kGelu,       // exact, erf form (timm / torch default)
  kGeluTanh,   // tanh approximation
  kQuickGelu,  // x * sigmoid(1.702 x) (OpenAI CLIP)
};

// A decoded 8-bit RGB image, interleaved, rows `stride_bytes` apart (>= 3*width).
// Not owned.
struct ImageView {
  const uint8_t* data = nullptr;
  int width = 0;
  int height = 0;
  int stride_bytes = 0;
};

enum class Interpolation { kBilinear, kBicubic };

// The reference preprocessing (torchvision/timm eval transform):
// resize so the shorter side is `resize_shorter` (aspect kept; antialiased when
// downscaling, as torchvision's antialias=True / PIL do), center crop
// `crop_height` x `crop_width`, scale to [0,1], subtract mean, divide by std.
struct PreprocessSpec {
  int resize_shorter = 256;
  int crop_height = 224;
  int crop_width = 224;
  Interpolation interpolation = Interpolation::kBilinear;
  bool antialias = true;
  float mean[3] = {0.485f, 0.456f, 0.406f};
  float std[3] = {0.229f, 0.224f, 0.225f};
};

// 2-D convolution on NHWC input. Weight layout as PyTorch: {out, in/groups, kh, kw}.
struct ConvSpec {
  int in_channels = 0;
  int out_channels = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;  // zero padding at the top / left
  // Padding at the bottom / right; -1 means the same as pad_h / pad_w
  // (TensorFlow "SAME" padding at stride 2 pads one more at the end).
  int pad_h_end = -1, pad_w_end = -1;
  int groups = 1;  // groups == in_channels == out_channels: depthwise
};

// Opaque prepared layers, owned by the model; valid only with the backend that made them.
class PreparedLayer {
 public:
  virtual ~PreparedLayer() = default;
};
using LayerPtr = std::unique_ptr<PreparedLayer>;

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu", "cuda:0"
  virtual DeviceKind device() const = 0;
  virtual DType compute_dtype() const = 0;  // activations dtype (cpu: f32; cuda: f16/bf16)

  // ---- preparation (once per model) ---------------------------------------
  // weight {out, in/groups, kh, kw}; bias {out} or nullptr. Fold BatchNorm
  // into weight/bias before calling (models/weights.h has the helper).
  virtual StatusOr<LayerPtr> PrepareConv(const ConvSpec& spec, const float* weight,
                                         const float* bias) = 0;
  // weight {out_features, in_features} (torch.nn.Linear); bias {out} or nullptr.
  virtual StatusOr<LayerPtr> PrepareLinear(int in_features, int out_features, const float* weight,
                                           const float* bias) = 0;
  // LayerNorm over the last dimension.
  virtual StatusOr<LayerPtr> PrepareLayerNorm(int dim, const float* gamma, const float* beta,
                                              float eps) = 0;
  // A constant tensor (class token, position embedding...), uploaded once.
  virtual StatusOr<Tensor> Constant(const std::vector<int64_t>& shape, const float* data) = 0;

  // ---- ops ----------------------------------------------------------------
  // Decoded images -> {N, crop_h, crop_w, 3} normalized, in compute dtype.
  virtual StatusOr<Tensor> Preprocess(const std::vector<ImageView>& images,
                                      const PreprocessSpec& spec) = 0;

  // y = act(conv(x) + bias [+ residual]); residual has y's shape or is null.
  virtual StatusOr<Tensor> Conv2d(const PreparedLayer& conv, const Tensor& x, Activation act,
                                  const Tensor* residual) = 0;
  // y = act(x W^T + bias) [+ residual]: activation first, then residual add
  // (transformer blocks: x + proj(attn)). x {..., in}, y {..., out}.
  virtual StatusOr<Tensor> Linear(const PreparedLayer& linear, const Tensor& x, Activation act,
                                  const Tensor* residual) = 0;
  virtual StatusOr<Tensor> LayerNorm(const PreparedLayer& norm, const Tensor& x) = 0;

  // Multi-head self-attention. qkv {N, T, 3*D} packed as [q | k | v], each
  // split into `heads` heads of D/heads; returns {N, T, D}:
  // softmax(q k^T * scale) v per head, scale = 1/sqrt(D/heads).
  virtual StatusOr<Tensor> Attention(const Tensor& qkv, int heads) = 0;

  // NHWC max pooling, symmetric padding with -inf.
  virtual StatusOr<Tensor> MaxPool2d(const Tensor& x, int kernel, int stride, int pad) = 0;
  // {N, H, W, C} -> {N, C} mean over H, W; also {N, T, D} -> {N, D} mean over
  // tokens [token_begin, T).
  virtual StatusOr<Tensor> MeanPool(const Tensor& x, int token_begin) = 0;
  // {N, T, D} -> {N, D}: token `index` of each sequence.
  virtual StatusOr<Tensor> SelectToken(const Tensor& x, int index) = 0;

  // ViT input: patches {N, P, D} -> {N, prefix + P, D} where rows [0, prefix)
  // are `prefix_tokens` {prefix, D} (class + register tokens) and `pos` {1,
  // prefix + P, D} or {1, P, D} (then added to the patches only, DINOv2-reg
  // style: pos_applies_to_prefix=false) is added.
  virtual StatusOr<Tensor> PrependTokensAddPos(const Tensor& patches, const Tensor* prefix_tokens,
                                               const Tensor& pos, bool pos_applies_to_prefix) = 0;

  virtual StatusOr<Tensor> Add(const Tensor& a, const Tensor& b) = 0;
  // Row-wise L2 normalization of {N, D}.
  virtual StatusOr<Tensor> L2Normalize(const Tensor& x) = 0;

  // Copies {N, D} to host fp32, row-major, into out (resized to N*D). Synchronizes.
  virtual Status ToHost(const Tensor& x, std::vector<float>* out) = 0;

  // ---- recorded execution --------------------------------------------------
  // Returns forward(input). A backend may record the work `forward` enqueues
  // for an input shape once and replay the recording on later calls with the
  // same shape and dtype (the CUDA backend uses CUDA Graphs), so `forward`
  // must enqueue the same ops for the same input shape and read nothing but
  // `input`, prepared layers and constants. The returned tensor may be owned
  // by the recording: read it (ToHost, or further ops) before the next
  // RunRecorded call. The default runs `forward` every time.
  using ForwardFn = std::function<StatusOr<Tensor>(const Tensor& input)>;
  virtual StatusOr<Tensor> RunRecorded(const Tensor& input, const ForwardFn& forward) {
    return forward(input);
  }
};

}  // namespace lookalike
