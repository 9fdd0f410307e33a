#include "index/sqlite_storage.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>

namespace lookalike {
namespace {

constexpr int kSchemaVersion = 1;
constexpr int kBusyTimeoutMs = 10000;
constexpr size_t kMaxIdleReaders = 8;

constexpr const char* kSchema = R"sql(
CREATE TABLE collection(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE items(
  internal_id INTEGER PRIMARY KEY AUTOINCREMENT,
  external_id TEXT NOT NULL UNIQUE,
  vector BLOB NOT NULL,
  seq INTEGER NOT NULL);
CREATE INDEX items_by_seq ON items(seq);
CREATE TABLE metadata(
  item INTEGER NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY(item, key)) WITHOUT ROWID;
CREATE INDEX metadata_by_key_value ON metadata(key, value, item);
CREATE TABLE tombstones(internal_id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE INDEX tombstones_by_seq ON tombstones(seq);
)sql";

// Added after schema version 1 shipped: Create and Open both run this, so an
// older database gains the table at open and the version stays 1. A table of
// its own keeps the items rows (read by every scan) small.
constexpr const char* kThumbnailsTable =
    "CREATE TABLE IF NOT EXISTS thumbnails(item INTEGER PRIMARY KEY, image BLOB NOT NULL)";

int64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_size);
}

}  // namespace

// One SQLite connection plus its prepared statements.
class SqliteStorage::Connection {
 public:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~Connection() {
    for (auto& entry : stmts_) sqlite3_finalize(entry.second);
    sqlite3_close_v2(db_);
  }

  sqlite3* db() { return db_; }

  // Converts an SQLite result code into a Status naming the database.
  Status Error(int rc, const std::string& what) const {
    std::string msg = path_ + ": " + what + ": " + sqlite3_errstr(rc);
    const char* detail = sqlite3_errmsg(db_);
    if (detail != nullptr && std::strcmp(detail, sqlite3_errstr(rc)) != 0) {
      msg += std::string(" (") + detail + ")";
    }
    switch (rc & 0xff) {
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB:
        return DataLossError(msg + "; the collection database is corrupt");
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return UnavailableError(msg);
      case SQLITE_FULL:
        return ResourceExhaustedError(msg + "; the disk holding it is full");
      case SQLITE_CANTOPEN:
      case SQLITE_PERM:
      case SQLITE_READONLY:
        return FailedPreconditionError(msg);
      default:
        return InternalError(msg);
    }
  }

  Status Exec(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    if (err != nullptr) sqlite3_free(err);
    if (rc != SQLITE_OK) return Error(rc, std::string("executing '") + sql + "'");
    return Status::Ok();
  }

  // Returns a reset prepared statement for `sql` (cached by text).
  StatusOr<sqlite3_stmt*> Prepare(const char* sql) {
    auto it = stmts_.find(sql);
    if (it != stmts_.end()) {
      sqlite3_reset(it->second);
      sqlite3_clear_bindings(it->second);
      return it->second;
    }
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, std::string("preparing '") + sql + "'");
    stmts_.emplace(sql, stmt);
    return stmt;
  }

  // Transaction helpers. Rollback is best effort (used on error paths).
  // Writers take the write lock up front (no deadlock-prone lock upgrade);
  // readers use a deferred transaction: a WAL read snapshot that never
  // blocks the writer or other readers.
  Status Begin() { return Exec("BEGIN IMMEDIATE"); }
  Status BeginRead() { return Exec("BEGIN DEFERRED"); }
  Status Commit() { return Exec("COMMIT"); }
  void Rollback() {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  enum class Txn { kWrite, kRead };
  // Begins a transaction (Begin for kWrite, BeginRead for kRead), runs `body`
  // and commits. A failed begin is returned as is; when `body` or the commit
  // fails the transaction is rolled back and that error returned.
  template <typename F>
  Status InTransaction(Txn txn, F&& body) {
    RETURN_IF_ERROR(txn == Txn::kWrite ? Begin() : BeginRead());
    Status st = body();
    if (st.ok()) st = Commit();
    if (!st.ok()) Rollback();
    return st;
  }

 private:
  sqlite3* db_;
  std::string path_;
  std::map<std::string, sqlite3_stmt*> stmts_;
};

