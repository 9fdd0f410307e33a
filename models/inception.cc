// GoogLeNet and Inception-v3 as torchvision defines them
// (torchvision.models.googlenet / inception_v3), eval mode, without the
// auxiliary classifiers (aux1 / aux2 / AuxLogits tensors are ignored).
//
// Every convolution is torchvision's BasicConv2d: `<name>.conv` (no bias) +
// `<name>.bn` (eps 1e-3, folded here) + ReLU. Each inception block runs its
// branches on the same input and concatenates them along channels in
// torchvision's order (Backend::ConcatChannels, one copy of each branch
// output).
//
// GoogLeNet: conv1 (7x7 s2), max pool 3x3 s2 (ceil), conv2 (1x1), conv3
// (3x3), max pool (ceil), inception3a/3b, max pool (ceil), inception4a..4e,
// max pool 2x2 (ceil), inception5a/5b; block branches: branch1 (1x1),
// branch2.{0,1} (1x1, 3x3), branch3.{0,1} (1x1, 3x3: torchvision's 3x3 where
// the paper has 5x5), branch4.1 (1x1 after a 3x3 s1 p1 ceil-mode max pool).
// Embedding: the global average pool of inception5b (1024, input of fc).
//
// Inception-v3: Conv2d_1a_3x3 (s2) .. Conv2d_4a_3x3 with two 3x3 s2 max
// pools, Mixed_5b..5d (InceptionA), Mixed_6a (B), Mixed_6b..6e (C), Mixed_7a
// (D), Mixed_7b/7c (E); the blocks' average pools are 3x3 s1 p1 counting the
// padding (F.avg_pool2d's default). Embedding: the global average pool of
// Mixed_7c (2048, input of fc), at 299x299.
//
// transform_input: torchvision builds both with transform_input=True for the
// pretrained weights: the network re-normalizes an ImageNet-normalized input
// to (x - 0.5) / 0.5. The presets normalize with mean = std = 0.5 directly,
// the same input to the first convolution, so the definitions here have no
// transform step (see models/presets.h).
#include <string>
#include <vector>

#include "models/layer_loading.h"
#include "models/model.h"

namespace lookalike {
namespace {

constexpr float kEps = 1e-3f;

// One branch step: a BasicConv2d, or a pool (conv null).
struct Step {
  LayerPtr conv;
  PoolSpec pool;
};

// A branch is a chain of steps; a fork splits the chain's output into
// several parallel convolutions (Inception-v3's InceptionE 1x3 / 3x1 pairs),
// each a separate part of the block's concatenation.
struct Branch {
  std::vector<Step> steps;
  std::vector<LayerPtr> fork;
};

struct Stage {
  LayerPtr conv;                 // a BasicConv2d stage, or
  bool is_pool = false;          // a pool stage, or
  std::vector<Branch> branches;  // an inception block
  PoolSpec pool;
};

class InceptionModel : public Model {
 public:
  std::vector<Stage> stages;

  StatusOr<Tensor> Forward(Backend& b, const Tensor& x) override {
    Tensor h = x;
    for (const Stage& st : stages) {
      if (st.conv) {
        ASSIGN_OR_RETURN(h, b.Conv2d(*st.conv, h, Activation::kRelu, nullptr));
      } else if (st.is_pool) {
        ASSIGN_OR_RETURN(h, b.Pool2d(h, st.pool));
      } else {
        std::vector<Tensor> parts;
        for (const Branch& br : st.branches) {
          Tensor y = h;
          for (const Step& s : br.steps) {
            if (s.conv) {
              ASSIGN_OR_RETURN(y, b.Conv2d(*s.conv, y, Activation::kRelu, nullptr));
            } else {
              ASSIGN_OR_RETURN(y, b.Pool2d(y, s.pool));
            }
          }
          if (br.fork.empty()) {
            parts.push_back(y);
          } else {
            for (const LayerPtr& f : br.fork) {
              ASSIGN_OR_RETURN(Tensor part, b.Conv2d(*f, y, Activation::kRelu, nullptr));
              parts.push_back(part);
            }
          }
        }
        ASSIGN_OR_RETURN(h, b.ConcatChannels(parts));
      }
    }
    return b.MeanPool(h, 0);
  }
};

PoolSpec Pool(PoolSpec::Kind kind, int k, int stride, int pad, bool ceil_mode) {
  PoolSpec p;
  p.kind = kind;
  p.kernel_h = p.kernel_w = k;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.ceil_mode = ceil_mode;
  p.count_include_pad = true;
  return p;
}
PoolSpec MaxPool(int k, int stride, int pad = 0, bool ceil_mode = false) {
  return Pool(PoolSpec::Kind::kMax, k, stride, pad, ceil_mode);
}
const PoolSpec kAvg3x3 = Pool(PoolSpec::Kind::kAvg, 3, 1, 1, false);

// Loads BasicConv2d `name` (kh x kw, stride, pads).
class Loader {
 public:
  Loader(Backend& backend, WeightStore& w) : backend_(backend), w_(w) {}

