// DerivedIndex on its own: removal bookkeeping, the training switch and
// snapshot round trips in exact and trained mode.
#include "index/derived_index.h"

#include <faiss/impl/io.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "index/snapshot.h"
#include "test_util.h"

namespace lookalike {
namespace {

using testing::RandomVectors;
using testing::TempDir;

CollectionSpec Spec(const std::string& index_spec) {
  CollectionSpec spec;
  spec.name = "d";
  spec.dim = 4;
  spec.metric = Metric::kL2;
  spec.index_spec = index_spec;
  return spec;
}

std::vector<int64_t> Ids(int64_t first, int64_t n) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  std::iota(ids.begin(), ids.end(), first);
  return ids;
}

TEST(DerivedIndexTest, RemoveCountsEachIdOnce) {
  auto d = DerivedIndex::Create(Spec("Flat"), Device{});
  ASSERT_TRUE(d.ok());
  const auto x = RandomVectors(10, 4, 1);
  const auto ids = Ids(100, 10);
  ASSERT_TRUE((*d)->Add(10, x.data(), ids.data()).ok());
  ASSERT_TRUE((*d)->Remove({101, 101, 999, 105}).ok());
  EXPECT_EQ((*d)->live_count(), 8);
  EXPECT_FALSE((*d)->Contains(101));
  EXPECT_TRUE((*d)->Contains(102));
  auto candidates = (*d)->Candidates(nullptr, nullptr);
  EXPECT_EQ(candidates.size(), 8u);
  DerivedIndex::Query q;
  q.x = x.data() + 4;  // the vector of the removed id 101
  q.nq = 1;
  q.k = 10;
  auto r = (*d)->Search(q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->hits[0].size(), 8u);
  for (const auto& h : r->hits[0]) EXPECT_TRUE(h.internal_id != 101 && h.internal_id != 105);
}

TEST(DerivedIndexTest, ExactUntilTrainedAndSnapshotsRoundTrip) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  auto d = DerivedIndex::Create(Spec("IVF2,Flat"), Device{});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE((*d)->exact_mode());
  EXPECT_EQ((*d)->min_train(), 78);  // 39 * nlist
  const auto x = RandomVectors(100, 4, 2);
  const auto ids = Ids(1, 100);
  ASSERT_TRUE((*d)->Add(50, x.data(), ids.data()).ok());
  EXPECT_TRUE((*d)->exact_mode());
  ASSERT_TRUE((*d)->WriteSnapshot(path, 7).ok());

  int64_t seq = 0;
  auto loaded = DerivedIndex::LoadSnapshot(path, Spec("IVF2,Flat"), &seq);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(seq, 7);
  EXPECT_TRUE((*loaded)->exact_mode());
  EXPECT_EQ((*loaded)->live_count(), 50);
  // Another spec's snapshot is refused.
  EXPECT_EQ(DerivedIndex::LoadSnapshot(path, Spec("Flat"), &seq).status().code(),
            StatusCode::kDataLoss);
  // Crossing the threshold trains; the trained index snapshots too.
  ASSERT_TRUE((*loaded)->Add(50, x.data() + 50 * 4, ids.data() + 50).ok());
  EXPECT_FALSE((*loaded)->exact_mode());
  ASSERT_TRUE((*loaded)->Remove({3}).ok());
  ASSERT_TRUE((*loaded)->WriteSnapshot(path, 9).ok());
  auto again = DerivedIndex::LoadSnapshot(path, Spec("IVF2,Flat"), &seq);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(seq, 9);
  EXPECT_FALSE((*again)->exact_mode());
  EXPECT_EQ((*again)->live_count(), 99);
  EXPECT_FALSE((*again)->Contains(3));
  // Its own vector is the nearest hit of every stored item (IVF2 probes all lists).
  DerivedIndex::Query q;
  q.x = x.data() + 10 * 4;
  q.nq = 1;
  q.k = 1;
  auto r = (*again)->Search(q);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->hits[0].size(), 1u);
  EXPECT_EQ(r->hits[0][0].internal_id, 11);
  EXPECT_NEAR(r->hits[0][0].score, 0.f, 1e-5f);
}

