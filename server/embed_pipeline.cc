#include "server/embed_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace lookalike {
namespace {

// The batch as the text tower takes it: every text padded with id 0 to the
// longest (see the header: exact under causal attention and end-token
// pooling; 0 is below the end token, so argmax pooling is unchanged too).
std::vector<TokenIds> PadToLongest(const std::vector<TokenIds>& texts) {
  size_t longest = 0;
  for (const TokenIds& t : texts) longest = std::max(longest, t.size());
  std::vector<TokenIds> padded = texts;
  for (TokenIds& t : padded) t.resize(longest, 0);
  return padded;
}

}  // namespace

StatusOr<std::shared_ptr<const ClipTokenizer>> LoadModelTokenizer(const ModelConfig& config,
                                                                  const ModelInfo& info) {
  if (!info.has_text) return std::shared_ptr<const ClipTokenizer>();
  std::string path = config.tokenizer;
  if (path.empty()) {
    const std::filesystem::path dir = std::filesystem::path(config.weights).parent_path();
    std::error_code ec;
    if (!std::filesystem::exists(dir / "vocab.json", ec) ||
        !std::filesystem::exists(dir / "merges.txt", ec)) {
      return std::shared_ptr<const ClipTokenizer>();
    }
    path = (dir / "vocab.json").string();
  }
  StatusOr<ClipTokenizer> tokenizer = ClipTokenizer::Load(path);
  if (!tokenizer.ok()) {
    return Status(tokenizer.status().code(),
                  "tokenizer \"" + path + "\": " + tokenizer.status().message());
  }
  return std::make_shared<const ClipTokenizer>(*std::move(tokenizer));
}

EmbedPipeline::EmbedPipeline(std::vector<ServedModel> models, std::string default_model,
                             LimitsConfig limits, BatcherConfig batcher, ThreadPool* completions,
                             Metrics* metrics)
    : default_model_(std::move(default_model)),
      limits_(limits),
      completions_(completions),
      decode_pool_(limits.decode_threads) {
  BatcherOptions batcher_options;
  batcher_options.max_batch = batcher.max_batch;
  batcher_options.max_delay = std::chrono::microseconds(batcher.max_delay_us);
  batcher_options.queue_capacity = batcher.queue_capacity;
  for (ServedModel& served : models) {
    auto model = std::make_unique<Model>();
    model->served = std::move(served);
    const ServedModel& m = model->served;
    // One batch function per engine (replicas), for images and for texts;
    // the test hooks (embed, embed_texts) replace them.
    std::vector<std::shared_ptr<Embedder>> engines;
    if (m.embedder) engines.push_back(m.embedder);
    engines.insert(engines.end(), m.more_replicas.begin(), m.more_replicas.end());
    std::vector<Batcher::EmbedFn> fns;
    std::vector<TextBatcher::EmbedFn> text_fns;
    for (const std::shared_ptr<Embedder>& embedder : engines) {
      fns.push_back([embedder](const std::vector<ImageView>& images, std::vector<float>* out) {
        return embedder->Embed(images, out);
      });
      text_fns.push_back([embedder](const std::vector<TokenIds>& texts, std::vector<float>* out) {
        return embedder->EmbedTexts(PadToLongest(texts), out);
      });
    }
    if (m.embed) fns = {m.embed};
    if (m.embed_texts) {
      text_fns = {
          [fn = m.embed_texts](const std::vector<TokenIds>& texts, std::vector<float>* out) {
            return fn(PadToLongest(texts), out);
          }};
    }
    const std::string name = m.name;
    auto observer = [metrics, name](int size) {
      if (metrics) metrics->ObserveBatch(name, size);
    };
    model->batcher =
        std::make_unique<Batcher>(name, m.info.dim, std::move(fns), batcher_options, observer);
    ModelInfo& info = model->served.info;
    if (!m.tokenizer) info.has_text = false;
    if (!info.has_text) info.text_context_length = 0;
    if (info.has_text && info.text_context_length <= 0) {
      info.text_context_length = ClipTokenizer::kDefaultContextLength;
    }
    if (info.has_text) {
      model->text_batcher = std::make_unique<TextBatcher>(name, info.dim, std::move(text_fns),
                                                          batcher_options, observer);
    }
    models_[name] = std::move(model);
  }
}

