// Batcher: per-model dynamic batching of embedding work.
//
// Requests submit their decoded images; a worker thread takes up to
// `max_batch` queued images (from one or many requests, in arrival order)
// once the batch is full or the oldest queued image has waited `max_delay`,
// runs the embedding function on them, and hands each request its vectors
// when all of its images are done, through the request's completion callback
// (nothing waits for a batch: a caller submits and returns). A request larger
// than max_batch spans several batches. There is one worker per embedding function (one per model
// replica: on a GPU each replica has its own stream, so one batch's host work
// overlaps another's GPU work); workers take batches in queue order. The queue is bounded (in
// images): a request that does not fit is refused at once with RESOURCE_EXHAUSTED and nothing of it
// is queued.
//
// The embedding function is a std::function so tests can run without a model;
// the server passes Embedder::Embed. The same batching serves texts
// (TextBatcher: items are tokenized texts, the function Embedder::EmbedTexts);
// the messages then say "texts" where they say "images".
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "models/backend.h"  // ImageView

namespace lookalike {

// One tokenized text (ClipTokenizer ids), what a TextBatcher queues.
using TokenIds = std::vector<int32_t>;

struct BatcherOptions {
  int max_batch = 32;                         // images per embedding call, >= 1
  std::chrono::microseconds max_delay{2000};  // >= 0
  int queue_capacity = 1024;                  // images waiting, >= 1
};

template <typename Item>
class BatcherOf {
 public:
  // images -> out (images.size() * dim floats, row-major). Called on the
  // worker thread only, never concurrently.
  using EmbedFn = std::function<Status(const std::vector<Item>& images, std::vector<float>* out)>;
  // Status and images.size() * dim floats (empty on error).
  using DoneFn = std::function<void(Status status, std::vector<float> vectors)>;
  // Observes each batch run (metrics): its size.
  using BatchObserver = std::function<void(int batch_size)>;

  BatcherOf(std::string name, int dim, EmbedFn embed, BatcherOptions options,
            BatchObserver observer = nullptr);
  // One worker per function (at least one). Each function is called on its
  // own worker only, never concurrently with itself.
  BatcherOf(std::string name, int dim, std::vector<EmbedFn> embeds, BatcherOptions options,
            BatchObserver observer = nullptr);
  // Finishes the queued work, then stops the worker.
  ~BatcherOf();
  BatcherOf(const BatcherOf&) = delete;
  BatcherOf& operator=(const BatcherOf&) = delete;

  // Queues `images` (views must stay valid until `done` runs) and returns at
  // once. On OK, `done` is called exactly once, on a worker thread, when the
  // last of the images has been embedded (Shutdown still runs queued work);
  // it should hand the result on rather than do long work, since the worker
  // batches for every request. On error (queue full: RESOURCE_EXHAUSTED; shut
  // down: UNAVAILABLE; empty: INVALID_ARGUMENT) `done` is not called.
  Status Submit(std::vector<Item> images, DoneFn done);

  // Images waiting for a batch.
  int queue_depth() const;
  int workers() const { return static_cast<int>(embeds_.size()); }
  int dim() const { return dim_; }
  const std::string& name() const { return name_; }

  // Stops accepting work, finishes what is queued, joins the worker.
  void Shutdown();

 private:
  struct Job {
    std::vector<Item> images;
    DoneFn done;
    std::vector<float> vectors;
    Status status;
    size_t remaining = 0;
  };
  struct Entry {
    std::shared_ptr<Job> job;
    size_t index;  // image index within the job
    std::chrono::steady_clock::time_point enqueued;
  };

  void Run(const EmbedFn& embed);

  const std::string name_;
  const int dim_;
  const std::vector<EmbedFn> embeds_;
  const BatcherOptions options_;
  const BatchObserver observer_;

  mutable std::mutex mu_;  // guards the queue, stopping_, and Job status / remaining
  std::condition_variable cv_;
  std::deque<Entry> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

using Batcher = BatcherOf<ImageView>;
using TextBatcher = BatcherOf<TokenIds>;
extern template class BatcherOf<ImageView>;
extern template class BatcherOf<TokenIds>;

}  // namespace lookalike
