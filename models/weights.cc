#include "models/weights.h"

#include <cmath>

namespace lookalike {

WeightStore::WeightStore(std::unique_ptr<SafetensorsFile> file) : file_(std::move(file)) {}

StatusOr<std::unique_ptr<WeightStore>> WeightStore::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  return std::make_unique<WeightStore>(std::move(file));
}

StatusOr<std::vector<int64_t>> WeightStore::Shape(const std::string& name) const {
  const SafeTensorInfo* t = file_->Find(name);
  if (t == nullptr) {
    return NotFoundError("weights '" + path() + "': missing tensor '" + name + "'");
  }
  return t->shape;
}

StatusOr<std::vector<float>> WeightStore::Get(const std::string& name,
                                              const std::vector<int64_t>& expected) {
  const SafeTensorInfo* t = file_->Find(name);
  if (t == nullptr) {
    return InvalidArgumentError("weights '" + path() + "': missing tensor '" + name +
                                "' (expected shape " + ShapeToString(expected) + ")");
  }
  if (t->shape != expected) {
    return InvalidArgumentError("weights '" + path() + "': tensor '" + name + "' has shape " +
                                ShapeToString(t->shape) + ", expected " + ShapeToString(expected));
  }
  used_.insert(name);
  return file_->ReadF32(name);
}

StatusOr<std::vector<float>> WeightStore::GetAnyShape(const std::string& name,
                                                      const std::vector<int64_t>& pattern,
                                                      std::vector<int64_t>* shape) {
  const SafeTensorInfo* t = file_->Find(name);
  std::string want = "[";
  for (size_t i = 0; i < pattern.size(); ++i) {
    want += (i ? ", " : "") + (pattern[i] < 0 ? std::string("*") : std::to_string(pattern[i]));
  }
  want += "]";
  if (t == nullptr) {
    return InvalidArgumentError("weights '" + path() + "': missing tensor '" + name +
                                "' (expected shape " + want + ")");
  }
  bool match = t->shape.size() == pattern.size();
  for (size_t i = 0; match && i < pattern.size(); ++i) {
    if (pattern[i] >= 0 && pattern[i] != t->shape[i]) match = false;
  }
  if (!match) {
    return InvalidArgumentError("weights '" + path() + "': tensor '" + name + "' has shape " +
                                ShapeToString(t->shape) + ", expected " + want);
  }
  used_.insert(name);
  *shape = t->shape;
  return file_->ReadF32(name);
}

Status WeightStore::CheckAllUsed(const std::vector<std::string>& ignore) const {
  std::vector<std::string> unexpected;
  for (const std::string& name : file_->names()) {
    if (used_.count(name)) continue;
    bool ignored = false;
    for (const std::string& pattern : ignore) {
      if (GlobMatch(pattern, name)) {
        ignored = true;
        break;
      }
    }
    if (!ignored) unexpected.push_back(name);
  }
  if (unexpected.empty()) return Status::Ok();
  std::string list;
  const size_t kMaxListed = 50;
  for (size_t i = 0; i < unexpected.size() && i < kMaxListed; ++i) {
    list += (i ? ", " : "") + ("'" + unexpected[i] + "'");
  }
  if (unexpected.size() > kMaxListed) {
    list += ", ... (" + std::to_string(unexpected.size() - kMaxListed) + " more)";
  }
  return InvalidArgumentError("weights '" + path() + "': " + std::to_string(unexpected.size()) +
                              " unexpected tensor(s) not used by the model: " + list);
}

bool GlobMatch(const std::string& pattern, const std::string& text) {
  // Iterative wildcard match with backtracking to the last '*'.
  size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void FoldBatchNorm(int out_channels, const std::vector<float>& gamma,
                   const std::vector<float>& beta, const std::vector<float>& mean,
                   const std::vector<float>& var, float eps, std::vector<float>* weight,
                   std::vector<float>* bias) {
  if (bias->size() != static_cast<size_t>(out_channels)) bias->assign(out_channels, 0.0f);
  const size_t per_out = weight->size() / static_cast<size_t>(out_channels);
  for (int o = 0; o < out_channels; ++o) {
    // Computed in double: var + eps can be tiny and the product is applied to
    // thousands of weights.
    const double scale =
        static_cast<double>(gamma[o]) / std::sqrt(static_cast<double>(var[o]) + eps);
    float* w = weight->data() + static_cast<size_t>(o) * per_out;
    for (size_t i = 0; i < per_out; ++i) w[i] = static_cast<float>(w[i] * scale);
    (*bias)[o] = static_cast<float>((static_cast<double>((*bias)[o]) - mean[o]) * scale + beta[o]);
  }
}

namespace {

// The four eval-mode statistics of BatchNorm `bn` {channels}, running_var
// checked, `<bn>.num_batches_tracked` marked used when present.
struct BatchNormStats {
  std::vector<float> gamma, beta, mean, var;
};
StatusOr<BatchNormStats> ReadBatchNorm(WeightStore& store, const std::string& bn, int channels,
                                       float eps) {
  BatchNormStats s;
  const int64_t o = channels;
  ASSIGN_OR_RETURN(s.gamma, store.Get(bn + ".weight", {o}));
  ASSIGN_OR_RETURN(s.beta, store.Get(bn + ".bias", {o}));
  ASSIGN_OR_RETURN(s.mean, store.Get(bn + ".running_mean", {o}));
  ASSIGN_OR_RETURN(s.var, store.Get(bn + ".running_var", {o}));
  for (int i = 0; i < channels; ++i) {
    if (!(s.var[i] + eps > 0.0f)) {
      return InvalidArgumentError("weights '" + store.path() + "': tensor '" + bn +
                                  ".running_var' has a negative or NaN entry at " +
                                  std::to_string(i));
    }
  }
  if (store.Has(bn + ".num_batches_tracked")) store.MarkUsed(bn + ".num_batches_tracked");
  return s;
}

}  // namespace

StatusOr<FoldedConv> LoadConvBn(WeightStore& store, const std::string& conv, const std::string& bn,
                                int out_channels, int in_per_group, int kernel_h, int kernel_w,
                                float eps, bool conv_has_bias) {
  FoldedConv out;
  const int64_t o = out_channels;
  ASSIGN_OR_RETURN(out.weight, store.Get(conv + ".weight", {o, in_per_group, kernel_h, kernel_w}));
  if (conv_has_bias) {
    ASSIGN_OR_RETURN(out.bias, store.Get(conv + ".bias", {o}));
  }
  ASSIGN_OR_RETURN(BatchNormStats s, ReadBatchNorm(store, bn, out_channels, eps));
  FoldBatchNorm(out_channels, s.gamma, s.beta, s.mean, s.var, eps, &out.weight, &out.bias);
  return out;
}

StatusOr<FoldedConv> LoadBatchNormAffine(WeightStore& store, const std::string& bn, int channels,
                                         float eps) {
  ASSIGN_OR_RETURN(BatchNormStats s, ReadBatchNorm(store, bn, channels, eps));
  // Folding into an identity "convolution" (weight 1, bias 0) leaves exactly
  // scale in weight and shift in bias.
  FoldedConv out;
  out.weight.assign(channels, 1.0f);
  FoldBatchNorm(channels, s.gamma, s.beta, s.mean, s.var, eps, &out.weight, &out.bias);
  return out;
}

}  // namespace lookalike
