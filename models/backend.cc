// The public Backend ops: argument checks and shape inference, once for every
// backend (models/backend.h states the contract), then the backend's Impl.
#include "models/backend.h"

#include <string>
#include <utility>
#include <vector>

namespace lookalike {
namespace {

std::string Str(int64_t v) { return std::to_string(v); }

std::string SpecString(const ConvSpec& s) {
  return "in " + Str(s.in_channels) + ", out " + Str(s.out_channels) + ", kernel " +
         Str(s.kernel_h) + "x" + Str(s.kernel_w) + ", stride " + Str(s.stride_h) + "x" +
         Str(s.stride_w) + ", pad " + Str(s.pad_h) + "x" + Str(s.pad_w) + ", end pad " +
         Str(s.pad_h_end) + "x" + Str(s.pad_w_end) + ", groups " + Str(s.groups);
}

}  // namespace

Status Backend::CheckTensor(const char* op, const char* what, const Tensor& t) const {
  const std::string where = std::string(op) + ": " + what;
  if (t.empty()) return InvalidArgumentError(where + " is empty");
  if (t.device() != device()) {
    return InvalidArgumentError(where + " " + t.ShapeString() + " is on " +
                                (t.device() == DeviceKind::kCpu ? "the host" : "a CUDA device") +
                                ", expected a tensor of " + name());
  }
  if (t.dtype() != compute_dtype()) {
    return InvalidArgumentError(where + " " + t.ShapeString() + " has dtype " +
                                DTypeName(t.dtype()) + ", expected " + DTypeName(compute_dtype()));
  }
  if (t.rank() == 0) return InvalidArgumentError(where + " has no dimensions");
  for (int64_t d : t.shape()) {
    if (d <= 0) {
      return InvalidArgumentError(where + " " + t.ShapeString() + " has a non-positive dimension");
    }
  }
  return Status::Ok();
}

Status Backend::CheckLayer(const char* op, const PreparedLayer& layer, LayerKind kind) const {
  static const char* const kPrepare[] = {"PrepareConv", "PrepareLinear", "PrepareLayerNorm"};
  if (layer.owner_ != this || layer.kind_ != kind) {
    return InvalidArgumentError(std::string(op) + ": layer was not prepared by " + name() + "'s " +
                                kPrepare[static_cast<int>(kind)]);
  }
  return Status::Ok();
}

Status Backend::CheckResidual(const char* op, const Tensor* residual,
                              const std::vector<int64_t>& out_shape) const {
  if (residual == nullptr) return Status::Ok();
  RETURN_IF_ERROR(CheckTensor(op, "residual", *residual));
  if (residual->shape() != out_shape) {
    return InvalidArgumentError(std::string(op) + ": residual " + residual->ShapeString() +
                                " does not match output " + ShapeString(out_shape));
  }
  return Status::Ok();
}

StatusOr<LayerPtr> Backend::Stamp(StatusOr<LayerPtr> layer, LayerKind kind, const ConvSpec& conv,
                                  int in, int out) const {
  if (!layer.ok()) return layer.status();
  LayerPtr p = std::move(layer).value();
  if (p == nullptr) return InternalError(name() + ": a Prepare*Impl returned no layer");
  p->owner_ = this;
  p->kind_ = kind;
  p->conv_ = conv;
  p->in_ = in;
  p->out_ = out;
  return p;
}

// ---- preparation ------------------------------------------------------------

StatusOr<LayerPtr> Backend::PrepareConv(const ConvSpec& spec, const float* weight,
                                        const float* bias) {
  const ConvSpec& s = spec;
  if (s.in_channels <= 0 || s.out_channels <= 0 || s.kernel_h <= 0 || s.kernel_w <= 0 ||
      s.stride_h <= 0 || s.stride_w <= 0 || s.pad_h < 0 || s.pad_w < 0 || s.groups <= 0 ||
      s.pad_h_end < -1 || s.pad_w_end < -1) {
    return InvalidArgumentError("PrepareConv: invalid spec (" + SpecString(s) +
                                "): sizes must be positive, pads >= 0, end pads >= -1");
  }
  if (s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0) {
    return InvalidArgumentError("PrepareConv: channels in " + Str(s.in_channels) + " / out " +
                                Str(s.out_channels) + " not divisible by groups " + Str(s.groups));
  }
  if (weight == nullptr) return InvalidArgumentError("PrepareConv: weight is null");
  ConvSpec resolved = s;
  if (resolved.pad_h_end < 0) resolved.pad_h_end = resolved.pad_h;
  if (resolved.pad_w_end < 0) resolved.pad_w_end = resolved.pad_w;
  return Stamp(PrepareConvImpl(resolved, weight, bias), LayerKind::kConv, resolved, s.in_channels,
               s.out_channels);
}

StatusOr<LayerPtr> Backend::PrepareLinear(int in_features, int out_features, const float* weight,
                                          const float* bias) {
  if (in_features <= 0 || out_features <= 0) {
    return InvalidArgumentError("PrepareLinear: features in " + Str(in_features) + ", out " +
                                Str(out_features) + " must be positive");
  }
  if (weight == nullptr) return InvalidArgumentError("PrepareLinear: weight is null");
  return Stamp(PrepareLinearImpl(in_features, out_features, weight, bias), LayerKind::kLinear,
               ConvSpec{}, in_features, out_features);
}

StatusOr<LayerPtr> Backend::PrepareLayerNorm(int dim, const float* gamma, const float* beta,
                                             float eps) {
  if (dim <= 0)
    return InvalidArgumentError("PrepareLayerNorm: dim " + Str(dim) + " must be positive");
  if (!(eps >= 0.0f)) return InvalidArgumentError("PrepareLayerNorm: eps must be >= 0");
  std::vector<float> ones, zeros;
  if (gamma == nullptr) {
    ones.assign(dim, 1.0f);
    gamma = ones.data();
  }
  if (beta == nullptr) {
    zeros.assign(dim, 0.0f);
    beta = zeros.data();
  }
  return Stamp(PrepareLayerNormImpl(dim, gamma, beta, eps), LayerKind::kLayerNorm, ConvSpec{}, dim,
               dim);
}

StatusOr<Tensor> Backend::Constant(const std::vector<int64_t>& shape, const float* data) {
  if (shape.empty()) return InvalidArgumentError("Constant: shape is empty");
  for (int64_t d : shape) {
    if (d <= 0) {
      return InvalidArgumentError("Constant: shape " + ShapeString(shape) +
                                  " has a non-positive dimension");
    }
  }
  if (data == nullptr)
    return InvalidArgumentError("Constant: data is null for " + ShapeString(shape));
  return ConstantImpl(shape, data);
}

// ---- ops --------------------------------------------------------------------

StatusOr<Tensor> Backend::Preprocess(const std::vector<ImageView>& images,
                                     const PreprocessSpec& spec) {
  if (images.empty()) return InvalidArgumentError("Preprocess: no images");
  for (size_t i = 0; i < images.size(); ++i) {
    RETURN_IF_ERROR(CheckImage(images[i]).WithPrefix("Preprocess: item " + std::to_string(i)));
  }
  RETURN_IF_ERROR(CheckPreprocessSpec(spec).WithPrefix("Preprocess"));
  return PreprocessImpl(images, spec);
}

StatusOr<Tensor> Backend::Conv2d(const PreparedLayer& conv, const Tensor& x, Activation act,
                                 const Tensor* residual) {
  RETURN_IF_ERROR(CheckLayer("Conv2d", conv, LayerKind::kConv));
  RETURN_IF_ERROR(CheckTensor("Conv2d", "input", x));
  const ConvSpec& s = conv.conv_spec();
  if (x.rank() != 4 || x.dim(3) != s.in_channels) {
    return InvalidArgumentError("Conv2d: input " + x.ShapeString() +
                                " does not match layer input [N, H, W, " + Str(s.in_channels) +
                                "]");
  }
  const int64_t oh_num = x.dim(1) + s.pad_h + s.pad_h_end - s.kernel_h;
  const int64_t ow_num = x.dim(2) + s.pad_w + s.pad_w_end - s.kernel_w;
  if (oh_num < 0 || ow_num < 0) {
    return InvalidArgumentError("Conv2d: input " + x.ShapeString() + " is smaller than kernel [" +
                                Str(s.kernel_h) + ", " + Str(s.kernel_w) + "] with padding");
  }
  const std::vector<int64_t> out_shape = {x.dim(0), oh_num / s.stride_h + 1,
                                          ow_num / s.stride_w + 1, s.out_channels};
  RETURN_IF_ERROR(CheckResidual("Conv2d", residual, out_shape));
  return Conv2dImpl(conv, x, act, residual, out_shape);
}

StatusOr<Tensor> Backend::Linear(const PreparedLayer& linear, const Tensor& x, Activation act,
                                 const Tensor* residual) {
  RETURN_IF_ERROR(CheckLayer("Linear", linear, LayerKind::kLinear));
  RETURN_IF_ERROR(CheckTensor("Linear", "input", x));
  if (x.rank() < 2 || x.dim(-1) != linear.in_features()) {
    return InvalidArgumentError("Linear: input " + x.ShapeString() +
                                " does not match layer input [..., " + Str(linear.in_features()) +
                                "]");
  }
  std::vector<int64_t> out_shape = x.shape();
  out_shape.back() = linear.out_features();
  RETURN_IF_ERROR(CheckResidual("Linear", residual, out_shape));
  return LinearImpl(linear, x, act, residual, out_shape);
}

StatusOr<Tensor> Backend::LayerNorm(const PreparedLayer& norm, const Tensor& x) {
  RETURN_IF_ERROR(CheckLayer("LayerNorm", norm, LayerKind::kLayerNorm));
  RETURN_IF_ERROR(CheckTensor("LayerNorm", "input", x));
  if (x.dim(-1) != norm.in_features()) {
    return InvalidArgumentError("LayerNorm: input " + x.ShapeString() +
                                " does not match layer [..., " + Str(norm.in_features()) + "]");
  }
  return LayerNormImpl(norm, x);
}

StatusOr<Tensor> Backend::Attention(const Tensor& qkv, int heads, bool causal) {
  RETURN_IF_ERROR(CheckTensor("Attention", "qkv", qkv));
  if (qkv.rank() != 3 || qkv.dim(2) % 3 != 0) {
    return InvalidArgumentError("Attention: qkv " + qkv.ShapeString() + " is not [N, T, 3*D]");
  }
  const int64_t d = qkv.dim(2) / 3;
  if (heads <= 0 || d % heads != 0) {
    return InvalidArgumentError("Attention: qkv " + qkv.ShapeString() + " width D=" + Str(d) +
                                " is not divisible into heads=" + Str(heads));
  }
  return AttentionImpl(qkv, heads, causal);
}

StatusOr<Tensor> Backend::MaxPool2d(const Tensor& x, int kernel, int stride, int pad) {
  RETURN_IF_ERROR(CheckTensor("MaxPool2d", "input", x));
  if (x.rank() != 4) {
    return InvalidArgumentError("MaxPool2d: input " + x.ShapeString() + " is not [N, H, W, C]");
  }
  if (kernel <= 0 || stride <= 0 || pad < 0 || pad > kernel / 2) {
    return InvalidArgumentError("MaxPool2d: kernel " + Str(kernel) + ", stride " + Str(stride) +
                                ", pad " + Str(pad) +
                                " invalid (need kernel, stride > 0 and 0 <= pad <= kernel/2)");
  }
  const int64_t h = x.dim(1), w = x.dim(2);
  if (h + 2 * pad < kernel || w + 2 * pad < kernel) {
    return InvalidArgumentError("MaxPool2d: input " + x.ShapeString() + " smaller than kernel " +
                                Str(kernel));
  }
  const std::vector<int64_t> out_shape = {x.dim(0), (h + 2 * pad - kernel) / stride + 1,
                                          (w + 2 * pad - kernel) / stride + 1, x.dim(3)};
  return MaxPool2dImpl(x, kernel, stride, pad, out_shape);
}

StatusOr<Tensor> Backend::MeanPool(const Tensor& x, int token_begin) {
  RETURN_IF_ERROR(CheckTensor("MeanPool", "input", x));
  if (x.rank() == 4) {
    if (token_begin != 0) {
      return InvalidArgumentError("MeanPool: token_begin " + Str(token_begin) +
                                  " must be 0 for a feature map " + x.ShapeString());
    }
    return MeanPoolImpl(x.Reshape({x.dim(0), x.dim(1) * x.dim(2), x.dim(3)}), 0);
  }
  if (x.rank() != 3) {
    return InvalidArgumentError("MeanPool: input " + x.ShapeString() +
                                " is not [N, H, W, C] or [N, T, D]");
  }
  if (token_begin < 0 || token_begin >= x.dim(1)) {
    return InvalidArgumentError("MeanPool: token_begin " + Str(token_begin) +
                                " out of range for tokens " + x.ShapeString());
  }
  return MeanPoolImpl(x, token_begin);
}

StatusOr<Tensor> Backend::SelectToken(const Tensor& x, int index) {
  RETURN_IF_ERROR(CheckTensor("SelectToken", "input", x));
  if (x.rank() != 3) {
    return InvalidArgumentError("SelectToken: input " + x.ShapeString() + " is not [N, T, D]");
  }
  if (index < 0 || index >= x.dim(1)) {
    return InvalidArgumentError("SelectToken: index " + Str(index) + " out of range for " +
                                x.ShapeString());
  }
  return SelectTokenImpl(x, index);
}

StatusOr<Tensor> Backend::SelectTokens(const Tensor& x, const std::vector<int32_t>& index) {
  RETURN_IF_ERROR(CheckTensor("SelectTokens", "input", x));
  if (x.rank() != 3) {
    return InvalidArgumentError("SelectTokens: input " + x.ShapeString() + " is not [N, T, D]");
  }
  if (static_cast<int64_t>(index.size()) != x.dim(0)) {
    return InvalidArgumentError("SelectTokens: " + Str(index.size()) + " indices for input " +
                                x.ShapeString() + " (expected one per sequence, " + Str(x.dim(0)) +
                                ")");
  }
  for (size_t n = 0; n < index.size(); ++n) {
    if (index[n] < 0 || index[n] >= x.dim(1)) {
      return InvalidArgumentError("SelectTokens: index[" + Str(n) + "] = " + Str(index[n]) +
                                  " out of range for " + x.ShapeString());
    }
  }
  return SelectTokensImpl(x, index);
}

StatusOr<Tensor> Backend::EmbedTokens(const Tensor& table, const Tensor& pos,
                                      const std::vector<int32_t>& ids, int64_t batch) {
  RETURN_IF_ERROR(CheckTensor("EmbedTokens", "table", table));
  RETURN_IF_ERROR(CheckTensor("EmbedTokens", "pos", pos));
  if (table.rank() != 2) {
    return InvalidArgumentError("EmbedTokens: table " + table.ShapeString() + " is not [V, D]");
  }
  const int64_t d = table.dim(1);
  const bool pos_ok = (pos.rank() == 2 && pos.dim(1) == d) ||
                      (pos.rank() == 3 && pos.dim(0) == 1 && pos.dim(2) == d);
  if (!pos_ok) {
    return InvalidArgumentError("EmbedTokens: pos " + pos.ShapeString() + " does not match table " +
                                table.ShapeString() + " (expected [P, " + Str(d) + "] or [1, P, " +
                                Str(d) + "])");
  }
  const Tensor pos2 = pos.rank() == 2 ? pos : pos.Reshape({pos.dim(1), d});
  const int64_t count = static_cast<int64_t>(ids.size());
  if (batch <= 0 || count == 0 || count % batch != 0) {
    return InvalidArgumentError("EmbedTokens: " + Str(count) + " ids do not form batch " +
                                Str(batch) + " sequences of equal non-zero length");
  }
  const int64_t tokens = count / batch;
  if (tokens > pos2.dim(0)) {
    return InvalidArgumentError("EmbedTokens: sequences of " + Str(tokens) + " tokens exceed the " +
                                Str(pos2.dim(0)) + " positions of pos " + pos.ShapeString());
  }
  for (int64_t i = 0; i < count; ++i) {
    if (ids[i] < 0 || ids[i] >= table.dim(0)) {
      return InvalidArgumentError("EmbedTokens: id " + Str(ids[i]) + " at [" + Str(i / tokens) +
                                  ", " + Str(i % tokens) + "] out of range for table " +
                                  table.ShapeString());
    }
  }
  return EmbedTokensImpl(table, pos2, ids, batch, tokens);
}

StatusOr<Tensor> Backend::PrependTokensAddPos(const Tensor& patches, const Tensor* prefix_tokens,
                                              const Tensor& pos, bool pos_applies_to_prefix) {
  RETURN_IF_ERROR(CheckTensor("PrependTokensAddPos", "patches", patches));
  RETURN_IF_ERROR(CheckTensor("PrependTokensAddPos", "pos", pos));
  if (patches.rank() != 3) {
    return InvalidArgumentError("PrependTokensAddPos: patches " + patches.ShapeString() +
                                " is not [N, P, D]");
  }
  const int64_t p = patches.dim(1), d = patches.dim(2);
  int64_t prefix = 0;
  if (prefix_tokens != nullptr) {
    RETURN_IF_ERROR(CheckTensor("PrependTokensAddPos", "prefix_tokens", *prefix_tokens));
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
                                " (expected [1, " + Str(pos_rows) + ", " + Str(d) + "])");
  }
  return PrependTokensAddPosImpl(patches, prefix > 0 ? prefix_tokens : nullptr, prefix, pos,
                                 pos_applies_to_prefix);
}