struct SqliteStorage::ReadLease {
  SqliteStorage* storage = nullptr;
  std::unique_ptr<Connection> conn;
  ReadLease(SqliteStorage* s, std::unique_ptr<Connection> c) : storage(s), conn(std::move(c)) {}
  ReadLease(ReadLease&& other) noexcept = default;
  ~ReadLease() {
    if (storage != nullptr && conn != nullptr) storage->ReturnReader(std::move(conn));
  }
  Connection* operator->() { return conn.get(); }
};

namespace {

Status BindText(sqlite3_stmt* stmt, int index, const std::string& text) {
  if (sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK) {
    return InternalError("binding text parameter");
  }
  return Status::Ok();
}

std::string ColumnText(sqlite3_stmt* stmt, int col) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
  int n = sqlite3_column_bytes(stmt, col);
  return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(n));
}

}  // namespace

SqliteStorage::SqliteStorage(std::string path, CollectionSpec spec)
    : path_(std::move(path)), spec_(std::move(spec)) {}

SqliteStorage::~SqliteStorage() = default;

StatusOr<std::unique_ptr<SqliteStorage::Connection>> SqliteStorage::OpenConnection(
    const std::string& path, bool create) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  auto conn = std::make_unique<Connection>(db, path);
  if (rc != SQLITE_OK) return conn->Error(rc, "opening database");
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  sqlite3_extended_result_codes(db, 1);
  // WAL + FULL: every commit fsyncs the WAL, so an acknowledged write is durable.
  RETURN_IF_ERROR(conn->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(conn->Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(conn->Exec("PRAGMA foreign_keys=OFF"));
  return conn;
}

StatusOr<std::unique_ptr<SqliteStorage>> SqliteStorage::Create(const std::string& path,
                                                               const CollectionSpec& spec) {
  if (FileSize(path) > 0) return AlreadyExistsError(path + ": database already exists");
  ASSIGN_OR_RETURN(auto conn, OpenConnection(path, /*create=*/true));
  auto body = [&]() -> Status {
    RETURN_IF_ERROR(conn->Exec(kSchema));
    RETURN_IF_ERROR(conn->Exec(kThumbnailsTable));
    const std::vector<std::pair<std::string, std::string>> rows = {
        {"schema_version", std::to_string(kSchemaVersion)},
        {"name", spec.name},
        {"model", spec.model},
        {"dim", std::to_string(spec.dim)},
        {"metric", MetricName(spec.metric)},
        {"index_spec", spec.index_spec},
        {"thumbnail_size", std::to_string(spec.thumbnail_size)},
        {"last_seq", "0"},
        {"pruned_through", "0"},
    };
    for (const auto& row : rows) {
      ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                       conn->Prepare("INSERT INTO collection(key, value) VALUES(?, ?)"));
      RETURN_IF_ERROR(BindText(stmt, 1, row.first));
      RETURN_IF_ERROR(BindText(stmt, 2, row.second));
      int rc = sqlite3_step(stmt);
      if (rc != SQLITE_DONE) return conn->Error(rc, "writing collection spec");
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(conn->InTransaction(Connection::Txn::kWrite, body));
  auto storage = std::unique_ptr<SqliteStorage>(new SqliteStorage(path, spec));
  storage->writer_ = std::move(conn);
  return storage;
}

StatusOr<std::unique_ptr<SqliteStorage>> SqliteStorage::Open(const std::string& path) {
  if (FileSize(path) == 0) return NotFoundError(path + ": no collection database");
  ASSIGN_OR_RETURN(auto conn, OpenConnection(path, /*create=*/false));
  // quick_check reads every page: it catches torn or overwritten files at
  // open instead of at some later query.
  {
    ASSIGN_OR_RETURN(sqlite3_stmt * stmt, conn->Prepare("PRAGMA quick_check(1)"));
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) return conn->Error(rc, "checking database integrity");
    std::string result = ColumnText(stmt, 0);
    sqlite3_reset(stmt);
    if (result != "ok") {
      return DataLossError(
          path + ": the collection database is corrupt (integrity check: " + result + ")");
    }
  }
  std::map<std::string, std::string> kv;
  {
    auto stmt = conn->Prepare("SELECT key, value FROM collection");
    if (!stmt.ok()) {
      return DataLossError(path + ": not a Lookalike collection database (" +
                           stmt.status().message() + ")");
    }
    int rc;
    while ((rc = sqlite3_step(*stmt)) == SQLITE_ROW)
      kv[ColumnText(*stmt, 0)] = ColumnText(*stmt, 1);
    if (rc != SQLITE_DONE) return conn->Error(rc, "reading collection spec");
  }
  for (const char* key : {"schema_version", "name", "dim", "metric", "index_spec", "last_seq"}) {
    if (kv.find(key) == kv.end()) {
      return DataLossError(path + ": collection spec lacks '" + key + "'");
    }
  }
  if (kv["schema_version"] != std::to_string(kSchemaVersion)) {
    return FailedPreconditionError(path + ": unsupported schema version " + kv["schema_version"]);
  }
  CollectionSpec spec;
  spec.name = kv["name"];
  // Databases written before kVectorsOnly existed store "" for a vectors-only
  // collection; this is the one place that reads them as kVectorsOnly.
  spec.model = kv["model"].empty() ? kVectorsOnly : kv["model"];
  spec.index_spec = kv["index_spec"];
  try {
    spec.dim = std::stoi(kv["dim"]);
  } catch (...) {
    return DataLossError(path + ": invalid dim '" + kv["dim"] + "'");
  }
  // Databases written before thumbnails existed have no thumbnail_size: 0.
  if (kv.count("thumbnail_size") != 0) {
    try {
      spec.thumbnail_size = std::stoi(kv["thumbnail_size"]);
    } catch (...) {
      return DataLossError(path + ": invalid thumbnail_size '" + kv["thumbnail_size"] + "'");
    }
  }
  auto metric = ParseMetric(kv["metric"]);
  if (!metric.ok()) return DataLossError(path + ": " + metric.status().message());
  spec.metric = *metric;
  RETURN_IF_ERROR(conn->Exec(kThumbnailsTable));
  auto storage = std::unique_ptr<SqliteStorage>(new SqliteStorage(path, spec));
  storage->writer_ = std::move(conn);
  return storage;
}

StatusOr<SqliteStorage::ReadLease> SqliteStorage::BorrowReader() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!readers_.empty()) {
      auto conn = std::move(readers_.back());
      readers_.pop_back();
      return ReadLease(this, std::move(conn));
    }
  }
  ASSIGN_OR_RETURN(auto conn, OpenConnection(path_, /*create=*/false));
  return ReadLease(this, std::move(conn));
}