// Found by tests/fuzz: a snapshot whose checksum matches but whose spec
// length field is huge made LoadSnapshot allocate that many bytes first.
TEST(DerivedIndexTest, SnapshotWithAHugeSpecLengthIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  std::vector<uint8_t> payload;
  auto append = [&](const auto& value) {
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    payload.insert(payload.end(), p, p + sizeof(value));
  };
  append(uint32_t{1});            // format
  append(uint32_t{1});            // exact mode
  append(int64_t{1000});          // min_train
  append(int32_t{4});             // dim
  append(int32_t{2});             // metric
  append(uint32_t{0xFFFFFFF0u});  // spec length, far past the payload
  payload.resize(payload.size() + 16, 'F');
  ASSERT_TRUE(WriteSnapshotFile(path, 3, payload).ok());
  int64_t seq = 0;
  auto loaded = DerivedIndex::LoadSnapshot(path, Spec("Flat"), &seq);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(loaded.status().message().find("snapshot spec truncated"), std::string::npos)
      << loaded.status().ToString();
}

// Found by tests/fuzz: FAISS' read_index allocates a vector from the length
// field in the body before reading it, so a checksum-valid snapshot with a
// forged codes length asked for up to 1 TiB. Flat bodies are checked first.
TEST(DerivedIndexTest, FlatSnapshotWithAForgedCodesLengthIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  auto d = DerivedIndex::Create(Spec("Flat"), Device{});
  ASSERT_TRUE(d.ok());
  const auto x = RandomVectors(10, 4, 3);
  const auto ids = Ids(1, 10);
  ASSERT_TRUE((*d)->Add(10, x.data(), ids.data()).ok());
  ASSERT_TRUE((*d)->WriteSnapshot(path, 5).ok());
  auto file = ReadSnapshotFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  // The codes (10 x 4 floats) end the payload; their length field precedes them.
  std::vector<uint8_t> payload = file->payload;
  const size_t codes_bytes = 10 * 4 * sizeof(float);
  ASSERT_GT(payload.size(), codes_bytes + sizeof(uint64_t));
  const size_t field = payload.size() - codes_bytes - sizeof(uint64_t);
  uint64_t length = 0;
  std::memcpy(&length, payload.data() + field, sizeof(length));
  ASSERT_TRUE(length == codes_bytes || length == codes_bytes / 4) << length;
  const uint64_t forged = uint64_t{1} << 38;
  std::memcpy(payload.data() + field, &forged, sizeof(forged));
  ASSERT_TRUE(WriteSnapshotFile(path, 5, payload).ok());
  int64_t seq = 0;
  auto loaded = DerivedIndex::LoadSnapshot(path, Spec("Flat"), &seq);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(loaded.status().message().find("flat index header does not match its body"),
            std::string::npos)
      << loaded.status().ToString();
}

// A trained `index_spec` index of `n` random vectors (ids 1..n, then id 2
// removed) snapshotted at `path`; the payload offset of its FAISS body.
size_t WriteTrainedSnapshot(const std::string& index_spec, int64_t n, const std::string& path) {
  auto d = DerivedIndex::Create(Spec(index_spec), Device{});
  EXPECT_TRUE(d.ok());
  const auto x = RandomVectors(n, 4, 5);
  const auto ids = Ids(1, n);
  EXPECT_TRUE((*d)->Add(n, x.data(), ids.data()).ok());
  EXPECT_FALSE((*d)->exact_mode());
  EXPECT_TRUE((*d)->Remove({2}).ok());
  EXPECT_TRUE((*d)->WriteSnapshot(path, 4).ok());
  auto file = ReadSnapshotFile(path);
  EXPECT_TRUE(file.ok());
  // format, exact, min_train, dim, metric, spec length, spec, slot count, slots
  const std::vector<uint8_t>& p = file->payload;
  uint32_t spec_len = 0;
  uint64_t nslots = 0;
  std::memcpy(&spec_len, p.data() + 24, sizeof(spec_len));
  std::memcpy(&nslots, p.data() + 28 + spec_len, sizeof(nslots));
  return 28 + spec_len + 8 + nslots * 8;
}

// Rewrites the snapshot at `path` with `value` at payload offset `at`.
template <typename T>
void Forge(const std::string& path, size_t at, T value) {
  auto file = ReadSnapshotFile(path);
  ASSERT_TRUE(file.ok());
  std::vector<uint8_t> payload = file->payload;
  ASSERT_LE(at + sizeof(T), payload.size());
  std::memcpy(payload.data() + at, &value, sizeof(T));
  ASSERT_TRUE(WriteSnapshotFile(path, 4, payload).ok());
}

