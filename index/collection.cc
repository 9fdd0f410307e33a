#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <utility>

#include "index/collection_impl.h"
#include "index/index_factory.h"
#include "index/pg_database.h"
#include "index/snapshot.h"

namespace lookalike {
namespace {

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

// L2-normalizes `v` in place; false when its norm is zero.
bool Normalize(float* v, int dim) {
  double sum = 0;
  for (int i = 0; i < dim; ++i) sum += static_cast<double>(v[i]) * v[i];
  if (!(sum > 0) || !std::isfinite(sum)) return false;
  const float inv = static_cast<float>(1.0 / std::sqrt(sum));
  for (int i = 0; i < dim; ++i) v[i] *= inv;
  return true;
}

std::string Quote(const std::string& s) {
  constexpr size_t kShown = 64;
  return "'" + (s.size() > kShown ? s.substr(0, kShown) + "..." : s) + "'";
}

}  // namespace

Status ValidateItem(const Item& item, int dim, Metric metric) {
  if (item.id.empty()) return InvalidArgumentError("id is empty");
  if (item.id.size() > kMaxIdBytes) {
    return InvalidArgumentError("id is " + std::to_string(item.id.size()) +
                                " bytes; the limit is " + std::to_string(kMaxIdBytes));
  }
  // Text in PostgreSQL cannot hold a NUL byte: one rule for every storage.
  if (item.id.find('\0') != std::string::npos) return InvalidArgumentError("id holds a NUL byte");
  if (static_cast<int64_t>(item.vector.size()) != dim) {
    return InvalidArgumentError("item " + Quote(item.id) + ": vector has dimension " +
                                std::to_string(item.vector.size()) + ", collection dimension is " +
                                std::to_string(dim));
  }
  for (size_t i = 0; i < item.vector.size(); ++i) {
    if (!std::isfinite(item.vector[i])) {
      return InvalidArgumentError("item " + Quote(item.id) + ": vector component " +
                                  std::to_string(i) + " is " +
                                  (std::isnan(item.vector[i]) ? "NaN" : "infinite"));
    }
  }
  if (metric == Metric::kCosine) {
    bool nonzero =
        std::any_of(item.vector.begin(), item.vector.end(), [](float x) { return x != 0; });
    if (!nonzero) {
      return InvalidArgumentError("item " + Quote(item.id) +
                                  ": vector is all zeros, which has no cosine similarity");
    }
  }
  if (item.metadata.size() > kMaxMetadataKeys) {
    return InvalidArgumentError("item " + Quote(item.id) + ": " +
                                std::to_string(item.metadata.size()) +
                                " metadata keys; the limit is " + std::to_string(kMaxMetadataKeys));
  }
  for (const auto& kv : item.metadata) {
    if (kv.first.empty())
      return InvalidArgumentError("item " + Quote(item.id) + ": empty metadata key");
    if (kv.first.size() > kMaxMetadataKeyBytes) {
      return InvalidArgumentError("item " + Quote(item.id) + ": metadata key " + Quote(kv.first) +
                                  " is " + std::to_string(kv.first.size()) +
                                  " bytes; the limit is " + std::to_string(kMaxMetadataKeyBytes));
    }
    if (kv.second.size() > kMaxMetadataValueBytes) {
      return InvalidArgumentError("item " + Quote(item.id) + ": value of metadata key " +
                                  Quote(kv.first) + " is " + std::to_string(kv.second.size()) +
                                  " bytes; the limit is " + std::to_string(kMaxMetadataValueBytes));
    }
    if (kv.first.find('\0') != std::string::npos || kv.second.find('\0') != std::string::npos) {
      return InvalidArgumentError("item " + Quote(item.id) + ": metadata key " + Quote(kv.first) +
                                  " or its value holds a NUL byte");
    }
  }
  return Status::Ok();
}

Status ValidateCollectionName(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return InvalidArgumentError("collection name must be 1 to 64 characters, got " +
                                std::to_string(name.size()));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) {
      return InvalidArgumentError("collection name " + Quote(name) +
                                  " may only contain letters, digits, '_' and '-'");
    }
  }
  return Status::Ok();
}