  StatusOr<LayerPtr> Conv(const std::string& name, int in, int out, int kh, int kw = 0,
                          int stride = 1, int pad_h = -1, int pad_w = -1) {
    if (kw == 0) kw = kh;
    ConvSpec s = SquareConvSpec(in, out, kh, stride, 0);
    s.kernel_w = kw;
    s.pad_h = pad_h >= 0 ? pad_h : 0;
    s.pad_w = pad_w >= 0 ? pad_w : 0;
    return LoadConv(backend_, w_, name + ".conv", name + ".bn", s, kEps);
  }
  // A same-size convolution (pad (k - 1) / 2 on each axis).
  StatusOr<LayerPtr> Same(const std::string& name, int in, int out, int kh, int kw) {
    return Conv(name, in, out, kh, kw, 1, (kh - 1) / 2, (kw - 1) / 2);
  }
  StatusOr<Step> StepOf(const std::string& name, int in, int out, int kh, int kw) {
    Step s;
    ASSIGN_OR_RETURN(s.conv, Same(name, in, out, kh, kw));
    return s;
  }

 private:
  Backend& backend_;
  WeightStore& w_;
};

// Appends a BasicConv2d stage (or returns the load error).
Status AddConvStage(InceptionModel* model, StatusOr<LayerPtr> conv) {
  if (!conv.ok()) return conv.status();
  Stage s;
  s.conv = std::move(conv).value();
  model->stages.push_back(std::move(s));
  return Status::Ok();
}

Stage PoolStage(const PoolSpec& p) {
  Stage s;
  s.is_pool = true;
  s.pool = p;
  return s;
}

Step PoolStep(const PoolSpec& p) {
  Step s;
  s.pool = p;
  return s;
}

// Chains of convolutions: {name, out, kh, kw[, stride]} each, input `in`;
// stride 1 keeps the size (pad (k - 1) / 2), stride 2 pads nothing.
struct ConvArgs {
  const char* name;
  int out, kh, kw;
  int stride = 1;
};
StatusOr<Branch> Chain(Loader& l, const std::string& prefix, int in,
                       const std::vector<ConvArgs>& convs, const PoolSpec* pool_first = nullptr) {
  Branch br;
  if (pool_first != nullptr) br.steps.push_back(PoolStep(*pool_first));
  for (const ConvArgs& c : convs) {
    Step s;
    if (c.stride == 1) {
      ASSIGN_OR_RETURN(s, l.StepOf(prefix + c.name, in, c.out, c.kh, c.kw));
    } else {
      ASSIGN_OR_RETURN(s.conv, l.Conv(prefix + c.name, in, c.out, c.kh, c.kw, c.stride));
    }
    br.steps.push_back(std::move(s));
    in = c.out;
  }
  return br;
}

StatusOr<std::unique_ptr<Model>> BuildGoogLeNet(WeightStore& w, Backend& backend) {
  Loader l(backend, w);
  auto model = std::make_unique<InceptionModel>();
  RETURN_IF_ERROR(AddConvStage(model.get(), l.Conv("conv1", 3, 64, 7, 7, 2, 3, 3)));
  model->stages.push_back(PoolStage(MaxPool(3, 2, 0, true)));
  RETURN_IF_ERROR(AddConvStage(model.get(), l.Conv("conv2", 64, 64, 1)));
  RETURN_IF_ERROR(AddConvStage(model.get(), l.Same("conv3", 64, 192, 3, 3)));
  model->stages.push_back(PoolStage(MaxPool(3, 2, 0, true)));
  struct Block {
    const char* name;
    int in, c1, c3r, c3, c5r, c5, pool;
  };
  const Block blocks[] = {
      {"inception3a", 192, 64, 96, 128, 16, 32, 32},
      {"inception3b", 256, 128, 128, 192, 32, 96, 64},
      {nullptr, 0, 0, 0, 0, 0, 0, 0},
      {"inception4a", 480, 192, 96, 208, 16, 48, 64},
      {"inception4b", 512, 160, 112, 224, 24, 64, 64},
      {"inception4c", 512, 128, 128, 256, 24, 64, 64},
      {"inception4d", 512, 112, 144, 288, 32, 64, 64},
      {"inception4e", 528, 256, 160, 320, 32, 128, 128},
      {nullptr, 0, 0, 0, 0, 0, 0, 1},
      {"inception5a", 832, 256, 160, 320, 32, 128, 128},
      {"inception5b", 832, 384, 192, 384, 48, 128, 128},
  };
  const PoolSpec branch_pool = MaxPool(3, 1, 1, true);
  for (const Block& b : blocks) {
    if (b.name == nullptr) {
      // maxpool3: 3x3 s2; maxpool4: 2x2 s2 (both ceil mode).
      model->stages.push_back(
          PoolStage(b.pool == 0 ? MaxPool(3, 2, 0, true) : MaxPool(2, 2, 0, true)));
      continue;
    }
    const std::string p = std::string(b.name) + ".";
    Stage st;
    ASSIGN_OR_RETURN(Branch b1, Chain(l, p, b.in, {{"branch1", b.c1, 1, 1}}));
    ASSIGN_OR_RETURN(Branch b2,
                     Chain(l, p, b.in, {{"branch2.0", b.c3r, 1, 1}, {"branch2.1", b.c3, 3, 3}}));
    ASSIGN_OR_RETURN(Branch b3,
                     Chain(l, p, b.in, {{"branch3.0", b.c5r, 1, 1}, {"branch3.1", b.c5, 3, 3}}));
    ASSIGN_OR_RETURN(Branch b4, Chain(l, p, b.in, {{"branch4.1", b.pool, 1, 1}}, &branch_pool));
    st.branches.push_back(std::move(b1));
    st.branches.push_back(std::move(b2));
    st.branches.push_back(std::move(b3));
    st.branches.push_back(std::move(b4));
    model->stages.push_back(std::move(st));
  }
  return std::unique_ptr<Model>(std::move(model));
}

StatusOr<std::unique_ptr<Model>> BuildInceptionV3(WeightStore& w, Backend& backend) {
  Loader l(backend, w);
  auto model = std::make_unique<InceptionModel>();
  RETURN_IF_ERROR(AddConvStage(model.get(), l.Conv("Conv2d_1a_3x3", 3, 32, 3, 3, 2)));
  RETURN_IF_ERROR(AddConvStage(model.get(), l.Conv("Conv2d_2a_3x3", 32, 32, 3)));
  RETURN_IF_ERROR(AddConvStage(model.get(), l.Same("Conv2d_2b_3x3", 32, 64, 3, 3)));
  model->stages.push_back(PoolStage(MaxPool(3, 2)));
  RETURN_IF_ERROR(AddConvStage(model.get(), l.Conv("Conv2d_3b_1x1", 64, 80, 1)));
  RETURN_IF_ERROR(AddConvStage(model.get(), l.Conv("Conv2d_4a_3x3", 80, 192, 3)));
  model->stages.push_back(PoolStage(MaxPool(3, 2)));

  auto add = [&](Stage& st, StatusOr<Branch> br) -> Status {
    if (!br.ok()) return br.status();
    st.branches.push_back(std::move(br).value());
    return Status::Ok();
  };
  // InceptionA.
  const struct {
    const char* name;
    int in, pool;
  } a_blocks[] = {{"Mixed_5b", 192, 32}, {"Mixed_5c", 256, 64}, {"Mixed_5d", 288, 64}};
  for (const auto& a : a_blocks) {
    const std::string p = std::string(a.name) + ".";
    Stage st;
    RETURN_IF_ERROR(add(st, Chain(l, p, a.in, {{"branch1x1", 64, 1, 1}})));
    RETURN_IF_ERROR(
        add(st, Chain(l, p, a.in, {{"branch5x5_1", 48, 1, 1}, {"branch5x5_2", 64, 5, 5}})));
    RETURN_IF_ERROR(add(st, Chain(l, p, a.in,
                                  {{"branch3x3dbl_1", 64, 1, 1},
                                   {"branch3x3dbl_2", 96, 3, 3},
                                   {"branch3x3dbl_3", 96, 3, 3}})));
    RETURN_IF_ERROR(add(st, Chain(l, p, a.in, {{"branch_pool", a.pool, 1, 1}}, &kAvg3x3)));
    model->stages.push_back(std::move(st));
  }
  // InceptionB (Mixed_6a) and InceptionD (Mixed_7a): stride-2 reductions,
  // the last branch a 3x3 s2 max pool.
  const PoolSpec reduce_pool = MaxPool(3, 2);
  {
    Stage st;
    RETURN_IF_ERROR(add(st, Chain(l, "Mixed_6a.", 288, {{"branch3x3", 384, 3, 3, 2}})));
    RETURN_IF_ERROR(add(st, Chain(l, "Mixed_6a.", 288,
                                  {{"branch3x3dbl_1", 64, 1, 1},
                                   {"branch3x3dbl_2", 96, 3, 3},
                                   {"branch3x3dbl_3", 96, 3, 3, 2}})));
    RETURN_IF_ERROR(add(st, Chain(l, "Mixed_6a.", 288, {}, &reduce_pool)));
    model->stages.push_back(std::move(st));
  }
  // InceptionC.
  const struct {
    const char* name;
    int c7;
  } c_blocks[] = {{"Mixed_6b", 128}, {"Mixed_6c", 160}, {"Mixed_6d", 160}, {"Mixed_6e", 192}};
  for (const auto& c : c_blocks) {
    const std::string p = std::string(c.name) + ".";
    const int c7 = c.c7;
    Stage st;
    RETURN_IF_ERROR(add(st, Chain(l, p, 768, {{"branch1x1", 192, 1, 1}})));
    RETURN_IF_ERROR(add(
        st,
        Chain(l, p, 768,
              {{"branch7x7_1", c7, 1, 1}, {"branch7x7_2", c7, 1, 7}, {"branch7x7_3", 192, 7, 1}})));
    RETURN_IF_ERROR(add(st, Chain(l, p, 768,
                                  {{"branch7x7dbl_1", c7, 1, 1},
                                   {"branch7x7dbl_2", c7, 7, 1},
                                   {"branch7x7dbl_3", c7, 1, 7},
                                   {"branch7x7dbl_4", c7, 7, 1},
                                   {"branch7x7dbl_5", 192, 1, 7}})));
    RETURN_IF_ERROR(add(st, Chain(l, p, 768, {{"branch_pool", 192, 1, 1}}, &kAvg3x3)));
    model->stages.push_back(std::move(st));
  }
  {
    Stage st;
    RETURN_IF_ERROR(add(st, Chain(l, "Mixed_7a.", 768,
                                  {{"branch3x3_1", 192, 1, 1}, {"branch3x3_2", 320, 3, 3, 2}})));
    RETURN_IF_ERROR(add(st, Chain(l, "Mixed_7a.", 768,
                                  {{"branch7x7x3_1", 192, 1, 1},
                                   {"branch7x7x3_2", 192, 1, 7},
                                   {"branch7x7x3_3", 192, 7, 1},
                                   {"branch7x7x3_4", 192, 3, 3, 2}})));
    RETURN_IF_ERROR(add(st, Chain(l, "Mixed_7a.", 768, {}, &reduce_pool)));
    model->stages.push_back(std::move(st));
  }
  // InceptionE.
  const struct {
    const char* name;
    int in;
  } e_blocks[] = {{"Mixed_7b", 1280}, {"Mixed_7c", 2048}};
  for (const auto& e : e_blocks) {
    const std::string p = std::string(e.name) + ".";
    Stage st;
    RETURN_IF_ERROR(add(st, Chain(l, p, e.in, {{"branch1x1", 320, 1, 1}})));
    ASSIGN_OR_RETURN(Branch b2, Chain(l, p, e.in, {{"branch3x3_1", 384, 1, 1}}));
    ASSIGN_OR_RETURN(LayerPtr f2a, l.Same(p + "branch3x3_2a", 384, 384, 1, 3));
    ASSIGN_OR_RETURN(LayerPtr f2b, l.Same(p + "branch3x3_2b", 384, 384, 3, 1));
    b2.fork.push_back(std::move(f2a));
    b2.fork.push_back(std::move(f2b));
    st.branches.push_back(std::move(b2));
    ASSIGN_OR_RETURN(
        Branch b3,
        Chain(l, p, e.in, {{"branch3x3dbl_1", 448, 1, 1}, {"branch3x3dbl_2", 384, 3, 3}}));
    ASSIGN_OR_RETURN(LayerPtr f3a, l.Same(p + "branch3x3dbl_3a", 384, 384, 1, 3));
    ASSIGN_OR_RETURN(LayerPtr f3b, l.Same(p + "branch3x3dbl_3b", 384, 384, 3, 1));
    b3.fork.push_back(std::move(f3a));
    b3.fork.push_back(std::move(f3b));
    st.branches.push_back(std::move(b3));
    RETURN_IF_ERROR(add(st, Chain(l, p, e.in, {{"branch_pool", 192, 1, 1}}, &kAvg3x3)));
    model->stages.push_back(std::move(st));
  }
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace

StatusOr<std::unique_ptr<Model>> BuildInception(const Preset& preset, WeightStore& w,
                                                Backend& backend) {
  if (preset.arch == "googlenet") return BuildGoogLeNet(w, backend);
  if (preset.arch == "inception_v3") return BuildInceptionV3(w, backend);
  return InvalidArgumentError("preset '" + preset.name + "': unknown Inception architecture '" +
                              preset.arch + "'");
}

}  // namespace lookalike
