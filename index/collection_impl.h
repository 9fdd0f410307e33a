// CollectionImpl: Storage (truth) + DerivedIndex (searchable copy) + snapshots.
// Private to index/; other modules use index/collection.h.
//
// Files in the collection directory:
//   items.db (+ -wal, -shm)  SQLite storage (kSqliteFileName), see index/sqlite_storage.h;
//                            with PostgreSQL storage the rows live in the database
//                            (index/postgres_storage.h) and the directory holds
//                            only the snapshot
//   index.snap               derived index snapshot (kSnapshotFileName): container in
//                            index/snapshot.h, payload in DerivedIndex::WriteSnapshot
//
// Write path (serialized by write_mu_): validate -> one storage transaction
// (committed durably) -> apply to the derived index under the exclusive index lock ->
// maybe snapshot. Searches take the index lock shared. A search whose index
// cannot guarantee k hits (HNSW with a filter, the GPU index with a filter)
// is answered exactly from the vectors in storage.
//
// Descriptions (external id + metadata of every indexed item) are kept in
// memory beside the index and updated with it, so a search answers from this
// server alone: with PostgreSQL storage, searches keep working while the
// database is unreachable (filters and exclude_ids then match against these
// descriptions too; only the exact fallback for HNSW/GPU with a filter needs
// the database).
//
// Recovery at Open: load index.snap when present and valid for this spec,
// then replay storage past its sequence (tombstones, then newer items).
// Missing, stale (older than pruned tombstones or newer than storage) or
// corrupt snapshots are logged and the index is rebuilt from storage. The GPU
// index is always rebuilt from storage (a flat index has nothing to train).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/device.h"
#include "index/collection.h"
#include "index/derived_index.h"
#include "index/storage.h"

namespace lookalike {

// The SQLite database of a collection, in its directory.
inline constexpr const char* kSqliteFileName = "items.db";

// Limits enforced by Upsert validation.
constexpr size_t kMaxIdBytes = 512;
constexpr size_t kMaxMetadataKeys = 64;
constexpr size_t kMaxMetadataKeyBytes = 128;
constexpr size_t kMaxMetadataValueBytes = 4096;
constexpr int kMaxDim = 65536;

// INVALID_ARGUMENT naming the problem, or OK. `dim` is the collection's.
Status ValidateItem(const Item& item, int dim, Metric metric);
// Collection name: [A-Za-z0-9_-]{1,64}.
Status ValidateCollectionName(const std::string& name);
// Whole spec: name, model not empty (a model name or kVectorsOnly), dim
// range, index_spec parseable and supported.
Status ValidateSpec(const CollectionSpec& spec);

class CollectionImpl : public Collection {
 public:
  // OK when `spec` is valid and its index can be built on the configured
  // device; the manager checks this before writing anything.
  static Status CheckCreatable(const CollectionSpec& spec, const CollectionManagerOptions& options);
  // Opens the collection held by `storage` and recovers its index; <dir>
  // holds the index snapshot (and, for SQLite, the database).
  static StatusOr<std::shared_ptr<CollectionImpl>> Open(const std::string& dir,
                                                        const CollectionManagerOptions& options,
                                                        std::unique_ptr<Storage> storage);
  // Snapshots when there are unsnapshotted changes (unless dropped).
  ~CollectionImpl() override;

  const CollectionSpec& spec() const override { return storage_->spec(); }
  StatusOr<std::vector<Status>> Upsert(const std::vector<Item>& items) override;
  StatusOr<std::vector<std::vector<SearchHit>>> Search(const float* queries, int nq,
                                                       const SearchParams& params) override;
  StatusOr<std::vector<std::optional<Item>>> Get(const std::vector<std::string>& ids) override;
  StatusOr<std::string> GetThumbnail(const std::string& id) override;
  StatusOr<int64_t> Delete(const std::vector<std::string>& ids) override;
  CollectionStats Stats() override;
  Status Snapshot() override;

