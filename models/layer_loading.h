// Layer loading shared by the model definitions: a checkpoint's tensors by
// name (WeightStore, shapes checked) prepared on a Backend.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "models/backend.h"
#include "models/weights.h"

namespace lookalike {

// `<name>.weight` {out, in} and, when `bias`, `<name>.bias` {out}
// (torch.nn.Linear). row_scale (null: none) multiplies output row o and its
// bias by row_scale[o] (folds DINOv2's layer scale).
StatusOr<LayerPtr> LoadLinear(Backend& backend, WeightStore& weights, const std::string& name,
                              int in, int out, bool bias,
                              const std::vector<float>* row_scale = nullptr);

// `<name>.weight` {out, in/groups, kernel, kernel} and `<name>.bias` {out}
// (torch.nn.Conv2d with bias, square kernel, symmetric padding): the
// conv + BatchNorm LoadConv below with no BatchNorm.
StatusOr<LayerPtr> LoadConv(Backend& backend, WeightStore& weights, const std::string& name, int in,
                            int out, int kernel, int stride, int pad, int groups = 1);

// `<name>.weight` and `<name>.bias`, each {dim} (torch.nn.LayerNorm).
StatusOr<LayerPtr> LoadLayerNorm(Backend& backend, WeightStore& weights, const std::string& name,
                                 int dim, float eps);

// Hugging Face CLIP attention: `<attn>.{q,k,v}_proj.{weight,bias}` ({dim, dim},
// {dim}) concatenated into one [q | k | v] linear, dim -> 3 * dim, the layout
// Backend::Attention takes.
StatusOr<LayerPtr> LoadPackedQkv(Backend& backend, WeightStore& weights, const std::string& attn,
                                 int dim);

// A square-kernel ConvSpec (torch.nn.Conv2d(in, out, k, stride, pad,
// groups=groups)); non-square kernels set kernel_w / pad_w after.
ConvSpec SquareConvSpec(int in, int out, int kernel, int stride, int pad, int groups = 1);

// torchvision's conv + BatchNorm pairs: `<conv>.weight` {out, in/groups, kh,
// kw} (and `<conv>.bias` when conv_has_bias) with BatchNorm `<bn>.*` folded
// in (eps), prepared with spec. bn empty: no BatchNorm (VGG without BN).
StatusOr<LayerPtr> LoadConv(Backend& backend, WeightStore& weights, const std::string& conv,
                            const std::string& bn, const ConvSpec& spec, float eps,
                            bool conv_has_bias = false);

}  // namespace lookalike