void SqliteStorage::ReturnReader(std::unique_ptr<Connection> conn) {
  std::lock_guard<std::mutex> lock(pool_mu_);
  if (readers_.size() < kMaxIdleReaders) readers_.push_back(std::move(conn));
}

namespace {

// Reads an integer value of the collection table through `conn`.
template <typename Conn>
StatusOr<int64_t> ReadCounter(Conn& conn, const char* key) {
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt, conn.Prepare("SELECT value FROM collection WHERE key = ?"));
  RETURN_IF_ERROR(BindText(stmt, 1, key));
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_DONE) return int64_t{0};
  if (rc != SQLITE_ROW) return conn.Error(rc, std::string("reading ") + key);
  std::string text = ColumnText(stmt, 0);
  sqlite3_reset(stmt);
  try {
    return static_cast<int64_t>(std::stoll(text));
  } catch (...) {
    return DataLossError(std::string("invalid ") + key + " '" + text + "'");
  }
}

template <typename Conn>
Status WriteCounter(Conn& conn, const char* key, int64_t value) {
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   conn.Prepare("INSERT OR REPLACE INTO collection(key, value) VALUES(?, ?)"));
  RETURN_IF_ERROR(BindText(stmt, 1, key));
  RETURN_IF_ERROR(BindText(stmt, 2, std::to_string(value)));
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE) return conn.Error(rc, std::string("writing ") + key);
  return Status::Ok();
}

