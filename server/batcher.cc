#include "server/batcher.h"

#include <algorithm>
#include <cstring>

namespace lookalike {
namespace {

// What the queued items are called in messages.
template <typename Item>
const char* ItemsWord();
template <>
const char* ItemsWord<ImageView>() {
  return "images";
}
template <>
const char* ItemsWord<TokenIds>() {
  return "texts";
}

}  // namespace

template <typename Item>
BatcherOf<Item>::BatcherOf(std::string name, int dim, EmbedFn embed, BatcherOptions options,
                           BatchObserver observer)
    : BatcherOf(std::move(name), dim, std::vector<EmbedFn>{std::move(embed)}, options,
                std::move(observer)) {}

template <typename Item>
BatcherOf<Item>::BatcherOf(std::string name, int dim, std::vector<EmbedFn> embeds,
                           BatcherOptions options, BatchObserver observer)
    : name_(std::move(name)),
      dim_(dim),
      embeds_(std::move(embeds)),
      options_(options),
      observer_(std::move(observer)) {
  for (const EmbedFn& embed : embeds_) {
    workers_.emplace_back([this, &embed] { Run(embed); });
  }
}

template <typename Item>
BatcherOf<Item>::~BatcherOf() {
  Shutdown();
}

template <typename Item>
void BatcherOf<Item>::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

template <typename Item>
int BatcherOf<Item>::queue_depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

template <typename Item>
Status BatcherOf<Item>::Submit(std::vector<Item> images, DoneFn done) {
  if (images.empty())
    return InvalidArgumentError(std::string("no ") + ItemsWord<Item>() + " to embed");
  if (embeds_.empty()) return FailedPreconditionError("model \"" + name_ + "\" has no replicas");
  auto job = std::make_shared<Job>();
  job->remaining = images.size();
  job->vectors.resize(images.size() * static_cast<size_t>(dim_));
  job->images = std::move(images);
  job->done = std::move(done);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return UnavailableError("model \"" + name_ + "\" is shutting down");
    if (queue_.size() + job->images.size() > static_cast<size_t>(options_.queue_capacity)) {
      return ResourceExhaustedError("model \"" + name_ + "\" embedding queue is full (" +
                                    std::to_string(queue_.size()) + " of " +
                                    std::to_string(options_.queue_capacity) + " " +
                                    ItemsWord<Item>() + " queued); retry later");
    }
    for (size_t i = 0; i < job->images.size(); ++i) queue_.push_back(Entry{job, i, now});
  }
  cv_.notify_all();
  return Status::Ok();
}

template <typename Item>
void BatcherOf<Item>::Run(const EmbedFn& embed) {
  const size_t max_batch = static_cast<size_t>(std::max(1, options_.max_batch));
  std::vector<Entry> batch;
  std::vector<Item> views;
  std::vector<float> out;
  std::vector<std::shared_ptr<Job>> finished;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      // Wait for a full batch until the oldest image's deadline; when stopping,
      // run what is there at once.
      const auto deadline = queue_.front().enqueued + options_.max_delay;
      cv_.wait_until(lock, deadline, [&] { return stopping_ || queue_.size() >= max_batch; });
      if (queue_.empty()) continue;  // another worker took it
      const size_t n = std::min(max_batch, queue_.size());
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
    }
    views.clear();
    for (const Entry& e : batch) views.push_back(e.job->images[e.index]);
    if (observer_) observer_(static_cast<int>(batch.size()));
    Status status;
    try {
      status = embed(views, &out);
    } catch (const std::bad_alloc&) {
      status = ResourceExhaustedError("out of memory while embedding");
    } catch (const std::exception& e) {
      status = InternalError(std::string("embedding failed: ") + e.what());
    }
    if (status.ok() && out.size() != views.size() * static_cast<size_t>(dim_)) {
      status = InternalError("model \"" + name_ + "\" returned " + std::to_string(out.size()) +
                             " floats for " + std::to_string(views.size()) + " " +
                             ItemsWord<Item>() + " of dim " + std::to_string(dim_));
    }
    // Rows go to disjoint places of each job's vectors; the counts and status
    // are shared with the other workers, so they change under mu_ (which also
    // orders every worker's rows before the last worker's done()).
    if (status.ok()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        std::memcpy(batch[i].job->vectors.data() + batch[i].index * dim_, out.data() + i * dim_,
                    sizeof(float) * dim_);
      }
    }
    finished.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const Entry& e : batch) {
        Job& job = *e.job;
        if (!status.ok() && job.status.ok()) job.status = status;
        if (--job.remaining == 0) finished.push_back(e.job);
      }
    }
    for (const std::shared_ptr<Job>& job : finished) {
      if (!job->status.ok()) job->vectors.clear();
      job->done(job->status, std::move(job->vectors));
    }
    batch.clear();
  }
}

template class BatcherOf<ImageView>;
template class BatcherOf<TokenIds>;

}  // namespace lookalike