template <typename T>
T At(const std::string& path, size_t at) {
  auto file = ReadSnapshotFile(path);
  T value{};
  std::memcpy(&value, file->payload.data() + at, sizeof(T));
  return value;
}

void ExpectDataLoss(const std::string& path, const std::string& index_spec,
                    const std::string& message_part) {
  int64_t seq = 0;
  auto loaded = DerivedIndex::LoadSnapshot(path, Spec(index_spec), &seq);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(loaded.status().message().find(message_part), std::string::npos)
      << loaded.status().ToString();
}

// The walk of trained IVF and HNSW bodies accepts what the index writes.
TEST(DerivedIndexTest, TrainedIvfAndHnswSnapshotsPassTheBodyChecks) {
  for (const char* index_spec : {"IVF2,Flat", "HNSW8", "HNSW8,Flat"}) {
    TempDir dir;
    const std::string path = dir.path() + "/index.snap";
    WriteTrainedSnapshot(index_spec, 1000, path);
    int64_t seq = 0;
    auto loaded = DerivedIndex::LoadSnapshot(path, Spec(index_spec), &seq);
    ASSERT_TRUE(loaded.ok()) << index_spec << ": " << loaded.status().ToString();
    EXPECT_FALSE((*loaded)->exact_mode());
    EXPECT_EQ((*loaded)->live_count(), 999);
    const auto x = RandomVectors(1000, 4, 5);
    DerivedIndex::Query q;
    q.x = x.data() + 10 * 4;
    q.nq = 1;
    q.k = 1;
    auto r = (*loaded)->Search(q);
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->hits[0].size(), 1u);
    EXPECT_EQ(r->hits[0][0].internal_id, 11) << index_spec;
  }
}

// A forged IVF list size would make read_index allocate it; a list id past
// the slot table would be a label with no item.
TEST(DerivedIndexTest, IvfSnapshotWithForgedListsIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  const size_t body = WriteTrainedSnapshot("IVF2,Flat", 200, path);
  auto file = ReadSnapshotFile(path);
  ASSERT_TRUE(file.ok());
  const std::vector<uint8_t>& p = file->payload;
  const char ilar[] = {'i', 'l', 'a', 'r'};
  const auto it =
      std::search(p.begin() + static_cast<std::ptrdiff_t>(body), p.end(), ilar, ilar + 4);
  ASSERT_NE(it, p.end());
  // "ilar", nlist, code_size, "full", the size count, then the sizes.
  const size_t sizes = static_cast<size_t>(it - p.begin()) + 4 + 8 + 8 + 4 + 8;
  ASSERT_EQ(At<uint64_t>(path, sizes) + At<uint64_t>(path, sizes + 8), 199u);
  Forge<uint64_t>(path, sizes, uint64_t{1} << 40);
  ExpectDataLoss(path, "IVF2,Flat", "IVF list of 1099511627776 vectors");

  WriteTrainedSnapshot("IVF2,Flat", 200, path);
  Forge<int64_t>(path, p.size() - 8, int64_t{1} << 40);  // the last list's last id
  ExpectDataLoss(path, "IVF2,Flat", "is not a slot");
}

// A forged HNSW array length would be allocated; a link past the vectors
// would be followed by searches.
TEST(DerivedIndexTest, HnswSnapshotWithForgedGraphIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  const size_t body = WriteTrainedSnapshot("HNSW8", 1000, path);
  // "IHNf", the header (d, ntotal, 2 reserved, is_trained, metric L2), then
  // assign_probas (double), cum_nneighbor_per_level, levels (int),
  // offsets (size_t), neighbors (int).
  size_t at = body + 4 + 4 + 8 + 8 + 8 + 1 + 4;
  for (size_t elem : {sizeof(double), sizeof(int32_t), sizeof(int32_t), sizeof(uint64_t)}) {
    at += 8 + At<uint64_t>(path, at) * elem;
  }
  const size_t neighbors = at;
  ASSERT_GT(At<uint64_t>(path, neighbors), 1000u);
  Forge<int32_t>(path, neighbors + 8, 1005);
  ExpectDataLoss(path, "HNSW8", "HNSW link to vector 1005 of 1000");

  WriteTrainedSnapshot("HNSW8", 1000, path);
  Forge<uint64_t>(path, neighbors, uint64_t{1} << 40);
  ExpectDataLoss(path, "HNSW8", "HNSW neighbors claims 1099511627776 values");
}

