// DerivedIndex: the searchable copy of a collection's vectors, rebuilt or
// replayed from Storage; never the source of truth.
//
// Labels: FAISS labels are "slots" we assign in insertion order (0, 1, ...);
// slots_[slot] is the item's internal id (storage row id) or -1 once removed.
// Positional families (Flat, SQ, HNSW, GPU) have slot == position and keep
// removed vectors in place, excluded at search time by an id selector (a
// bitmap of live slots); compaction is a rebuild from storage once removed
// slots outnumber live ones. IVF indexes store slots via add_with_ids and
// remove vectors physically with remove_ids.
//
// Training: a spec whose index needs training (IVF..., SQ...) starts in exact
// mode, an IndexFlat of the same metric holding every vector, so results are
// exact until enough vectors exist. It trains (on all live vectors) and
// switches once the live count reaches min_train():
//   IVF: 39 * nlist (FAISS' own minimum for k-means without a warning),
//   other trainable types: 1000.
// If training fails (e.g. a PQ codebook needing more points) the index stays
// exact and retries at twice the count.
//
// Vectors passed in are what storage holds (already L2-normalized for cosine
// collections); queries likewise. Scores: inner product for cosine/ip,
// -squared L2 distance for l2.
//
// Not thread-safe: the Collection serializes mutations against searches with
// a shared mutex; Search and WriteSnapshot are const and may run concurrently.
#pragma once

#include <faiss/Index.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/device.h"
#include "common/status.h"
#include "index/index_factory.h"
#include "index/types.h"

namespace lookalike {

// One search hit inside the index layer: storage internal id + score.
struct ScoredId {
  int64_t internal_id = 0;
  float score = 0.f;
};

// Exact top-k by brute force over `n` candidate vectors (n x dim, row-major),
// best first; ties broken by lower internal id. Used for fallbacks and tests.
std::vector<ScoredId> ExactTopK(const float* query, int dim, Metric metric, const float* vectors,
                                const int64_t* internal_ids, int64_t n, int k);

class DerivedIndex {
 public:
  struct Query {
    const float* x = nullptr;  // nq x dim, row-major
    int nq = 0;
    int k = 0;
    // Sorted internal ids the hits must come from (nullptr = every item).
    const std::vector<int64_t>* allowed = nullptr;
    // Internal ids never returned (any order).
    const std::vector<int64_t>* excluded = nullptr;
  };
  struct Result {
    std::vector<std::vector<ScoredId>> hits;  // per query, best first
    // Per query: true when the index could not guarantee min(k, candidates)
    // hits; the caller must answer that query by exact search over
    // Candidates().
    std::vector<bool> incomplete;
  };

  ~DerivedIndex();

  // The empty index for `spec` on `device` (see MakeDerivedIndex).
  static StatusOr<std::unique_ptr<DerivedIndex>> Create(const CollectionSpec& spec,
                                                        const Device& device);

  // Adds n vectors with their internal ids (ids not already present).
  Status Add(int64_t n, const float* x, const int64_t* internal_ids);
  // Removes the ids; unknown ids are ignored.
  Status Remove(const std::vector<int64_t>& internal_ids);

  StatusOr<Result> Search(const Query& query) const;
  // Live internal ids allowed by `allowed` (nullptr = all), minus `excluded`.
  std::vector<int64_t> Candidates(const std::vector<int64_t>* allowed,
                                  const std::vector<int64_t>* excluded) const;

  // Writes a snapshot file (index/snapshot.h: temp, fsync, rename) covering
  // storage sequence `seq`. Payload: format, exact mode, min_train, dim,
  // metric, index_spec, the slot table, then faiss::write_index bytes.
  // UNIMPLEMENTED for indexes FAISS cannot serialize (the GPU index).
  Status WriteSnapshot(const std::string& path, int64_t seq) const;
  // The payload WriteSnapshot writes, in memory: serialize under the lock,
  // write the file (WriteSnapshotFile, index/snapshot.h) without it.
  StatusOr<std::vector<uint8_t>> SnapshotPayload() const;
  // Loads a snapshot written for the same spec as a CPU index. NOT_FOUND when
  // there is no file; DATA_LOSS when it is truncated, corrupt or for another
  // spec. Sets *seq.
  static StatusOr<std::unique_ptr<DerivedIndex>> LoadSnapshot(const std::string& path,
                                                              const CollectionSpec& spec,
                                                              int64_t* seq);

  int64_t live_count() const { return live_count_; }
  bool Contains(int64_t internal_id) const { return id_to_slot_.count(internal_id) != 0; }
  // True while searches are answered by the exact IndexFlat (before training).
  bool exact_mode() const { return exact_mode_; }
  int64_t min_train() const { return min_train_; }
  // True when removed-but-present vectors outnumber live ones (rebuild).
  bool NeedsCompaction() const;
  bool CanSnapshot() const { return family_ != IndexFamily::kGpuFlat; }
  // Approximate host bytes of the index (vectors/codes + id maps).
  int64_t HostBytes() const;
  // Device memory of a GPU index (0 on CPU); call without concurrent searches.
  int64_t DeviceBytes() const { return GpuDeviceBytes(index_.get()); }
  const Device& device() const { return device_; }

 private:
  DerivedIndex(CollectionSpec spec, Device device);
  Status SwitchToMainIndex();
  StatusOr<Result> SearchImpl(const Query& query) const;
  std::vector<uint8_t> SelectorBitmap(const Query& query, int64_t* candidates) const;

  CollectionSpec spec_;
  Device device_;
  std::unique_ptr<faiss::Index> index_;
  IndexFamily family_ = IndexFamily::kFlat;
  bool exact_mode_ = false;
  int64_t min_train_ = 0;
  std::vector<int64_t> slots_;                       // slot -> internal id, -1 removed
  std::unordered_map<int64_t, int64_t> id_to_slot_;  // live internal id -> slot
  std::vector<uint8_t> live_bits_;                   // bit per slot, 1 = live
  int64_t live_count_ = 0;
  int64_t removed_in_place_ = 0;  // removed slots still stored (positional families)
};

}  // namespace lookalike
