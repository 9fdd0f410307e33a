#include "index/pg_database.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace lookalike {
namespace {

constexpr int kSchemaVersion = 1;
constexpr size_t kMaxIdleConnections = 8;
// Serializes schema creation between servers starting at the same time
// (CREATE TABLE IF NOT EXISTS is not safe against a concurrent create).
constexpr int64_t kSchemaLockKey = 0x4c4b53434845ll;  // "LKSCHE"

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS lookalike_schema(version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lookalike_collections(
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  model TEXT NOT NULL,
  dim INTEGER NOT NULL,
  metric TEXT NOT NULL,
  index_spec TEXT NOT NULL,
  last_seq BIGINT NOT NULL DEFAULT 0,
  last_internal_id BIGINT NOT NULL DEFAULT 0,
  pruned_through BIGINT NOT NULL DEFAULT 0,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS lookalike_items(
  collection_id BIGINT NOT NULL,
  internal_id BIGINT NOT NULL,
  external_id TEXT NOT NULL,
  vector BYTEA NOT NULL,
  seq BIGINT NOT NULL,
  PRIMARY KEY(collection_id, internal_id),
  UNIQUE(collection_id, external_id));
CREATE INDEX IF NOT EXISTS lookalike_items_by_seq ON lookalike_items(collection_id, seq);
-- Vectors (random-looking bytes) are not worth compressing, and moving a
-- 2 KiB vector out of line into TOAST doubles the work of every write and
-- replay: keep rows up to 8 KiB (dim <= ~2000) inline, uncompressed.
DO $$ BEGIN
  IF (SELECT attstorage FROM pg_attribute WHERE attrelid = 'lookalike_items'::regclass
      AND attname = 'vector') <> 'e' THEN
    ALTER TABLE lookalike_items ALTER COLUMN vector SET STORAGE EXTERNAL;
    ALTER TABLE lookalike_items SET (toast_tuple_target = 8160);
  END IF;
END $$;
CREATE TABLE IF NOT EXISTS lookalike_metadata(
  collection_id BIGINT NOT NULL,
  item BIGINT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY(collection_id, item, key));
CREATE INDEX IF NOT EXISTS lookalike_metadata_by_key_value
  ON lookalike_metadata(collection_id, key, value, item);
CREATE TABLE IF NOT EXISTS lookalike_tombstones(
  collection_id BIGINT NOT NULL,
  internal_id BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  PRIMARY KEY(collection_id, internal_id));
CREATE INDEX IF NOT EXISTS lookalike_tombstones_by_seq ON lookalike_tombstones(collection_id, seq);
CREATE TABLE IF NOT EXISTS lookalike_replicas(
  collection_id BIGINT NOT NULL,
  replica TEXT NOT NULL,
  snapshot_seq BIGINT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY(collection_id, replica));
ALTER TABLE lookalike_collections ADD COLUMN IF NOT EXISTS thumbnail_size INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS lookalike_thumbnails(
  collection_id BIGINT NOT NULL,
  item BIGINT NOT NULL,
  image BYTEA NOT NULL,
  PRIMARY KEY(collection_id, item));
)sql";

constexpr const char* kCatalogColumns =
    "id, name, model, dim::int8, metric, index_spec, thumbnail_size::int8 FROM "
    "lookalike_collections";

void IgnoreNotice(void*, const char*) {}

void PutBigEndian(std::string* out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// "postgresql://user@host:port/dbname" from the URI's parsed options, so
// that messages never show a password.
std::string DisplayName(const std::string& uri) {
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(uri.c_str(), &err);
  if (options == nullptr) {
    if (err != nullptr) PQfreemem(err);
    return "postgresql://(unparseable URI)";
  }
  std::string user, host, port, dbname;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    if (std::strcmp(o->keyword, "user") == 0) user = o->val;
    if (std::strcmp(o->keyword, "host") == 0) host = o->val;
    if (std::strcmp(o->keyword, "port") == 0) port = o->val;
    if (std::strcmp(o->keyword, "dbname") == 0) dbname = o->val;
  }
  PQconninfoFree(options);
  std::string name = "postgresql://";
  if (!user.empty()) name += user + "@";
  name += host.empty() ? "localhost" : host;
  if (!port.empty()) name += ":" + port;
  name += "/" + dbname;
  return name;
}

// libpq messages end with a newline.
std::string Trimmed(const char* message) {
  std::string s = message == nullptr ? "" : message;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

StatusOr<PgDatabase::CatalogEntry> ParseCatalogRow(const PgResult& r, int row,
                                                   const std::string& database) {
  PgDatabase::CatalogEntry entry;
  entry.id = r.Int64(row, 0);
  entry.spec.name = r.Text(row, 1);
  entry.spec.model = r.Text(row, 2);
  entry.spec.dim = static_cast<int>(r.Int64(row, 3));
  auto metric = ParseMetric(r.Text(row, 4));
  if (!metric.ok()) {
    return DataLossError(database + ": collection '" + entry.spec.name +
                         "': " + metric.status().message());
  }
  entry.spec.metric = *metric;
  entry.spec.index_spec = r.Text(row, 5);
  entry.spec.thumbnail_size = static_cast<int>(r.Int64(row, 6));
  return entry;
}

}  // namespace

std::string StorageDisplayName(const std::string& storage) {
  return IsPostgresUri(storage) ? DisplayName(storage) : storage;
}

PgResult& PgResult::operator=(PgResult&& other) noexcept {
  if (this != &other) {
    PQclear(result_);
    result_ = other.result_;
    other.result_ = nullptr;
  }
  return *this;
}

int64_t PgResult::Int64(int row, int col) const {
  if (PQgetlength(result_, row, col) != 8) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(PQgetvalue(result_, row, col));
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return static_cast<int64_t>(v);
}

std::string PgResult::Text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col),
                     static_cast<size_t>(PQgetlength(result_, row, col)));
}

