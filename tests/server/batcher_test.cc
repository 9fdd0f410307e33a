#include "server/batcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <vector>

namespace lookalike {
namespace {

using namespace std::chrono_literals;

// Fake engine: the vector of an image is {width, height}; records batch sizes.
struct FakeEngine {
  std::mutex mu;
  std::vector<int> batches;

  Batcher::EmbedFn Fn() {
    return [this](const std::vector<ImageView>& images, std::vector<float>* out) {
      {
        std::lock_guard<std::mutex> lock(mu);
        batches.push_back(static_cast<int>(images.size()));
      }
      out->clear();
      for (const ImageView& v : images) {
        out->push_back(static_cast<float>(v.width));
        out->push_back(static_cast<float>(v.height));
      }
      return Status::Ok();
    };
  }
  std::vector<int> Batches() {
    std::lock_guard<std::mutex> lock(mu);
    return batches;
  }
};

ImageView View(int id) { return ImageView{nullptr, id, -id, 0}; }

// Submit, and a future for what its completion delivers.
std::future<StatusOr<std::vector<float>>> SubmitForFuture(Batcher& batcher,
                                                          std::vector<ImageView> images) {
  auto promise = std::make_shared<std::promise<StatusOr<std::vector<float>>>>();
  auto future = promise->get_future();
  Status s = batcher.Submit(std::move(images), [promise](Status s, std::vector<float> v) {
    if (s.ok()) {
      promise->set_value(std::move(v));
    } else {
      promise->set_value(std::move(s));
    }
  });
  if (!s.ok()) promise->set_value(std::move(s));
  return future;
}

// Submit and wait (tests only: the server never waits for a batch).
StatusOr<std::vector<float>> EmbedAndWait(Batcher& batcher, std::vector<ImageView> images) {
  return SubmitForFuture(batcher, std::move(images)).get();
}

TEST(BatcherTest, CoalescesRequestsIntoOneFullBatch) {
  FakeEngine engine;
  // The delay is far longer than the test: a full batch must run at once.
  // One thread submits all eight: Submit returns without waiting for a batch.
  Batcher batcher("m", 2, engine.Fn(), BatcherOptions{8, 60s, 64});
  std::vector<std::future<StatusOr<std::vector<float>>>> results;
  for (int i = 1; i <= 8; ++i) results.push_back(SubmitForFuture(batcher, {View(i)}));
  for (int i = 1; i <= 8; ++i) {
    ASSERT_EQ(results[i - 1].wait_for(10s), std::future_status::ready);
    StatusOr<std::vector<float>> r = results[i - 1].get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, (std::vector<float>{float(i), float(-i)}));
  }
  EXPECT_EQ(engine.Batches(), std::vector<int>{8});
}

TEST(BatcherTest, MaxDelayRunsAPartialBatch) {
  FakeEngine engine;
  Batcher batcher("m", 2, engine.Fn(), BatcherOptions{100, 20ms, 256});
  StatusOr<std::vector<float>> r = EmbedAndWait(batcher, {View(1), View(2), View(3)});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<float>{1, -1, 2, -2, 3, -3}));
  EXPECT_EQ(engine.Batches(), std::vector<int>{3});
}

TEST(BatcherTest, LargeRequestSpansBatchesInOrder) {
  FakeEngine engine;
  Batcher batcher("m", 2, engine.Fn(), BatcherOptions{4, 1ms, 64});
  std::vector<ImageView> images;
  std::vector<float> want;
  for (int i = 1; i <= 10; ++i) {
    images.push_back(View(i));
    want.push_back(i);
    want.push_back(-i);
  }
  StatusOr<std::vector<float>> r = EmbedAndWait(batcher, images);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, want);
  EXPECT_EQ(engine.Batches(), (std::vector<int>{4, 4, 2}));
}

