#include "models/embedder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "models/backend_factory.h"
#include "models/model.h"
#include "models/presets.h"
#include "models/weights.h"

namespace lookalike {
namespace {

class ModelEmbedder : public Embedder {
 public:
  const ModelInfo& info() const override { return info_; }

  Status Embed(const std::vector<ImageView>& images, std::vector<float>* out) override {
    if (out == nullptr) return InvalidArgumentError("Embed: output vector is null");
    for (size_t i = 0; i < images.size(); ++i) {
      RETURN_IF_ERROR(CheckImage(images[i]).WithPrefix("image " + std::to_string(i)));
    }
    const size_t dim = static_cast<size_t>(info_.dim);
    std::vector<float> result;
    result.reserve(images.size() * dim);
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<float> host;
    const Backend::ForwardFn forward = [this](const Tensor& in) -> StatusOr<Tensor> {
      ASSIGN_OR_RETURN(Tensor out, model_->Forward(*backend_, in));
      if (classifier_) return backend_->Linear(*classifier_, out, Activation::kNone, nullptr);
      if (info_.l2_normalized) return backend_->L2Normalize(out);
      return out;
    };
    for (size_t begin = 0; begin < images.size(); begin += max_batch_) {
      const size_t end = std::min(images.size(), begin + max_batch_);
      std::vector<ImageView> chunk(images.begin() + begin, images.begin() + end);
      ASSIGN_OR_RETURN(Tensor x, backend_->Preprocess(chunk, preset_.preprocess));
      // Everything after preprocessing depends only on the batch shape: the
      // backend may record it once per batch size and replay it (CUDA Graphs).
      ASSIGN_OR_RETURN(Tensor y, backend_->RunRecorded(x, forward));
      RETURN_IF_ERROR(backend_->ToHost(y, &host));
      if (host.size() != chunk.size() * dim) {
        return InternalError("model '" + info_.preset + "' produced " +
                             std::to_string(host.size()) + " values for " +
                             std::to_string(chunk.size()) + " images of dim " +
                             std::to_string(dim));
      }
      result.insert(result.end(), host.begin(), host.end());
    }
    *out = std::move(result);
    return Status::Ok();
  }

  Status EmbedTexts(const std::vector<std::vector<int32_t>>& token_ids,
                    std::vector<float>* out) override {
    if (out == nullptr) return InvalidArgumentError("EmbedTexts: output vector is null");
    if (!text_model_) {
      return FailedPreconditionError("preset '" + info_.preset + "': the weights '" +
                                     weights_path_ +
                                     "' have no CLIP text tower (text_model.*, text_projection); "
                                     "text embeddings need a CLIPModel checkpoint");
    }
    const size_t dim = static_cast<size_t>(info_.dim);
    std::vector<float> result;
    result.reserve(token_ids.size() * dim);
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<float> host;
    for (size_t begin = 0; begin < token_ids.size(); begin += max_batch_) {
      const size_t end = std::min(token_ids.size(), begin + max_batch_);
      const size_t len = token_ids[begin].size();
      std::vector<int32_t> ids;
      ids.reserve((end - begin) * len);
      for (size_t i = begin; i < end; ++i) {
        if (token_ids[i].size() != len) {
          return InvalidArgumentError("EmbedTexts: text " + std::to_string(i) + " has " +
                                      std::to_string(token_ids[i].size()) + " ids, text " +
                                      std::to_string(begin) + " has " + std::to_string(len) +
                                      " (texts of one call must have equal length)");
        }
        ids.insert(ids.end(), token_ids[i].begin(), token_ids[i].end());
      }
      const int64_t batch = static_cast<int64_t>(end - begin);
      ASSIGN_OR_RETURN(Tensor y, text_model_->Forward(*backend_, ids, batch));
      ASSIGN_OR_RETURN(y, backend_->L2Normalize(y));
      RETURN_IF_ERROR(backend_->ToHost(y, &host));
      if (host.size() != static_cast<size_t>(batch) * dim) {
        return InternalError("text tower of '" + info_.preset + "' produced " +
                             std::to_string(host.size()) + " values for " + std::to_string(batch) +
                             " texts of dim " + std::to_string(dim));
      }
      result.insert(result.end(), host.begin(), host.end());
    }
    *out = std::move(result);
    return Status::Ok();
  }