PgParams& PgParams::Int64(int64_t value) {
  values_.push_back(std::to_string(value));
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::Text(std::string value) {
  values_.push_back(std::move(value));
  formats_.push_back(0);
  return *this;
}

PgParams& PgParams::TextArray(const std::vector<std::string>& values) {
  std::string literal = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) literal += ',';
    literal += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') literal += '\\';
      literal += c;
    }
    literal += '"';
  }
  literal += '}';
  return Text(std::move(literal));
}

PgParams& PgParams::Int64Array(const std::vector<int64_t>& values) {
  std::string literal = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) literal += ',';
    literal += std::to_string(values[i]);
  }
  literal += '}';
  return Text(std::move(literal));
}

std::vector<const char*> PgParams::Values() const {
  std::vector<const char*> out;
  for (const auto& v : values_) out.push_back(v.c_str());
  return out;
}

std::vector<int> PgParams::Lengths() const {
  std::vector<int> out;
  for (const auto& v : values_) out.push_back(static_cast<int>(v.size()));
  return out;
}

PgCopyBuffer::PgCopyBuffer() {
  static const char kSignature[] = "PGCOPY\n\377\r\n";  // + the terminating NUL: 11 bytes
  data_.assign(kSignature, sizeof(kSignature));
  PutBigEndian(&data_, 0, 4);  // flags
  PutBigEndian(&data_, 0, 4);  // header extension length
}

void PgCopyBuffer::BeginRow(int fields) {
  PutBigEndian(&data_, static_cast<uint64_t>(fields), 2);
  ++rows_;
}

void PgCopyBuffer::Int64(int64_t value) {
  PutBigEndian(&data_, 8, 4);
  PutBigEndian(&data_, static_cast<uint64_t>(value), 8);
}

void PgCopyBuffer::Bytes(const void* data, size_t size) {
  PutBigEndian(&data_, size, 4);
  data_.append(static_cast<const char*>(data), size);
}