// Removes the row of `external_id` (metadata included) and tombstones it.
// Sets *removed to its internal id, or -1 when it did not exist.
template <typename Conn>
Status RemoveRow(Conn& conn, const std::string& external_id, int64_t seq, int64_t* removed) {
  *removed = -1;
  ASSIGN_OR_RETURN(sqlite3_stmt * find,
                   conn.Prepare("SELECT internal_id FROM items WHERE external_id = ?"));
  RETURN_IF_ERROR(BindText(find, 1, external_id));
  int rc = sqlite3_step(find);
  if (rc == SQLITE_DONE) return Status::Ok();
  if (rc != SQLITE_ROW) return conn.Error(rc, "looking up id");
  int64_t internal_id = sqlite3_column_int64(find, 0);
  sqlite3_reset(find);
  for (const char* sql :
       {"DELETE FROM metadata WHERE item = ?", "DELETE FROM thumbnails WHERE item = ?",
        "DELETE FROM items WHERE internal_id = ?"}) {
    ASSIGN_OR_RETURN(sqlite3_stmt * del, conn.Prepare(sql));
    sqlite3_bind_int64(del, 1, internal_id);
    rc = sqlite3_step(del);
    if (rc != SQLITE_DONE) return conn.Error(rc, "deleting item");
  }
  ASSIGN_OR_RETURN(
      sqlite3_stmt * tomb,
      conn.Prepare("INSERT OR REPLACE INTO tombstones(internal_id, seq) VALUES(?, ?)"));
  sqlite3_bind_int64(tomb, 1, internal_id);
  sqlite3_bind_int64(tomb, 2, seq);
  rc = sqlite3_step(tomb);
  if (rc != SQLITE_DONE) return conn.Error(rc, "writing tombstone");
  *removed = internal_id;
  return Status::Ok();
}

}  // namespace

