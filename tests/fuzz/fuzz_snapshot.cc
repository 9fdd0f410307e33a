// libFuzzer target: snapshot loading. The first input byte picks the layer:
//   even: the file container alone (ReadSnapshotFile: magic, lengths, checksum);
//   odd:  the rest of the input wrapped in a valid container (so the checksum
//         passes) and loaded by DerivedIndex::LoadSnapshot for a fixed spec:
//         the payload fields, the slot table and FAISS' read_index.
// Contract checked: no crash; errors are NOT_FOUND-free DATA_LOSS.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "index/derived_index.h"
#include "index/snapshot.h"
#include "tests/fuzz/fuzz_util.h"

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
  lookalike::CollectionSpec spec;
  spec.dim = 4;
  spec.metric = lookalike::Metric::kCosine;
  spec.index_spec = "Flat";
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