// The payload of the snapshot at `path`.
std::vector<uint8_t> Payload(const std::string& path) {
  auto file = ReadSnapshotFile(path);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  return file.ok() ? file->payload : std::vector<uint8_t>{};
}

// The payload offset of the first `tag` (a FAISS fourcc) at or after `from`.
size_t Find(const std::vector<uint8_t>& p, size_t from, const char (&tag)[5]) {
  const auto it = std::search(p.begin() + static_cast<std::ptrdiff_t>(from), p.end(), tag, tag + 4);
  EXPECT_NE(it, p.end()) << tag;
  return static_cast<size_t>(it - p.begin());
}

// Trained IVF-PQ, IVF-SQ, HNSW-SQ, HNSW-PQ and SQ indexes snapshot, pass the
// body checks and load back as they were: the same hits and scores, and a
// snapshot of the loaded index with the same bytes.
TEST(DerivedIndexTest, TrainedQuantizedSnapshotsRoundTrip) {
  for (const char* index_spec : {"IVF2,PQ2", "IVF2,PQ2x4", "IVF2,SQ8", "IVF2,SQ4", "IVF2,SQ6",
                                 "IVF2,SQfp16", "HNSW8,SQ8", "HNSW8,SQfp16", "HNSW8,PQ2", "SQ8"}) {
    SCOPED_TRACE(index_spec);
    TempDir dir;
    const std::string path = dir.path() + "/index.snap";
    auto d = DerivedIndex::Create(Spec(index_spec), Device{});
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    const auto x = RandomVectors(1000, 4, 5);
    const auto ids = Ids(1, 1000);
    ASSERT_TRUE((*d)->Add(1000, x.data(), ids.data()).ok());
    ASSERT_FALSE((*d)->exact_mode());
    ASSERT_TRUE((*d)->Remove({2}).ok());
    ASSERT_TRUE((*d)->WriteSnapshot(path, 4).ok());
    int64_t seq = 0;
    auto loaded = DerivedIndex::LoadSnapshot(path, Spec(index_spec), &seq);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_FALSE((*loaded)->exact_mode());
    EXPECT_EQ((*loaded)->live_count(), 999);
    DerivedIndex::Query q;
    q.x = x.data() + 10 * 4;
    q.nq = 20;
    q.k = 5;
    auto before = (*d)->Search(q);
    auto after = (*loaded)->Search(q);
    ASSERT_TRUE(before.ok() && after.ok());
    for (int i = 0; i < q.nq; ++i) {
      ASSERT_EQ(after->hits[i].size(), 5u);
      ASSERT_EQ(after->hits[i].size(), before->hits[i].size());
      for (size_t j = 0; j < after->hits[i].size(); ++j) {
        EXPECT_EQ(after->hits[i][j].internal_id, before->hits[i][j].internal_id);
        EXPECT_EQ(after->hits[i][j].score, before->hits[i][j].score);
      }
    }
    const std::string again = dir.path() + "/again.snap";
    ASSERT_TRUE((*loaded)->WriteSnapshot(again, 4).ok());
    EXPECT_EQ(Payload(again), Payload(path));
  }
}

// Every cut of a snapshot at [from, to) is DATA_LOSS, and flipping the lowest
// or the highest bit of a byte there (the index's structure, not its codes,
// which any value encodes) loads or is DATA_LOSS, never a crash (fuzz_snapshot takes the same
// bodies through ASan and UBSan).
void ExpectNoCrash(const std::string& path, const std::string& index_spec,
                   const std::vector<uint8_t>& payload, size_t from, size_t to) {
  int64_t seq = 0;
  for (size_t at = from; at < to; ++at) {
    std::vector<uint8_t> cut(payload.begin(), payload.begin() + static_cast<std::ptrdiff_t>(at));
    ASSERT_TRUE(WriteSnapshotFile(path, 4, cut).ok());
    auto loaded = DerivedIndex::LoadSnapshot(path, Spec(index_spec), &seq);
    ASSERT_FALSE(loaded.ok()) << "cut at " << at;
    ASSERT_EQ(loaded.status().code(), StatusCode::kDataLoss) << loaded.status().ToString();
    for (uint8_t bit : {0x01, 0x80}) {
      std::vector<uint8_t> flipped = payload;
      flipped[at] ^= bit;
      ASSERT_TRUE(WriteSnapshotFile(path, 4, flipped).ok());
      loaded = DerivedIndex::LoadSnapshot(path, Spec(index_spec), &seq);
      if (!loaded.ok()) {
        ASSERT_EQ(loaded.status().code(), StatusCode::kDataLoss)
            << "flip at " << at << ": " << loaded.status().ToString();
      }
    }
  }
}

