#include "test_util.h"

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "pg_harness.h"

namespace lookalike::testing {

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr ? base : "/tmp") + "/lookalike_index_XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) abort();
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string StorageKindName(StorageKind kind) {
  return kind == StorageKind::kSqlite ? "Sqlite" : "Postgres";
}

StatusOr<std::string> StorageFor(StorageKind kind) {
  if (kind == StorageKind::kSqlite) return std::string(kSqliteStorage);
  std::string why;
  PgHarness* pg = PgHarness::Get(&why);
  if (pg == nullptr) {
    if (!PgHarness::Installed()) return FailedPreconditionError(why);
    return InternalError(why);
  }
  return pg->NewDatabase();
}

std::vector<float> RandomVectors(int n, int dim, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(n) * dim);
  for (auto& x : v) x = normal(gen);
  return v;
}

std::vector<RefHit> BruteForce(const std::vector<Item>& items, const float* query, int dim,
                               Metric metric, int k) {
  auto norm = [dim](const float* v) {
    double s = 0;
    for (int i = 0; i < dim; ++i) s += static_cast<double>(v[i]) * v[i];
    return std::sqrt(s);
  };
  const double qn = norm(query);
  std::vector<RefHit> hits;
  for (const auto& item : items) {
    const float* v = item.vector.data();
    double score = 0;
    if (metric == Metric::kL2) {
      for (int i = 0; i < dim; ++i)
        score -= (query[i] - static_cast<double>(v[i])) * (query[i] - v[i]);
    } else {
      for (int i = 0; i < dim; ++i) score += static_cast<double>(query[i]) * v[i];
      if (metric == Metric::kCosine) score /= qn * norm(v);
    }
    hits.push_back(RefHit{item.id, static_cast<float>(score)});
  }
  std::sort(hits.begin(), hits.end(), [](const RefHit& a, const RefHit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  if (static_cast<int>(hits.size()) > k) hits.resize(static_cast<size_t>(k));
  return hits;
}

std::vector<Item> MakeItems(int n, int dim, uint32_t seed) {
  static const char* kColors[] = {"red", "green", "blue", "black", "white"};
  static const char* kShapes[] = {"round", "square", "star"};
  const std::vector<float> v = RandomVectors(n, dim, seed);
  std::vector<Item> items(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    Item& item = items[static_cast<size_t>(i)];
    item.id = "item-" + std::to_string(i);
    item.vector.assign(v.begin() + static_cast<ptrdiff_t>(i) * dim,
                       v.begin() + static_cast<ptrdiff_t>(i + 1) * dim);
    item.metadata = {{"color", kColors[i % 5]}, {"shape", kShapes[i % 3]}};
  }
  return items;
}

}  // namespace lookalike::testing
