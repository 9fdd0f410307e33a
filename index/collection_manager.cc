// CollectionManager over a data directory: one sub-directory per collection
// (<data_dir>/<name>/items.db + index.snap) with SQLite storage; with
// PostgreSQL storage the catalog is the database's and the data directory
// holds the snapshots (<data_dir>/postgresql/<name>.<catalog id>/index.snap).
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "common/device.h"
#include "index/collection_impl.h"
#include "index/follower.h"
#include "index/pg_database.h"
#include "index/postgres_storage.h"
#include "index/snapshot.h"
#include "index/sqlite_storage.h"

namespace lookalike {
namespace {

// Directory prefixes of a collection being created or dropped (not valid
// names); leftovers of a crash are removed at Open.
constexpr const char* kCreatingPrefix = ".creating-";
constexpr const char* kDroppingPrefix = ".dropping-";
// Under the data directory: snapshot directories of PostgreSQL collections.
constexpr const char* kPostgresDir = "postgresql";
// Under the data directory: this server's name among the replicas sharing a
// PostgreSQL database (lookalike_replicas); made once, kept across restarts
// since the snapshots it vouches for are this directory's.
constexpr const char* kReplicaIdFile = ".replica-id";

// The replica id kept in `data_dir`, created (random, 16 hex digits) when
// missing.
StatusOr<std::string> ReplicaId(const std::string& data_dir) {
  const std::string path = data_dir + "/" + kReplicaIdFile;
  {
    std::ifstream in(path);
    std::string id;
    if (in && std::getline(in, id) && !id.empty()) return id;
  }
  std::random_device random;
  const uint64_t bits = (static_cast<uint64_t>(random()) << 32) ^ random();
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(bits));
  const std::string id = hex;
  std::vector<uint8_t> bytes(id.begin(), id.end());
  bytes.push_back('\n');
  RETURN_IF_ERROR(WriteFileDurably(path, bytes));
  return id;
}

class CollectionManagerImpl : public CollectionManager, public Follower::Target {
 public:
  CollectionManagerImpl(CollectionManagerOptions options, std::shared_ptr<PgDatabase> db)
      : options_(std::move(options)), db_(std::move(db)) {}
  ~CollectionManagerImpl() override {
    follower_.reset();  // stops its thread, which calls into this object
    {
      std::lock_guard<std::mutex> lock(mu_);
      collections_.clear();  // close (and snapshot) before releasing the lock file
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  // One process per data directory: two would each keep their own derived
  // index of the same storage. The kernel drops the lock if the process dies.
  Status LockDataDir() {
    const std::string path = options_.data_dir + "/.lock";
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0)
      return FailedPreconditionError(path + ": cannot open: " + std::strerror(errno));
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      return FailedPreconditionError(options_.data_dir + " is in use by another process (" +
                                     std::strerror(errno) + ")");
    }
    return Status::Ok();
  }

  Status LoadAll() { return db_ ? LoadFromPostgres() : LoadFromDataDir(); }

  // With PostgreSQL storage: follow the database from now on.
  void StartFollowing() {
    if (db_) {
      follower_ =
          std::make_unique<Follower>(db_, this, std::chrono::milliseconds(options_.follow_poll_ms));
    }
  }

  Status LoadFromDataDir() {
    std::error_code ec;
    std::vector<std::string> names, unfinished;
    for (const auto& entry : std::filesystem::directory_iterator(options_.data_dir, ec)) {
      if (!entry.is_directory()) continue;
      const std::string name = entry.path().filename().string();
      if (name.rfind(kCreatingPrefix, 0) == 0 || name.rfind(kDroppingPrefix, 0) == 0) {
        unfinished.push_back(entry.path().string());
        continue;
      }
      if (!ValidateCollectionName(name).ok()) continue;
      if (!std::filesystem::exists(entry.path() / kSqliteFileName)) continue;
      names.push_back(name);
    }
    if (ec) return InternalError(options_.data_dir + ": cannot list: " + ec.message());
    for (const auto& path : unfinished) {
      spdlog::warn("removing {}: a collection create or drop that did not finish", path);
      std::filesystem::remove_all(path, ec);
    }
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      const std::string dir = options_.data_dir + "/" + name;
      auto c = OpenSqlite(dir);
      if (!c.ok()) return c.status().WithPrefix("opening collection '" + name + "'");
      if (c.value()->spec().name != name) {
        return DataLossError(dir + ": directory holds collection '" + c.value()->spec().name + "'");
      }
      spdlog::info("opened collection '{}' ({} items)", name, c.value()->Stats().count);
      collections_[name] = std::move(c).value();
    }
    return Status::Ok();
  }

