// libFuzzer target: image header sniffing, the header size probe and the whole
// decode path (OpenCV imgcodecs, giflib, the conversions to RGB8) on arbitrary
// bytes. Contract checked: no crash, and a decoded image is within the pixel
// limit with a buffer of exactly width * height * 3 bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/decode.h"

namespace {
// Small enough that a fuzzed header cannot make one input take seconds.
constexpr int64_t kMaxPixels = 1 << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)lookalike::ImageFormatName(lookalike::SniffImageFormat(bytes));
  (void)lookalike::ProbeImageSize(bytes);
  auto image = lookalike::DecodeImage(bytes, kMaxPixels);
  if (image.ok()) {
    const int64_t w = image->width, h = image->height;
    if (w <= 0 || h <= 0 || w * h > kMaxPixels) __builtin_trap();
    if (image->rgb.size() != static_cast<size_t>(w * h * 3)) __builtin_trap();
  } else if (image.status().code() != lookalike::StatusCode::kInvalidArgument) {
    __builtin_trap();  // decode.h: every error is INVALID_ARGUMENT
  }
  return 0;
}
