// Backend: the op set the backbone definitions (models/*.cc) are written
// against, once for every device. The CPU backend (models/cpu/) is the
// embedded default and the reference; the CUDA backend (models/cuda/) runs the
// same definitions through kernels/.
//
// Life cycle: a model is built by Prepare*() calls (weights arrive as fp32 host
// arrays in PyTorch layouts; the backend converts, folds, reorders and uploads
// them once and returns an opaque layer), then run many times by the op calls.
// Op calls on one Backend object are not thread-safe: one Backend per model
// replica / stream.
//
// Contract (FAISS's add / add_impl shape): every public op below is
// non-virtual. It checks its arguments and infers the output shape once, here
// (models/backend.cc), for every backend, then calls the protected virtual
// `...Impl` the backend implements; an Impl gets arguments that passed these
// checks and does not check them again. The checks:
//   - tensors are non-empty, on this backend's device(), in its
//     compute_dtype(), with every dimension > 0;
//   - prepared layers were made by this backend, of the op's kind;
//   - shapes agree as each op states below.
// A failed check is INVALID_ARGUMENT "<Op>: ..." naming the op and the shapes
// involved (the argument's and the expected one). A backend may still refuse
// what it cannot run (UNIMPLEMENTED, e.g. grouped non-depthwise convolutions
// on CUDA); device OOM is RESOURCE_EXHAUSTED.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/activation.h"
#include "common/status.h"
#include "models/image.h"
#include "models/tensor.h"

namespace lookalike {

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

// NHWC pooling window (torch.nn.MaxPool2d / AvgPool2d semantics).
struct PoolSpec {
  enum class Kind { kMax, kAvg };
  Kind kind = Kind::kMax;
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_h = 0, pad_w = 0;  // symmetric; max pools pad with -inf, avg pools with 0
  // Output size rounds up instead of down; a window that would start in the
  // end padding is dropped (torch's rule).
  bool ceil_mode = false;
  // kAvg: divide by the window size counted with the padding (torch default)
  // or by the number of input pixels in the window.
  bool count_include_pad = true;
};

class Backend;

enum class LayerKind { kConv, kLinear, kLayerNorm };

// Opaque prepared layers, owned by the model; valid only with the backend that
// made them. The base part records what the public ops check against.
class PreparedLayer {
 public:
  virtual ~PreparedLayer() = default;

  LayerKind kind() const { return kind_; }
  // kConv: the spec as checked, pad_h_end / pad_w_end resolved (never -1).
  const ConvSpec& conv_spec() const { return conv_; }
  // kConv: in / out channels; kLinear: in / out features; kLayerNorm: dim, dim.
  int in_features() const { return in_; }
  int out_features() const { return out_; }

 private:
  friend class Backend;
  const Backend* owner_ = nullptr;
  LayerKind kind_ = LayerKind::kConv;
  ConvSpec conv_;
  int in_ = 0, out_ = 0;
};
using LayerPtr = std::unique_ptr<PreparedLayer>;

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;  // "cpu", "cuda:0"
  virtual DeviceKind device() const = 0;
  virtual DType compute_dtype() const = 0;  // activations dtype (cpu: f32; cuda: f16/bf16)

  // ---- preparation (once per model) ---------------------------------------
  // weight {out, in/groups, kh, kw} (non-null); bias {out} or nullptr. Fold
  // BatchNorm into weight/bias before calling (models/weights.h has the
  // helper). Checked: channels, kernel, stride, groups > 0; pad_h, pad_w >= 0;
  // pad_h_end, pad_w_end >= -1; channels divisible by groups.
  StatusOr<LayerPtr> PrepareConv(const ConvSpec& spec, const float* weight, const float* bias);
  // weight {out_features, in_features} (torch.nn.Linear, non-null); bias {out} or nullptr.
  StatusOr<LayerPtr> PrepareLinear(int in_features, int out_features, const float* weight,
                                   const float* bias);
  // LayerNorm over the last dimension, dim > 0, eps >= 0. gamma / beta {dim},
  // each may be null: then 1 / 0 (torch's elementwise_affine=False), on every
  // backend alike.
  StatusOr<LayerPtr> PrepareLayerNorm(int dim, const float* gamma, const float* beta, float eps);
  // A constant tensor (class token, position embedding...), uploaded once.
  // shape non-empty with dimensions > 0; data non-null.
  StatusOr<Tensor> Constant(const std::vector<int64_t>& shape, const float* data);

  // ---- ops ----------------------------------------------------------------
  // Decoded images (at least one, each passing CheckImage) -> {N, crop_h,
  // crop_w, 3} normalized, in compute dtype. spec passes CheckPreprocessSpec.
  StatusOr<Tensor> Preprocess(const std::vector<ImageView>& images, const PreprocessSpec& spec);