const std::string& PgCopyBuffer::Finish() {
  PutBigEndian(&data_, 0xffff, 2);  // -1 as int16: end of data
  return data_;
}

Status PgConnection::Error(const PGresult* result, const std::string& what) const {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  std::string detail =
      Trimmed(result != nullptr ? PQresultErrorMessage(result) : PQerrorMessage(conn_));
  if (detail.empty()) detail = Trimmed(PQerrorMessage(conn_));
  const std::string msg = database_ + ": " + what + ": " + detail;
  if (PQstatus(conn_) == CONNECTION_BAD || sqlstate.rfind("08", 0) == 0 ||
      sqlstate.rfind("57P", 0) == 0 || sqlstate.rfind("40", 0) == 0) {
    // Lost connection, server shutting down, serialization failure/deadlock:
    // retrying later may succeed.
    return UnavailableError(msg);
  }
  if (sqlstate == "23505") return AlreadyExistsError(msg);
  if (sqlstate.rfind("22", 0) == 0) return InvalidArgumentError(msg);
  if (sqlstate.rfind("53", 0) == 0) return ResourceExhaustedError(msg);
  if (sqlstate == "XX001" || sqlstate == "XX002") return DataLossError(msg);
  if (sqlstate.rfind("42", 0) == 0 || sqlstate.rfind("28", 0) == 0) {
    return FailedPreconditionError(msg);  // missing table or privilege
  }
  return InternalError(msg);
}

StatusOr<PgResult> PgConnection::Query(const std::string& sql, const PgParams& params) {
  const auto values = params.Values();
  const auto lengths = params.Lengths();
  const auto formats = params.Formats();
  PgResult result(PQexecParams(conn_, sql.c_str(), params.size(), nullptr, values.data(),
                               lengths.data(), formats.data(), /*resultFormat=*/1));
  const PGresult* raw = result.get();
  const ExecStatusType status = PQresultStatus(raw);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    return Error(raw, "'" + sql.substr(0, sql.find_first_of("(\n")) + "'");
  }
  return result;
}

Status PgConnection::Execute(const std::string& sql) {
  PgResult result(PQexec(conn_, sql.c_str()));
  const PGresult* raw = result.get();
  const ExecStatusType status = PQresultStatus(raw);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return Error(raw, "'" + sql.substr(0, sql.find_first_of("(\n")) + "'");
  }
  return Status::Ok();
}

Status PgConnection::CopyIn(const std::string& copy_sql, const std::string& data) {
  {
    PgResult start(PQexec(conn_, copy_sql.c_str()));
    if (PQresultStatus(start.get()) != PGRES_COPY_IN) return Error(start.get(), "starting COPY");
  }
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    const size_t n = std::min(kChunk, data.size() - off);
    if (PQputCopyData(conn_, data.data() + off, static_cast<int>(n)) != 1) {
      PQputCopyEnd(conn_, "sending COPY data failed");
      while (PGresult* r = PQgetResult(conn_)) PQclear(r);
      return Error(nullptr, "sending COPY data");
    }
  }
  if (PQputCopyEnd(conn_, nullptr) != 1) return Error(nullptr, "ending COPY");
  Status st = Status::Ok();
  while (PGresult* r = PQgetResult(conn_)) {
    if (st.ok() && PQresultStatus(r) != PGRES_COMMAND_OK) st = Error(r, "COPY");
    PQclear(r);
  }
  return st;
}

void PgConnection::Rollback() {
  if (PQstatus(conn_) != CONNECTION_OK) return;
  if (PQtransactionStatus(conn_) == PQTRANS_IDLE) return;
  PQclear(PQexec(conn_, "ROLLBACK"));
}

bool PgConnection::Unusable() const {
  return PQstatus(conn_) != CONNECTION_OK || PQtransactionStatus(conn_) != PQTRANS_IDLE;
}

