// Storage: the durable source of truth of one collection. Two implementations
// pass the same contract tests (tests/index/storage_test.cc):
//   SqliteStorage    (index/sqlite_storage.h)   <data_dir>/<name>/items.db, embedded
//   PostgresStorage  (index/postgres_storage.h) tables in a PostgreSQL database
//                                               shared by several servers
//
// Contract
// - Durability: Upsert/Delete return only after their transaction committed
//   durably (SQLite: WAL fsynced; PostgreSQL: COMMIT returned). A non-OK
//   return means nothing of the call was written.
// - Change sequence: every committed write batch (one Upsert or one Delete
//   call) takes the next value of a per-collection sequence (1, 2, 3, ... with
//   no gaps); rows it inserts carry that seq and every internal id it removes
//   gets a tombstone with it. Sequence order is commit order: once a reader
//   sees seq N committed, every batch with a lower seq is committed and
//   visible too, so "everything with seq > S" is a complete replay of what
//   committed after S. The derived index records the sequence it covers;
//   recovery (and, later, followers) replay "tombstones with seq > S, then
//   items with seq > S".
// - Internal ids are positive and never reused: replacing an external id
//   deletes the old row (tombstoned) and inserts a new row with a new, larger
//   internal id. Replay is therefore order-independent: a tombstoned id never
//   comes back.
// - Pruning: tombstones at or below the latest durable snapshot's sequence
//   are pruned; PrunedThrough() records how far, so an older snapshot is
//   known to be stale.
// - Thread safety: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
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
    // One per written item, in order. An item whose id occurs again later in
    // the same batch is -1 here (the later occurrence wins) and its internal
    // id is listed in `replaced`.
    std::vector<int64_t> internal_ids;
    std::vector<int64_t> replaced;  // internal ids removed by replacement
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

  virtual ~Storage() = default;

  virtual const CollectionSpec& spec() const = 0;
  // Where the data lives, for messages: a file path, or the database
  // (without credentials) and collection.
  virtual const std::string& location() const = 0;

  // Writes the items (already validated; vectors of spec().dim floats) with
  // their thumbnails (Item::thumbnail, when not empty) in one transaction. Ids already stored are
  // replaced (new internal id). When an id occurs twice in `items` the later occurrence wins.
  virtual StatusOr<UpsertResult> Upsert(const std::vector<const Item*>& items) = 0;
  // Removes the ids that exist, in one transaction; `removed` follows the
  // order of `ids`.
  virtual StatusOr<DeleteResult> Delete(const std::vector<std::string>& ids) = 0;

  // One entry per id, nullopt where unknown.
  virtual StatusOr<std::vector<std::optional<Item>>> Get(const std::vector<std::string>& ids) = 0;
  // The thumbnail written with `id` (Item::thumbnail): nullopt when the id is
  // unknown, "" when the item has none. Replaced and removed with its item.
  virtual StatusOr<std::optional<std::string>> ReadThumbnail(const std::string& id) = 0;
  // Internal ids of the external ids that exist (unknown ones are skipped).
  virtual StatusOr<std::vector<int64_t>> ResolveIds(const std::vector<std::string>& ids) = 0;
  // Sorted internal ids of the items matching every key of the filter.
  virtual StatusOr<std::vector<int64_t>> MatchFilter(const Filter& filter) = 0;
  // Id + metadata per internal id, nullopt where it no longer exists.
  virtual StatusOr<std::vector<std::optional<Description>>> Describe(
      const std::vector<int64_t>& internal_ids) = 0;
  // Vectors (dim floats each) of the given internal ids; rows that no longer
  // exist are skipped. `found` receives the internal ids in output order.
  virtual Status ReadVectors(const std::vector<int64_t>& internal_ids, std::vector<int64_t>* found,
                             std::vector<float>* vectors) = 0;

  // Calls fn(internal_id, vector) for every item with seq > after_seq, in
  // internal id order, from one consistent read. Stops at the first error fn
  // returns.
  virtual Status ScanItems(int64_t after_seq,
                           const std::function<Status(int64_t, const float*)>& fn) = 0;
  // Internal ids tombstoned with seq > after_seq, ascending.
  virtual StatusOr<std::vector<int64_t>> TombstonesAfter(int64_t after_seq) = 0;

  // Sequence of the last committed write (0 for a new collection).
  virtual StatusOr<int64_t> LastSeq() = 0;
  // LastSeq() and, read with it, the last internal id handed out (every
  // upserted item takes the next one; -1 where the storage does not count
  // them): how far a follower is behind in items.
  struct Position {
    int64_t seq = 0;
    int64_t last_internal_id = -1;
  };
  virtual StatusOr<Position> LastPosition() {
    ASSIGN_OR_RETURN(const int64_t seq, LastSeq());
    return Position{seq, -1};
  }
  // Tombstones with seq <= this have been pruned.
  virtual StatusOr<int64_t> PrunedThrough() = 0;
  // Deletes tombstones with seq <= through_seq (a durable snapshot covers
  // them); never moves PrunedThrough() backwards.
  virtual Status PruneTombstones(int64_t through_seq) = 0;

  virtual StatusOr<int64_t> Count() = 0;
  // Bytes the storage occupies on this server's disk (0 for a database
  // server elsewhere).
  virtual int64_t DiskBytes() const = 0;
};

// The filter rule, written once for every storage: an item matches when it
// matches every key of the filter, and a key when its value is any of the
// key's values. `match_key(key, values)` returns the internal ids whose value
// for `key` is one of `values`, in any order, duplicates allowed. Keys are
// asked in the filter's order until the intersection is empty. Returns the
// matching internal ids sorted and distinct.
using KeyMatcher = std::function<StatusOr<std::vector<int64_t>>(
    const std::string& key, const std::vector<std::string>& values)>;
StatusOr<std::vector<int64_t>> MatchEveryKey(const Filter& filter, const KeyMatcher& match_key);

}  // namespace lookalike