  // Follower step: applies to the index every batch committed to storage
  // past the sequence it covers (by this or any other server sharing the
  // storage): tombstones, then newer items. A tail replay, not a rebuild,
  // unless tombstones it needs were pruned. NOT_FOUND when the collection
  // is gone from storage (dropped elsewhere). Serialized with writes.
  // OK at once, without asking storage, when `seq` > 0 and the index
  // already covers it.
  Status CatchUp(int64_t seq);

  // Marks the collection dropped: later calls fail with NOT_FOUND and no
  // snapshot is written at destruction. Waits for the running write.
  void MarkDropped();
  const std::string& dir() const { return dir_; }

 private:
  using Descriptions = std::unordered_map<int64_t, Storage::Description>;
  // Descriptions of `internal_ids` from storage (ids gone meanwhile are left out).
  StatusOr<Descriptions> DescribeFromStorage(const std::vector<int64_t>& internal_ids);
  // Matches against descriptions_, for when storage is unreachable. Requires index_mu_.
  std::vector<int64_t> MatchFilterLocally(const Filter& filter) const;
  std::vector<int64_t> ResolveIdsLocally(const std::vector<std::string>& ids) const;

  CollectionImpl(std::string dir, CollectionManagerOptions options, Device device,
                 std::unique_ptr<Storage> storage);
  Status Recover();
  // Builds a fresh index from every stored item. Caller holds write_mu_ (or
  // is the only user, at open). Sets *at to the storage position covered.
  StatusOr<std::unique_ptr<DerivedIndex>> BuildFromStorage(Storage::Position* at,
                                                           Descriptions* described);
  // Rebuilds the index from storage and swaps it in (compaction, or an index
  // update that failed after the storage commit). Requires write_mu_, so
  // storage cannot move past what the new index covers; searches continue on
  // the old index while the new one is built. On error the old index stays.
  Status RebuildLocked();
  // Replays storage past applied_seq_ (see CatchUp), also when a write got
  // a sequence number past applied_seq_ + 1 (another server committed in
  // between). Falls back to a rebuild when PrunedThrough() passed
  // applied_seq_ or the index refused the update. Requires write_mu_.
  Status ReplayTailLocked();
  // Records the storage position last seen, for the follow lag in Stats().
  void NoteLastPosition(const Storage::Position& last);
  // Writes a snapshot now, after any periodic one still being written.
  Status SnapshotLocked();  // requires write_mu_
  // Periodic snapshot + compaction. The periodic snapshot is serialized here
  // (under the shared index lock) and written, fsynced and recorded in
  // storage (PruneTombstones) by snapshot_writer_, so writing a large index
  // file delays neither the next write nor the follower's next replay.
  void AfterWriteLocked(int64_t changed);
  void JoinSnapshotWriterLocked();  // requires write_mu_
  Status CheckLive() const;
  // One search over normalized queries; *raced when a hit vanished from
  // storage before its row was read.
  StatusOr<std::vector<std::vector<SearchHit>>> SearchOnce(const float* q, int nq,
                                                           const SearchParams& params, bool* raced);

  const std::string dir_;
  const std::string snapshot_path_;
  const CollectionManagerOptions options_;
  const Device device_;  // options_.index_device, parsed
  std::unique_ptr<Storage> storage_;
  std::atomic<bool> dropped_{false};

  std::mutex write_mu_;                 // serializes writers and snapshots
  int64_t changes_since_snapshot_ = 0;  // guarded by write_mu_
  std::thread snapshot_writer_;         // the periodic snapshot's file write; write_mu_

  mutable std::shared_mutex index_mu_;
  std::unique_ptr<DerivedIndex> index_;  // guarded by index_mu_
  int64_t applied_seq_ = 0;              // storage seq the index reflects; index_mu_
  int64_t applied_ids_ = -1;   // storage's last internal id the index reflects (-1: not counted)
  Descriptions descriptions_;  // of the indexed items; guarded by index_mu_

  // Follow lag (Stats): the largest storage position seen, and when this
  // server first saw the index behind it (steady clock ns; 0: caught up).
  std::mutex lag_mu_;
  int64_t seen_seq_ = 0;         // guarded by lag_mu_
  int64_t seen_ids_ = -1;        // guarded by lag_mu_
  int64_t behind_since_ns_ = 0;  // guarded by lag_mu_
};

}  // namespace lookalike
