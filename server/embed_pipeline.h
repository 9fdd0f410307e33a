// EmbedPipeline: the one path from image bytes (or texts) to vectors, shared
// by Embed, Upsert and Search.
//
//   model lookup (by name, or for a collection: vectors-only and unserved
//   models refused) -> limit on images per request -> decode (DecodePool,
//   pixel limit) -> the model's Batcher -> scatter rows back to payload order.
//
//   texts: limits (count, bytes) -> the model's ClipTokenizer (invalid UTF-8
//   refused; context truncation as CLIP does) -> the model's TextBatcher.
//   Texts are short and of many lengths: each text's ids end at its end token
//   and a batch is padded (id 0) to its longest text. This is exact, not an
//   approximation: attention is causal and the text is pooled at its end
//   token, so positions after it never reach the output; and a batch of short
//   queries runs ~10 positions instead of 77. (Grouping by length would save
//   the padding too, but it delays or splits small batches for little gain
//   when most queries are a few words.)
//
// Decoding runs before Embed returns (on the decode pool; the caller's thread
// waits for it, which is CPU work of this request only). Embedding completes
// asynchronously: the batcher's worker hands the result to the completion
// pool, so no thread waits while a batch fills up or runs.
//
// Thread safety: every method may be called from any number of threads.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "index/types.h"
#include "models/clip_tokenizer.h"
#include "models/embedder.h"
#include "server/batcher.h"
#include "server/config.h"
#include "server/decode.h"
#include "server/metrics.h"
#include "server/thread_pool.h"

namespace lookalike {

// A model the server serves.
struct ServedModel {
  std::string name;                    // used in requests and collections
  ModelInfo info;                      // preset, dim, input size, backend
  std::shared_ptr<Embedder> embedder;  // the engine; may be null when `embed` is set
  // More engines of the same model (engine_replicas > 1): the batcher runs
  // one worker per engine, `embedder` included.
  std::vector<std::shared_ptr<Embedder>> more_replicas;
  // What the batcher runs; empty = embedder->Embed. (Tests pass a function.)
  Batcher::EmbedFn embed;
  // Texts: served when info.has_text and a tokenizer is set (the pipeline
  // clears info.has_text otherwise, so ListModels tells the truth).
  std::shared_ptr<const ClipTokenizer> tokenizer;
  // What the text batcher runs on a padded batch; empty =
  // embedder->EmbedTexts. (Tests pass a function.)
  TextBatcher::EmbedFn embed_texts;
};

// The tokenizer of a model with a text tower (info.has_text): from
// `config.tokenizer` when set (an unreadable one is an error naming it), else
// from vocab.json + merges.txt beside `config.weights` when both are there.
// Null when the model has no text tower, or nothing is configured and the
// files are absent (the model then serves images only).
StatusOr<std::shared_ptr<const ClipTokenizer>> LoadModelTokenizer(const ModelConfig& config,
                                                                  const ModelInfo& info);

// What Embed and EmbedTexts hand back: one entry per payload (image or text),
// in payload order.
struct EmbeddedImages {
  // OK, or why payload i could not be decoded (its row of `vectors` is zero).
  std::vector<Status> item_status;
  // payloads.size() x model dim floats, row-major.
  std::vector<float> vectors;
  // With Embed's thumbnail_size > 0: payloads.size() JPEG thumbnails
  // (EncodeThumbnail), empty where the payload failed; else empty.
  std::vector<std::string> thumbnails;
};

class EmbedPipeline {
 public:
  // Called exactly once: the embedding's failure (queue full is refused by
  // Embed itself; engine errors, shutdown drain errors come here), or the
  // vectors.
  using DoneFn = std::function<void(StatusOr<EmbeddedImages> result)>;

  // `completions` (not owned) runs every DoneFn and must outlive the
  // pipeline's batchers (Shutdown, or the destructor). `metrics` may be null.
  EmbedPipeline(std::vector<ServedModel> models, std::string default_model, LimitsConfig limits,
                BatcherConfig batcher, ThreadPool* completions, Metrics* metrics);
  ~EmbedPipeline();
  EmbedPipeline(const EmbedPipeline&) = delete;
  EmbedPipeline& operator=(const EmbedPipeline&) = delete;

  // The served model `name` ("" = the default model); NOT_FOUND otherwise.
  StatusOr<const ServedModel*> FindModel(const std::string& name) const;
  // The model that embeds images for a collection: INVALID_ARGUMENT for a
  // vectors-only collection (spec.model == kVectorsOnly), FAILED_PRECONDITION
  // when its model is not served here.
  StatusOr<const ServedModel*> ModelForCollection(const CollectionSpec& spec) const;
  // Every served model, by name.
  std::vector<const ServedModel*> Models() const;

  // Decodes `payloads` (views must stay valid until `done` has run) and queues
  // them on `model`'s batcher. `field` names the request field in the limit
  // error ("images: 5 images is over the limit of 4"). With
  // `all_or_nothing` (Embed, Search: one bad image fails the call) nothing is
  // embedded once any payload fails to decode; `done` gets the decode
  // statuses and zero rows. On OK, `done` runs exactly once, on the
  // completion pool (or at once, on this thread, when there is nothing to
  // embed). On error (over the limit: INVALID_ARGUMENT; queue full:
  // RESOURCE_EXHAUSTED; shut down: UNAVAILABLE) `done` is not called.
  // thumbnail_size > 0 (CollectionSpec::thumbnail_size) also makes each
  // image's thumbnail on the decode pool (EmbeddedImages::thumbnails).
  Status Embed(const ServedModel& model, std::vector<std::string_view> payloads,
               const std::string& field, bool all_or_nothing, DoneFn done, int thumbnail_size = 0);

  // OK when `model` embeds texts; FAILED_PRECONDITION naming it otherwise.
  Status CheckServesTexts(const ServedModel& model) const;

  // Tokenizes `texts` (views valid until this returns) with `model`'s
  // tokenizer and queues them on its text batcher; `done` as for Embed (every
  // item_status OK). Errors, `done` not called: FAILED_PRECONDITION when the
  // model serves no texts (naming it); INVALID_ARGUMENT over
  // limits.max_texts_per_request ("<field>: ..."), or for an empty, too long
  // (limits.max_text_bytes) or invalid UTF-8 text, named
  // "<field>[<indexes[j]>]" (indexes empty: j); RESOURCE_EXHAUSTED /
  // UNAVAILABLE as for Embed.
  Status EmbedTexts(const ServedModel& model, const std::vector<std::string_view>& texts,
                    const std::string& field, const std::vector<int>& indexes, DoneFn done);

  // Images (and texts) waiting per model (metrics).
  std::vector<std::pair<std::string, double>> QueueDepths() const;

  // Finishes queued embedding work (its DoneFns go to the completion pool)
  // and stops the batchers; later Embed calls fail with UNAVAILABLE.
  void Shutdown();

 private:
  struct Model {
    ServedModel served;
    std::unique_ptr<Batcher> batcher;
    std::unique_ptr<TextBatcher> text_batcher;  // null when the model serves no texts
  };

  const std::string default_model_;
  const LimitsConfig limits_;
  ThreadPool* const completions_;
  std::map<std::string, std::unique_ptr<Model>> models_;
  DecodePool decode_pool_;
};

}  // namespace lookalike