EmbedPipeline::~EmbedPipeline() { Shutdown(); }

void EmbedPipeline::Shutdown() {
  for (auto& [name, model] : models_) {
    model->batcher->Shutdown();
    if (model->text_batcher) model->text_batcher->Shutdown();
  }
}

std::vector<std::pair<std::string, double>> EmbedPipeline::QueueDepths() const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [name, model] : models_) {
    int depth = model->batcher->queue_depth();
    if (model->text_batcher) depth += model->text_batcher->queue_depth();
    out.emplace_back(name, depth);
  }
  return out;
}

std::vector<const ServedModel*> EmbedPipeline::Models() const {
  std::vector<const ServedModel*> out;
  for (const auto& [name, model] : models_) out.push_back(&model->served);
  return out;
}

StatusOr<const ServedModel*> EmbedPipeline::FindModel(const std::string& name) const {
  const std::string& want = name.empty() ? default_model_ : name;
  if (want.empty()) return NotFoundError("this server has no default model; name one");
  auto it = models_.find(want);
  if (it == models_.end()) {
    return NotFoundError("model \"" + want + "\" is not served (see ListModels)");
  }
  return &it->second->served;
}

StatusOr<const ServedModel*> EmbedPipeline::ModelForCollection(const CollectionSpec& spec) const {
  if (spec.model == kVectorsOnly) {
    return InvalidArgumentError("collection \"" + spec.name +
                                "\" stores vectors only (no model); send a vector");
  }
  auto it = models_.find(spec.model);
  if (it == models_.end()) {
    return FailedPreconditionError("collection \"" + spec.name + "\"'s model \"" + spec.model +
                                   "\" is not served");
  }
  return &it->second->served;
}

Status EmbedPipeline::Embed(const ServedModel& served, std::vector<std::string_view> payloads,
                            const std::string& field, bool all_or_nothing, DoneFn done,
                            int thumbnail_size) {
  const int n = static_cast<int>(payloads.size());
  if (n > limits_.max_images_per_request) {
    return InvalidArgumentError(field + ": " + std::to_string(n) + " images is over the limit of " +
                                std::to_string(limits_.max_images_per_request));
  }
  auto it = models_.find(served.name);
  if (it == models_.end() || &it->second->served != &served) {
    return InternalError("model \"" + served.name + "\" is not this pipeline's");
  }
  Batcher& batcher = *it->second->batcher;
  const size_t dim = static_cast<size_t>(served.info.dim);

  // What the batch's completion needs: the decoded pixels (the batcher's
  // views point into them) and where each embedded row goes.
  struct Pending {
    std::vector<StatusOr<DecodedImage>> decoded;
    std::vector<size_t> positions;  // payload index of each embedded image
    EmbeddedImages result;
    DoneFn done;
  };
  auto pending = std::make_shared<Pending>();
  pending->decoded = decode_pool_.DecodeAll(payloads, limits_.max_image_pixels, thumbnail_size);
  pending->result.item_status.assign(payloads.size(), Status::Ok());
  pending->result.vectors.assign(payloads.size() * dim, 0.f);
  if (thumbnail_size > 0) pending->result.thumbnails.resize(payloads.size());
  pending->done = std::move(done);
  std::vector<ImageView> views;
  for (size_t i = 0; i < pending->decoded.size(); ++i) {
    if (!pending->decoded[i].ok()) {
      pending->result.item_status[i] = pending->decoded[i].status();
      continue;
    }
    views.push_back(pending->decoded[i]->view());
    pending->positions.push_back(i);
    if (thumbnail_size > 0)
      pending->result.thumbnails[i] = std::move(pending->decoded[i]->thumbnail);
  }
  if (views.empty() || (all_or_nothing && views.size() < payloads.size())) {
    pending->done(std::move(pending->result));
    return Status::Ok();
  }
  ThreadPool* completions = completions_;
  return batcher.Submit(
      std::move(views), [pending, completions, dim](Status status, std::vector<float> out) {
        // On the batcher's worker: hand over at once, so the worker goes back
        // to batching and the rest of the request runs on the completion pool.
        completions->Submit([pending, dim, status = std::move(status), out = std::move(out)] {
          if (!status.ok()) {
            pending->done(status);
            return;
          }
          for (size_t j = 0; j < pending->positions.size(); ++j) {
            std::memcpy(pending->result.vectors.data() + pending->positions[j] * dim,
                        out.data() + j * dim, sizeof(float) * dim);
          }
          pending->decoded.clear();  // free the pixels before the rest of the request
          pending->done(std::move(pending->result));
        });
      });
}