StatusOr<Tensor> Backend::Add(const Tensor& a, const Tensor& b) {
  RETURN_IF_ERROR(CheckTensor("Add", "a", a));
  RETURN_IF_ERROR(CheckTensor("Add", "b", b));
  if (a.shape() != b.shape()) {
    return InvalidArgumentError("Add: a " + a.ShapeString() + " and b " + b.ShapeString() +
                                " differ");
  }
  return AddImpl(a, b);
}

StatusOr<Tensor> Backend::AddLayerNorm(const PreparedLayer& norm, const Tensor& a, const Tensor& b,
                                       Tensor* sum) {
  RETURN_IF_ERROR(CheckLayer("AddLayerNorm", norm, LayerKind::kLayerNorm));
  RETURN_IF_ERROR(CheckTensor("AddLayerNorm", "a", a));
  RETURN_IF_ERROR(CheckTensor("AddLayerNorm", "b", b));
  if (a.shape() != b.shape()) {
    return InvalidArgumentError("AddLayerNorm: a " + a.ShapeString() + " and b " + b.ShapeString() +
                                " differ");
  }
  if (a.dim(-1) != norm.in_features()) {
    return InvalidArgumentError("AddLayerNorm: input " + a.ShapeString() +
                                " does not match layer [..., " + Str(norm.in_features()) + "]");
  }
  if (sum == nullptr) return InvalidArgumentError("AddLayerNorm: sum is null");
  return AddLayerNormImpl(norm, a, b, sum);
}

