// The collection vocabulary: metrics, items, filters, search parameters and
// hits, shared by the collections, their storage and derived indexes (CPU and
// GPU), and the server. Lower layers include this, never collection.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace lookalike {

// The largest k a search may ask for, on every index (CPU and GPU); the
// server's limits.max_k may lower it.
inline constexpr int kMaxK = 2048;

// CollectionSpec::model of a collection that stores raw vectors only (no
// model: image items and image queries are refused). The same word on the
// wire, in the CLI and in the docs.
inline constexpr const char* kVectorsOnly = "none";

enum class Metric {
  kCosine,        // score = cosine similarity; vectors are L2-normalized on write and query
  kInnerProduct,  // score = <q, x>
  kL2,            // score = -||q - x||^2 (higher is always more similar)
};
const char* MetricName(Metric metric);                  // "cosine", "ip", "l2"
StatusOr<Metric> ParseMetric(const std::string& name);  // accepts the names above

// Where collections are stored: "sqlite" (the embedded default, one database
// file per collection in the data directory) or a PostgreSQL connection URI
// ("postgresql://user@host:port/db" or "postgres://..."; libpq's syntax) shared
// by several servers. The same word in the config, the CLI flag and the docs.
inline constexpr const char* kSqliteStorage = "sqlite";
bool IsPostgresUri(const std::string& storage);
// OK for "sqlite" or a PostgreSQL URI; INVALID_ARGUMENT otherwise.
Status ValidateStorage(const std::string& storage);

using Metadata = std::map<std::string, std::string>;

// CollectionSpec::thumbnail_size: 0 (no thumbnails) or this range, in pixels
// of the longer side.
inline constexpr int kMinThumbnailSize = 16;
inline constexpr int kMaxThumbnailSize = 1024;

struct CollectionSpec {
  std::string name;  // [A-Za-z0-9_-]{1,64}
  // The model that produces its vectors, or kVectorsOnly; never empty
  // (Create refuses "" with INVALID_ARGUMENT).
  std::string model = kVectorsOnly;
  int dim = 0;  // 1..65536
  Metric metric = Metric::kCosine;
  std::string index_spec = "Flat";  // FAISS index_factory string
  // Image items keep a JPEG thumbnail whose longer side is at most this many
  // pixels (aspect kept, never enlarged), stored with the item; 0 = none.
  // 0 or kMinThumbnailSize..kMaxThumbnailSize.
  int thumbnail_size = 0;
};

struct Item {
  std::string id;  // 1..512 bytes, any UTF-8
  std::vector<float> vector;
  Metadata metadata;
  // Encoded JPEG written with the item (CollectionSpec::thumbnail_size), or
  // empty: none. Storage::Get leaves it empty; the bytes are read one item at
  // a time (Storage::ReadThumbnail, Collection::GetThumbnail).
  std::string thumbnail;
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
  // Where the rows live: "sqlite", or the PostgreSQL database as
  // "postgresql://user@host:port/db" (never a password).
  std::string storage;
  // Following a shared storage (PostgreSQL): committed write batches (one
  // per Upsert/Delete call, i.e. sequence numbers) this server's index has
  // not applied yet, as last seen; the items upserted in them (deletions
  // count in batches only); and seconds since this server first saw the
  // oldest of them (0 when caught up, and always with SQLite).
  int64_t follow_lag_batches = 0;
  int64_t follow_lag_items = 0;
  double follow_lag_seconds = 0;
};

}  // namespace lookalike
