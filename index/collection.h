// Collection: a named set of items (string id, vector, metadata) that is
// durable and searchable.
//
// Storage is the source of truth, holding ids, vectors and metadata, written
// and committed durably before Upsert/Delete return: an SQLite database in WAL
// mode (<dir>/items.db, the default) or tables in a PostgreSQL database that
// several servers share (CollectionManagerOptions::storage). The search index is derived from it: a
// FAISS index (CPU) or the GPU flat index (index/gpu), snapshotted atomically (temp file, fsync,
// rename) and rebuilt or replayed from storage at Open when the snapshot is missing, stale or
// corrupt.
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
#include "index/types.h"

namespace lookalike {

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
  // 64 metadata keys of 1..128 bytes, values up to 4096 bytes; no NUL bytes
  // in ids, keys or values.
  virtual StatusOr<std::vector<Status>> Upsert(const std::vector<Item>& items) = 0;

  // queries: nq x dim, row-major. Returns nq hit lists, best first.
  virtual StatusOr<std::vector<std::vector<SearchHit>>> Search(const float* queries, int nq,
                                                               const SearchParams& params) = 0;

  // One entry per id, nullopt where the id is unknown.
  virtual StatusOr<std::vector<std::optional<Item>>> Get(const std::vector<std::string>& ids) = 0;

  // The thumbnail stored with item `id` (Item::thumbnail: JPEG bytes).
  // NOT_FOUND naming the item when the id is unknown or the item has none
  // (the collection keeps none, or it was written as a raw vector).
  virtual StatusOr<std::string> GetThumbnail(const std::string& id) = 0;

  // Removes the ids (durable on return); returns how many existed.
  virtual StatusOr<int64_t> Delete(const std::vector<std::string>& ids) = 0;

  virtual CollectionStats Stats() = 0;

  // Writes an index snapshot now (also done periodically and at close). A
  // GPU index is rebuilt from storage at open instead, so this is a no-op.
  virtual Status Snapshot() = 0;
};

struct CollectionManagerOptions {
  // One sub-directory per collection: the SQLite database and the index
  // snapshot; with PostgreSQL storage only the snapshot, under
  // <data_dir>/postgresql/<name>.<catalog id>.
  std::string data_dir;
  // kSqliteStorage ("sqlite") or a PostgreSQL URI (postgresql://user@host:port/db),
  // see ValidateStorage in index/types.h. With PostgreSQL the collection
  // catalog lives in the database.
  std::string storage = kSqliteStorage;
  std::string index_device = "cpu";       // "cpu" or "cuda[:N]"
  int64_t snapshot_every_writes = 10000;  // snapshot after this many changed items
  // PostgreSQL storage: collections follow the database (index/follower.h),
  // woken by LISTEN/NOTIFY; without a notification they still check the
  // catalog and every collection this often (also the reconnect interval).
  int64_t follow_poll_ms = 1000;
};

// Owns the collections of one data directory (and, with PostgreSQL storage,
// of the database's catalog). With PostgreSQL storage it also follows the
// database: collections created or dropped, and items written, through other
// servers reach this one's collections (index/follower.h), and this server's
// data directory has a replica id (<data_dir>/.replica-id) naming it there.
class CollectionManager {
 public:
  virtual ~CollectionManager() = default;
  // Opens every collection found in data_dir, or in the PostgreSQL catalog
  // (recovering each); the first collection that cannot be opened (e.g.
  // DATA_LOSS) fails the whole Open. An unreachable PostgreSQL is
  // UNAVAILABLE naming the database.
  static StatusOr<std::unique_ptr<CollectionManager>> Open(const CollectionManagerOptions& options);

  virtual StatusOr<std::shared_ptr<Collection>> Create(
      const CollectionSpec& spec) = 0;                                             // ALREADY_EXISTS
  virtual StatusOr<std::shared_ptr<Collection>> Get(const std::string& name) = 0;  // NOT_FOUND
  virtual std::vector<std::string> List() = 0;
  virtual Status Drop(const std::string& name) = 0;  // NOT_FOUND
};

}  // namespace lookalike
