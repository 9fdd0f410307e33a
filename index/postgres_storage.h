// PostgresStorage: Storage (index/storage.h) as rows of a PostgreSQL database
// (tables in index/pg_database.h) that several servers may share.
//
// Commit-ordered sequence: every write transaction starts with
//   UPDATE lookalike_collections SET last_seq = last_seq + 1, ... WHERE id = $1
//   RETURNING last_seq
// The row lock this takes is held until COMMIT (or ROLLBACK), so a second
// writer of the same collection, from any connection or server, waits there
// and, under READ COMMITTED, then reads the committed counter. Batch N+1 is
// therefore numbered only after batch N has committed (or rolled back, in
// which case N+1 reuses its number): sequence order is commit order and has
// no gaps, so a reader that has seen N can never later see a new row with a
// number <= N. (A SEQUENCE object would not give this: numbers are handed
// out at nextval, in a different order than the transactions commit.)
// The same UPDATE reserves the batch's internal ids (last_internal_id), so
// the rows are written in bulk: one binary COPY for the items and one for
// their metadata, inside that one transaction. Writers of different
// collections do not wait for each other.
//
// Tombstones with several servers: each server (PgDatabase::replica())
// records in lookalike_replicas the sequence its latest durable snapshot
// covers (PruneTombstones is called right after a snapshot). Tombstones are
// pruned only through the smallest position of the replicas that recorded
// one within kReplicaRetentionSeconds, so a follower, running or restarted
// from its snapshot, still finds every delete it has not applied. A replica
// silent for longer no longer holds pruning back; if it returns it finds
// PrunedThrough() past its position and rebuilds its index from storage
// (CollectionImpl detects this at open and when following).
//
// Reads that need one consistent view use a REPEATABLE READ READ ONLY
// transaction; ScanItems reads through a cursor, in batches.
//
// Thread safety: every method may be called concurrently (each call borrows
// a pooled connection).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "index/pg_database.h"
#include "index/storage.h"

namespace lookalike {

class PostgresStorage : public Storage {
 public:
  // How long a replica's recorded position holds tombstone pruning back.
  static constexpr int64_t kReplicaRetentionSeconds = 7 * 24 * 3600;

  // Adds `spec` to the catalog (ALREADY_EXISTS when the name is taken).
  static StatusOr<std::unique_ptr<PostgresStorage>> Create(std::shared_ptr<PgDatabase> db,
                                                           const CollectionSpec& spec);
  // The collection of a catalog entry (PgDatabase::ListCollections / FindCollection).
  static std::unique_ptr<PostgresStorage> Open(std::shared_ptr<PgDatabase> db,
                                               PgDatabase::CatalogEntry entry);

  // The catalog id: unique per created collection, never reused (a
  // collection dropped and created again under its name gets a new one).
  int64_t collection_id() const { return id_; }

  const CollectionSpec& spec() const override { return spec_; }
  const std::string& location() const override { return location_; }

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
  StatusOr<Position> LastPosition() override;
  StatusOr<int64_t> PrunedThrough() override;
  // Records this replica's snapshot position, then prunes through the
  // smallest recent replica position (at most through_seq).
  Status PruneTombstones(int64_t through_seq) override;
  StatusOr<int64_t> Count() override;
  // 0: the rows live on the database server.
  int64_t DiskBytes() const override { return 0; }

 private:
  PostgresStorage(std::shared_ptr<PgDatabase> db, PgDatabase::CatalogEntry entry);
  // Takes the collection's next sequence number and reserves `ids` internal
  // ids (the first is *first_id), locking the catalog row until the end of
  // the transaction. NOT_FOUND when the collection was dropped.
  StatusOr<int64_t> NextSeq(PgConnection& conn, int64_t ids, int64_t* first_id);
  // Deletes the rows of `external_ids` and their metadata, tombstones them
  // with `seq`; returns (external id, internal id) of the rows that existed.
  StatusOr<std::vector<std::pair<std::string, int64_t>>> RemoveRows(
      PgConnection& conn, const std::vector<std::string>& external_ids, int64_t seq);
  Status WriteTombstones(PgConnection& conn, const std::vector<int64_t>& internal_ids, int64_t seq);
  StatusOr<int64_t> ReadCounter(const char* column);
  Status CheckVector(int length) const;

  const std::shared_ptr<PgDatabase> db_;
  const int64_t id_;
  const CollectionSpec spec_;
  const std::string location_;
};

}  // namespace lookalike
