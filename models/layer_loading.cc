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
  return LoadConv(backend, w, name, /*bn=*/"", SquareConvSpec(in, out, kernel, stride, pad, groups),
                  /*eps=*/0.0f, /*conv_has_bias=*/true);
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

ConvSpec SquareConvSpec(int in, int out, int kernel, int stride, int pad, int groups) {
  ConvSpec s;
  s.in_channels = in;
  s.out_channels = out;
  s.kernel_h = s.kernel_w = kernel;
  s.stride_h = s.stride_w = stride;
  s.pad_h = s.pad_w = pad;
  s.groups = groups;
  return s;
}

StatusOr<LayerPtr> LoadConv(Backend& backend, WeightStore& w, const std::string& conv,
                            const std::string& bn, const ConvSpec& spec, float eps,
                            bool conv_has_bias) {
  if (spec.groups <= 0 || spec.in_channels % spec.groups != 0) {
    return InvalidArgumentError("LoadConv '" + conv + "': in_channels " +
                                std::to_string(spec.in_channels) + " not divisible by groups " +
                                std::to_string(spec.groups));
  }
  const int in_per_group = spec.in_channels / spec.groups;
  if (bn.empty()) {
    ASSIGN_OR_RETURN(
        std::vector<float> weight,
        w.Get(conv + ".weight", {spec.out_channels, in_per_group, spec.kernel_h, spec.kernel_w}));
    std::vector<float> bias;
    if (conv_has_bias) {
      ASSIGN_OR_RETURN(bias, w.Get(conv + ".bias", {spec.out_channels}));
    }
    return backend.PrepareConv(spec, weight.data(), conv_has_bias ? bias.data() : nullptr);
  }
  ASSIGN_OR_RETURN(FoldedConv f, LoadConvBn(w, conv, bn, spec.out_channels, in_per_group,
                                            spec.kernel_h, spec.kernel_w, eps, conv_has_bias));
  return backend.PrepareConv(spec, f.weight.data(), f.bias.data());
}

}  // namespace lookalike
