// CollectionManager over a data directory: one sub-directory per collection
// (<data_dir>/<name>/items.db + index.snap).
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "index/collection_impl.h"
#include "index/index_factory.h"

namespace lookalike {
namespace {

// fsync of a directory, so a created or removed entry in it is durable.
void SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  if (::fsync(fd) != 0) spdlog::warn("fsync of directory {} failed: {}", dir, std::strerror(errno));
  ::close(fd);
}

class CollectionManagerImpl : public CollectionManager {
 public:
  explicit CollectionManagerImpl(CollectionManagerOptions options) : options_(std::move(options)) {}

  Status LoadAll() {
    std::error_code ec;
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(options_.data_dir, ec)) {
      if (!entry.is_directory()) continue;
      const std::string name = entry.path().filename().string();
      if (!ValidateCollectionName(name).ok()) continue;
      if (!std::filesystem::exists(entry.path() / "items.db")) continue;
      names.push_back(name);
    }
    if (ec) return InternalError(options_.data_dir + ": cannot list: " + ec.message());
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      const std::string dir = options_.data_dir + "/" + name;
      auto c = CollectionImpl::Open(dir, options_);
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
    RETURN_IF_ERROR(ValidateSpec(spec));
    std::lock_guard<std::mutex> lock(mu_);
    if (collections_.count(spec.name) != 0) {
      return AlreadyExistsError("collection '" + spec.name + "' already exists");
    }
    const std::string dir = options_.data_dir + "/" + spec.name;
    std::error_code ec;
    if (std::filesystem::exists(dir, ec)) {
      return AlreadyExistsError(dir + " already exists but is not an open collection; remove it");
    }
    if (::mkdir(dir.c_str(), 0755) != 0) {
      return InternalError(dir + ": cannot create directory: " + std::strerror(errno));
    }
    SyncDirectory(options_.data_dir);
    auto c = CollectionImpl::Create(dir, spec, options_);
    if (!c.ok()) {
      std::filesystem::remove_all(dir, ec);
      return c.status();
    }
    SyncDirectory(dir);
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
    std::vector<std::string> names;
    for (const auto& entry : collections_) names.push_back(entry.first);
    return names;
  }

  Status Drop(const std::string& name) override {
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
    std::error_code ec;
    std::filesystem::remove_all(c->dir(), ec);
    if (ec) return InternalError(c->dir() + ": cannot remove: " + ec.message());
    SyncDirectory(options_.data_dir);
    spdlog::info("dropped collection '{}'", name);
    return Status::Ok();
  }

 private:
  const CollectionManagerOptions options_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<CollectionImpl>> collections_;  // guarded by mu_
};

}  // namespace

StatusOr<std::unique_ptr<CollectionManager>> CollectionManager::Open(
    const CollectionManagerOptions& options) {
  if (options.data_dir.empty()) return InvalidArgumentError("data_dir is empty");
  RETURN_IF_ERROR(ParseIndexDevice(options.index_device).status());
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return FailedPreconditionError(options.data_dir + ": cannot create: " + ec.message());
  auto manager = std::make_unique<CollectionManagerImpl>(options);
  RETURN_IF_ERROR(manager->LoadAll());
  return std::unique_ptr<CollectionManager>(std::move(manager));
}

}  // namespace lookalike