Status ValidateSpec(const CollectionSpec& spec) {
  RETURN_IF_ERROR(ValidateCollectionName(spec.name));
  if (spec.dim < 1 || spec.dim > kMaxDim) {
    return InvalidArgumentError("dim must be in 1.." + std::to_string(kMaxDim) + ", got " +
                                std::to_string(spec.dim));
  }
  if (spec.model.empty()) {
    return InvalidArgumentError(
        "model is empty: name the model that embeds the collection's items, or \"" +
        std::string(kVectorsOnly) + "\" for a collection of raw vectors");
  }
  if (spec.index_spec.empty()) return InvalidArgumentError("index_spec is empty");
  if (spec.thumbnail_size != 0) {
    if (spec.thumbnail_size < kMinThumbnailSize || spec.thumbnail_size > kMaxThumbnailSize) {
      return InvalidArgumentError("thumbnail_size must be 0 (no thumbnails) or in " +
                                  std::to_string(kMinThumbnailSize) + ".." +
                                  std::to_string(kMaxThumbnailSize) + " pixels, got " +
                                  std::to_string(spec.thumbnail_size));
    }
    if (spec.model == kVectorsOnly) {
      return InvalidArgumentError(
          "thumbnail_size: collection \"" + spec.name +
          "\" stores vectors only (no model), so it has no images to keep thumbnails of");
    }
  }
  return ValidateIndexSpec(spec);
}

CollectionImpl::CollectionImpl(std::string dir, CollectionManagerOptions options, Device device,
                               std::unique_ptr<Storage> storage)
    : dir_(std::move(dir)),
      snapshot_path_(dir_ + "/" + kSnapshotFileName),
      options_(std::move(options)),
      device_(device),
      storage_(std::move(storage)) {}

CollectionImpl::~CollectionImpl() {
  std::lock_guard<std::mutex> lock(write_mu_);
  JoinSnapshotWriterLocked();
  if (dropped_) return;
  if (changes_since_snapshot_ > 0) {
    Status st = SnapshotLocked();
    if (!st.ok())
      spdlog::warn("collection '{}': snapshot at close failed: {}", spec().name, st.ToString());
  }
}

Status CollectionImpl::CheckCreatable(const CollectionSpec& spec,
                                      const CollectionManagerOptions& options) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  ASSIGN_OR_RETURN(const Device device, ParseDevice(options.index_device, AutoDevice::kReject));
  // Fail early (before writing anything) when the device cannot host the index.
  return DerivedIndex::Create(spec, device).status();
}

StatusOr<std::shared_ptr<CollectionImpl>> CollectionImpl::Open(
    const std::string& dir, const CollectionManagerOptions& options,
    std::unique_ptr<Storage> storage) {
  ASSIGN_OR_RETURN(const Device device, ParseDevice(options.index_device, AutoDevice::kReject));
  std::shared_ptr<CollectionImpl> c(new CollectionImpl(dir, options, device, std::move(storage)));
  RETURN_IF_ERROR(c->Recover());
  return c;
}

StatusOr<CollectionImpl::Descriptions> CollectionImpl::DescribeFromStorage(
    const std::vector<int64_t>& internal_ids) {
  constexpr size_t kChunk = 8192;  // ids per storage request
  Descriptions out;
  out.reserve(internal_ids.size());
  for (size_t at = 0; at < internal_ids.size(); at += kChunk) {
    const std::vector<int64_t> chunk(
        internal_ids.begin() + static_cast<ptrdiff_t>(at),
        internal_ids.begin() + static_cast<ptrdiff_t>(std::min(internal_ids.size(), at + kChunk)));
    ASSIGN_OR_RETURN(auto described, storage_->Describe(chunk));
    for (auto& d : described) {
      if (d.has_value()) out.emplace(d->internal_id, std::move(*d));
    }
  }
  return out;
}

std::vector<int64_t> CollectionImpl::MatchFilterLocally(const Filter& filter) const {
  auto match_key = [&](const std::string& key,
                       const std::vector<std::string>& values) -> StatusOr<std::vector<int64_t>> {
    std::vector<int64_t> ids;
    for (const auto& [id, d] : descriptions_) {
      auto it = d.metadata.find(key);
      if (it != d.metadata.end() &&
          std::find(values.begin(), values.end(), it->second) != values.end()) {
        ids.push_back(id);
      }
    }
    return ids;
  };
  auto matched = MatchEveryKey(filter, match_key);
  return matched.ok() ? std::move(matched).value() : std::vector<int64_t>();
}