StatusOr<Storage::UpsertResult> SqliteStorage::Upsert(const std::vector<const Item*>& items) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& conn = *writer_;
  UpsertResult result;
  auto body = [&]() -> Status {
    ASSIGN_OR_RETURN(int64_t last, ReadCounter(conn, "last_seq"));
    result.seq = last + 1;
    RETURN_IF_ERROR(WriteCounter(conn, "last_seq", result.seq));
    for (const Item* item : items) {
      int64_t removed = -1;
      RETURN_IF_ERROR(RemoveRow(conn, item->id, result.seq, &removed));
      if (removed >= 0) {
        // A replacement inside this same batch removes an id written by it.
        auto it = std::find(result.internal_ids.begin(), result.internal_ids.end(), removed);
        if (it != result.internal_ids.end()) *it = -1;
        result.replaced.push_back(removed);
      }
      ASSIGN_OR_RETURN(sqlite3_stmt * ins,
                       conn.Prepare("INSERT INTO items(external_id, vector, seq) VALUES(?, ?, ?)"));
      RETURN_IF_ERROR(BindText(ins, 1, item->id));
      sqlite3_bind_blob(ins, 2, item->vector.data(),
                        static_cast<int>(item->vector.size() * sizeof(float)), SQLITE_STATIC);
      sqlite3_bind_int64(ins, 3, result.seq);
      int rc = sqlite3_step(ins);
      sqlite3_clear_bindings(ins);
      if (rc != SQLITE_DONE) return conn.Error(rc, "inserting item '" + item->id + "'");
      int64_t internal_id = sqlite3_last_insert_rowid(conn.db());
      result.internal_ids.push_back(internal_id);
      for (const auto& kv : item->metadata) {
        ASSIGN_OR_RETURN(sqlite3_stmt * meta,
                         conn.Prepare("INSERT INTO metadata(item, key, value) VALUES(?, ?, ?)"));
        sqlite3_bind_int64(meta, 1, internal_id);
        RETURN_IF_ERROR(BindText(meta, 2, kv.first));
        RETURN_IF_ERROR(BindText(meta, 3, kv.second));
        rc = sqlite3_step(meta);
        if (rc != SQLITE_DONE) return conn.Error(rc, "inserting metadata");
      }
      if (!item->thumbnail.empty()) {
        ASSIGN_OR_RETURN(sqlite3_stmt * thumb,
                         conn.Prepare("INSERT INTO thumbnails(item, image) VALUES(?, ?)"));
        sqlite3_bind_int64(thumb, 1, internal_id);
        sqlite3_bind_blob(thumb, 2, item->thumbnail.data(),
                          static_cast<int>(item->thumbnail.size()), SQLITE_STATIC);
        rc = sqlite3_step(thumb);
        sqlite3_clear_bindings(thumb);
        if (rc != SQLITE_DONE) return conn.Error(rc, "inserting thumbnail");
      }
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(conn.InTransaction(Connection::Txn::kWrite, body));
  // Ids written and replaced within the same batch are reported as -1 in
  // internal_ids and also listed in replaced; callers skip -1.
  return result;
}

StatusOr<Storage::DeleteResult> SqliteStorage::Delete(const std::vector<std::string>& ids) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& conn = *writer_;
  DeleteResult result;
  auto body = [&]() -> Status {
    ASSIGN_OR_RETURN(int64_t last, ReadCounter(conn, "last_seq"));
    result.seq = last + 1;
    RETURN_IF_ERROR(WriteCounter(conn, "last_seq", result.seq));
    for (const auto& id : ids) {
      int64_t removed = -1;
      RETURN_IF_ERROR(RemoveRow(conn, id, result.seq, &removed));
      if (removed >= 0) result.removed.push_back(removed);
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(conn.InTransaction(Connection::Txn::kWrite, body));
  return result;
}

namespace {

template <typename Conn>
Status ReadMetadata(Conn& conn, int64_t internal_id, Metadata* out) {
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   conn.Prepare("SELECT key, value FROM metadata WHERE item = ?"));
  sqlite3_bind_int64(stmt, 1, internal_id);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    (*out)[ColumnText(stmt, 0)] = ColumnText(stmt, 1);
  }
  if (rc != SQLITE_DONE) return conn.Error(rc, "reading metadata");
  return Status::Ok();
}

Status CheckBlob(sqlite3_stmt* stmt, int col, int dim, const std::string& path) {
  if (sqlite3_column_bytes(stmt, col) != static_cast<int>(dim * sizeof(float))) {
    return DataLossError(path + ": stored vector has " +
                         std::to_string(sqlite3_column_bytes(stmt, col)) + " bytes, expected " +
                         std::to_string(dim * sizeof(float)));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::vector<std::optional<Item>>> SqliteStorage::Get(const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  Connection& conn = *lease.conn;
  std::vector<std::optional<Item>> out;
  out.reserve(ids.size());
  auto body = [&]() -> Status {
    for (const auto& id : ids) {
      ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                       conn.Prepare("SELECT internal_id, vector FROM items WHERE external_id = ?"));
      RETURN_IF_ERROR(BindText(stmt, 1, id));
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        out.emplace_back(std::nullopt);
        continue;
      }
      if (rc != SQLITE_ROW) return conn.Error(rc, "reading item");
      RETURN_IF_ERROR(CheckBlob(stmt, 1, spec_.dim, path_));
      Item item;
      item.id = id;
      int64_t internal_id = sqlite3_column_int64(stmt, 0);
      const auto* blob = static_cast<const float*>(sqlite3_column_blob(stmt, 1));
      item.vector.assign(blob, blob + spec_.dim);
      sqlite3_reset(stmt);
      RETURN_IF_ERROR(ReadMetadata(conn, internal_id, &item.metadata));
      out.emplace_back(std::move(item));
    }
    return Status::Ok();
  };
  // One consistent read snapshot.
  RETURN_IF_ERROR(conn.InTransaction(Connection::Txn::kRead, body));
  return out;
}

StatusOr<std::optional<std::string>> SqliteStorage::ReadThumbnail(const std::string& id) {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  Connection& conn = *lease.conn;
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                   conn.Prepare("SELECT t.image FROM items i LEFT JOIN thumbnails t "
                                "ON t.item = i.internal_id WHERE i.external_id = ?"));
  RETURN_IF_ERROR(BindText(stmt, 1, id));
  int rc = sqlite3_step(stmt);
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return conn.Error(rc, "reading thumbnail");
  const auto* blob = static_cast<const char*>(sqlite3_column_blob(stmt, 0));
  std::string image = blob == nullptr
                          ? std::string()
                          : std::string(blob, static_cast<size_t>(sqlite3_column_bytes(stmt, 0)));
  sqlite3_reset(stmt);
  return std::optional<std::string>(std::move(image));
}