  Preset preset_;
  ModelInfo info_;
  std::string weights_path_;
  std::unique_ptr<TextModel> text_model_;
  size_t max_batch_ = 64;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  LayerPtr classifier_;
  std::mutex mu_;
};

}  // namespace

StatusOr<std::unique_ptr<Embedder>> Embedder::Load(const EmbedderOptions& options) {
  if (options.max_batch < 1) {
    return InvalidArgumentError("max_batch must be >= 1, got " + std::to_string(options.max_batch));
  }
  if (options.output != "embedding" && options.output != "logits") {
    return InvalidArgumentError("output must be \"embedding\" or \"logits\", got \"" +
                                options.output + "\"");
  }
  std::optional<DType> dtype;  // nullopt: the device's default
  if (options.precision != "auto") {
    ASSIGN_OR_RETURN(dtype, ParseDType(options.precision));
  }
  ASSIGN_OR_RETURN(Preset preset, FindPreset(options.preset));
  const bool logits = options.output == "logits";
  if (logits && preset.classifier.empty()) {
    return InvalidArgumentError("preset '" + preset.name +
                                "' has no classifier head; output \"logits\" is unavailable");
  }
  if (options.weights_path.empty()) {
    return InvalidArgumentError("preset '" + preset.name + "': weights_path is empty");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<WeightStore> weights, WeightStore::Open(options.weights_path));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                   MakeBackend(options.device, options.num_threads, dtype));

  auto embedder = std::make_unique<ModelEmbedder>();
  Status built = [&]() -> Status {
    ASSIGN_OR_RETURN(embedder->model_, BuildModel(preset, *weights, *backend));
    // A CLIPModel checkpoint carries the text tower too; a vision-only one
    // (CLIPVisionModelWithProjection) loads as before, without it.
    if (preset.family == "clip_vit" &&
        weights->Has("text_model.embeddings.token_embedding.weight")) {
      ClipTextConfig text = preset.text;
      // The checkpoint's own config.json (Hugging Face layout), when beside
      // the weights, says which activation and end-of-text rule it uses.
      const std::string config_path =
          std::filesystem::path(options.weights_path).parent_path().append("config.json").string();
      std::error_code ec;
      if (std::filesystem::is_regular_file(config_path, ec)) {
        std::ifstream in(config_path, std::ios::binary);
        std::stringstream buffer;
        buffer << in.rdbuf();
        if (!in.good() && !in.eof())
          return InvalidArgumentError("cannot read '" + config_path + "'");
        ASSIGN_OR_RETURN(JsonValue root, ParseJson(buffer.str()));
        RETURN_IF_ERROR(ApplyHfClipTextConfig(root, &text).WithPrefix(config_path));
      }
      if (text.projection_dim != preset.embedding_dim) {
        return InvalidArgumentError("text projection dim " + std::to_string(text.projection_dim) +
                                    " differs from the image embedding dim " +
                                    std::to_string(preset.embedding_dim));
      }
      ASSIGN_OR_RETURN(embedder->text_model_, BuildClipText(text, *weights, *backend));
      preset.text = text;
    }
    if (logits) {
      const int64_t in = preset.embedding_dim, out = preset.num_classes;
      ASSIGN_OR_RETURN(std::vector<float> w,
                       weights->Get(preset.classifier + ".weight", {out, in}));
      ASSIGN_OR_RETURN(std::vector<float> b, weights->Get(preset.classifier + ".bias", {out}));
      ASSIGN_OR_RETURN(
          embedder->classifier_,
          backend->PrepareLinear(static_cast<int>(in), static_cast<int>(out), w.data(), b.data()));
    }
    return weights->CheckAllUsed(preset.ignored_tensors);
  }();
  if (!built.ok()) return built.WithPrefix("loading preset '" + preset.name + "'");

  ModelInfo& info = embedder->info_;
  info.preset = preset.name;
  info.family = preset.family;
  info.dim = logits ? preset.num_classes : preset.embedding_dim;
  info.input_height = preset.preprocess.crop_height;
  info.input_width = preset.preprocess.crop_width;
  info.l2_normalized = !logits && preset.l2_normalize;
  info.has_text = embedder->text_model_ != nullptr && !logits;
  info.text_context_length = info.has_text ? preset.text.context_length : 0;
  if (!info.has_text) embedder->text_model_.reset();
  embedder->weights_path_ = options.weights_path;
  info.backend = backend->name();
  info.preprocess = preset.preprocess;
  embedder->preset_ = std::move(preset);
  embedder->max_batch_ = static_cast<size_t>(options.max_batch);
  embedder->backend_ = std::move(backend);
  return std::unique_ptr<Embedder>(std::move(embedder));
}

}  // namespace lookalike
