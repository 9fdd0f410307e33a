// Follower lag on one machine: two collection managers (two "servers", each
// with its own data directory) on one PostgreSQL. Server A ingests n items
// in batches as fast as it can; server B follows (LISTEN/NOTIFY) while one
// thread searches it continuously. For every batch: the time from A's
// acknowledgement until B's index holds it (B's live count reaches it).
// Usage: follow_lag postgresql://... [n_items] [dim] [batch]
// Prints lag p50 / p99 / max in time, the same in items (sampled every
// 200 us while A ingests: items A acknowledged that B's index lacks), and
// B's search rate during the ingest.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "index/collection.h"

namespace {

using Clock = std::chrono::steady_clock;

std::unique_ptr<lookalike::CollectionManager> OpenManager(const std::string& dir,
                                                          const std::string& uri) {
  std::filesystem::remove_all(dir);
  lookalike::CollectionManagerOptions options;
  options.data_dir = dir;
  options.storage = uri;
  auto m = lookalike::CollectionManager::Open(options);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(m).value();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lookalike;
  if (argc < 2) {
    std::fprintf(stderr, "usage: follow_lag postgresql://... [n_items] [dim] [batch]\n");
    return 2;
  }
  const std::string uri = argv[1];
  const int n = argc > 2 ? std::stoi(argv[2]) : 20000;
  const int dim = argc > 3 ? std::stoi(argv[3]) : 512;
  const int batch = argc > 4 ? std::stoi(argv[4]) : 100;
  auto a = OpenManager("/tmp/lookalike_follow_lag_a", uri);
  auto b = OpenManager("/tmp/lookalike_follow_lag_b", uri);
  (void)a->Drop("lag");
  CollectionSpec spec;
  spec.name = "lag";
  spec.dim = dim;
  auto ca = a->Create(spec);
  if (!ca.ok()) return 1;
  std::shared_ptr<Collection> cb;
  while (!cb) {  // the create reaches b by notification
    auto got = b->Get("lag");
    if (got.ok()) cb = *got;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  const int batches = n / batch;
  std::vector<Clock::time_point> acked(batches), seen(batches);
  std::atomic<int> acked_count{0};
  std::atomic<bool> done{false};
  std::atomic<int64_t> searches{0};
  std::thread searcher([&] {
    std::vector<float> q(dim);
    for (auto& x : q) x = normal(gen);
    SearchParams p;
    p.k = 10;
    while (!done) {
      if (cb->Search(q.data(), 1, p).ok()) ++searches;
    }
  });
  std::vector<int64_t> lag_items;  // samples while A ingests
  std::thread watcher([&] {
    int next = 0;
    while (next < batches) {
      const int64_t acked_items = static_cast<int64_t>(acked_count.load()) * batch;
      const int64_t count = cb->Stats().count;
      const auto now = Clock::now();
      if (acked_count.load() < batches)
        lag_items.push_back(std::max<int64_t>(0, acked_items - count));
      while (next < batches && count >= static_cast<int64_t>(next + 1) * batch) seen[next++] = now;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  std::vector<float> v(static_cast<size_t>(batch) * dim);
  const auto t0 = Clock::now();
  for (int k = 0; k < batches; ++k) {
    std::vector<Item> items(batch);
    for (int j = 0; j < batch; ++j) {
      items[j].id = "id-" + std::to_string(k * batch + j);
      items[j].vector.resize(dim);
      for (auto& x : items[j].vector) x = normal(gen);
    }
    auto st = (*ca)->Upsert(items);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
      return 1;
    }
    acked[k] = Clock::now();
    acked_count = k + 1;
  }
  const double ingest_s = std::chrono::duration<double>(Clock::now() - t0).count();
  watcher.join();
  done = true;
  searcher.join();
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> lag_ms(batches);
  for (int k = 0; k < batches; ++k) {
    lag_ms[k] =
        std::max(0.0, std::chrono::duration<double, std::milli>(seen[k] - acked[k]).count());
  }
  std::sort(lag_ms.begin(), lag_ms.end());
  auto pct = [&](double p) { return lag_ms[static_cast<size_t>(p * (batches - 1))]; };
  std::sort(lag_items.begin(), lag_items.end());
  auto items_pct = [&](double p) {
    return lag_items.empty() ? 0 : lag_items[static_cast<size_t>(p * (lag_items.size() - 1))];
  };
  std::printf(
      "items %d, dim %d, batch %d: a ingested %.0f items/s; follower lag p50 %.1f ms, p99 %.1f "
      "ms, max %.1f ms; in items p50 %lld, p99 %lld, max %lld; b searched %.0f q/s meanwhile\n",
      n, dim, batch, n / ingest_s, pct(0.5), pct(0.99), lag_ms.back(),
      static_cast<long long>(items_pct(0.5)), static_cast<long long>(items_pct(0.99)),
      static_cast<long long>(items_pct(1.0)), searches / total_s);
  cb.reset();
  ca->reset();
  (void)a->Drop("lag");
  return 0;
}