StatusOr<std::vector<int64_t>> SqliteStorage::ResolveIds(const std::vector<std::string>& ids) {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  Connection& conn = *lease.conn;
  std::vector<int64_t> out;
  for (const auto& id : ids) {
    ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                     conn.Prepare("SELECT internal_id FROM items WHERE external_id = ?"));
    RETURN_IF_ERROR(BindText(stmt, 1, id));
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      out.push_back(sqlite3_column_int64(stmt, 0));
    } else if (rc != SQLITE_DONE) {
      return conn.Error(rc, "resolving id");
    }
    sqlite3_reset(stmt);
  }
  return out;
}

StatusOr<std::vector<int64_t>> SqliteStorage::MatchFilter(const Filter& filter) {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  Connection& conn = *lease.conn;
  std::vector<int64_t> result;
  auto body = [&]() -> Status {
    auto match_key = [&](const std::string& key,
                         const std::vector<std::string>& values) -> StatusOr<std::vector<int64_t>> {
      std::vector<int64_t> matches;
      for (const auto& value : values) {
        ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                         conn.Prepare("SELECT item FROM metadata WHERE key = ? AND value = ?"));
        RETURN_IF_ERROR(BindText(stmt, 1, key));
        RETURN_IF_ERROR(BindText(stmt, 2, value));
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
          matches.push_back(sqlite3_column_int64(stmt, 0));
        if (rc != SQLITE_DONE) return conn.Error(rc, "resolving filter");
      }
      return matches;
    };
    ASSIGN_OR_RETURN(result, MatchEveryKey(filter, match_key));
    return Status::Ok();
  };
  RETURN_IF_ERROR(conn.InTransaction(Connection::Txn::kRead, body));
  return result;
}

StatusOr<std::vector<std::optional<Storage::Description>>> SqliteStorage::Describe(
    const std::vector<int64_t>& internal_ids) {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  Connection& conn = *lease.conn;
  std::vector<std::optional<Description>> out;
  out.reserve(internal_ids.size());
  auto body = [&]() -> Status {
    for (int64_t internal_id : internal_ids) {
      ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                       conn.Prepare("SELECT external_id FROM items WHERE internal_id = ?"));
      sqlite3_bind_int64(stmt, 1, internal_id);
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        out.emplace_back(std::nullopt);
        continue;
      }
      if (rc != SQLITE_ROW) return conn.Error(rc, "reading item");
      Description d;
      d.internal_id = internal_id;
      d.id = ColumnText(stmt, 0);
      sqlite3_reset(stmt);
      RETURN_IF_ERROR(ReadMetadata(conn, internal_id, &d.metadata));
      out.emplace_back(std::move(d));
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(conn.InTransaction(Connection::Txn::kRead, body));
  return out;
}

