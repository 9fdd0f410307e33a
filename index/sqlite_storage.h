// SqliteStorage: Storage (index/storage.h) in an embedded SQLite database
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
//   thumbnails(item INTEGER PRIMARY KEY, image BLOB)  -- Item::thumbnail, JPEG;
//     added later: Open creates it in an older database (and the collection
//     table then has no thumbnail_size, read as 0)
//
// Commit order: one process owns the file (the manager's data-directory
// lock) and writers take SQLite's write lock up front (BEGIN IMMEDIATE), so
// batches commit one at a time, in sequence order.
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
#include "index/storage.h"
#include "index/types.h"

namespace lookalike {

class SqliteStorage : public Storage {
 public:
  ~SqliteStorage() override;
  SqliteStorage(const SqliteStorage&) = delete;
  SqliteStorage& operator=(const SqliteStorage&) = delete;

  // Creates a new database at `path` (must not exist) holding `spec`.
  static StatusOr<std::unique_ptr<SqliteStorage>> Create(const std::string& path,
                                                         const CollectionSpec& spec);
  // Opens an existing database; DATA_LOSS naming the path when it is corrupt
  // or not a Lookalike collection database.
  static StatusOr<std::unique_ptr<SqliteStorage>> Open(const std::string& path);

  const CollectionSpec& spec() const override { return spec_; }
  const std::string& location() const override { return path_; }

  StatusOr<UpsertResult> Upsert(const std::vector<const Item*>& items) override;
  StatusOr<DeleteResult> Delete(const std::vector<std::string>& ids) override;
  StatusOr<std::vector<std::optional<Item>>> Get(const std::vector<std::string>& ids) override;
  StatusOr<std::optional<std::string>> ReadThumbnail(const std::string& id) override;
  StatusOr<std::vector<int64_t>> ResolveIds(const std::vector<std::string>& ids) override;
  StatusOr<std::vector<int64_t>> MatchFilter(const Filter& filter) override;
  StatusOr<std::vector<std::optional<Description>>> Describe(
      const std::vector<int64_t>& internal_ids) override;
  Status ReadVectors(const std::vector<int64_t>& internal_ids, std::vector<int64_t>* found,
                     std::vector<float>* vectors) override;
  Status ScanItems(int64_t after_seq,
                   const std::function<Status(int64_t, const float*)>& fn) override;
  StatusOr<std::vector<int64_t>> TombstonesAfter(int64_t after_seq) override;
  StatusOr<int64_t> LastSeq() override;
  StatusOr<int64_t> PrunedThrough() override;
  Status PruneTombstones(int64_t through_seq) override;
  StatusOr<int64_t> Count() override;
  // Bytes of the database file plus its WAL.
  int64_t DiskBytes() const override;

 private:
  class Connection;
  struct ReadLease;

  SqliteStorage(std::string path, CollectionSpec spec);
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
