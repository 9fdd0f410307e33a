// BufferPool: the CPU backend's host buffers (activations and scratch),
// shared by cpu_backend.cc and the dense math (models/cpu/dense.h).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

namespace lookalike {
namespace cpu {

// Host buffers recycled across calls: large fresh allocations would be
// page-faulted in again on every forward pass. A request takes the smallest
// cached buffer that holds it (best fit), so the pool settles at the largest
// set of tensors alive at once, not at one buffer per distinct size: a
// ConvNet's activations shrink through the network, and exact-size reuse held
// every layer's output size (EfficientNet-Lite0 at batch 16: 355 MB peak RSS
// with exact sizes, 213 MB best fit; docs/benchmarks/cpu.md). Freed buffers
// beyond `cap_bytes` go back to the allocator.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  explicit BufferPool(size_t cap_bytes) : cap_bytes_(cap_bytes) {}
  ~BufferPool() {
    for (auto& [capacity, p] : free_) std::free(p);
  }

  // nullptr on allocation failure. The buffer may be larger than `bytes`.
  std::shared_ptr<void> Get(size_t bytes) {
    bytes = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    void* p = nullptr;
    size_t capacity = bytes;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(bytes);
      if (it != free_.end()) {
        capacity = it->first;
        p = it->second;
        free_.erase(it);
        cached_bytes_ -= capacity;
      }
    }
    if (p == nullptr) p = std::aligned_alloc(64, bytes);
    if (p == nullptr) return nullptr;
    std::shared_ptr<BufferPool> self = shared_from_this();
    return std::shared_ptr<void>(p, [self, capacity](void* q) { self->Put(q, capacity); });
  }

 private:
  void Put(void* p, size_t capacity) {
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_bytes_ + capacity > cap_bytes_) {
      std::free(p);
      return;
    }
    free_.emplace(capacity, p);
    cached_bytes_ += capacity;
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;  // capacity -> cached buffer
  size_t cached_bytes_ = 0;
  size_t cap_bytes_;
};

}  // namespace cpu
}  // namespace lookalike