StatusOr<Tensor> Backend::AddLayerNormImpl(const PreparedLayer& norm, const Tensor& a,
                                           const Tensor& b, Tensor* sum) {
  ASSIGN_OR_RETURN(*sum, AddImpl(a, b));
  return LayerNormImpl(norm, *sum);
}

StatusOr<Tensor> Backend::L2Normalize(const Tensor& x) {
  RETURN_IF_ERROR(CheckTensor("L2Normalize", "input", x));
  if (x.rank() != 2) {
    return InvalidArgumentError("L2Normalize: input " + x.ShapeString() + " is not [N, D]");
  }
  return L2NormalizeImpl(x);
}

// ---- ConvNeXt / Swin ops -------------------------------------------------------

StatusOr<Tensor> Backend::GlobalResponseNorm(const Tensor& x, const Tensor& gamma,
                                             const Tensor& beta, float eps) {
  RETURN_IF_ERROR(CheckTensor("GlobalResponseNorm", "input", x));
  RETURN_IF_ERROR(CheckTensor("GlobalResponseNorm", "gamma", gamma));
  RETURN_IF_ERROR(CheckTensor("GlobalResponseNorm", "beta", beta));
  if (x.rank() != 4) {
    return InvalidArgumentError("GlobalResponseNorm: input " + x.ShapeString() +
                                " is not [N, H, W, C]");
  }
  const std::vector<int64_t> c = {x.dim(3)};
  if (gamma.shape() != c || beta.shape() != c) {
    return InvalidArgumentError("GlobalResponseNorm: gamma " + gamma.ShapeString() + " / beta " +
                                beta.ShapeString() + " do not match input " + x.ShapeString() +
                                " (expected [" + Str(x.dim(3)) + "])");
  }
  if (!(eps >= 0.0f)) return InvalidArgumentError("GlobalResponseNorm: eps must be >= 0");
  return GlobalResponseNormImpl(x, gamma, beta, eps);
}

