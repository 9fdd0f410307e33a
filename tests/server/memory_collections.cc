#include "memory_collections.h"

#include <algorithm>
#include <cmath>
#include <regex>

namespace lookalike::testing {
namespace {

class MemoryCollection final : public Collection {
 public:
  explicit MemoryCollection(CollectionSpec spec) : spec_(std::move(spec)) {}

  const CollectionSpec& spec() const override { return spec_; }

  StatusOr<std::vector<Status>> Upsert(const std::vector<Item>& items) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Status> out;
    for (const Item& item : items) {
      if (item.id.empty() || item.id.size() > 512) {
        out.push_back(InvalidArgumentError("id must be 1..512 bytes"));
        continue;
      }
      if (static_cast<int>(item.vector.size()) != spec_.dim) {
        out.push_back(InvalidArgumentError("vector has the wrong dim"));
        continue;
      }
      Item stored = item;
      Normalize(&stored.vector);
      items_[item.id] = std::move(stored);
      out.push_back(Status::Ok());
    }
    return out;
  }

  StatusOr<std::vector<std::vector<SearchHit>>> Search(const float* queries, int nq,
                                                       const SearchParams& params) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::vector<SearchHit>> out(nq);
    for (int q = 0; q < nq; ++q) {
      std::vector<float> query(queries + static_cast<size_t>(q) * spec_.dim,
                               queries + static_cast<size_t>(q + 1) * spec_.dim);
      Normalize(&query);
      for (const auto& [id, item] : items_) {
        if (std::find(params.exclude_ids.begin(), params.exclude_ids.end(), id) !=
            params.exclude_ids.end()) {
          continue;
        }
        if (!Matches(item.metadata, params.filter)) continue;
        float score = 0.f;
        for (int d = 0; d < spec_.dim; ++d) {
          score += spec_.metric == Metric::kL2
                       ? -(query[d] - item.vector[d]) * (query[d] - item.vector[d])
                       : query[d] * item.vector[d];
        }
        if (params.min_score && score < *params.min_score) continue;
        out[q].push_back(SearchHit{id, score, item.metadata});
      }
      std::stable_sort(out[q].begin(), out[q].end(),
                       [](const SearchHit& a, const SearchHit& b) { return a.score > b.score; });
      if (static_cast<int>(out[q].size()) > params.k) out[q].resize(params.k);
    }
    return out;
  }

  StatusOr<std::vector<std::optional<Item>>> Get(const std::vector<std::string>& ids) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::optional<Item>> out;
    for (const std::string& id : ids) {
      auto it = items_.find(id);
      if (it == items_.end()) {
        out.emplace_back(std::nullopt);
        continue;
      }
      Item item = it->second;
      item.thumbnail.clear();  // as Storage::Get: thumbnails are read one at a time
      out.emplace_back(std::move(item));
    }
    return out;
  }

  StatusOr<std::string> GetThumbnail(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = items_.find(id);
    if (it == items_.end()) return NotFoundError("no item \"" + id + "\"");
    if (it->second.thumbnail.empty()) return NotFoundError("item \"" + id + "\" has no thumbnail");
    return it->second.thumbnail;
  }

  StatusOr<int64_t> Delete(const std::vector<std::string>& ids) override {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t n = 0;
    for (const std::string& id : ids) n += static_cast<int64_t>(items_.erase(id));
    return n;
  }

  CollectionStats Stats() override {
    std::lock_guard<std::mutex> lock(mu_);
    CollectionStats stats;
    stats.spec = spec_;
    stats.count = static_cast<int64_t>(items_.size());
    stats.index_bytes = stats.count * spec_.dim * 4;
    stats.index_device = "cpu";
    return stats;
  }

  Status Snapshot() override { return Status::Ok(); }

 private:
  void Normalize(std::vector<float>* v) const {
    if (spec_.metric != Metric::kCosine) return;
    double norm = 0;
    for (float x : *v) norm += double(x) * x;
    norm = std::sqrt(norm);
    if (norm > 0) {
      for (float& x : *v) x = static_cast<float>(x / norm);
    }
  }
  static bool Matches(const Metadata& metadata, const Filter& filter) {
    for (const auto& [key, values] : filter.any_of) {
      auto it = metadata.find(key);
      if (it == metadata.end() ||
          std::find(values.begin(), values.end(), it->second) == values.end()) {
        return false;
      }
    }
    return true;
  }

  const CollectionSpec spec_;
  std::mutex mu_;
  std::map<std::string, Item> items_;
};

}  // namespace

StatusOr<std::shared_ptr<Collection>> MemoryCollectionManager::Create(const CollectionSpec& spec) {
  static const std::regex name("[A-Za-z0-9_-]{1,64}");
  if (!std::regex_match(spec.name, name)) {
    return InvalidArgumentError("name: \"" + spec.name + "\" must match [A-Za-z0-9_-]{1,64}");
  }
  if (spec.dim < 1 || spec.dim > 65536) return InvalidArgumentError("dim out of range");
  std::lock_guard<std::mutex> lock(mu_);
  if (collections_.count(spec.name)) {
    return AlreadyExistsError("collection \"" + spec.name + "\" already exists");
  }
  auto collection = std::make_shared<MemoryCollection>(spec);
  collections_[spec.name] = collection;
  return std::shared_ptr<Collection>(collection);
}

StatusOr<std::shared_ptr<Collection>> MemoryCollectionManager::Get(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) return NotFoundError("collection \"" + name + "\" not found");
  return it->second;
}

std::vector<std::string> MemoryCollectionManager::List() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> names;
  for (const auto& [name, c] : collections_) names.push_back(name);
  return names;
}

Status MemoryCollectionManager::Drop(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!collections_.erase(name)) return NotFoundError("collection \"" + name + "\" not found");
  return Status::Ok();
}

}  // namespace lookalike::testing
