#include "server/embed_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace lookalike {

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
    std::vector<Batcher::EmbedFn> fns;
    if (model->served.embed) {
      fns.push_back(model->served.embed);
    } else {
      std::vector<std::shared_ptr<Embedder>> engines = {model->served.embedder};
      for (const auto& e : model->served.more_replicas) engines.push_back(e);
      for (std::shared_ptr<Embedder> embedder : engines) {
        fns.push_back([embedder](const std::vector<ImageView>& images, std::vector<float>* out) {
          return embedder->Embed(images, out);
        });
      }
    }
    const std::string name = model->served.name;
    model->batcher = std::make_unique<Batcher>(name, model->served.info.dim, std::move(fns),
                                               batcher_options, [metrics, name](int size) {
                                                 if (metrics) metrics->ObserveBatch(name, size);
                                               });
    models_[name] = std::move(model);
  }
}

EmbedPipeline::~EmbedPipeline() { Shutdown(); }

void EmbedPipeline::Shutdown() {
  for (auto& [name, model] : models_) model->batcher->Shutdown();
}

std::vector<std::pair<std::string, double>> EmbedPipeline::QueueDepths() const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [name, model] : models_) out.emplace_back(name, model->batcher->queue_depth());
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
                            const std::string& field, bool all_or_nothing, DoneFn done) {
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
  pending->decoded = decode_pool_.DecodeAll(payloads, limits_.max_image_pixels);
  pending->result.item_status.assign(payloads.size(), Status::Ok());
  pending->result.vectors.assign(payloads.size() * dim, 0.f);
  pending->done = std::move(done);
  std::vector<ImageView> views;
  for (size_t i = 0; i < pending->decoded.size(); ++i) {
    if (!pending->decoded[i].ok()) {
      pending->result.item_status[i] = pending->decoded[i].status();
      continue;
    }
    views.push_back(pending->decoded[i]->view());
    pending->positions.push_back(i);
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

}  // namespace lookalike