// Rewrites the snapshot at `path` with `payload`.
void Restore(const std::string& path, const std::vector<uint8_t>& payload) {
  ASSERT_TRUE(WriteSnapshotFile(path, 4, payload).ok());
}

// IVF-PQ: "IwPQ", the IVF header and quantizer, by_residual, code_size, the
// PQ (d, M, nbits, centroids), then the inverted lists ("ilar").
TEST(DerivedIndexTest, IvfPqSnapshotWithForgedQuantizerIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  const std::string spec = "IVF2,PQ2";
  const size_t body = WriteTrainedSnapshot(spec, 1000, path);
  const std::vector<uint8_t> p = Payload(path);
  ASSERT_EQ(Find(p, body, "IwPQ"), body);
  const size_t ilar = Find(p, body, "ilar");
  const size_t pq = ilar - 4 * 256 * sizeof(float) - 4 * 8;  // d, M, nbits, centroid count
  ASSERT_EQ(At<uint64_t>(path, pq), 4u);
  ASSERT_EQ(At<uint64_t>(path, pq + 8), 2u);
  ASSERT_EQ(At<uint64_t>(path, pq + 16), 8u);
  ASSERT_EQ(At<uint64_t>(path, pq + 24), 4u * 256);
  ASSERT_EQ(At<uint64_t>(path, pq - 8), 2u);  // code_size: 2 x 8 bits
  ASSERT_EQ(At<uint8_t>(path, pq - 9), 1u);   // by_residual

  Forge<uint64_t>(path, pq + 16, 40);
  ExpectDataLoss(path, spec, "PQ nbits 40 out of range 1..8");
  Restore(path, p);
  Forge<uint64_t>(path, pq + 16, 4);
  ExpectDataLoss(path, spec, "PQ centroids holds 1024 values, 64 expected");
  Restore(path, p);
  Forge<uint64_t>(path, pq + 8, 0);  // read_index would divide by M
  ExpectDataLoss(path, spec, "PQ M 0 does not divide dim 4");
  Restore(path, p);
  Forge<uint64_t>(path, pq, 8);
  ExpectDataLoss(path, spec, "PQ of dim 8 in an index of dim 4");
  Restore(path, p);
  Forge<uint8_t>(path, pq + 24 + 5, 1);  // a byte of the centroid count
  ExpectDataLoss(path, spec, "PQ centroids claims 1099511628800 values");
  Restore(path, p);
  Forge<uint64_t>(path, pq - 8, 3);
  ExpectDataLoss(path, spec, "IVF-PQ code size 3, its PQ's is 2");
  Restore(path, p);
  Forge<uint8_t>(path, pq - 9, 7);
  ExpectDataLoss(path, spec, "IVF-PQ by_residual is 7, not a bool");
  // The lists: "ilar", nlist, code_size, "full", the size count, the sizes.
  Restore(path, p);
  ASSERT_EQ(At<uint64_t>(path, ilar + 12), 2u);
  Forge<uint64_t>(path, ilar + 12, 3);
  ExpectDataLoss(path, spec, "IVF inverted lists of 2 lists, code size 3");
  const size_t sizes = ilar + 4 + 8 + 8 + 4 + 8;
  Restore(path, p);
  ASSERT_EQ(At<uint64_t>(path, sizes) + At<uint64_t>(path, sizes + 8), 999u);
  Forge<uint64_t>(path, sizes, At<uint64_t>(path, sizes) - 1);
  ExpectDataLoss(path, spec, "IVF list");
  Restore(path, p);
  Forge<int64_t>(path, p.size() - 8, 1000);  // the last list's last id
  ExpectDataLoss(path, spec, "IVF list id 1000 is not a slot (1000 slots)");
  // FAISS' legacy IVF-PQ layout, which read_index still reads (and leaks on).
  Restore(path, p);
  Forge<uint32_t>(path, body, faiss::fourcc("IvPQ"));
  ExpectDataLoss(path, spec, "index type 'IvPQ' is not one FAISS writes for an index spec");

  ExpectNoCrash(path, spec, p, body, pq + 40);
}

