#include "common/file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace lookalike {

StatusOr<std::string> ReadSmallFile(const std::string& path, int64_t max_bytes) {
  errno = 0;
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) {
    const int err = errno;
    const std::string message = "cannot read \"" + path + "\": " + std::strerror(err);
    if (err == ENOENT) return NotFoundError(message);
    if (err == EACCES || err == EPERM) return Status(StatusCode::kPermissionDenied, message);
    return InvalidArgumentError(message);
  }
  std::string out;
  char buffer[16384];
  for (;;) {
    const size_t n = std::fread(buffer, 1, sizeof(buffer), file.get());
    out.append(buffer, n);
    if (static_cast<int64_t>(out.size()) > max_bytes) {
      return InvalidArgumentError("\"" + path + "\" is over " + std::to_string(max_bytes) +
                                  " bytes");
    }
    if (n < sizeof(buffer)) break;
  }
  if (std::ferror(file.get())) {
    // A directory opens but does not read (EISDIR).
    return InvalidArgumentError("cannot read \"" + path + "\": " + std::strerror(errno));
  }
  return out;
}

}  // namespace lookalike