  // y = act(conv(x) + bias [+ residual]); x {N, H, W, in_channels}, y {N, OH,
  // OW, out_channels} with OH = (H + pad_h + pad_h_end - kernel_h) / stride_h
  // + 1 (H + pads >= kernel_h; the same for W); residual has y's shape or is null.
  StatusOr<Tensor> Conv2d(const PreparedLayer& conv, const Tensor& x, Activation act,
                          const Tensor* residual);
  // y = act(x W^T + bias) [+ residual]: activation first, then residual add
  // (transformer blocks: x + proj(attn)). x {..., in} (rank >= 2), y {..., out}.
  StatusOr<Tensor> Linear(const PreparedLayer& linear, const Tensor& x, Activation act,
                          const Tensor* residual);
  // x {..., dim} -> the same shape.
  StatusOr<Tensor> LayerNorm(const PreparedLayer& norm, const Tensor& x);

  // Multi-head self-attention. qkv {N, T, 3*D} packed as [q | k | v], each
  // split into `heads` (> 0, dividing D) heads of D/heads; returns {N, T, D}:
  // softmax(q k^T * scale) v per head, scale = 1/sqrt(D/heads). causal: token
  // t attends to tokens [0, t] only (GPT-style mask; CLIP's text tower).
  StatusOr<Tensor> Attention(const Tensor& qkv, int heads, bool causal = false);

  // NHWC max pooling, symmetric padding with -inf. kernel, stride > 0,
  // 0 <= pad <= kernel / 2, H + 2 pad >= kernel (the same for W).
  StatusOr<Tensor> MaxPool2d(const Tensor& x, int kernel, int stride, int pad);
  // {N, H, W, C} -> {N, C} mean over H, W (token_begin must be 0); also
  // {N, T, D} -> {N, D} mean over tokens [token_begin, T), 0 <= token_begin < T.
  StatusOr<Tensor> MeanPool(const Tensor& x, int token_begin);
  // {N, T, D} -> {N, D}: token `index` (0 <= index < T) of each sequence.
  StatusOr<Tensor> SelectToken(const Tensor& x, int index);
  // {N, T, D} -> {N, D}: token index[n] of sequence n (a per-row SelectToken,
  // e.g. the end-of-text token of each text). index: host array of N entries,
  // each 0 <= index[n] < T.
  StatusOr<Tensor> SelectTokens(const Tensor& x, const std::vector<int32_t>& index);

  // Token embedding: ids is a host array {batch, T} row-major (batch > 0,
  // ids.size() a non-zero multiple of batch, T = ids.size() / batch);
  // table {V, D} (every id in [0, V)); pos {P, D} or {1, P, D} with P >= T.
  // Returns {batch, T, D}: table[ids[n, t]] + pos[t].
  StatusOr<Tensor> EmbedTokens(const Tensor& table, const Tensor& pos,
                               const std::vector<int32_t>& ids, int64_t batch);

  // ViT input: patches {N, P, D} -> {N, prefix + P, D} where rows [0, prefix)
  // are `prefix_tokens` {prefix, D} or {1, prefix, D} (class + register
  // tokens; null: none) and `pos` {1, rows, D} or {rows, D} is added: rows =
  // prefix + P, or P when pos_applies_to_prefix is false (then added to the
  // patches only, DINOv2-reg style).
  StatusOr<Tensor> PrependTokensAddPos(const Tensor& patches, const Tensor* prefix_tokens,
                                       const Tensor& pos, bool pos_applies_to_prefix);

  // a + b, equal shapes.
  StatusOr<Tensor> Add(const Tensor& a, const Tensor& b);
  // The pre-norm residual step in one op: *sum = a + b (equal shapes
  // {..., dim}) and the result is LayerNorm(norm, *sum); the same values as
  // Add then LayerNorm (Swin: h = h + y; y = norm2(h)).
  StatusOr<Tensor> AddLayerNorm(const PreparedLayer& norm, const Tensor& a, const Tensor& b,
                                Tensor* sum);
  // Row-wise L2 normalization of {N, D}.
  StatusOr<Tensor> L2Normalize(const Tensor& x);