// IVF-SQ: "IwSq", the IVF header and quantizer, the SQ (qtype, rangestat,
// rangestat_arg, d, code_size, trained), code_size, by_residual, the lists.
TEST(DerivedIndexTest, IvfSqSnapshotWithForgedQuantizerIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  const std::string spec = "IVF2,SQ8";
  const size_t body = WriteTrainedSnapshot(spec, 1000, path);
  const std::vector<uint8_t> p = Payload(path);
  ASSERT_EQ(Find(p, body, "IwSq"), body);
  const size_t ilar = Find(p, body, "ilar");
  // trained: 2 x 4 floats (per-dimension minimum and range).
  const size_t sq = ilar - 1 - 8 - 8 * sizeof(float) - 8 - 8 - 8 - 4 - 4 - 4;
  ASSERT_EQ(At<int32_t>(path, sq), 0);  // QT_8bit
  ASSERT_EQ(At<uint64_t>(path, sq + 12), 4u);
  ASSERT_EQ(At<uint64_t>(path, sq + 20), 4u);
  ASSERT_EQ(At<uint64_t>(path, sq + 28), 8u);
  ASSERT_EQ(At<uint64_t>(path, ilar - 9), 4u);

  Forge<int32_t>(path, sq, 9);
  ExpectDataLoss(path, spec, "SQ quantizer type 9");
  Restore(path, p);
  Forge<int32_t>(path, sq, 4);  // QT_fp16: 8-byte codes
  ExpectDataLoss(path, spec, "SQ code size 4 for quantizer type 4 of dim 4 (8 expected)");
  Restore(path, p);
  Forge<int32_t>(path, sq + 4, 99);
  ExpectDataLoss(path, spec, "SQ range statistic 99");
  Restore(path, p);
  Forge<uint64_t>(path, sq + 28, 2);
  ExpectDataLoss(path, spec, "SQ trained values holds 2 values, 8 expected");
  Restore(path, p);
  Forge<uint64_t>(path, ilar - 9, 5);
  ExpectDataLoss(path, spec, "IVF-SQ code size 5, its SQ's is 4");
  Restore(path, p);
  Forge<uint8_t>(path, ilar - 1, 2);
  ExpectDataLoss(path, spec, "IVF-SQ by_residual is 2, not a bool");
  Restore(path, p);
  Forge<uint64_t>(path, ilar + 4 + 8 + 8 + 4 + 8, uint64_t{1} << 40);
  ExpectDataLoss(path, spec, "IVF list of 1099511627776 vectors");

  ExpectNoCrash(path, spec, p, body, ilar + 40);
}

// HNSW over SQ ("IHNs") and PQ ("IHNp") storage: the graph, then the storage
// index (IxSQ / IxPq) of the same vectors at the end of the body.
TEST(DerivedIndexTest, HnswSqSnapshotWithForgedStorageIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  const std::string spec = "HNSW8,SQ8";
  const size_t body = WriteTrainedSnapshot(spec, 1000, path);
  const std::vector<uint8_t> p = Payload(path);
  ASSERT_EQ(Find(p, body, "IHNs"), body);
  // "IxSQ", the header (33 bytes with metric L2), the SQ (36 + 8 trained
  // floats), the codes (a count, 1000 x 4 bytes).
  const size_t storage = p.size() - (4 + 33 + 36 + 8 * 4 + 8 + 1000 * 4);
  ASSERT_EQ(Find(p, storage, "IxSQ"), storage);
  const size_t ntotal = storage + 8, sq = storage + 4 + 33, codes = sq + 36 + 32;
  ASSERT_EQ(At<int64_t>(path, ntotal), 1000);
  ASSERT_EQ(At<uint64_t>(path, codes), 4000u);

  // One vector fewer in the storage than in the graph, consistently.
  std::vector<uint8_t> fewer = p;
  const int64_t n = 999;
  const uint64_t bytes = 999 * 4;
  std::memcpy(fewer.data() + ntotal, &n, sizeof(n));
  std::memcpy(fewer.data() + codes, &bytes, sizeof(bytes));
  fewer.resize(fewer.size() - 4);
  ASSERT_TRUE(WriteSnapshotFile(path, 4, fewer).ok());
  ExpectDataLoss(path, spec, "HNSW storage holds 999 vectors of dim 4, the graph 1000 of dim 4");
  Restore(path, p);
  Forge<int64_t>(path, ntotal, 999);
  ExpectDataLoss(path, spec, "SQ index codes holds 4000 values, 3996 expected");
  Restore(path, p);
  Forge<uint64_t>(path, sq + 20, 8);
  ExpectDataLoss(path, spec, "SQ code size 8 for quantizer type 0 of dim 4 (4 expected)");
  Restore(path, p);
  Forge<int32_t>(path, storage + 4 + 29, 0);  // the storage's metric: inner product
  ExpectDataLoss(path, spec, "HNSW storage metric 0, the index's is 1");
  // read_index takes an IHNp storage as a PQ index unchecked.
  Restore(path, p);
  Forge<uint32_t>(path, body, faiss::fourcc("IHNp"));
  ExpectDataLoss(path, spec, "HNSW storage of another index type");

  ExpectNoCrash(path, spec, p, storage, codes + 16);
  ExpectNoCrash(path, spec, p, p.size() - 8, p.size());
}

