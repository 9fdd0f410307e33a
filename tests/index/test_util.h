// Helpers shared by the index tests: temporary directories, random data and
// a brute-force reference written independently of the code under test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "index/collection.h"

namespace lookalike::testing {

// A fresh directory under $TMPDIR, removed (recursively) at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The storages the storage and collection tests run against.
enum class StorageKind { kSqlite, kPostgres };
// "Sqlite" / "Postgres", for INSTANTIATE_TEST_SUITE_P names.
std::string StorageKindName(StorageKind kind);
// The CollectionManagerOptions::storage value for `kind`: "sqlite", or the URI
// of a new database on the test PostgreSQL (tests/pg_harness.h).
// FAILED_PRECONDITION when PostgreSQL is not installed (tests skip), another
// error when it is but did not start (tests fail).
StatusOr<std::string> StorageFor(StorageKind kind);

// n x dim standard-normal floats from a fixed seed.
std::vector<float> RandomVectors(int n, int dim, uint32_t seed);

struct RefHit {
  std::string id;
  float score;
};

// Reference top-k over `items` (scores as documented in collection.h;
// cosine normalizes both sides), best first, ties by id.
std::vector<RefHit> BruteForce(const std::vector<Item>& items, const float* query, int dim,
                               Metric metric, int k);

// Items "item-<i>" with RandomVectors rows and metadata
// {"color": colors[i % 5], "shape": shapes[i % 3]}.
std::vector<Item> MakeItems(int n, int dim, uint32_t seed);

}  // namespace lookalike::testing
