#include "index/snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <utility>

#include "common/hash.h"

namespace lookalike {
namespace {

constexpr char kSnapshotMagic[8] = {'L', 'K', 'S', 'N', 'A', 'P', '0', '1'};
constexpr size_t kHeaderBytes = 8 + 3 * sizeof(uint64_t);  // magic, seq, payload bytes, checksum

// Detects truncation and flipped bytes in snapshot files.
uint64_t Checksum(const uint8_t* data, size_t n) { return Fnv1a64(data, n); }

void AppendU64(std::vector<uint8_t>* out, uint64_t value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out->insert(out->end(), p, p + sizeof(value));
}

// A failed system call on `path`: RESOURCE_EXHAUSTED naming the disk when it
// is full (ENOSPC, EDQUOT), so callers and clients see the same code as for a
// full SQLite database; INTERNAL otherwise.
Status IoError(const std::string& path, const std::string& what, int err) {
  if (err == ENOSPC || err == EDQUOT) {
    return ResourceExhaustedError(path + ": " + what + ": " + std::strerror(err) +
                                  " (the disk holding it is full)");
  }
  return InternalError(path + ": " + what + ": " + std::strerror(err));
}

Status WriteAll(int fd, const uint8_t* data, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError(path, "write failed", errno);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

struct Bytes {
  const uint8_t* data;
  size_t size;
};

// WriteFileDurably over several consecutive parts of the file.
Status WriteParts(const std::string& path, std::initializer_list<Bytes> parts) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError(tmp, "cannot create", errno);
  Status st;
  for (const Bytes& part : parts) {
    if (st.ok()) st = WriteAll(fd, part.data, part.size, tmp);
  }
  if (st.ok() && ::fsync(fd) != 0) {
    st = IoError(tmp, "fsync failed", errno);
  }
  ::close(fd);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    st = InternalError(path + ": rename failed: " + std::strerror(errno));
    ::unlink(tmp.c_str());
    return st;
  }
  const auto slash = path.find_last_of('/');
  return SyncDirectory(slash == std::string::npos ? "." : path.substr(0, slash));
}

}  // namespace

Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return InternalError(dir + ": cannot open directory: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int fsync_errno = errno;
  ::close(fd);
  if (rc != 0) return InternalError(dir + ": fsync failed: " + std::strerror(fsync_errno));
  return Status::Ok();
}

Status WriteFileDurably(const std::string& path, const std::vector<uint8_t>& bytes) {
  return WriteParts(path, {{bytes.data(), bytes.size()}});
}

Status WriteSnapshotFile(const std::string& path, int64_t seq,
                         const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> header(kSnapshotMagic, kSnapshotMagic + 8);
  AppendU64(&header, static_cast<uint64_t>(seq));
  AppendU64(&header, static_cast<uint64_t>(payload.size()));
  AppendU64(&header, Checksum(payload.data(), payload.size()));
  // Two parts: the payload (the whole index) is not copied.
  return WriteParts(path, {{header.data(), header.size()}, {payload.data(), payload.size()}});
}

StatusOr<SnapshotFile> ReadSnapshotFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": no snapshot");
  std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto corrupt = [&](const std::string& why) { return DataLossError(path + ": " + why); };
  if (file.size() < kHeaderBytes) return corrupt("snapshot truncated (header)");
  if (std::memcmp(file.data(), kSnapshotMagic, 8) != 0) return corrupt("not a snapshot file");
  uint64_t seq = 0, payload_bytes = 0, checksum = 0;
  std::memcpy(&seq, file.data() + 8, 8);
  std::memcpy(&payload_bytes, file.data() + 16, 8);
  std::memcpy(&checksum, file.data() + 24, 8);
  if (payload_bytes != file.size() - kHeaderBytes) {
    return corrupt("snapshot truncated: " + std::to_string(file.size() - kHeaderBytes) + " of " +
                   std::to_string(payload_bytes) + " payload bytes");
  }
  if (Checksum(file.data() + kHeaderBytes, payload_bytes) != checksum) {
    return corrupt("snapshot checksum mismatch");
  }
  SnapshotFile out;
  out.seq = static_cast<int64_t>(seq);
  file.erase(file.begin(), file.begin() + kHeaderBytes);  // in place: no second copy
  out.payload = std::move(file);
  return out;
}

}  // namespace lookalike