  StatusOr<std::shared_ptr<Collection>> Create(const CollectionSpec& spec) override {
    RETURN_IF_ERROR(CollectionImpl::CheckCreatable(spec, options_));
    std::lock_guard<std::mutex> catalog(catalog_mu_);
    std::lock_guard<std::mutex> lock(mu_);
    if (collections_.count(spec.name) != 0) {
      return AlreadyExistsError("collection '" + spec.name + "' already exists");
    }
    auto c = db_ ? CreatePostgresLocked(spec) : CreateSqliteLocked(spec);
    if (!c.ok()) return c.status();
    collections_[spec.name] = c.value();
    spdlog::info("created collection '{}' (dim {}, {}, index '{}')", spec.name, spec.dim,
                 MetricName(spec.metric), spec.index_spec);
    return std::shared_ptr<Collection>(std::move(c).value());
  }

  StatusOr<std::shared_ptr<Collection>> Get(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = collections_.find(name);
    if (it == collections_.end()) return NotFoundError("collection '" + name + "' not found");
    return std::shared_ptr<Collection>(it->second);
  }

  std::vector<std::string> List() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> names, unfinished;
    for (const auto& entry : collections_) names.push_back(entry.first);
    return names;
  }

  Status Drop(const std::string& name) override {
    if (db_) return DropPostgres(name);
    std::shared_ptr<CollectionImpl> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = collections_.find(name);
      if (it == collections_.end()) return NotFoundError("collection '" + name + "' not found");
      c = std::move(it->second);
      collections_.erase(it);
    }
    // Holders of the shared_ptr get NOT_FOUND from now on; their open file
    // handles stay valid until they let go.
    c->MarkDropped();
    // Renamed first (atomic), so a crash mid-removal leaves no half-removed
    // collection under its name.
    const std::string doomed = options_.data_dir + "/" + kDroppingPrefix + name;
    std::error_code ec;
    std::filesystem::remove_all(doomed, ec);
    if (::rename(c->dir().c_str(), doomed.c_str()) != 0) {
      return InternalError(c->dir() + ": cannot remove: " + std::strerror(errno));
    }
    // The rename is what drops the collection (leftovers are removed at the
    // next Open); report it if the directory cannot be made durable.
    const Status synced = SyncDirectory(options_.data_dir);
    std::filesystem::remove_all(doomed, ec);
    if (ec)
      spdlog::warn("{}: removal incomplete ({}); it is removed at the next open", doomed,
                   ec.message());
    RETURN_IF_ERROR(synced.WithPrefix("collection '" + name + "' dropped, but not durably"));
    spdlog::info("dropped collection '{}'", name);
    return Status::Ok();
  }

 private:
  // The database first: when that fails the collection stays as it was.
  Status DropPostgres(const std::string& name) {
    std::lock_guard<std::mutex> catalog(catalog_mu_);
    std::shared_ptr<CollectionImpl> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = collections_.find(name);
      if (it == collections_.end()) return NotFoundError("collection '" + name + "' not found");
      RETURN_IF_ERROR(db_->DropCollection(name));
      c = std::move(it->second);
      collections_.erase(it);
      catalog_ids_.erase(name);
    }
    c->MarkDropped();
    std::error_code ec;
    std::filesystem::remove_all(c->dir(), ec);
    if (ec)
      spdlog::warn("{}: not removed ({}); it is removed at the next open", c->dir(), ec.message());
    spdlog::info("dropped collection '{}' from {}", name, db_->name());
    return Status::Ok();
  }

  StatusOr<std::shared_ptr<CollectionImpl>> OpenSqlite(const std::string& dir) {
    ASSIGN_OR_RETURN(auto storage, SqliteStorage::Open(dir + "/" + kSqliteFileName));
    return CollectionImpl::Open(dir, options_, std::move(storage));
  }

  StatusOr<std::shared_ptr<CollectionImpl>> CreateSqliteLocked(const CollectionSpec& spec) {
    const std::string dir = options_.data_dir + "/" + spec.name;
    std::error_code ec;
    if (std::filesystem::exists(dir, ec)) {
      return AlreadyExistsError(dir + " already exists but is not an open collection; remove it");
    }
    // Built under a temporary name and renamed into place, so a crash
    // mid-create leaves no half-made collection for the next Open.
    const std::string tmp = options_.data_dir + "/" + kCreatingPrefix + spec.name;
    std::filesystem::remove_all(tmp, ec);
    if (::mkdir(tmp.c_str(), 0755) != 0) {
      return InternalError(tmp + ": cannot create directory: " + std::strerror(errno));
    }
    // The database is written and closed before the rename.
    Status st = SqliteStorage::Create(tmp + "/" + kSqliteFileName, spec).status();
    if (st.ok()) st = SyncDirectory(tmp);
    if (st.ok() && ::rename(tmp.c_str(), dir.c_str()) != 0) {
      st =
          InternalError(dir + ": cannot rename new collection into place: " + std::strerror(errno));
    }
    if (!st.ok()) {
      std::filesystem::remove_all(tmp, ec);
      return st;
    }
    // The rename is durable only once the data directory is synced; if that
    // fails the collection is not created.
    st = SyncDirectory(options_.data_dir);
    if (!st.ok()) {
      std::filesystem::remove_all(dir, ec);
      return st;
    }
    return OpenSqlite(dir);
  }

  std::string PostgresSnapshotDir(const std::string& name, int64_t id) const {
    return options_.data_dir + "/" + kPostgresDir + "/" + name + "." + std::to_string(id);
  }

  // The catalog is the database's. Each collection's snapshot directory is
  // named after its catalog id, so a snapshot of a collection that was
  // dropped (maybe by another server) is never taken for one created later
  // under the same name; directories of collections no longer in the
  // catalog are removed.
  Status LoadFromPostgres() {
    const std::string root = options_.data_dir + "/" + kPostgresDir;
    std::error_code ec;
    std::filesystem::create_directories(root, ec);
    if (ec) return FailedPreconditionError(root + ": cannot create: " + ec.message());
    ASSIGN_OR_RETURN(auto entries, db_->ListCollections());
    std::set<std::string> live;
    for (auto& entry : entries) {
      const std::string name = entry.spec.name;
      const int64_t id = entry.id;
      live.insert(std::filesystem::path(PostgresSnapshotDir(name, id)).filename().string());
      ASSIGN_OR_RETURN(auto c, OpenPostgres(std::move(entry)));
      collections_[name] = std::move(c);
      catalog_ids_[name] = id;
    }
    for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
      if (live.count(entry.path().filename().string()) != 0) continue;
      spdlog::info("removing {}: its collection is no longer in {}", entry.path().string(),
                   db_->name());
      std::error_code rm_ec;
      std::filesystem::remove_all(entry.path(), rm_ec);
    }
    return Status::Ok();
  }

  // Opens (recovers) the collection of a catalog entry; its snapshot
  // directory is made when missing.
  StatusOr<std::shared_ptr<CollectionImpl>> OpenPostgres(PgDatabase::CatalogEntry entry) {
    const std::string name = entry.spec.name;
    const std::string dir = PostgresSnapshotDir(name, entry.id);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return FailedPreconditionError(dir + ": cannot create: " + ec.message());
    auto c = CollectionImpl::Open(dir, options_, PostgresStorage::Open(db_, std::move(entry)));
    if (!c.ok()) return c.status().WithPrefix("opening collection '" + name + "'");
    spdlog::info("opened collection '{}' ({} items) from {}", name, c.value()->Stats().count,
                 db_->name());
    return c;
  }

  // Follower::Target. Catalog changes made elsewhere: collections no longer
  // in the catalog (or there under a new id: dropped and created again) are
  // closed and their snapshots removed; new ones are opened. Holds
  // catalog_mu_, so it never interleaves with a Create or Drop here.
  Status SyncCatalog() override {
    std::lock_guard<std::mutex> catalog(catalog_mu_);
    ASSIGN_OR_RETURN(auto entries, db_->ListCollections());
    std::map<std::string, int64_t> remote;
    for (const auto& entry : entries) remote[entry.spec.name] = entry.id;
    std::vector<std::shared_ptr<CollectionImpl>> gone;
    std::set<std::string> local;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = collections_.begin(); it != collections_.end();) {
        auto r = remote.find(it->first);
        if (r == remote.end() || r->second != catalog_ids_[it->first]) {
          gone.push_back(std::move(it->second));
          catalog_ids_.erase(it->first);
          it = collections_.erase(it);
        } else {
          local.insert(it->first);
          ++it;
        }
      }
    }
    for (const auto& c : gone) {
      c->MarkDropped();
      std::error_code ec;
      std::filesystem::remove_all(c->dir(), ec);
      spdlog::info("collection '{}' was dropped through another server", c->spec().name);
    }
    Status first = Status::Ok();
    for (auto& entry : entries) {
      if (local.count(entry.spec.name) != 0) continue;
      const std::string name = entry.spec.name;
      const int64_t id = entry.id;
      auto c = OpenPostgres(std::move(entry));
      if (!c.ok()) {
        // Dropped again meanwhile, or the database went away: next pass.
        if (first.ok()) first = c.status();
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      collections_[name] = std::move(c).value();
      catalog_ids_[name] = id;
    }
    return first;
  }

  Status CatchUp(const std::string& name, int64_t seq) override {
    std::shared_ptr<CollectionImpl> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = collections_.find(name);
      if (it == collections_.end()) return NotFoundError("collection '" + name + "' not found");
      c = it->second;
    }
    return c->CatchUp(seq);
  }

  Status CatchUpAll() override {
    std::vector<std::shared_ptr<CollectionImpl>> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& entry : collections_) all.push_back(entry.second);
    }
    Status first = Status::Ok();
    for (const auto& c : all) {
      const Status st = c->CatchUp(0);
      // NOT_FOUND: dropped meanwhile; the next catalog sync closes it.
      if (!st.ok() && st.code() != StatusCode::kNotFound && first.ok()) first = st;
    }
    return first;
  }

  StatusOr<std::shared_ptr<CollectionImpl>> CreatePostgresLocked(const CollectionSpec& spec) {
    ASSIGN_OR_RETURN(auto storage, PostgresStorage::Create(db_, spec));
    const std::string dir = PostgresSnapshotDir(spec.name, storage->collection_id());
    std::error_code ec;
    catalog_ids_[spec.name] = storage->collection_id();
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir, ec);
    StatusOr<std::shared_ptr<CollectionImpl>> c =
        ec ? StatusOr<std::shared_ptr<CollectionImpl>>(
                 FailedPreconditionError(dir + ": cannot create: " + ec.message()))
           : CollectionImpl::Open(dir, options_, std::move(storage));
    if (!c.ok()) {
      catalog_ids_.erase(spec.name);
      // Undo the catalog entry; the error that matters is the first one.
      Status undo = db_->DropCollection(spec.name);
      if (!undo.ok()) spdlog::warn("undoing create of '{}': {}", spec.name, undo.ToString());
    }
    return c;
  }

  const CollectionManagerOptions options_;
  const std::shared_ptr<PgDatabase> db_;  // set with PostgreSQL storage
  int lock_fd_ = -1;
  // PostgreSQL: serializes catalog changes (Create, Drop, SyncCatalog);
  // taken before mu_.
  std::mutex catalog_mu_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<CollectionImpl>> collections_;  // guarded by mu_
  std::map<std::string, int64_t> catalog_ids_;  // PostgreSQL catalog id by name; mu_
  std::unique_ptr<Follower> follower_;          // set with PostgreSQL storage
};

}  // namespace

