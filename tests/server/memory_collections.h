// A CollectionManager kept in memory, with exact (brute-force) search, for
// service tests that must not depend on the storage engine. It follows the
// contract of index/collection.h: per-item validation, cosine vectors
// normalized on write and query, filters, min_score, excluded ids.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "index/collection.h"

namespace lookalike::testing {

class MemoryCollectionManager final : public CollectionManager {
 public:
  StatusOr<std::shared_ptr<Collection>> Create(const CollectionSpec& spec) override;
  StatusOr<std::shared_ptr<Collection>> Get(const std::string& name) override;
  std::vector<std::string> List() override;
  Status Drop(const std::string& name) override;

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Collection>> collections_;
};

}  // namespace lookalike::testing