PgDatabase::Lease::~Lease() {
  if (db_ != nullptr && conn_ != nullptr) db_->Return(std::move(conn_));
}

StatusOr<std::shared_ptr<PgDatabase>> PgDatabase::Connect(const std::string& uri,
                                                          std::string replica) {
  std::shared_ptr<PgDatabase> db(new PgDatabase(uri, DisplayName(uri), std::move(replica)));
  RETURN_IF_ERROR(db->EnsureSchema());
  return db;
}

StatusOr<std::unique_ptr<PgConnection>> PgDatabase::OpenConnection() {
  // Defaults first: a value in the URI overrides them.
  const char* keywords[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"10", "lookalike", uri_.c_str(), nullptr};
  PGconn* raw = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (raw == nullptr) return ResourceExhaustedError(name_ + ": out of memory connecting");
  auto conn = std::make_unique<PgConnection>(raw, name_);
  if (PQstatus(raw) != CONNECTION_OK) {
    return UnavailableError(name_ + ": cannot connect: " + Trimmed(PQerrorMessage(raw)));
  }
  PQsetNoticeProcessor(raw, IgnoreNotice, nullptr);
  // An acknowledged write must be durable whatever the server's default.
  RETURN_IF_ERROR(conn->Execute("SET synchronous_commit TO on"));
  return conn;
}

StatusOr<PgDatabase::Lease> PgDatabase::Borrow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
  }
  ASSIGN_OR_RETURN(auto conn, OpenConnection());
  return Lease(this, std::move(conn));
}

void PgDatabase::Return(std::unique_ptr<PgConnection> conn) {
  if (conn->Unusable()) return;  // lost, or left inside a transaction
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(conn));
}

Status PgDatabase::EnsureSchema() {
  ASSIGN_OR_RETURN(auto conn, Borrow());
  return conn->InTransaction(PgConnection::Txn::kWrite, [&]() -> Status {
    RETURN_IF_ERROR(
        conn->Query("SELECT pg_advisory_xact_lock($1)", PgParams().Int64(kSchemaLockKey)).status());
    RETURN_IF_ERROR(conn->Execute(kSchema));
    ASSIGN_OR_RETURN(PgResult r, conn->Query("SELECT version::int8 FROM lookalike_schema"));
    if (r.rows() == 0) {
      return conn
          ->Query("INSERT INTO lookalike_schema(version) VALUES($1)",
                  PgParams().Int64(kSchemaVersion))
          .status();
    }
    if (r.rows() != 1 || r.Int64(0, 0) != kSchemaVersion) {
      return FailedPreconditionError(name_ + ": unsupported Lookalike schema version " +
                                     std::to_string(r.Int64(0, 0)));
    }
    return Status::Ok();
  });
}

StatusOr<std::vector<PgDatabase::CatalogEntry>> PgDatabase::ListCollections() {
  ASSIGN_OR_RETURN(auto conn, Borrow());
  ASSIGN_OR_RETURN(PgResult r,
                   conn->Query(std::string("SELECT ") + kCatalogColumns + " ORDER BY name"));
  std::vector<CatalogEntry> out;
  for (int i = 0; i < r.rows(); ++i) {
    ASSIGN_OR_RETURN(CatalogEntry entry, ParseCatalogRow(r, i, name_));
    out.push_back(std::move(entry));
  }
  return out;
}

StatusOr<PgDatabase::CatalogEntry> PgDatabase::FindCollection(const std::string& name) {
  ASSIGN_OR_RETURN(auto conn, Borrow());
  ASSIGN_OR_RETURN(PgResult r,
                   conn->Query(std::string("SELECT ") + kCatalogColumns + " WHERE name = $1",
                               PgParams().Text(name)));
  if (r.rows() == 0) return NotFoundError(name_ + ": collection '" + name + "' not found");
  return ParseCatalogRow(r, 0, name_);
}