namespace {

Status CheckWindows(const char* op, int64_t h, int64_t w, int window, int shift,
                    const std::string& what) {
  if (window <= 0 || shift < 0 || shift >= window) {
    return InvalidArgumentError(std::string(op) + ": window " + Str(window) + ", shift " +
                                Str(shift) + " invalid (need window > 0, 0 <= shift < window)");
  }
  if (h <= 0 || w <= 0 || h % window != 0 || w % window != 0) {
    return InvalidArgumentError(std::string(op) + ": " + what + " " + Str(h) + "x" + Str(w) +
                                " is not a positive multiple of window " + Str(window));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Tensor> Backend::WindowPartition(const Tensor& x, int window, int shift) {
  RETURN_IF_ERROR(CheckTensor("WindowPartition", "input", x));
  if (x.rank() != 4) {
    return InvalidArgumentError("WindowPartition: input " + x.ShapeString() +
                                " is not [N, H, W, C]");
  }
  RETURN_IF_ERROR(CheckWindows("WindowPartition", x.dim(1), x.dim(2), window, shift,
                               "input " + x.ShapeString() + " map"));
  return WindowPartitionImpl(x, window, shift);
}

StatusOr<Tensor> Backend::WindowMerge(const Tensor& windows, int height, int width, int window,
                                      int shift) {
  RETURN_IF_ERROR(CheckTensor("WindowMerge", "windows", windows));
  RETURN_IF_ERROR(CheckWindows("WindowMerge", height, width, window, shift, "map"));
  const int64_t per_image = static_cast<int64_t>(height / window) * (width / window);
  if (windows.rank() != 3 || windows.dim(1) != static_cast<int64_t>(window) * window ||
      windows.dim(0) % per_image != 0) {
    return InvalidArgumentError("WindowMerge: windows " + windows.ShapeString() + " is not [N * " +
                                Str(per_image) + ", " + Str(static_cast<int64_t>(window) * window) +
                                ", C] for a " + Str(height) + "x" + Str(width) + " map");
  }
  return WindowMergeImpl(windows, height, width, window, shift);
}

StatusOr<Tensor> Backend::AttentionWithBias(const Tensor& qkv, int heads, const Tensor& bias) {
  RETURN_IF_ERROR(CheckTensor("AttentionWithBias", "qkv", qkv));
  RETURN_IF_ERROR(CheckTensor("AttentionWithBias", "bias", bias));
  if (qkv.rank() != 3 || qkv.dim(2) % 3 != 0) {
    return InvalidArgumentError("AttentionWithBias: qkv " + qkv.ShapeString() +
                                " is not [N, T, 3*D]");
  }
  const int64_t d = qkv.dim(2) / 3, t = qkv.dim(1);
  if (heads <= 0 || d % heads != 0) {
    return InvalidArgumentError("AttentionWithBias: qkv " + qkv.ShapeString() + " width D=" +
                                Str(d) + " is not divisible into heads=" + Str(heads));
  }
  if (bias.rank() != 4 || bias.dim(1) != heads || bias.dim(2) != t || bias.dim(3) != t ||
      qkv.dim(0) % bias.dim(0) != 0) {
    return InvalidArgumentError("AttentionWithBias: bias " + bias.ShapeString() +
                                " does not match qkv " + qkv.ShapeString() + " (expected [G, " +
                                Str(heads) + ", " + Str(t) + ", " + Str(t) + "], G dividing " +
                                Str(qkv.dim(0)) + ")");
  }
  return AttentionWithBiasImpl(qkv, heads, bias);
}

// ---- MobileNet, VGG, DenseNet, GoogLeNet / Inception ops --------------------

StatusOr<Tensor> Backend::Pool2d(const Tensor& x, const PoolSpec& spec) {
  RETURN_IF_ERROR(CheckTensor("Pool2d", "input", x));
  if (x.rank() != 4) {
    return InvalidArgumentError("Pool2d: input " + x.ShapeString() + " is not [N, H, W, C]");
  }
  const PoolSpec& s = spec;
  if (s.kernel_h <= 0 || s.kernel_w <= 0 || s.stride_h <= 0 || s.stride_w <= 0 || s.pad_h < 0 ||
      s.pad_w < 0 || s.pad_h > s.kernel_h / 2 || s.pad_w > s.kernel_w / 2) {
    return InvalidArgumentError("Pool2d: kernel " + Str(s.kernel_h) + "x" + Str(s.kernel_w) +
                                ", stride " + Str(s.stride_h) + "x" + Str(s.stride_w) + ", pad " +
                                Str(s.pad_h) + "x" + Str(s.pad_w) +
                                " invalid (need kernel, stride > 0 and 0 <= pad <= kernel/2)");
  }
  std::vector<int64_t> out_shape = x.shape();
  const int64_t in[2] = {x.dim(1), x.dim(2)};
  const int k[2] = {s.kernel_h, s.kernel_w}, st[2] = {s.stride_h, s.stride_w},
            p[2] = {s.pad_h, s.pad_w};
  for (int a = 0; a < 2; ++a) {
    const int64_t span = in[a] + 2 * p[a] - k[a];
    if (span < 0) {
      return InvalidArgumentError("Pool2d: input " + x.ShapeString() + " smaller than kernel " +
                                  Str(s.kernel_h) + "x" + Str(s.kernel_w) + " with padding");
    }
    int64_t out = (s.ceil_mode ? (span + st[a] - 1) / st[a] : span / st[a]) + 1;
    if (s.ceil_mode && (out - 1) * st[a] >= in[a] + p[a]) --out;
    out_shape[1 + a] = out;
  }
  return Pool2dImpl(x, spec, out_shape);
}

StatusOr<Tensor> Backend::ScaleChannels(const Tensor& x, const Tensor& scale) {
  RETURN_IF_ERROR(CheckTensor("ScaleChannels", "input", x));
  RETURN_IF_ERROR(CheckTensor("ScaleChannels", "scale", scale));
  if (x.rank() != 4 || scale.rank() != 2 || scale.dim(0) != x.dim(0) || scale.dim(1) != x.dim(3)) {
    return InvalidArgumentError("ScaleChannels: scale " + scale.ShapeString() +
                                " does not match input " + x.ShapeString() +
                                " (expected input [N, H, W, C] and scale [N, C])");
  }
  return ScaleChannelsImpl(x, scale);
}

StatusOr<Tensor> Backend::ChannelAffine(const Tensor& x, const Tensor& scale, const Tensor& shift,
                                        Activation act) {
  RETURN_IF_ERROR(CheckTensor("ChannelAffine", "input", x));
  RETURN_IF_ERROR(CheckTensor("ChannelAffine", "scale", scale));
  RETURN_IF_ERROR(CheckTensor("ChannelAffine", "shift", shift));
  if (x.rank() != 4 || scale.rank() != 1 || shift.shape() != scale.shape() ||
      scale.dim(0) > x.dim(3)) {
    return InvalidArgumentError("ChannelAffine: scale " + scale.ShapeString() + " / shift " +
                                shift.ShapeString() + " do not match input " + x.ShapeString() +
                                " (expected input [N, H, W, C], scale and shift [c], c <= C)");
  }
  return ChannelAffineImpl(x, scale, shift, act);
}

StatusOr<Tensor> Backend::ConcatChannels(const std::vector<Tensor>& parts, int reserve_channels) {
  if (parts.empty()) return InvalidArgumentError("ConcatChannels: no parts");
  if (reserve_channels < 0) {
    return InvalidArgumentError("ConcatChannels: reserve_channels " + Str(reserve_channels) +
                                " is negative");
  }
  int64_t channels = reserve_channels;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string what = "part " + Str(i);
    RETURN_IF_ERROR(CheckTensor("ConcatChannels", what.c_str(), parts[i]));
    const Tensor& p = parts[i];
    if (p.rank() != 4 || p.dim(0) != parts[0].dim(0) || p.dim(1) != parts[0].dim(1) ||
        p.dim(2) != parts[0].dim(2)) {
      return InvalidArgumentError("ConcatChannels: " + what + " " + p.ShapeString() +
                                  " does not match part 0 " + parts[0].ShapeString() +
                                  " (expected [N, H, W, C_i] with equal N, H, W)");
    }
    channels += p.dim(3);
  }
  const Tensor& p0 = parts[0];
  return ConcatChannelsImpl(parts, {p0.dim(0), p0.dim(1), p0.dim(2), channels});
}

Status Backend::WriteChannels(const Tensor& dst, const Tensor& src, int offset) {
  RETURN_IF_ERROR(CheckTensor("WriteChannels", "dst", dst));
  RETURN_IF_ERROR(CheckTensor("WriteChannels", "src", src));
  if (dst.rank() != 4 || src.rank() != 4 || dst.dim(0) != src.dim(0) || dst.dim(1) != src.dim(1) ||
      dst.dim(2) != src.dim(2) || offset < 0 || offset + src.dim(3) > dst.dim(3)) {
    return InvalidArgumentError("WriteChannels: src " + src.ShapeString() + " at channel " +
                                Str(offset) + " does not fit dst " + dst.ShapeString());
  }
  if (dst.data() == src.data()) {
    return InvalidArgumentError("WriteChannels: dst and src are the same tensor");
  }
  return WriteChannelsImpl(dst, src, offset);
}

Status Backend::ToHost(const Tensor& x, std::vector<float>* out) {
  if (out == nullptr) return InvalidArgumentError("ToHost: out is null");
  RETURN_IF_ERROR(CheckTensor("ToHost", "input", x));
  return ToHostImpl(x, out);
}

}  // namespace lookalike