Status EmbedPipeline::CheckServesTexts(const ServedModel& served) const {
  if (served.info.has_text) return Status::Ok();
  return FailedPreconditionError(
      "model \"" + served.name + "\" (preset " + served.info.preset +
      ") has no text tower: texts need a CLIP checkpoint with both towers (a CLIPModel "
      "model.safetensors) and its tokenizer (models[].tokenizer, or vocab.json + merges.txt "
      "beside the weights)");
}

Status EmbedPipeline::EmbedTexts(const ServedModel& served,
                                 const std::vector<std::string_view>& texts,
                                 const std::string& field, const std::vector<int>& indexes,
                                 DoneFn done) {
  auto it = models_.find(served.name);
  if (it == models_.end() || &it->second->served != &served) {
    return InternalError("model \"" + served.name + "\" is not this pipeline's");
  }
  RETURN_IF_ERROR(CheckServesTexts(served));
  if (!it->second->text_batcher)
    return InternalError("model \"" + served.name + "\" has no text batcher");
  const int n = static_cast<int>(texts.size());
  if (n > limits_.max_texts_per_request) {
    return InvalidArgumentError(field + ": " + std::to_string(n) + " texts is over the limit of " +
                                std::to_string(limits_.max_texts_per_request));
  }
  const ClipTokenizer& tokenizer = *served.tokenizer;
  const int context = served.info.text_context_length;
  std::vector<TokenIds> tokens;
  tokens.reserve(texts.size());
  for (size_t j = 0; j < texts.size(); ++j) {
    const std::string label =
        field + "[" + std::to_string(indexes.empty() ? static_cast<int>(j) : indexes[j]) + "]";
    const std::string_view text = texts[j];
    if (text.empty()) return InvalidArgumentError(label + ": text is empty");
    if (text.size() > static_cast<size_t>(limits_.max_text_bytes)) {
      return InvalidArgumentError(label + ": text of " + std::to_string(text.size()) +
                                  " bytes is over the limit of " +
                                  std::to_string(limits_.max_text_bytes));
    }
    StatusOr<TokenIds> ids = tokenizer.Tokenize(text, context);
    if (!ids.ok()) return Status(ids.status().code(), label + ": " + ids.status().message());
    // The ids up to the (first) end token: the rest is padding the causal
    // text tower never looks at; the batch pads to its longest text.
    const auto end = std::find(ids->begin(), ids->end(), tokenizer.end_token());
    if (end != ids->end()) ids->erase(end + 1, ids->end());
    tokens.push_back(*std::move(ids));
  }
  const size_t dim = static_cast<size_t>(served.info.dim);
  ThreadPool* completions = completions_;
  return it->second->text_batcher->Submit(
      std::move(tokens),
      [n, dim, completions, done = std::move(done)](Status status, std::vector<float> out) mutable {
        completions->Submit([n, dim, done = std::move(done), status = std::move(status),
                             out = std::move(out)]() mutable {
          if (!status.ok()) return done(status);
          EmbeddedImages result;
          result.item_status.assign(static_cast<size_t>(n), Status::Ok());
          result.vectors = std::move(out);
          if (result.vectors.size() != static_cast<size_t>(n) * dim) {
            return done(InternalError("text batch returned the wrong number of values"));
          }
          done(std::move(result));
        });
      });
}

}  // namespace lookalike