TEST(DerivedIndexTest, HnswPqSnapshotWithForgedStorageIsDataLoss) {
  TempDir dir;
  const std::string path = dir.path() + "/index.snap";
  const std::string spec = "HNSW8,PQ2";
  const size_t body = WriteTrainedSnapshot(spec, 1000, path);
  const std::vector<uint8_t> p = Payload(path);
  ASSERT_EQ(Find(p, body, "IHNp"), body);
  // "IxPq", the header, the PQ (d, M, nbits, 4 x 256 centroid floats), the
  // codes (1000 x 2 bytes), search_type, encode_signs, polysemous_ht.
  const size_t storage = p.size() - (4 + 33 + 32 + 4096 + 8 + 2000 + 4 + 1 + 4);
  ASSERT_EQ(Find(p, storage, "IxPq"), storage);
  const size_t pq = storage + 4 + 33, tail = p.size() - 9;
  ASSERT_EQ(At<uint64_t>(path, pq + 16), 8u);
  ASSERT_EQ(At<uint64_t>(path, pq + 32 + 4096), 2000u);

  Forge<uint64_t>(path, pq + 16, 16);  // an SDC table of M x 2^32 floats
  ExpectDataLoss(path, spec, "PQ nbits 16 out of range 1..8");
  Restore(path, p);
  Forge<uint64_t>(path, pq + 8, 3);
  ExpectDataLoss(path, spec, "PQ M 3 does not divide dim 4");
  Restore(path, p);
  Forge<uint64_t>(path, pq + 32 + 4096, 2002);
  ExpectDataLoss(path, spec, "PQ index codes holds 2002 values, 2000 expected");
  Restore(path, p);
  Forge<int32_t>(path, tail, 77);
  ExpectDataLoss(path, spec, "PQ index search type 77");
  Restore(path, p);
  Forge<uint8_t>(path, tail + 4, 3);
  ExpectDataLoss(path, spec, "PQ index encode_signs is 3, not a bool");
  Restore(path, p);
  Forge<uint32_t>(path, body, faiss::fourcc("IHNf"));
  ExpectDataLoss(path, spec, "HNSW storage of another index type");

  ExpectNoCrash(path, spec, p, storage, pq + 40);
  ExpectNoCrash(path, spec, p, tail - 8, p.size());
}

// Creation refuses the one spec FAISS would silently search by another metric
// (HNSW over PQ is always L2), naming the spec, the metric and what to use.
TEST(IndexSpecTest, HnswOverPqOnlyForL2) {
  CollectionSpec spec;
  spec.dim = 8;
  spec.index_spec = "HNSW8,PQ2";
  spec.metric = Metric::kL2;
  EXPECT_TRUE(ValidateIndexSpec(spec).ok());
  for (Metric metric : {Metric::kCosine, Metric::kInnerProduct}) {
    spec.metric = metric;
    const Status st = ValidateIndexSpec(spec);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("HNSW8,PQ2"), std::string::npos) << st.message();
    EXPECT_NE(st.message().find(MetricName(metric)), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("L2 distance only"), std::string::npos) << st.message();
  }
  // The other HNSW storages keep their metric.
  spec.metric = Metric::kCosine;
  for (const char* ok : {"HNSW8", "HNSW8,SQ8", "IVF4,PQ2"}) {
    spec.index_spec = ok;
    EXPECT_TRUE(ValidateIndexSpec(spec).ok()) << ok;
  }
}

}  // namespace
}  // namespace lookalike
