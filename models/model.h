// Model: a backbone definition prepared on one Backend. The definitions
// (resnet.cc, vit.cc, efficientnet_lite.cc) are written once against the
// Backend op set, so every backend runs the same graph.
#pragma once

#include <memory>

#include "common/status.h"
#include "models/backend.h"
#include "models/presets.h"
#include "models/weights.h"

namespace lookalike {

class Model {
 public:
  virtual ~Model() = default;
  // x: preprocessed images {N, input_size, input_size, 3} in the backend's
  // compute dtype. Returns the pooled features {N, preset.embedding_dim}
  // before any L2 normalization or classifier.
  virtual StatusOr<Tensor> Forward(Backend& backend, const Tensor& x) = 0;
};

// Each builder pulls every tensor it needs from `weights` (checking shapes),
// prepares the layers on `backend` and leaves unused-tensor checking to the
// caller (weights.CheckAllUsed(preset.ignored_tensors)).
StatusOr<std::unique_ptr<Model>> BuildResNet(const Preset& preset, WeightStore& weights,
                                             Backend& backend);
StatusOr<std::unique_ptr<Model>> BuildVit(const Preset& preset, WeightStore& weights,
                                          Backend& backend);
StatusOr<std::unique_ptr<Model>> BuildEfficientNetLite(const Preset& preset, WeightStore& weights,
                                                       Backend& backend);
// Dispatches on preset.family.
StatusOr<std::unique_ptr<Model>> BuildModel(const Preset& preset, WeightStore& weights,
                                            Backend& backend);

}  // namespace lookalike
