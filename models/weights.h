// WeightStore: the model definitions pull their parameters from a safetensors
// file by name, each with the shape the definition expects.
//
//   ASSIGN_OR_RETURN(auto store, WeightStore::Open(path));
//   ASSIGN_OR_RETURN(std::vector<float> w, store->Get("conv1.weight", {64, 3, 7, 7}));
//   ...
//   RETURN_IF_ERROR(store->CheckAllUsed({"fc.*", "*.num_batches_tracked"}));
//
// Errors (INVALID_ARGUMENT, message prefixed with the file path):
//   missing tensor      -> names the tensor and the expected shape;
//   mis-shaped tensor   -> names the tensor, the expected and the actual shape;
//   unused tensors      -> one error listing every tensor no definition read
//                          (minus the ignore patterns).
// All values are returned as fp32 host arrays whatever the stored dtype
// (F32 / F16 / BF16 / F64 are converted on read).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "models/safetensors.h"

namespace lookalike {

class WeightStore {
 public:
  explicit WeightStore(std::unique_ptr<SafetensorsFile> file);

  static StatusOr<std::unique_ptr<WeightStore>> Open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const SafetensorsFile& file() const { return *file_; }

  bool Has(const std::string& name) const { return file_->Find(name) != nullptr; }
  // Stored shape, or NOT_FOUND naming the tensor.
  StatusOr<std::vector<int64_t>> Shape(const std::string& name) const;

  // Reads `name` as fp32 and marks it used. The stored shape must equal
  // `expected` exactly.
  StatusOr<std::vector<float>> Get(const std::string& name, const std::vector<int64_t>& expected);
  // Same, for tensors whose shape the definition learns from the file (e.g. a
  // position embedding of a checkpoint grid): the rank must match and every
  // non-negative entry of `pattern` must match; -1 entries are free. The
  // stored shape is written to `shape`.
  StatusOr<std::vector<float>> GetAnyShape(const std::string& name,
                                           const std::vector<int64_t>& pattern,
                                           std::vector<int64_t>* shape);

  // Marks a tensor as deliberately unused (it still must exist to be marked).
  void MarkUsed(const std::string& name) { used_.insert(name); }

  // OK when every tensor was read or matches one of `ignore` (glob patterns
  // where '*' matches any run of characters, e.g. "fc.*",
  // "*.num_batches_tracked", "head.*"); otherwise one INVALID_ARGUMENT listing
  // all unexpected tensor names.
  Status CheckAllUsed(const std::vector<std::string>& ignore) const;

 private:
  std::unique_ptr<SafetensorsFile> file_;
  std::set<std::string> used_;
};

// True when `text` matches `pattern` ('*' = any run of characters).
bool GlobMatch(const std::string& pattern, const std::string& text);

// Folds an eval-mode BatchNorm that follows a convolution into the
// convolution's weight and bias, in place:
//   scale[o]  = gamma[o] / sqrt(var[o] + eps)
//   weight[o] *= scale[o]          (every element of output channel o)
//   bias[o]    = (bias[o] - mean[o]) * scale[o] + beta[o]
// `weight` holds out_channels equal slices ({out, in/groups, kh, kw}), `bias`
// is resized to out_channels (zeros when the conv had none).
void FoldBatchNorm(int out_channels, const std::vector<float>& gamma,
                   const std::vector<float>& beta, const std::vector<float>& mean,
                   const std::vector<float>& var, float eps, std::vector<float>* weight,
                   std::vector<float>* bias);

// A convolution with its BatchNorm folded in, ready for Backend::PrepareConv.
struct FoldedConv {
  std::vector<float> weight;  // {out, in/groups, kh, kw}
  std::vector<float> bias;    // {out}
};

// Reads `<conv>.weight` {out, in_per_group, kh, kw} (and `<conv>.bias` when
// conv_has_bias) plus `<bn>.weight/.bias/.running_mean/.running_var` {out}
// and folds them; `<bn>.num_batches_tracked` is marked used when present.
StatusOr<FoldedConv> LoadConvBn(WeightStore& store, const std::string& conv, const std::string& bn,
                                int out_channels, int in_per_group, int kernel_h, int kernel_w,
                                float eps, bool conv_has_bias = false);

// An eval-mode BatchNorm `<bn>.*` {channels} that cannot fold into a
// convolution (DenseNet's norm-relu-conv) as the per-channel affine it
// computes, y = x * weight[c] + bias[c]: weight = gamma / sqrt(var + eps),
// bias = beta - mean * weight. The same reads and checks as LoadConvBn.
StatusOr<FoldedConv> LoadBatchNormAffine(WeightStore& store, const std::string& bn, int channels,
                                         float eps);

}  // namespace lookalike