std::vector<int64_t> CollectionImpl::ResolveIdsLocally(const std::vector<std::string>& ids) const {
  std::vector<int64_t> out;
  for (const auto& [id, d] : descriptions_) {
    if (std::find(ids.begin(), ids.end(), d.id) != ids.end()) out.push_back(id);
  }
  return out;
}

StatusOr<std::unique_ptr<DerivedIndex>> CollectionImpl::BuildFromStorage(Storage::Position* at,
                                                                         Descriptions* described) {
  ASSIGN_OR_RETURN(*at, storage_->LastPosition());
  ASSIGN_OR_RETURN(auto index, DerivedIndex::Create(spec(), device_));
  std::vector<float> vectors;
  std::vector<int64_t> ids;
  const int dim = spec().dim;
  RETURN_IF_ERROR(storage_->ScanItems(0, [&](int64_t id, const float* v) {
    ids.push_back(id);
    vectors.insert(vectors.end(), v, v + dim);
    return Status::Ok();
  }));
  // One Add: a trainable index trains on every stored vector at once.
  RETURN_IF_ERROR(index->Add(static_cast<int64_t>(ids.size()), vectors.data(), ids.data()));
  ASSIGN_OR_RETURN(*described, DescribeFromStorage(ids));
  return index;
}

Status CollectionImpl::RebuildLocked() {
  Storage::Position at;
  Descriptions described;
  ASSIGN_OR_RETURN(std::unique_ptr<DerivedIndex> rebuilt, BuildFromStorage(&at, &described));
  std::unique_lock<std::shared_mutex> ilock(index_mu_);
  index_ = std::move(rebuilt);
  descriptions_ = std::move(described);
  applied_seq_ = at.seq;
  applied_ids_ = at.last_internal_id;
  return Status::Ok();
}

