// Measures collection write and search throughput on this machine:
//   - Upsert items/s with synchronous=FULL (every batch is one fsynced
//     transaction) for several batch sizes;
//   - Search queries/s through Collection::Search (Flat, cosine) against raw
//     faiss::IndexFlatIP on the same normalized vectors in the same run, so
//     the ratio shows the collection's overhead (id/metadata lookup, locks).
// Usage: index_throughput [data_dir] [n_items] [dim] [storage]
//   storage: sqlite (default) or a PostgreSQL URI (postgresql://user@host:port/db);
//   run it once with each, in the same session, to compare the two.
#include <faiss/IndexFlat.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "index/collection.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<float> Random(int64_t n, int dim, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(n) * dim);
  for (auto& x : v) x = normal(gen);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lookalike;
  const std::string dir = argc > 1 ? argv[1] : "/tmp/lookalike_index_throughput";
  const int n = argc > 2 ? std::stoi(argv[2]) : 20000;
  const int dim = argc > 3 ? std::stoi(argv[3]) : 512;
  const std::string storage = argc > 4 ? argv[4] : kSqliteStorage;
  std::filesystem::remove_all(dir);
  CollectionManagerOptions options;
  options.data_dir = dir;
  options.storage = storage;
  auto manager = CollectionManager::Open(options);
  if (!manager.ok()) {
    std::fprintf(stderr, "%s\n", manager.status().ToString().c_str());
    return 1;
  }
  std::printf("items %d, dim %d, data_dir %s, storage %s\n", n, dim, dir.c_str(),
              IsPostgresUri(storage) ? "postgresql" : "sqlite");
  const auto vectors = Random(n, dim, 1);
  for (int batch : {1, 100, 1000}) {
    CollectionSpec spec;
    spec.name = "b" + std::to_string(batch);
    spec.dim = dim;
    (void)(*manager)->Drop(spec.name);  // left by an earlier run on the same database
    auto c = (*manager)->Create(spec);
    if (!c.ok()) return 1;
    // Batch size 1 pays one fsync per item: measure fewer items.
    const int count = batch == 1 ? std::min(n, 500) : n;
    const auto t0 = Clock::now();
    for (int i = 0; i < count; i += batch) {
      std::vector<Item> items;
      for (int j = i; j < std::min(count, i + batch); ++j) {
        Item item;
        item.id = "id-" + std::to_string(j);
        item.vector.assign(vectors.begin() + static_cast<ptrdiff_t>(j) * dim,
                           vectors.begin() + static_cast<ptrdiff_t>(j + 1) * dim);
        item.metadata["group"] = std::to_string(j % 10);
        items.push_back(std::move(item));
      }
      auto st = (*c)->Upsert(items);
      if (!st.ok()) {
        std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
        return 1;
      }
    }
    const double s = Seconds(t0);
    std::printf("upsert batch %5d: %8.0f items/s (%d items in %.2f s)\n", batch, count / s, count,
                s);
  }
  // Search: collection (b1000 holds all n items) vs raw FAISS.
  auto c = (*manager)->Get("b1000");
  if (!c.ok()) return 1;
  std::vector<float> normalized = vectors;
  for (int i = 0; i < n; ++i) {
    float* v = normalized.data() + static_cast<size_t>(i) * dim;
    double sum = 0;
    for (int j = 0; j < dim; ++j) sum += static_cast<double>(v[j]) * v[j];
    for (int j = 0; j < dim; ++j) v[j] = static_cast<float>(v[j] / std::sqrt(sum));
  }
  faiss::IndexFlatIP raw(dim);
  raw.add(n, normalized.data());
  const int nq = 200, k = 10;
  auto queries = Random(nq, dim, 2);
  for (int i = 0; i < nq; ++i) {
    float* v = queries.data() + static_cast<size_t>(i) * dim;
    double sum = 0;
    for (int j = 0; j < dim; ++j) sum += static_cast<double>(v[j]) * v[j];
    for (int j = 0; j < dim; ++j) v[j] = static_cast<float>(v[j] / std::sqrt(sum));
  }
  SearchParams params;
  params.k = k;
  auto t0 = Clock::now();
  for (int i = 0; i < nq; ++i) {
    auto hits = (*c)->Search(queries.data() + static_cast<size_t>(i) * dim, 1, params);
    if (!hits.ok()) return 1;
  }
  const double collection_qps = nq / Seconds(t0);
  std::vector<float> d(k);
  std::vector<faiss::Index::idx_t> l(k);
  t0 = Clock::now();
  for (int i = 0; i < nq; ++i)
    raw.search(1, queries.data() + static_cast<size_t>(i) * dim, k, d.data(), l.data());
  const double raw_qps = nq / Seconds(t0);
  params.filter.any_of = {{"group", {"3"}}};
  t0 = Clock::now();
  for (int i = 0; i < nq; ++i) {
    auto hits = (*c)->Search(queries.data() + static_cast<size_t>(i) * dim, 1, params);
    if (!hits.ok()) return 1;
  }
  const double filtered_qps = nq / Seconds(t0);
  std::printf(
      "search k=%d, one query per call: collection %.0f q/s, raw faiss::IndexFlatIP %.0f q/s "
      "(ratio %.2f); collection with a 10%% filter %.0f q/s\n",
      k, collection_qps, raw_qps, collection_qps / raw_qps, filtered_qps);
  (*c).reset();  // the last reference: closes (and snapshots) the collection
  for (const char* name : {"b1", "b100", "b1000"}) (void)(*manager)->Drop(name);
  manager->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