Status SqliteStorage::ReadVectors(const std::vector<int64_t>& internal_ids,
                                  std::vector<int64_t>* found, std::vector<float>* vectors) {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  Connection& conn = *lease.conn;
  found->clear();
  vectors->clear();
  auto body = [&]() -> Status {
    for (int64_t internal_id : internal_ids) {
      ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                       conn.Prepare("SELECT vector FROM items WHERE internal_id = ?"));
      sqlite3_bind_int64(stmt, 1, internal_id);
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) continue;
      if (rc != SQLITE_ROW) return conn.Error(rc, "reading vector");
      RETURN_IF_ERROR(CheckBlob(stmt, 0, spec_.dim, path_));
      const auto* blob = static_cast<const float*>(sqlite3_column_blob(stmt, 0));
      vectors->insert(vectors->end(), blob, blob + spec_.dim);
      found->push_back(internal_id);
      sqlite3_reset(stmt);
    }
    return Status::Ok();
  };
  return conn.InTransaction(Connection::Txn::kRead, body);
}

Status SqliteStorage::ScanItems(int64_t after_seq,
                                const std::function<Status(int64_t, const float*)>& fn) {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  Connection& conn = *lease.conn;
  auto body = [&]() -> Status {
    ASSIGN_OR_RETURN(
        sqlite3_stmt * stmt,
        conn.Prepare(after_seq <= 0 ? "SELECT internal_id, vector FROM items WHERE seq > ? "
                                      "ORDER BY internal_id"
                                    : "SELECT internal_id, vector FROM items INDEXED BY "
                                      "items_by_seq WHERE seq > ? ORDER BY internal_id"));
    sqlite3_bind_int64(stmt, 1, after_seq);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      RETURN_IF_ERROR(CheckBlob(stmt, 1, spec_.dim, path_));
      Status st = fn(sqlite3_column_int64(stmt, 0),
                     static_cast<const float*>(sqlite3_column_blob(stmt, 1)));
      if (!st.ok()) {
        sqlite3_reset(stmt);
        return st;
      }
    }
    if (rc != SQLITE_DONE) return conn.Error(rc, "scanning items");
    return Status::Ok();
  };
  return conn.InTransaction(Connection::Txn::kRead, body);
}

StatusOr<std::vector<int64_t>> SqliteStorage::TombstonesAfter(int64_t after_seq) {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  Connection& conn = *lease.conn;
  ASSIGN_OR_RETURN(
      sqlite3_stmt * stmt,
      conn.Prepare("SELECT internal_id FROM tombstones WHERE seq > ? ORDER BY internal_id"));
  sqlite3_bind_int64(stmt, 1, after_seq);
  std::vector<int64_t> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(sqlite3_column_int64(stmt, 0));
  if (rc != SQLITE_DONE) return conn.Error(rc, "reading tombstones");
  return out;
}

StatusOr<int64_t> SqliteStorage::LastSeq() {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  return ReadCounter(*lease.conn, "last_seq");
}

StatusOr<int64_t> SqliteStorage::PrunedThrough() {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  return ReadCounter(*lease.conn, "pruned_through");
}

Status SqliteStorage::PruneTombstones(int64_t through_seq) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& conn = *writer_;
  auto body = [&]() -> Status {
    ASSIGN_OR_RETURN(int64_t pruned, ReadCounter(conn, "pruned_through"));
    if (through_seq <= pruned) return Status::Ok();
    ASSIGN_OR_RETURN(sqlite3_stmt * stmt, conn.Prepare("DELETE FROM tombstones WHERE seq <= ?"));
    sqlite3_bind_int64(stmt, 1, through_seq);
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) return conn.Error(rc, "pruning tombstones");
    RETURN_IF_ERROR(WriteCounter(conn, "pruned_through", through_seq));
    return Status::Ok();
  };
  return conn.InTransaction(Connection::Txn::kWrite, body);
}

StatusOr<int64_t> SqliteStorage::Count() {
  ASSIGN_OR_RETURN(auto lease, BorrowReader());
  ASSIGN_OR_RETURN(sqlite3_stmt * stmt, lease->Prepare("SELECT COUNT(*) FROM items"));
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW) return lease->Error(rc, "counting items");
  int64_t n = sqlite3_column_int64(stmt, 0);
  sqlite3_reset(stmt);
  return n;
}

int64_t SqliteStorage::DiskBytes() const {
  return FileSize(path_) + FileSize(path_ + "-wal") + FileSize(path_ + "-shm");
}

}  // namespace lookalike