Status CollectionImpl::CatchUp(int64_t seq) {
  if (seq > 0) {
    std::shared_lock<std::shared_mutex> ilock(index_mu_);
    if (applied_seq_ >= seq) return CheckLive();
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  RETURN_IF_ERROR(CheckLive());
  if (seq > 0 && applied_seq_ >= seq) return Status::Ok();  // this server's own write, just applied
  return ReplayTailLocked();
}

void CollectionImpl::NoteLastPosition(const Storage::Position& last) {
  int64_t applied = 0;
  {
    std::shared_lock<std::shared_mutex> ilock(index_mu_);
    applied = applied_seq_;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  std::lock_guard<std::mutex> lock(lag_mu_);
  seen_seq_ = std::max(seen_seq_, last.seq);
  seen_ids_ = std::max(seen_ids_, last.last_internal_id);
  if (applied >= seen_seq_) {
    behind_since_ns_ = 0;
  } else if (behind_since_ns_ == 0) {
    behind_since_ns_ = now;
  }
}

Status CollectionImpl::ReplayTailLocked() {
  // Order matters (see storage.h): the last sequence first, then the
  // tombstones, then the items. Rows committed after the first read may be
  // seen too; they are applied again, harmlessly, by the next replay
  // (internal ids are never reused).
  ASSIGN_OR_RETURN(const Storage::Position last, storage_->LastPosition());
  const int64_t last_seq = last.seq;
  NoteLastPosition(last);
  const int64_t from = applied_seq_;  // only writers (we hold write_mu_) change it
  if (last_seq <= from) return Status::Ok();
  ASSIGN_OR_RETURN(auto tombstones, storage_->TombstonesAfter(from));
  // Read after the tombstones: if pruning passed `from` before they were
  // read, some deletes are missing and only a rebuild is correct.
  ASSIGN_OR_RETURN(const int64_t pruned_through, storage_->PrunedThrough());
  Status applied;
  int64_t added = 0;
  if (pruned_through > from) {
    spdlog::warn(
        "collection '{}': tombstones through sequence {} were pruned but the index covers only "
        "{}; rebuilding it from storage",
        spec().name, pruned_through, from);
    applied = InternalError("tombstones pruned");
  } else {
    std::vector<float> vectors;
    std::vector<int64_t> ids;
    const int dim = spec().dim;
    RETURN_IF_ERROR(storage_->ScanItems(from, [&](int64_t id, const float* v) {
      if (!index_->Contains(id)) {  // index_ changes only under write_mu_, which we hold
        ids.push_back(id);
        vectors.insert(vectors.end(), v, v + dim);
      }
      return Status::Ok();
    }));
    added = static_cast<int64_t>(ids.size());
    ASSIGN_OR_RETURN(Descriptions described, DescribeFromStorage(ids));
    std::unique_lock<std::shared_mutex> ilock(index_mu_);
    applied = index_->Remove(tombstones);
    if (applied.ok()) applied = index_->Add(added, vectors.data(), ids.data());
    if (applied.ok()) {
      applied_seq_ = std::max(applied_seq_, last_seq);
      applied_ids_ = std::max(applied_ids_, last.last_internal_id);
      for (int64_t id : tombstones) descriptions_.erase(id);
      for (auto& d : described) descriptions_.insert_or_assign(d.first, std::move(d.second));
    }
  }
  if (!applied.ok()) {
    const Status rebuilt = RebuildLocked();
    if (!rebuilt.ok())
      return InternalError("the index could not be updated: " + rebuilt.ToString());
  }
  NoteLastPosition(last);
  spdlog::debug("collection '{}': replayed sequence {}..{} ({} removals, {} items)", spec().name,
                from + 1, last_seq, tombstones.size(), added);
  AfterWriteLocked(static_cast<int64_t>(tombstones.size()) + added);
  return Status::Ok();
}

Status CollectionImpl::Recover() {
  const std::string& name = spec().name;
  ASSIGN_OR_RETURN(const Storage::Position last, storage_->LastPosition());
  const int64_t last_seq = last.seq;
  ASSIGN_OR_RETURN(int64_t pruned_through, storage_->PrunedThrough());
  std::unique_ptr<DerivedIndex> index;
  int64_t snap_seq = 0;
  bool write_snapshot = false;
  if (!device_.is_cuda()) {  // the GPU index is not snapshotted
    auto loaded = DerivedIndex::LoadSnapshot(snapshot_path_, spec(), &snap_seq);
    if (loaded.ok()) {
      if (snap_seq > last_seq || snap_seq < pruned_through) {
        spdlog::warn(
            "collection '{}': snapshot {} covers sequence {} but storage is at {} (pruned "
            "through {}); rebuilding the index from storage",
            name, snapshot_path_, snap_seq, last_seq, pruned_through);
      } else {
        index = std::move(loaded).value();
      }
    } else if (loaded.status().code() == StatusCode::kNotFound) {
      spdlog::info("collection '{}': no index snapshot; building the index from storage", name);
    } else {
      spdlog::warn("collection '{}': {}; rebuilding the index from storage", name,
                   loaded.status().ToString());
    }
  }
  if (index != nullptr && snap_seq < last_seq) {
    // Replay: removals first, then items written after the snapshot.
    ASSIGN_OR_RETURN(auto tombstones, storage_->TombstonesAfter(snap_seq));
    RETURN_IF_ERROR(index->Remove(tombstones));
    std::vector<float> vectors;
    std::vector<int64_t> ids;
    const int dim = spec().dim;
    RETURN_IF_ERROR(storage_->ScanItems(snap_seq, [&](int64_t id, const float* v) {
      if (!index->Contains(id)) {
        ids.push_back(id);
        vectors.insert(vectors.end(), v, v + dim);
      }
      return Status::Ok();
    }));
    RETURN_IF_ERROR(index->Add(static_cast<int64_t>(ids.size()), vectors.data(), ids.data()));
    spdlog::info("collection '{}': replayed {} removals and {} items past snapshot sequence {}",
                 name, tombstones.size(), ids.size(), snap_seq);
    write_snapshot = true;
  }
  Descriptions described;
  if (index == nullptr) {
    Storage::Position built;
    ASSIGN_OR_RETURN(index, BuildFromStorage(&built, &described));
    write_snapshot = index->live_count() > 0 || last_seq > 0;
  } else {
    ASSIGN_OR_RETURN(described, DescribeFromStorage(index->Candidates(nullptr, nullptr)));
  }
  {
    std::unique_lock<std::shared_mutex> lock(index_mu_);
    index_ = std::move(index);
    descriptions_ = std::move(described);
    applied_seq_ = last_seq;
    applied_ids_ = last.last_internal_id;
  }
  if (write_snapshot && index_->CanSnapshot()) {
    std::lock_guard<std::mutex> lock(write_mu_);
    Status st = SnapshotLocked();
    if (!st.ok())
      spdlog::warn("collection '{}': snapshot after recovery failed: {}", name, st.ToString());
  }
  return Status::Ok();
}

Status CollectionImpl::CheckLive() const {
  if (dropped_) return NotFoundError("collection '" + storage_->spec().name + "' was dropped");
  return Status::Ok();
}

StatusOr<std::vector<Status>> CollectionImpl::Upsert(const std::vector<Item>& items) {
  const CollectionSpec& s = spec();
  std::vector<Status> statuses(items.size());
  std::vector<Item> prepared;
  std::vector<size_t> source;
  for (size_t i = 0; i < items.size(); ++i) {
    statuses[i] = ValidateItem(items[i], s.dim, s.metric);
    if (!statuses[i].ok()) continue;
    prepared.push_back(items[i]);
    if (s.metric == Metric::kCosine) Normalize(prepared.back().vector.data(), s.dim);
    source.push_back(i);
  }
  if (prepared.empty()) return statuses;
  std::vector<const Item*> ptrs;
  ptrs.reserve(prepared.size());
  for (const auto& item : prepared) ptrs.push_back(&item);

  std::lock_guard<std::mutex> lock(write_mu_);
  RETURN_IF_ERROR(CheckLive());
  ASSIGN_OR_RETURN(Storage::UpsertResult written, storage_->Upsert(ptrs));
  std::vector<float> vectors;
  std::vector<int64_t> ids;
  for (size_t i = 0; i < prepared.size(); ++i) {
    if (written.internal_ids[i] < 0) continue;  // replaced later in the same batch
    ids.push_back(written.internal_ids[i]);
    vectors.insert(vectors.end(), prepared[i].vector.begin(), prepared[i].vector.end());
  }
  Status applied;
  int64_t missed_after = -1;
  {
    std::unique_lock<std::shared_mutex> ilock(index_mu_);
    if (written.seq != applied_seq_ + 1) {
      missed_after = applied_seq_;
    } else {
      applied = index_->Remove(written.replaced);
      if (applied.ok()) {
        applied = index_->Add(static_cast<int64_t>(ids.size()), vectors.data(), ids.data());
      }
      applied_seq_ = written.seq;
      for (int64_t id : written.internal_ids) applied_ids_ = std::max(applied_ids_, id);
      for (int64_t id : written.replaced) descriptions_.erase(id);
      for (size_t i = 0; i < prepared.size(); ++i) {
        if (written.internal_ids[i] < 0) continue;
        descriptions_.insert_or_assign(
            written.internal_ids[i],
            Storage::Description{written.internal_ids[i], prepared[i].id, prepared[i].metadata});
      }
    }
  }
  if (missed_after >= 0) {
    // Another server committed batches in between: replay them (and this one).
    RETURN_IF_ERROR(ReplayTailLocked().WithPrefix("items were stored"));
    return statuses;
  } else if (!applied.ok()) {
    // Storage has the batch; bring the index back in line with it.
    spdlog::error("collection '{}': applying an upsert to the index failed ({}); rebuilding",
                  s.name, applied.ToString());
    const Status rebuilt = RebuildLocked();
    if (!rebuilt.ok()) {
      return InternalError("items were stored but the index could not be updated: " +
                           rebuilt.ToString());
    }
  }
  AfterWriteLocked(static_cast<int64_t>(prepared.size()));
  return statuses;
}

StatusOr<int64_t> CollectionImpl::Delete(const std::vector<std::string>& ids) {
  std::lock_guard<std::mutex> lock(write_mu_);
  RETURN_IF_ERROR(CheckLive());
  ASSIGN_OR_RETURN(Storage::DeleteResult removed, storage_->Delete(ids));
  Status applied;
  int64_t missed_after = -1;
  {
    std::unique_lock<std::shared_mutex> ilock(index_mu_);
    if (removed.seq != applied_seq_ + 1) {
      missed_after = applied_seq_;
    } else {
      applied = index_->Remove(removed.removed);
      applied_seq_ = removed.seq;
      for (int64_t id : removed.removed) descriptions_.erase(id);
    }
  }
  if (missed_after >= 0) {
    RETURN_IF_ERROR(ReplayTailLocked().WithPrefix("items were deleted"));
    return static_cast<int64_t>(removed.removed.size());
  } else if (!applied.ok()) {
    spdlog::error("collection '{}': applying a delete to the index failed ({}); rebuilding",
                  spec().name, applied.ToString());
    const Status rebuilt = RebuildLocked();
    if (!rebuilt.ok()) {
      return InternalError("items were deleted but the index could not be updated: " +
                           rebuilt.ToString());
    }
  }
  AfterWriteLocked(static_cast<int64_t>(removed.removed.size()));
  return static_cast<int64_t>(removed.removed.size());
}

void CollectionImpl::AfterWriteLocked(int64_t changed) {
  changes_since_snapshot_ += changed;
  bool compact = false;
  {
    std::shared_lock<std::shared_mutex> ilock(index_mu_);
    compact = index_->NeedsCompaction();
  }
  if (compact) {
    const Status st = RebuildLocked();
    if (!st.ok())
      spdlog::warn("collection '{}': compaction failed: {}", spec().name, st.ToString());
  }
  if (options_.snapshot_every_writes <= 0 ||
      changes_since_snapshot_ < options_.snapshot_every_writes) {
    return;
  }
  JoinSnapshotWriterLocked();  // waits only when the previous one is still being written
  int64_t seq = 0;
  StatusOr<std::vector<uint8_t>> payload = std::vector<uint8_t>();
  {
    std::shared_lock<std::shared_mutex> ilock(index_mu_);
    if (!index_->CanSnapshot()) {  // the GPU index is rebuilt from storage at open
      changes_since_snapshot_ = 0;
      return;
    }
    seq = applied_seq_;
    payload = index_->SnapshotPayload();
  }
  if (!payload.ok()) {
    spdlog::warn("collection '{}': periodic snapshot failed: {}", spec().name,
                 payload.status().ToString());
    return;
  }
  changes_since_snapshot_ = 0;
  snapshot_writer_ = std::thread([this, seq, bytes = std::move(payload).value()] {
    Status st = WriteSnapshotFile(snapshot_path_, seq, bytes);
    // The durable snapshot covers every tombstone up to seq.
    if (st.ok()) st = storage_->PruneTombstones(seq);
    if (!st.ok())
      spdlog::warn("collection '{}': periodic snapshot failed: {}", spec().name, st.ToString());
  });
}

void CollectionImpl::JoinSnapshotWriterLocked() {
  if (snapshot_writer_.joinable()) snapshot_writer_.join();
}

Status CollectionImpl::Snapshot() {
  std::lock_guard<std::mutex> lock(write_mu_);
  RETURN_IF_ERROR(CheckLive());
  return SnapshotLocked();
}

Status CollectionImpl::SnapshotLocked() {
  JoinSnapshotWriterLocked();  // an older periodic one must not land after this one
  int64_t seq = 0;
  {
    std::shared_lock<std::shared_mutex> ilock(index_mu_);
    // The GPU index is rebuilt from storage at open; nothing to write.
    if (!index_->CanSnapshot()) {
      changes_since_snapshot_ = 0;
      return Status::Ok();
    }
    seq = applied_seq_;
    RETURN_IF_ERROR(index_->WriteSnapshot(snapshot_path_, seq));
  }
  changes_since_snapshot_ = 0;
  // The durable snapshot covers every tombstone up to seq.
  return storage_->PruneTombstones(seq);
}

StatusOr<std::vector<std::vector<SearchHit>>> CollectionImpl::Search(const float* queries, int nq,
                                                                     const SearchParams& params) {
  RETURN_IF_ERROR(CheckLive());
  const CollectionSpec& s = spec();
  if (queries == nullptr || nq < 1) return InvalidArgumentError("no query vectors");
  if (params.k < 1 || params.k > kMaxK) {
    return InvalidArgumentError("k must be in 1.." + std::to_string(kMaxK) + ", got " +
                                std::to_string(params.k));
  }
  if (params.min_score.has_value() && std::isnan(*params.min_score)) {
    return InvalidArgumentError("min_score is NaN");
  }
  const int dim = s.dim;
  std::vector<float> q(queries, queries + static_cast<size_t>(nq) * dim);
  for (int i = 0; i < nq; ++i) {
    float* row = q.data() + static_cast<size_t>(i) * dim;
    for (int j = 0; j < dim; ++j) {
      if (!std::isfinite(row[j])) {
        return InvalidArgumentError("query " + std::to_string(i) + ": component " +
                                    std::to_string(j) + " is " +
                                    (std::isnan(row[j]) ? "NaN" : "infinite"));
      }
    }
    if (s.metric == Metric::kCosine && !Normalize(row, dim)) {
      return InvalidArgumentError("query " + std::to_string(i) +
                                  " is all zeros, which has no cosine similarity");
    }
  }
  for (const auto& clause : params.filter.any_of) {
    if (clause.first.empty()) return InvalidArgumentError("filter has an empty metadata key");
  }

  // A write between reading the index and reading the hits' rows (storage
  // commits before the index is updated) can remove a hit. Then wait for
  // the write in flight to reach the index (it holds write_mu_ until it
  // has) and search again, so k hits come back whenever k exist.
  constexpr int kAttempts = 4;
  for (int attempt = 1;; ++attempt) {
    bool raced = false;
    auto out = SearchOnce(q.data(), nq, params, &raced);
    if (!out.ok() || !raced || attempt == kAttempts) return out;
    std::lock_guard<std::mutex> wait_for_writer(write_mu_);
  }
}

StatusOr<std::vector<std::vector<SearchHit>>> CollectionImpl::SearchOnce(const float* q, int nq,
                                                                         const SearchParams& params,
                                                                         bool* raced) {
  const CollectionSpec& s = spec();
  const int dim = s.dim;
  // Storage's indexes answer exclusions and filters; when storage is
  // unreachable (UNAVAILABLE) the in-memory descriptions do, more slowly.
  std::vector<int64_t> excluded;
  bool excluded_locally = false;
  if (!params.exclude_ids.empty()) {
    auto resolved = storage_->ResolveIds(params.exclude_ids);
    if (resolved.ok()) {
      excluded = std::move(resolved).value();
    } else if (resolved.status().code() == StatusCode::kUnavailable) {
      excluded_locally = true;
    } else {
      return resolved.status();
    }
  }
  std::vector<int64_t> allowed;
  const bool filtered = !params.filter.empty();
  bool filtered_locally = false;
  if (filtered) {
    auto matched = storage_->MatchFilter(params.filter);
    if (matched.ok()) {
      allowed = std::move(matched).value();
    } else if (matched.status().code() == StatusCode::kUnavailable) {
      filtered_locally = true;
    } else {
      return matched.status();
    }
  }

  DerivedIndex::Result result;
  std::vector<int64_t> fallback_candidates;
  {
    std::shared_lock<std::shared_mutex> ilock(index_mu_);
    if (excluded_locally) excluded = ResolveIdsLocally(params.exclude_ids);
    if (filtered_locally) allowed = MatchFilterLocally(params.filter);
    DerivedIndex::Query query;
    query.x = q;
    query.nq = nq;
    query.k = params.k;
    query.allowed = filtered ? &allowed : nullptr;
    query.excluded = &excluded;
    ASSIGN_OR_RETURN(result, index_->Search(query));
    if (std::find(result.incomplete.begin(), result.incomplete.end(), true) !=
        result.incomplete.end()) {
      fallback_candidates = index_->Candidates(query.allowed, query.excluded);
    }
  }
  if (!fallback_candidates.empty()) {
    // Exact answer from the stored vectors for the queries the index could
    // not fully answer.
    std::vector<int64_t> found;
    std::vector<float> vectors;
    RETURN_IF_ERROR(storage_->ReadVectors(fallback_candidates, &found, &vectors));
    for (int i = 0; i < nq; ++i) {
      if (!result.incomplete[static_cast<size_t>(i)]) continue;
      result.hits[static_cast<size_t>(i)] =
          ExactTopK(q + static_cast<size_t>(i) * dim, dim, s.metric, vectors.data(), found.data(),
                    static_cast<int64_t>(found.size()), params.k);
    }
  }

  for (auto& hits : result.hits) {
    if (params.min_score.has_value()) {
      const float min_score = *params.min_score;
      hits.erase(std::remove_if(hits.begin(), hits.end(),
                                [min_score](const ScoredId& h) { return h.score < min_score; }),
                 hits.end());
    }
  }
  std::vector<std::vector<SearchHit>> out(static_cast<size_t>(nq));
  std::shared_lock<std::shared_mutex> ilock(index_mu_);
  for (int i = 0; i < nq; ++i) {
    for (const auto& h : result.hits[static_cast<size_t>(i)]) {
      auto it = descriptions_.find(h.internal_id);
      if (it == descriptions_.end()) {
        *raced = true;  // removed since the index (or storage, for the exact answer) was read
        continue;
      }
      out[static_cast<size_t>(i)].push_back(SearchHit{it->second.id, h.score, it->second.metadata});
    }
  }
  return out;
}

StatusOr<std::vector<std::optional<Item>>> CollectionImpl::Get(
    const std::vector<std::string>& ids) {
  RETURN_IF_ERROR(CheckLive());
  return storage_->Get(ids);
}

StatusOr<std::string> CollectionImpl::GetThumbnail(const std::string& id) {
  RETURN_IF_ERROR(CheckLive());
  ASSIGN_OR_RETURN(std::optional<std::string> thumbnail, storage_->ReadThumbnail(id));
  if (!thumbnail.has_value()) {
    return NotFoundError("no item " + Quote(id) + " in collection '" + spec().name + "'");
  }
  if (thumbnail->empty()) {
    return NotFoundError(
        "item " + Quote(id) + " of collection '" + spec().name + "' has no thumbnail" +
        (spec().thumbnail_size == 0 ? " (the collection was created without thumbnail_size)"
                                    : " (it was written as a vector, not an image)"));
  }
  return *std::move(thumbnail);
}

CollectionStats CollectionImpl::Stats() {
  CollectionStats stats;
  stats.spec = spec();
  stats.disk_bytes = storage_->DiskBytes() + FileSize(snapshot_path_);
  stats.index_device = device_.ToString();
  stats.storage = StorageDisplayName(options_.storage);
  {
    int64_t applied = 0, applied_ids = -1;
    {
      std::shared_lock<std::shared_mutex> ilock(index_mu_);
      applied = applied_seq_;
      applied_ids = applied_ids_;
    }
    std::lock_guard<std::mutex> lock(lag_mu_);
    if (seen_seq_ > applied) {
      stats.follow_lag_batches = seen_seq_ - applied;
      if (applied_ids >= 0 && seen_ids_ > applied_ids) {
        stats.follow_lag_items = seen_ids_ - applied_ids;
      }
      if (behind_since_ns_ != 0) {
        const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now().time_since_epoch())
                                .count();
        stats.follow_lag_seconds = static_cast<double>(now - behind_since_ns_) * 1e-9;
      }
    }
  }
  if (device_.is_cuda()) {
    // Exclusive: the GPU index's byte count is not safe next to searches.
    std::unique_lock<std::shared_mutex> ilock(index_mu_);
    stats.gpu_bytes = index_->DeviceBytes();
    stats.count = index_->live_count();
    stats.index_bytes = index_->HostBytes();
  } else {
    std::shared_lock<std::shared_mutex> ilock(index_mu_);
    stats.count = index_->live_count();
    stats.index_bytes = index_->HostBytes();
  }
  return stats;
}

void CollectionImpl::MarkDropped() {
  std::lock_guard<std::mutex> lock(write_mu_);
  dropped_ = true;
  JoinSnapshotWriterLocked();  // before the directory is removed
}

}  // namespace lookalike
