// PgDatabase: one PostgreSQL database holding Lookalike collections, reached
// through libpq: a pool of connections, the schema, and the collection
// catalog. PostgresStorage (index/postgres_storage.h) keeps one collection's
// rows in it; several servers may share one database.
//
// Schema (version 1, created at Connect when missing):
//   lookalike_schema(version)
//   lookalike_collections(id BIGSERIAL, name UNIQUE, model, dim, metric,
//                         index_spec, last_seq, last_internal_id, pruned_through,
//                         thumbnail_size)
//     -- the catalog; its row is also each collection's sequence counter
//   lookalike_items(collection_id, internal_id, external_id, vector BYTEA, seq)
//     -- PRIMARY KEY(collection_id, internal_id), UNIQUE(collection_id, external_id),
//        index on (collection_id, seq); vector = dim float32, little-endian
//   lookalike_metadata(collection_id, item, key, value)
//     -- PRIMARY KEY(collection_id, item, key), index on (collection_id, key, value, item)
//   lookalike_thumbnails(collection_id, item, image BYTEA)
//     -- PRIMARY KEY(collection_id, item): Item::thumbnail (JPEG), written and
//        removed with its item
//   lookalike_tombstones(collection_id, internal_id, seq)
//     -- PRIMARY KEY(collection_id, internal_id), index on (collection_id, seq)
//   lookalike_replicas(collection_id, replica, snapshot_seq, updated_at)
//     -- per server (replica id) the sequence of its latest durable index
//        snapshot: tombstones are pruned only below every recent replica's
//        position (PostgresStorage::PruneTombstones)
// (lookalike_replicas, lookalike_thumbnails and thumbnail_size were added
// after version 1 shipped; CREATE ... IF NOT EXISTS and ADD COLUMN IF NOT
// EXISTS add them to an older database, so the version stays 1.)
//
// Change notifications: every transaction that changes a collection (a
// write batch, create, drop) also runs NOTIFY kChangesChannel with the
// collection name as payload, followed by " <seq>" for a write batch (its
// sequence number); PostgreSQL delivers it to listeners only when that
// transaction commits. Followers (index/follower.h) LISTEN on it.
// There are no foreign keys (they would cost a lookup per ingested row):
// every write locks its collection's catalog row first, and Drop deletes the
// collection's rows in the transaction that deletes its catalog row.
//
// Errors name the database (URI without password). Connection failures and
// a server shutting down are UNAVAILABLE.
//
// Thread safety: every method may be called concurrently; a borrowed
// connection is used by one thread at a time.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "index/types.h"

namespace lookalike {

// One libpq result (owned). Results are requested in binary format: int8
// columns are 8 big-endian bytes, text and bytea columns their raw bytes.
class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result) {}
  ~PgResult() { PQclear(result_); }
  PgResult(PgResult&& other) noexcept : result_(other.result_) { other.result_ = nullptr; }
  PgResult& operator=(PgResult&& other) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  const PGresult* get() const { return result_; }
  int rows() const { return PQntuples(result_); }
  int64_t Int64(int row, int col) const;  // an int8 column
  std::string Text(int row, int col) const;
  const char* Bytes(int row, int col) const { return PQgetvalue(result_, row, col); }
  int Length(int row, int col) const { return PQgetlength(result_, row, col); }

 private:
  PGresult* result_;
};

// Query parameters: numbers and arrays are sent as text, bytea in binary.
class PgParams {
 public:
  PgParams& Int64(int64_t value);
  PgParams& Text(std::string value);
  // A text[] literal; elements are quoted and escaped.
  PgParams& TextArray(const std::vector<std::string>& values);
  PgParams& Int64Array(const std::vector<int64_t>& values);

  int size() const { return static_cast<int>(values_.size()); }
  // Pointers into this object, valid while it lives unchanged.
  std::vector<const char*> Values() const;
  std::vector<int> Lengths() const;
  std::vector<int> Formats() const { return formats_; }

 private:
  std::vector<std::string> values_;
  std::vector<int> formats_;
};

// A buffer in COPY's binary format (header, tuples, trailer).
class PgCopyBuffer {
 public:
  PgCopyBuffer();
  void BeginRow(int fields);
  void Int64(int64_t value);
  void Bytes(const void* data, size_t size);
  void Text(const std::string& text) { Bytes(text.data(), text.size()); }
  // Appends the trailer and returns the whole buffer.
  const std::string& Finish();
  size_t rows() const { return rows_; }

 private:
  std::string data_;
  size_t rows_ = 0;
};

// How a `storage` option (kSqliteStorage or a PostgreSQL URI) is shown to
// users (DescribeCollection, logs): "sqlite", or
// "postgresql://user@host:port/db" without the password.
std::string StorageDisplayName(const std::string& storage);

