// Image decoding: encoded bytes -> 8-bit RGB, what models/ takes.
//
// Formats: JPEG (baseline/progressive, gray, CMYK; EXIF orientation applied),
// PNG (8/16-bit, gray, gray+alpha, RGBA, palette), WebP, BMP, TIFF (via
// OpenCV 4.6 imgcodecs) and GIF (first frame, via giflib: OpenCV 4.6 has no
// GIF decoder).
// Conversions: gray -> RGB; 16-bit -> 8-bit (value / 257, rounded); alpha is
// composited on a white background (so transparent regions look like the
// white page a browser shows them on), then dropped; CMYK JPEG -> RGB.
// Pixel limit: the header-declared size is checked before any pixel is
// decoded (JPEG, PNG, GIF, BMP, WebP, TIFF headers are parsed here), and
// OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS, read once when OpenCV is
// loaded; see SetOpenCvPixelLimitEnv) backs that up.
//
// Errors are INVALID_ARGUMENT with a message that does not name the item; the
// caller prefixes it ("items[3] (id \"x\"): ..."). Nothing here throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/backend.h"  // ImageView
#include "server/thread_pool.h"

namespace lookalike {

enum class ImageFormat { kUnknown, kJpeg, kPng, kGif, kBmp, kWebp, kTiff };
const char* ImageFormatName(ImageFormat format);  // "jpeg", "png", ...

// By magic bytes.
ImageFormat SniffImageFormat(std::string_view bytes);

// Width and height as declared by the file header (before any EXIF rotation);
// nullopt when the header is missing, truncated or not understood.
struct ImageSize {
  int64_t width = 0;
  int64_t height = 0;
};
std::optional<ImageSize> ProbeImageSize(std::string_view bytes);

// A decoded image: RGB8 interleaved, rows width*3 bytes apart.
struct DecodedImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
  // JPEG thumbnail (EncodeThumbnail) when DecodeAll was asked for one; else empty.
  std::string thumbnail;

  ImageView view() const { return ImageView{rgb.data(), width, height, width * 3}; }
};

// The exact messages, also used by tests.
inline constexpr const char* kImageEmptyMessage = "image is empty";
inline constexpr const char* kImageUnsupportedMessage =
    "image is truncated or not a supported format (JPEG, PNG, WebP, BMP, TIFF, GIF)";
// "image is W x H = N pixels, over the limit of M pixels"
std::string PixelLimitMessage(int64_t width, int64_t height, int64_t max_pixels);

// Decodes one image; max_pixels bounds width * height.
StatusOr<DecodedImage> DecodeImage(std::string_view bytes, int64_t max_pixels);

// JPEG quality of thumbnails: small files (about 13 KB at 256 px) without
// visible blocking at the size they are shown.
inline constexpr int kThumbnailJpegQuality = 85;

// A thumbnail of `image` (CollectionSpec::thumbnail_size): scaled with
// INTER_AREA (averaging, no aliasing when shrinking) so that its longer side
// is at most `max_side` pixels, aspect kept (each side rounded, at least 1),
// never enlarged; encoded as baseline JPEG at kThumbnailJpegQuality.
// INVALID_ARGUMENT when max_side < 1; INTERNAL when OpenCV fails.
StatusOr<std::string> EncodeThumbnail(const DecodedImage& image, int max_side);

// Sets OPENCV_IO_MAX_IMAGE_PIXELS in the environment. OpenCV reads it in a
// static initializer of libopencv_imgcodecs, i.e. when the library is loaded,
// so it only takes effect in a process started with it: lookalike-server
// calls this and re-executes itself when the value differs (server/main.cc).
// Returns true when the environment already had this value.
bool SetOpenCvPixelLimitEnv(int64_t max_pixels);

// Decodes several images in parallel on a pool of threads.
class DecodePool {
 public:
  // threads <= 0: one per core.
  explicit DecodePool(int threads);

  // results[i] is payloads[i] decoded, or its error. With thumbnail_size > 0
  // each decoded image also gets its thumbnail (EncodeThumbnail), made on the
  // same worker. Blocks until all are done; safe to call from many threads
  // at once.
  std::vector<StatusOr<DecodedImage>> DecodeAll(const std::vector<std::string_view>& payloads,
                                                int64_t max_pixels, int thumbnail_size = 0);

  int threads() const { return pool_.size(); }

 private:
  ThreadPool pool_;
};

}  // namespace lookalike
