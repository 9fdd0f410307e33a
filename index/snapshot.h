// Durable files and the index snapshot container.
//
// WriteFileDurably is the one way index/ replaces a file so that a crash
// leaves either the old or the new contents: write <path>.tmp, fsync it,
// rename it over <path>, fsync the directory. SyncDirectory is that last step
// on its own (making a created, renamed or removed entry durable).
//
// Snapshot file (index.snap): a 32-byte header, then the payload.
//   bytes 0..7    magic "LKSNAP01"
//   bytes 8..15   storage sequence the snapshot covers (uint64, host order)
//   bytes 16..23  payload length in bytes (uint64)
//   bytes 24..31  FNV-1a 64 checksum of the payload (uint64)
// The payload is opaque here (DerivedIndex writes its slot table and the FAISS
// index bytes, see derived_index.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace lookalike {

// The snapshot's name in a collection directory.
inline constexpr const char* kSnapshotFileName = "index.snap";

// fsync of the directory `dir`. INTERNAL naming the directory when it cannot
// be opened (e.g. it does not exist) or the fsync fails.
[[nodiscard]] Status SyncDirectory(const std::string& dir);

// Replaces `path` with `bytes` atomically and durably (see above). On error
// <path>.tmp is removed and the old file, if any, is left in place; a full
// disk (ENOSPC, EDQUOT) is RESOURCE_EXHAUSTED naming the file, other I/O
// errors INTERNAL.
[[nodiscard]] Status WriteFileDurably(const std::string& path, const std::vector<uint8_t>& bytes);

// Writes a snapshot of `payload` covering storage sequence `seq` to `path`
// with WriteFileDurably.
[[nodiscard]] Status WriteSnapshotFile(const std::string& path, int64_t seq,
                                       const std::vector<uint8_t>& payload);

struct SnapshotFile {
  int64_t seq = 0;               // storage sequence covered
  std::vector<uint8_t> payload;  // checksum verified
};

// Reads and validates a snapshot file. NOT_FOUND when `path` does not exist;
// DATA_LOSS naming the path when it is truncated, has another magic or fails
// its checksum.
[[nodiscard]] StatusOr<SnapshotFile> ReadSnapshotFile(const std::string& path);

}  // namespace lookalike