StatusOr<PgDatabase::CatalogEntry> PgDatabase::CreateCollection(const CollectionSpec& spec) {
  ASSIGN_OR_RETURN(auto conn, Borrow());
  CatalogEntry entry;
  entry.spec = spec;
  const Status st = conn->InTransaction(PgConnection::Txn::kWrite, [&]() -> Status {
    ASSIGN_OR_RETURN(PgResult r, conn->Query("INSERT INTO lookalike_collections(name, model, dim, "
                                             "metric, index_spec, thumbnail_size) "
                                             "VALUES($1, $2, $3, $4, $5, $6) RETURNING id",
                                             PgParams()
                                                 .Text(spec.name)
                                                 .Text(spec.model)
                                                 .Int64(spec.dim)
                                                 .Text(MetricName(spec.metric))
                                                 .Text(spec.index_spec)
                                                 .Int64(spec.thumbnail_size)));
    entry.id = r.Int64(0, 0);
    // Other servers open the new collection when this commits.
    return NotifyChange(*conn, spec.name);
  });
  if (st.code() == StatusCode::kAlreadyExists) {
    return AlreadyExistsError("collection '" + spec.name + "' already exists in " + name_);
  }
  if (!st.ok()) return st;
  return entry;
}

Status PgDatabase::DropCollection(const std::string& name) {
  ASSIGN_OR_RETURN(auto conn, Borrow());
  return conn->InTransaction(PgConnection::Txn::kWrite, [&]() -> Status {
    ASSIGN_OR_RETURN(PgResult r,
                     conn->Query("DELETE FROM lookalike_collections WHERE name = $1 RETURNING id",
                                 PgParams().Text(name)));
    if (r.rows() == 0) return NotFoundError("collection '" + name + "' not found in " + name_);
    const int64_t id = r.Int64(0, 0);
    for (const char* table : {"lookalike_items", "lookalike_metadata", "lookalike_thumbnails",
                              "lookalike_tombstones", "lookalike_replicas"}) {
      RETURN_IF_ERROR(conn->Query(std::string("DELETE FROM ") + table + " WHERE collection_id = $1",
                                  PgParams().Int64(id))
                          .status());
    }
    // Other servers close their copy when this commits.
    return NotifyChange(*conn, name);
  });
}

Status NotifyChange(PgConnection& conn, const std::string& collection, int64_t seq) {
  const std::string payload = seq > 0 ? collection + " " + std::to_string(seq) : collection;
  return conn.Query("SELECT pg_notify($1, $2)", PgParams().Text(kChangesChannel).Text(payload))
      .status();
}

void ParseChange(const std::string& payload, std::string* collection, int64_t* seq) {
  // Collection names hold no spaces (ValidateCollectionName).
  const size_t space = payload.find(' ');
  *collection = payload.substr(0, space);
  *seq = 0;
  if (space == std::string::npos) return;
  char* end = nullptr;
  const long long value = std::strtoll(payload.c_str() + space + 1, &end, 10);
  if (end != nullptr && *end == '\0' && value > 0) *seq = value;
}

StatusOr<std::unique_ptr<PgConnection>> PgDatabase::Listen() {
  ASSIGN_OR_RETURN(auto conn, OpenConnection());
  RETURN_IF_ERROR(conn->Execute(std::string("LISTEN ") + kChangesChannel));
  return conn;
}

int PgConnection::Socket() const { return PQsocket(conn_); }

Status PgConnection::TakeNotifications(std::vector<std::string>* payloads) {
  if (PQconsumeInput(conn_) != 1) return Error(nullptr, "reading notifications");
  while (PGnotify* n = PQnotifies(conn_)) {
    payloads->emplace_back(n->extra != nullptr ? n->extra : "");
    PQfreemem(n);
  }
  if (PQstatus(conn_) != CONNECTION_OK) return Error(nullptr, "reading notifications");
  return Status::Ok();
}

}  // namespace lookalike