// Two replicas: batches run on both at once, and a request spread over
// batches of both gets every row in its place.
TEST(BatcherTest, ReplicasRunBatchesInParallel) {
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, peak = 0;
  std::vector<int> per_replica(2, 0);
  auto replica = [&](int r) -> Batcher::EmbedFn {
    return [&, r](const std::vector<ImageView>& images, std::vector<float>* out) {
      {
        std::unique_lock<std::mutex> lock(mu);
        ++per_replica[r];
        peak = std::max(peak, ++running);
        cv.notify_all();
        // Hold the first batch until the other replica runs one too.
        cv.wait_for(lock, 2s, [&] { return peak >= 2; });
      }
      out->clear();
      for (const ImageView& v : images) {
        out->push_back(static_cast<float>(v.width));
        out->push_back(static_cast<float>(v.height));
      }
      std::lock_guard<std::mutex> lock(mu);
      --running;
      return Status::Ok();
    };
  };
  Batcher batcher("m", 2, std::vector<Batcher::EmbedFn>{replica(0), replica(1)},
                  BatcherOptions{4, 1ms, 256});
  EXPECT_EQ(batcher.workers(), 2);
  std::vector<ImageView> images;
  std::vector<float> want;
  for (int i = 1; i <= 40; ++i) {
    images.push_back(View(i));
    want.push_back(float(i));
    want.push_back(float(-i));
  }
  StatusOr<std::vector<float>> r = EmbedAndWait(batcher, images);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, want);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(peak, 2);
  EXPECT_GT(per_replica[0], 0);
  EXPECT_GT(per_replica[1], 0);
  EXPECT_EQ(per_replica[0] + per_replica[1], 10);
}

TEST(BatcherTest, FullQueueIsResourceExhausted) {
  std::promise<void> entered, release;
  std::shared_future<void> release_future = release.get_future().share();
  std::atomic<bool> first{true};
  Batcher::EmbedFn fn = [&](const std::vector<ImageView>& images, std::vector<float>* out) {
    if (first.exchange(false)) {
      entered.set_value();
      release_future.wait();  // hold the worker so the queue fills
    }
    out->assign(images.size(), 1.f);
    return Status::Ok();
  };
  Batcher batcher("m", 1, fn, BatcherOptions{1, 0us, 4});
  std::promise<Status> done0;
  ASSERT_TRUE(
      batcher.Submit({View(1)}, [&](Status s, std::vector<float>) { done0.set_value(s); }).ok());
  entered.get_future().wait();  // the worker holds image 1; the queue is empty
  std::atomic<int> finished{0};
  auto count = [&](Status s, std::vector<float> v) {
    EXPECT_TRUE(s.ok());
    EXPECT_EQ(v.size(), 2u);
    ++finished;
  };
  ASSERT_TRUE(batcher.Submit({View(2), View(3)}, count).ok());
  ASSERT_TRUE(batcher.Submit({View(4), View(5)}, count).ok());
  EXPECT_EQ(batcher.queue_depth(), 4);
  Status full = batcher.Submit({View(6)}, [](Status, std::vector<float>) {
    ADD_FAILURE() << "a refused request must not be called back";
  });
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(full.message(),
            "model \"m\" embedding queue is full (4 of 4 images queued); retry later");
  release.set_value();
  EXPECT_TRUE(done0.get_future().get().ok());
  batcher.Shutdown();  // drains
  EXPECT_EQ(finished.load(), 2);
}

TEST(BatcherTest, EngineErrorsReachEveryRequestOfTheBatch) {
  Batcher::EmbedFn fail = [](const std::vector<ImageView>&, std::vector<float>*) {
    return ResourceExhaustedError("out of GPU memory");
  };
  Batcher batcher("m", 2, fail, BatcherOptions{8, 1ms, 64});
  StatusOr<std::vector<float>> r = EmbedAndWait(batcher, {View(1), View(2)});
  EXPECT_EQ(r.status(), ResourceExhaustedError("out of GPU memory"));

  Batcher::EmbedFn short_output = [](const std::vector<ImageView>&, std::vector<float>* out) {
    out->assign(1, 0.f);
    return Status::Ok();
  };
  Batcher bad("m2", 2, short_output, BatcherOptions{8, 1ms, 64});
  r = EmbedAndWait(bad, {View(1)});
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_EQ(r.status().message(), "model \"m2\" returned 1 floats for 1 images of dim 2");
}

TEST(BatcherTest, ShutdownDrainsThenRefuses) {
  FakeEngine engine;
  Batcher batcher("m", 2, engine.Fn(), BatcherOptions{100, 60s, 64});
  std::promise<Status> done;
  ASSERT_TRUE(batcher
                  .Submit({View(7)},
                          [&](Status s, std::vector<float> v) {
                            EXPECT_EQ(v, (std::vector<float>{7, -7}));
                            done.set_value(s);
                          })
                  .ok());
  batcher.Shutdown();  // must not wait the 60 s delay
  EXPECT_TRUE(done.get_future().get().ok());
  Status after = batcher.Submit({View(1)}, [](Status, std::vector<float>) {});
  EXPECT_EQ(after.code(), StatusCode::kUnavailable);
  EXPECT_EQ(batcher.Submit({}, [](Status, std::vector<float>) {}).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lookalike