  // ---- ConvNeXt / Swin ops ------------------------------------------------
  // ConvNeXt V2 GlobalResponseNorm (timm, channels last) on x {N, H, W, C}:
  // g[n, c] = ||x[n, :, :, c]||_2, r = g / (mean_c g + eps),
  // y = x + gamma[c] * (x * r[n, c]) + beta[c]. gamma / beta {C}; eps >= 0.
  StatusOr<Tensor> GlobalResponseNorm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                      float eps);
  // Swin window partition of x {N, H, W, C} rolled by -shift on H and W
  // (torch.roll(x, (-shift, -shift), (1, 2))): returns {N * (H/w) * (W/w),
  // w * w, C}, windows in row-major grid order per image, tokens row-major in
  // the window. window > 0 divides H and W; 0 <= shift < window.
  StatusOr<Tensor> WindowPartition(const Tensor& x, int window, int shift);
  // The inverse of WindowPartition: windows {N * (H/w) * (W/w), w * w, C}
  // back to {N, H, W, C}, rolled by +shift. Same conditions as above.
  StatusOr<Tensor> WindowMerge(const Tensor& windows, int height, int width, int window, int shift);
  // Attention (same qkv contract) with an additive bias on the scaled
  // scores before the softmax: bias {G, heads, T, T}, G dividing N; sequence
  // n uses bias[n % G] (Swin: relative position bias + shifted-window mask,
  // G = windows per image).
  StatusOr<Tensor> AttentionWithBias(const Tensor& qkv, int heads, const Tensor& bias);
  // ---- MobileNet, VGG, DenseNet, GoogLeNet / Inception ops ---------------
  // x {N, H, W, C} -> {N, OH, OW, C}, OH = (H + 2 pad_h - kernel_h) / stride_h
  // + 1 rounded down, or up with ceil_mode (then one less when the last
  // window would start at or past H + pad_h); the same for W. kernel, stride
  // > 0, 0 <= pad <= kernel / 2, H + 2 pad_h >= kernel_h (same for W).
  StatusOr<Tensor> Pool2d(const Tensor& x, const PoolSpec& spec);
  // Squeeze-and-excitation's excitation: x {N, H, W, C} times scale {N, C}
  // broadcast over H and W.
  StatusOr<Tensor> ScaleChannels(const Tensor& x, const Tensor& scale);
  // Per-channel affine + activation on the first c = scale.dim(0) channels of
  // x {N, H, W, C} (c <= C): y {N, H, W, c} = act(x[..., :c] * scale + shift).
  // A BatchNorm that precedes a convolution with an activation between them
  // (DenseNet's norm-relu-conv) cannot fold into the convolution; reading a
  // channel prefix lets DenseNet's layers read the concatenated features in
  // place. scale, shift {c} (Constants).
  StatusOr<Tensor> ChannelAffine(const Tensor& x, const Tensor& scale, const Tensor& shift,
                                 Activation act);
  // Concatenation along channels: parts (at least one) {N, H, W, C_i} with
  // equal N, H, W -> {N, H, W, sum C_i + reserve_channels}. The last
  // reserve_channels (>= 0) are left unset, for WriteChannels to fill in
  // place (DenseNet writes each layer's new features there once instead of
  // concatenating again per layer).
  StatusOr<Tensor> ConcatChannels(const std::vector<Tensor>& parts, int reserve_channels = 0);
  // In place: dst[..., offset : offset + C_src] = src. dst {N, H, W, C} and
  // src {N, H, W, C_src} with equal N, H, W; 0 <= offset, offset + C_src <= C.
  // dst must not share memory with src.
  Status WriteChannels(const Tensor& dst, const Tensor& src, int offset);

  // Copies x to host fp32, row-major, into out (non-null; resized to
  // x.numel()). Synchronizes.
  Status ToHost(const Tensor& x, std::vector<float>* out);

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

 protected:
  // The backend's implementations, called by the public ops above with
  // checked arguments only (see the contract at the top of this file). Layers
  // passed in were made by this backend's Prepare*Impl of the right kind, so
  // an Impl may static_cast them to its own layer type.
  //
  // spec: pad_h_end / pad_w_end resolved (>= 0).
  virtual StatusOr<LayerPtr> PrepareConvImpl(const ConvSpec& spec, const float* weight,
                                             const float* bias) = 0;
  virtual StatusOr<LayerPtr> PrepareLinearImpl(int in_features, int out_features,
                                               const float* weight, const float* bias) = 0;
  // gamma / beta are never null here.
  virtual StatusOr<LayerPtr> PrepareLayerNormImpl(int dim, const float* gamma, const float* beta,
                                                  float eps) = 0;
  virtual StatusOr<Tensor> ConstantImpl(const std::vector<int64_t>& shape, const float* data) = 0;
  virtual StatusOr<Tensor> PreprocessImpl(const std::vector<ImageView>& images,
                                          const PreprocessSpec& spec) = 0;
  // out_shape: y's shape {N, OH, OW, out_channels}.
  virtual StatusOr<Tensor> Conv2dImpl(const PreparedLayer& conv, const Tensor& x, Activation act,
                                      const Tensor* residual,
                                      const std::vector<int64_t>& out_shape) = 0;
  // out_shape: y's shape {..., out_features}.
  virtual StatusOr<Tensor> LinearImpl(const PreparedLayer& linear, const Tensor& x, Activation act,
                                      const Tensor* residual,
                                      const std::vector<int64_t>& out_shape) = 0;
  virtual StatusOr<Tensor> LayerNormImpl(const PreparedLayer& norm, const Tensor& x) = 0;
  virtual StatusOr<Tensor> AttentionImpl(const Tensor& qkv, int heads, bool causal) = 0;
  // out_shape: {N, OH, OW, C}.
  virtual StatusOr<Tensor> MaxPool2dImpl(const Tensor& x, int kernel, int stride, int pad,
                                         const std::vector<int64_t>& out_shape) = 0;
  // x is always {N, T, D} here (a feature map arrives as {N, H*W, C}).
  virtual StatusOr<Tensor> MeanPoolImpl(const Tensor& x, int token_begin) = 0;
  virtual StatusOr<Tensor> SelectTokenImpl(const Tensor& x, int index) = 0;
  virtual StatusOr<Tensor> SelectTokensImpl(const Tensor& x, const std::vector<int32_t>& index) = 0;
  // pos is always {P, D} here; tokens = ids.size() / batch.
  virtual StatusOr<Tensor> EmbedTokensImpl(const Tensor& table, const Tensor& pos,
                                           const std::vector<int32_t>& ids, int64_t batch,
                                           int64_t tokens) = 0;
  // prefix_tokens: null when prefix == 0; pos rows as the public op states.
  virtual StatusOr<Tensor> PrependTokensAddPosImpl(const Tensor& patches,
                                                   const Tensor* prefix_tokens, int64_t prefix,
                                                   const Tensor& pos,
                                                   bool pos_applies_to_prefix) = 0;
  virtual StatusOr<Tensor> AddImpl(const Tensor& a, const Tensor& b) = 0;
  // Default: AddImpl, then LayerNormImpl on the sum (a backend fuses them by
  // overriding).
  virtual StatusOr<Tensor> AddLayerNormImpl(const PreparedLayer& norm, const Tensor& a,
                                            const Tensor& b, Tensor* sum);
  virtual StatusOr<Tensor> L2NormalizeImpl(const Tensor& x) = 0;
  virtual Status ToHostImpl(const Tensor& x, std::vector<float>* out) = 0;
  // ConvNeXt / Swin ops.
  virtual StatusOr<Tensor> GlobalResponseNormImpl(const Tensor& x, const Tensor& gamma,
                                                  const Tensor& beta, float eps) = 0;
  virtual StatusOr<Tensor> WindowPartitionImpl(const Tensor& x, int window, int shift) = 0;
  virtual StatusOr<Tensor> WindowMergeImpl(const Tensor& windows, int height, int width, int window,
                                           int shift) = 0;
  virtual StatusOr<Tensor> AttentionWithBiasImpl(const Tensor& qkv, int heads,
                                                 const Tensor& bias) = 0;
  // MobileNet, VGG, DenseNet, GoogLeNet / Inception ops. out_shape as the
  // public op infers it.
  virtual StatusOr<Tensor> Pool2dImpl(const Tensor& x, const PoolSpec& spec,
                                      const std::vector<int64_t>& out_shape) = 0;
  virtual StatusOr<Tensor> ScaleChannelsImpl(const Tensor& x, const Tensor& scale) = 0;
  virtual StatusOr<Tensor> ChannelAffineImpl(const Tensor& x, const Tensor& scale,
                                             const Tensor& shift, Activation act) = 0;
  virtual StatusOr<Tensor> ConcatChannelsImpl(const std::vector<Tensor>& parts,
                                              const std::vector<int64_t>& out_shape) = 0;
  virtual Status WriteChannelsImpl(const Tensor& dst, const Tensor& src, int offset) = 0;

 private:
  // Non-empty, on device(), in compute_dtype(), every dimension > 0.
  Status CheckTensor(const char* op, const char* what, const Tensor& t) const;
  // Made by this backend, of `kind`.
  Status CheckLayer(const char* op, const PreparedLayer& layer, LayerKind kind) const;
  Status CheckResidual(const char* op, const Tensor* residual,
                       const std::vector<int64_t>& out_shape) const;
  // Stamps a layer an Impl returned with what the ops check against.
  StatusOr<LayerPtr> Stamp(StatusOr<LayerPtr> layer, LayerKind kind, const ConvSpec& conv, int in,
                           int out) const;
};

}  // namespace lookalike
