#include "models/layer_loading.h"

namespace lookalike {

StatusOr<LayerPtr> LoadLinear(Backend& backend, WeightStore& w, const std::string& name, int in,
                              int out, bool bias, const std::vector<float>* row_scale) {
  ASSIGN_OR_RETURN(std::vector<float> weight, w.Get(name + ".weight", {out, in}));
  std::vector<float> b;
  if (bias) {
    ASSIGN_OR_RETURN(b, w.Get(name + ".bias", {out}));
  }
  if (row_scale != nullptr) {
    for (int o = 0; o < out; ++o) {
      for (int i = 0; i < in; ++i) weight[static_cast<size_t>(o) * in + i] *= (*row_scale)[o];
      if (bias) b[o] *= (*row_scale)[o];
    }
  }
  return backend.PrepareLinear(in, out, weight.data(), bias ? b.data() : nullptr);
}

StatusOr<LayerPtr> LoadConv(Backend& backend, WeightStore& w, const std::string& name, int in,
                            int out, int kernel, int stride, int pad, int groups) {
  if (groups <= 0 || in % groups != 0) {
    return InvalidArgumentError("LoadConv '" + name + "': in " + std::to_string(in) +
                                " not divisible by groups " + std::to_string(groups));
  }
  ASSIGN_OR_RETURN(std::vector<float> weight,
                   w.Get(name + ".weight", {out, in / groups, kernel, kernel}));
  ASSIGN_OR_RETURN(std::vector<float> bias, w.Get(name + ".bias", {out}));
  ConvSpec spec;
  spec.in_channels = in;
  spec.out_channels = out;
  spec.kernel_h = spec.kernel_w = kernel;
  spec.stride_h = spec.stride_w = stride;
  spec.pad_h = spec.pad_w = pad;
  spec.groups = groups;
  return backend.PrepareConv(spec, weight.data(), bias.data());
}

StatusOr<LayerPtr> LoadLayerNorm(Backend& backend, WeightStore& w, const std::string& name, int dim,
                                 float eps) {
  ASSIGN_OR_RETURN(std::vector<float> gamma, w.Get(name + ".weight", {dim}));
  ASSIGN_OR_RETURN(std::vector<float> beta, w.Get(name + ".bias", {dim}));
  return backend.PrepareLayerNorm(dim, gamma.data(), beta.data(), eps);
}

StatusOr<LayerPtr> LoadPackedQkv(Backend& backend, WeightStore& w, const std::string& attn,
                                 int dim) {
  std::vector<float> qkv_w, qkv_b;
  for (const char* part : {"q_proj", "k_proj", "v_proj"}) {
    const std::string n = attn + "." + part;
    ASSIGN_OR_RETURN(std::vector<float> wt, w.Get(n + ".weight", {dim, dim}));
    ASSIGN_OR_RETURN(std::vector<float> bs, w.Get(n + ".bias", {dim}));
    qkv_w.insert(qkv_w.end(), wt.begin(), wt.end());
    qkv_b.insert(qkv_b.end(), bs.begin(), bs.end());
  }
  return backend.PrepareLinear(dim, 3 * dim, qkv_w.data(), qkv_b.data());
}

}  // namespace lookalike
