// Storage: the durable source of truth of one collection, an SQLite database
// (<data_dir>/<name>/items.db) in WAL mode with synchronous=FULL, so a write
// acknowledged by Upsert/Delete survives kill -9 and power loss.
//
// Schema (version 1):
//   collection(key TEXT PRIMARY KEY, value TEXT)  -- spec, last_seq, pruned_through
//     (model is kVectorsOnly for raw vectors; older databases hold "" there,
//     which Open reads as kVectorsOnly)
//   items(internal_id INTEGER PRIMARY KEY AUTOINCREMENT, external_id TEXT UNIQUE,
//         vector BLOB (dim float32, little-endian host order), seq INTEGER)
//   metadata(item, key, value)  -- PRIMARY KEY(item, key), index on (key, value, item)
//   tombstones(internal_id INTEGER PRIMARY KEY, seq INTEGER)
//
// Change sequence: every committed write batch (one Upsert or one Delete call)
// takes the next value of a monotonically increasing sequence; rows it inserts
// carry that seq and every internal id it removes gets a tombstone with it.
// The derived index records the sequence it covers, so recovery replays
// "tombstones with seq > S, then items with seq > S".
//
// Internal ids are never reused (AUTOINCREMENT): replacing an external id
// deletes the old row (tombstoned) and inserts a new row with a new internal
// id. That makes replay order-independent: a tombstoned id never comes back.
// Tombstones at or below the latest durable snapshot's sequence are pruned;
// `pruned_through` records how far, so an older snapshot is known stale.
//
// Thread safety: all methods may be called concurrently. Writes use one
// connection under a mutex; reads borrow a connection from a small pool (WAL
// lets readers run alongside the writer).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "index/types.h"

namespace lookalike {

class Storage {
 public:
  struct UpsertResult {
    int64_t seq = 0;
    std::vector<int64_t> internal_ids;  // one per written item, in order
    std::vector<int64_t> replaced;      // internal ids removed by replacement
  };
  struct DeleteResult {
    int64_t seq = 0;
    std::vector<int64_t> removed;  // internal ids removed
  };
  // External id and metadata of an item, for search hits.
  struct Description {
    int64_t internal_id = 0;
    std::string id;
    Metadata metadata;
  };

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Creates a new database at `path` (must not exist) holding `spec`.
  static StatusOr<std::unique_ptr<Storage>> Create(const std::string& path,
                                                   const CollectionSpec& spec);
  // Opens an existing database; DATA_LOSS naming the path when it is corrupt
  // or not a Lookalike collection database.
  static StatusOr<std::unique_ptr<Storage>> Open(const std::string& path);

  const CollectionSpec& spec() const { return spec_; }
  const std::string& path() const { return path_; }

  // Writes the items (already validated; vectors of spec().dim floats) in one
  // transaction. Ids already stored are replaced (new internal id). When an id
  // occurs twice in `items` the later occurrence wins.
  StatusOr<UpsertResult> Upsert(const std::vector<const Item*>& items);
  // Removes the ids that exist, in one transaction.
  StatusOr<DeleteResult> Delete(const std::vector<std::string>& ids);

  // One entry per id, nullopt where unknown.
  StatusOr<std::vector<std::optional<Item>>> Get(const std::vector<std::string>& ids);
  // Internal ids of the external ids that exist (unknown ones are skipped).
  StatusOr<std::vector<int64_t>> ResolveIds(const std::vector<std::string>& ids);
  // Sorted internal ids of the items matching every key of the filter.
  StatusOr<std::vector<int64_t>> MatchFilter(const Filter& filter);
  // Id + metadata per internal id, nullopt where it no longer exists.
  StatusOr<std::vector<std::optional<Description>>> Describe(
      const std::vector<int64_t>& internal_ids);
  // Vectors (dim floats each) of the given internal ids; rows that no longer
  // exist are skipped. `found` receives the internal ids in output order.
  Status ReadVectors(const std::vector<int64_t>& internal_ids, std::vector<int64_t>* found,
                     std::vector<float>* vectors);

  // Calls fn(internal_id, vector) for every item with seq > after_seq, in
  // internal id order. Stops at the first error fn returns.
  Status ScanItems(int64_t after_seq, const std::function<Status(int64_t, const float*)>& fn);
  // Internal ids tombstoned with seq > after_seq.
  StatusOr<std::vector<int64_t>> TombstonesAfter(int64_t after_seq);

  // Sequence of the last committed write (0 for a new collection).
  StatusOr<int64_t> LastSeq();
  // Tombstones with seq <= this have been pruned.
  StatusOr<int64_t> PrunedThrough();
  // Deletes tombstones with seq <= through_seq (a durable snapshot covers them).
  Status PruneTombstones(int64_t through_seq);

  StatusOr<int64_t> Count();
  // Bytes of the database file plus its WAL.
  int64_t DiskBytes() const;

 private:
  class Connection;
  struct ReadLease;

  Storage(std::string path, CollectionSpec spec);
  static StatusOr<std::unique_ptr<Connection>> OpenConnection(const std::string& path, bool create);
  StatusOr<ReadLease> BorrowReader();
  void ReturnReader(std::unique_ptr<Connection> conn);

  std::string path_;
  CollectionSpec spec_;
  std::mutex write_mu_;
  std::unique_ptr<Connection> writer_;  // guarded by write_mu_
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> readers_;  // idle readers, guarded by pool_mu_
};

}  // namespace lookalike