// The NOTIFY channel of collection changes; the payload is the collection
// name, then " <seq>" when the change is a write batch.
inline constexpr const char* kChangesChannel = "lookalike_changes";

class PgConnection;
// NOTIFY kChangesChannel naming `collection` and, for a write batch, its
// sequence number `seq` (0: a create or drop), inside the caller's transaction.
Status NotifyChange(PgConnection& conn, const std::string& collection, int64_t seq = 0);
// Reads a kChangesChannel payload: the collection name and the batch's
// sequence number (0 when the payload has none).
void ParseChange(const std::string& payload, std::string* collection, int64_t* seq);

class PgConnection {
 public:
  PgConnection(PGconn* conn, std::string database) : conn_(conn), database_(std::move(database)) {}
  ~PgConnection() { PQfinish(conn_); }
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // One statement with parameters; binary results. A command (no rows)
  // returns an empty result.
  StatusOr<PgResult> Query(const std::string& sql, const PgParams& params = PgParams());
  // Statements without parameters (may be several, separated by ';').
  Status Execute(const std::string& sql);
  // COPY ... FROM STDIN (FORMAT binary) with `data` as the input.
  Status CopyIn(const std::string& copy_sql, const std::string& data);

  enum class Txn { kWrite, kRead };
  // BEGIN (kRead: REPEATABLE READ READ ONLY, one snapshot for every
  // statement), body, COMMIT; rolled back when the body or the commit fails.
  template <typename F>
  Status InTransaction(Txn txn, F&& body) {
    RETURN_IF_ERROR(
        Execute(txn == Txn::kWrite ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    Status st = body();
    if (st.ok()) st = Execute("COMMIT");
    if (!st.ok()) Rollback();
    return st;
  }
  void Rollback();

  // The connection's socket, to wait for notifications with poll().
  int Socket() const;
  // Reads what arrived on the socket and appends the payloads of the
  // notifications received (LISTEN). UNAVAILABLE when the connection is lost.
  Status TakeNotifications(std::vector<std::string>* payloads);

  // True when the connection is lost or not idle (it is then not reused).
  bool Unusable() const;
  // A Status for a failed result (nullptr: the connection's last error).
  Status Error(const PGresult* result, const std::string& what) const;

 private:
  PGconn* conn_;
  const std::string database_;
};

class PgDatabase {
 public:
  struct CatalogEntry {
    int64_t id = 0;  // unique per created collection, never reused
    CollectionSpec spec;
  };

  // Connects to `uri` (postgresql://...; libpq's syntax), creating the schema
  // when missing. UNAVAILABLE naming the database when it cannot be reached.
  // `replica` names this server among those sharing the database (its
  // position is kept in lookalike_replicas, see PostgresStorage::PruneTombstones).
  static StatusOr<std::shared_ptr<PgDatabase>> Connect(const std::string& uri,
                                                       std::string replica = "");

  // The database as "postgresql://user@host:port/dbname" (no password).
  const std::string& name() const { return name_; }
  const std::string& replica() const { return replica_; }

  // A pooled connection, returned to the pool at destruction (dropped when
  // unusable).
  class Lease {
   public:
    Lease(PgDatabase* db, std::unique_ptr<PgConnection> conn) : db_(db), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept = default;
    ~Lease();
    PgConnection* operator->() { return conn_.get(); }
    PgConnection& operator*() { return *conn_; }

   private:
    PgDatabase* db_;
    std::unique_ptr<PgConnection> conn_;
  };
  StatusOr<Lease> Borrow();

  // Catalog, ordered by name.
  StatusOr<std::vector<CatalogEntry>> ListCollections();
  StatusOr<CatalogEntry> FindCollection(const std::string& name);       // NOT_FOUND
  StatusOr<CatalogEntry> CreateCollection(const CollectionSpec& spec);  // ALREADY_EXISTS
  // Deletes the catalog row and every row of the collection, in one
  // transaction. NOT_FOUND when there is no such collection.
  Status DropCollection(const std::string& name);

  // A connection of its own (not pooled) listening on kChangesChannel.
  StatusOr<std::unique_ptr<PgConnection>> Listen();

 private:
  PgDatabase(std::string uri, std::string name, std::string replica)
      : uri_(std::move(uri)), name_(std::move(name)), replica_(std::move(replica)) {}
  StatusOr<std::unique_ptr<PgConnection>> OpenConnection();
  Status EnsureSchema();
  void Return(std::unique_ptr<PgConnection> conn);

  const std::string uri_;
  const std::string name_;
  const std::string replica_;
  std::mutex mu_;
  std::vector<std::unique_ptr<PgConnection>> idle_;  // guarded by mu_
};

}  // namespace lookalike
