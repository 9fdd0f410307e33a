// Reading a small file whole (certificates, keys, lists): one reader with
// one error wording.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace lookalike {

// The bytes of `path`, at most `max_bytes` of them. Errors name the file:
//   NOT_FOUND / PERMISSION_DENIED / INVALID_ARGUMENT
//   cannot read "/etc/x.pem": No such file or directory
//   "/dev/zero" is over 1048576 bytes
StatusOr<std::string> ReadSmallFile(const std::string& path, int64_t max_bytes = 1 << 20);

}  // namespace lookalike
