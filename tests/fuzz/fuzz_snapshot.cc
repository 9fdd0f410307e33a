// libFuzzer target: snapshot loading. The first input byte picks the layer:
//   even: the file container alone (ReadSnapshotFile: magic, lengths, checksum);
//   odd:  the rest of the input wrapped in a valid container (so the checksum
//         passes) and loaded by DerivedIndex::LoadSnapshot for the spec the
//         payload names when it is one of kSpecs (dim 4, the metric kSpecs
//         gives it), else Flat (cosine): the payload fields, the slot table,
//         the index body checks and FAISS' read_index. Seeds hold snapshots of
//         each spec, trained.
// Contract checked: no crash; errors are NOT_FOUND-free DATA_LOSS.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "index/derived_index.h"
#include "index/snapshot.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct FuzzSpec {
  const char* index_spec;
  lookalike::Metric metric;
};
// Index specs the target loads (the seeds' snapshots are of these). FAISS
// 1.7.3 builds HNSW over PQ for L2 only.
const FuzzSpec kSpecs[] = {
    {"Flat", lookalike::Metric::kCosine},       {"IVF2,Flat", lookalike::Metric::kCosine},
    {"HNSW4", lookalike::Metric::kCosine},      {"IVF2,PQ2", lookalike::Metric::kCosine},
    {"IVF2,PQ2x4", lookalike::Metric::kCosine}, {"IVF2,SQ8", lookalike::Metric::kCosine},
    {"HNSW4,SQ8", lookalike::Metric::kCosine},  {"HNSW4,PQ2", lookalike::Metric::kL2},
};

// The spec named at its place in a snapshot payload (after format, exact,
// min_train, dim, metric: its length, then its text), when it is one of kSpecs.
FuzzSpec SpecOf(const uint8_t* payload, size_t size) {
  uint32_t len = 0;
  if (size < 28) return kSpecs[0];
  std::memcpy(&len, payload + 24, sizeof(len));
  if (len > size - 28) return kSpecs[0];
  const std::string named(reinterpret_cast<const char*>(payload) + 28, len);
  for (const FuzzSpec& spec : kSpecs) {
    if (named == spec.index_spec) return spec;
  }
  return kSpecs[0];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool wrap = (data[0] & 1) != 0;
  ++data;
  --size;
  std::string path;
  if (wrap) {
    path = lookalike::fuzz::WriteInput(nullptr, 0, ".snap");
    const std::vector<uint8_t> payload(data, data + size);
    if (!lookalike::WriteSnapshotFile(path, 7, payload).ok()) __builtin_trap();
  } else {
    path = lookalike::fuzz::WriteInput(data, size, ".snap");
  }
  const FuzzSpec named = wrap ? SpecOf(data, size) : kSpecs[0];
  lookalike::CollectionSpec spec;
  spec.dim = 4;
  spec.metric = named.metric;
  spec.index_spec = named.index_spec;
  int64_t seq = 0;
  auto index = lookalike::DerivedIndex::LoadSnapshot(path, spec, &seq);
  if (!index.ok()) {
    if (index.status().code() != lookalike::StatusCode::kDataLoss) __builtin_trap();
    return 0;
  }
  // A loaded index answers a search over what it holds.
  const float q[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  lookalike::DerivedIndex::Query query;
  query.x = q;
  query.nq = 1;
  query.k = 3;
  (void)(*index)->Search(query);
  return 0;
}