StatusOr<std::unique_ptr<CollectionManager>> CollectionManager::Open(
    const CollectionManagerOptions& options) {
  if (options.data_dir.empty()) return InvalidArgumentError("data_dir is empty");
  RETURN_IF_ERROR(ParseDevice(options.index_device, AutoDevice::kReject).status());
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return FailedPreconditionError(options.data_dir + ": cannot create: " + ec.message());
  RETURN_IF_ERROR(ValidateStorage(options.storage));
  std::shared_ptr<PgDatabase> db;
  if (options.follow_poll_ms < 1) {
    return InvalidArgumentError("follow_poll_ms must be at least 1, got " +
                                std::to_string(options.follow_poll_ms));
  }
  if (IsPostgresUri(options.storage)) {
    ASSIGN_OR_RETURN(const std::string replica, ReplicaId(options.data_dir));
    ASSIGN_OR_RETURN(db, PgDatabase::Connect(options.storage, replica));
  }
  auto manager = std::make_unique<CollectionManagerImpl>(options, std::move(db));
  RETURN_IF_ERROR(manager->LockDataDir());
  RETURN_IF_ERROR(manager->LoadAll());
  manager->StartFollowing();
  return std::unique_ptr<CollectionManager>(std::move(manager));
}

}  // namespace lookalike
