// Model: a backbone definition prepared on one Backend. The definitions
// (resnet.cc, vit.cc, efficientnet_lite.cc) are written once against the
// Backend op set, so every backend runs the same graph.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "models/backend.h"
#include "models/json.h"
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

// A text tower prepared on one Backend (CLIP's text transformer).
class TextModel {
 public:
  virtual ~TextModel() = default;
  // ids: `batch` token sequences of one length T (1 <= T <= context length),
  // row-major {batch, T} on the host, as ClipTokenizer::Tokenize writes them.
  // Returns the projected features {batch, projection_dim} in the backend's
  // compute dtype, before L2 normalization (transformers'
  // CLIPModel.get_text_features).
  virtual StatusOr<Tensor> Forward(Backend& backend, const std::vector<int32_t>& ids,
                                   int64_t batch) = 0;
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
StatusOr<std::unique_ptr<Model>> BuildConvNext(const Preset& preset, WeightStore& weights,
                                               Backend& backend);
StatusOr<std::unique_ptr<Model>> BuildSwin(const Preset& preset, WeightStore& weights,
                                           Backend& backend);
// torchvision MobileNetV2/V3, VGG, DenseNet, GoogLeNet / Inception-v3, by
// preset.arch (models/mobilenet.cc, vgg.cc, densenet.cc, inception.cc).
StatusOr<std::unique_ptr<Model>> BuildMobileNet(const Preset& preset, WeightStore& weights,
                                                Backend& backend);
StatusOr<std::unique_ptr<Model>> BuildVgg(const Preset& preset, WeightStore& weights,
                                          Backend& backend);
StatusOr<std::unique_ptr<Model>> BuildDenseNet(const Preset& preset, WeightStore& weights,
                                               Backend& backend);
StatusOr<std::unique_ptr<Model>> BuildInception(const Preset& preset, WeightStore& weights,
                                                Backend& backend);
// The CLIP text tower with transformers' tensor names (text_model.*,
// text_projection); see models/clip_text.cc.
StatusOr<std::unique_ptr<TextModel>> BuildClipText(const ClipTextConfig& config,
                                                   WeightStore& weights, Backend& backend);
// Overrides `config` with a Hugging Face CLIPModel config.json (`root`: its
// parsed object): text_config's hidden_size, intermediate_size,
// num_hidden_layers, num_attention_heads, max_position_embeddings,
// vocab_size, hidden_act ("quick_gelu" or "gelu"), layer_norm_eps,
// eos_token_id, and the top-level projection_dim. A field the file omits
// takes transformers' CLIPTextConfig default (as transformers would read the
// file), e.g. eos_token_id 49407. INVALID_ARGUMENT naming the field for a
// wrong type or an unsupported activation.
Status ApplyHfClipTextConfig(const JsonValue& root, ClipTextConfig* config);
// Dispatches on preset.family.
StatusOr<std::unique_ptr<Model>> BuildModel(const Preset& preset, WeightStore& weights,
                                            Backend& backend);

}  // namespace lookalike
