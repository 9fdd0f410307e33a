// Collection: a named set of items (string id, vector, metadata) that is
// durable and searchable.
//
// Storage is the source of truth: an SQLite database in WAL mode
// (<dir>/items.db) holding ids, vectors and metadata, written and synced
// before Upsert/Delete return. The search index is derived from it: a FAISS
// index (CPU) or the GPU flat index (index/gpu), snapshotted atomically
// (temp file, fsync, rename) and rebuilt or replayed from storage at Open when
// the snapshot is missing, stale or corrupt.
//
// Thread safety: every method may be called concurrently; searches run in
// parallel with each other, writes are serialized.
//
// Design notes (training rule, filter strategy, snapshot format): index/README.md.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace lookalike {

enum class Metric {
  kCosine,        // score = cosine similarity; vectors are L2-normalized on write and query
  kInnerProduct,  // score = <q, x>
  kL2,            // score = -||q - x||^2 (higher is always more similar)
};
const char* MetricName(Metric metric);                  // "cosine", "ip", "l2"
StatusOr<Metric> ParseMetric(const std::string& name);  // accepts the names above

using Metadata = std::map<std::string, std::string>;

struct CollectionSpec {
  std::string name;   // [A-Za-z0-9_-]{1,64}
  std::string model;  // model name that produces its vectors ("" = vectors only)
  int dim = 0;        // 1..65536
  Metric metric = Metric::kCosine;
  std::string index_spec = "Flat";  // FAISS index_factory string
};

struct Item {
  std::string id;  // 1..512 bytes, any UTF-8
  std::vector<float> vector;
  Metadata metadata;
};

// Metadata filter: an item matches when, for every key, its value is one of
// the listed values (one value = equality).
struct Filter {
  std::map<std::string, std::vector<std::string>> any_of;
  bool empty() const { return any_of.empty(); }
};

struct SearchParams {
  int k = 10;                      // 1..kMaxK
  std::optional<float> min_score;  // drop hits below this score
  Filter filter;
  std::vector<std::string> exclude_ids;  // e.g. the query item itself
};

struct SearchHit {
  std::string id;
  float score = 0.f;
  Metadata metadata;
};

struct CollectionStats {
  CollectionSpec spec;
  int64_t count = 0;         // live items
  int64_t disk_bytes = 0;    // database + snapshots
  int64_t index_bytes = 0;   // host memory of the derived index
  int64_t gpu_bytes = 0;     // device memory of the GPU index (0 on CPU)
  std::string index_device;  // "cpu" or "cuda:N"
};

constexpr int kMaxK = 2048;

class Collection {
 public:
  virtual ~Collection() = default;

  virtual const CollectionSpec& spec() const = 0;

  // Validates every item first (dim, NaN/Inf, id, metadata); returns one
  // Status per item (OK or INVALID_ARGUMENT naming what was wrong). The valid
  // items are written in one transaction, synced, then made searchable.
  // Existing ids are replaced. A non-OK return means nothing was written.
  // Cosine collections store (and Get returns) the L2-normalized vector; an
  // all-zero vector is INVALID_ARGUMENT there. Limits: id 1..512 bytes, up to
  // 64 metadata keys of 1..128 bytes, values up to 4096 bytes.
  virtual StatusOr<std::vector<Status>> Upsert(const std::vector<Item>& items) = 0;

  // queries: nq x dim, row-major. Returns nq hit lists, best first.
  virtual StatusOr<std::vector<std::vector<SearchHit>>> Search(const float* queries, int nq,
                                                               const SearchParams& params) = 0;

  // One entry per id, nullopt where the id is unknown.
  virtual StatusOr<std::vector<std::optional<Item>>> Get(const std::vector<std::string>& ids) = 0;

  // Removes the ids (durable on return); returns how many existed.
  virtual StatusOr<int64_t> Delete(const std::vector<std::string>& ids) = 0;

  virtual CollectionStats Stats() = 0;

  // Writes an index snapshot now (also done periodically and at close). A
  // GPU index is rebuilt from storage at open instead, so this is a no-op.
  virtual Status Snapshot() = 0;
};

struct CollectionManagerOptions {
  std::string data_dir;                   // one sub-directory per collection
  std::string index_device = "cpu";       // "cpu" or "cuda[:N]"
  int64_t snapshot_every_writes = 10000;  // snapshot after this many changed items
};

// Owns the collections of one data directory.
class CollectionManager {
 public:
  virtual ~CollectionManager() = default;
  // Opens every collection found in data_dir (recovering each); the first
  // collection that cannot be opened (e.g. DATA_LOSS) fails the whole Open.
  static StatusOr<std::unique_ptr<CollectionManager>> Open(const CollectionManagerOptions& options);

  virtual StatusOr<std::shared_ptr<Collection>> Create(
      const CollectionSpec& spec) = 0;                                             // ALREADY_EXISTS
  virtual StatusOr<std::shared_ptr<Collection>> Get(const std::string& name) = 0;  // NOT_FOUND
  virtual std::vector<std::string> List() = 0;
  virtual Status Drop(const std::string& name) = 0;  // NOT_FOUND
};

}  // namespace lookalike
