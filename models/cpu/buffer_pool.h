// BufferPool: the CPU backend's host buffers (activations and scratch),
// shared by cpu_backend.cc and the dense math (models/cpu/dense.h).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace lookalike {
namespace cpu {

// Host buffers recycled by exact (64-byte rounded) size: a forward pass asks
// for the same few sizes over and over, and large fresh allocations would be
// page-faulted in again each time. Freed buffers beyond `cap_bytes` go back
// to the allocator.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  explicit BufferPool(size_t cap_bytes) : cap_bytes_(cap_bytes) {}
  ~BufferPool() {
    for (auto& [size, list] : free_) {
      for (void* p : list) std::free(p);
    }
  }

  // nullptr on allocation failure.
  std::shared_ptr<void> Get(size_t bytes) {
    bytes = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= bytes;
      }
    }
    if (p == nullptr) p = std::aligned_alloc(64, bytes);
    if (p == nullptr) return nullptr;
    std::shared_ptr<BufferPool> self = shared_from_this();
    return std::shared_ptr<void>(p, [self, bytes](void* q) { self->Put(q, bytes); });
  }

 private:
  void Put(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_bytes_ + bytes > cap_bytes_) {
      std::free(p);
      return;
    }
    free_[bytes].push_back(p);
    cached_bytes_ += bytes;
  }

  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
  size_t cap_bytes_;
};

}  // namespace cpu
}  // namespace lookalike
