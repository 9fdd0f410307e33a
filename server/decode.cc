#include "server/decode.h"

#include <gif_lib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace lookalike {
namespace {

uint32_t Be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t Be32(const uint8_t* p) { return (Be16(p) << 16) | Be16(p + 2); }
uint32_t Le16(const uint8_t* p) { return (uint32_t{p[1]} << 8) | p[0]; }
uint32_t Le24(const uint8_t* p) { return (uint32_t{p[2]} << 16) | Le16(p); }
uint32_t Le32(const uint8_t* p) { return (Le16(p + 2) << 16) | Le16(p); }

// width * height without overflow: header sizes are at most 2^32 - 1 each, so
// the product fits 64 unsigned bits (not always 63 signed ones).
uint64_t PixelCount(int64_t w, int64_t h) {
  return static_cast<uint64_t>(w) * static_cast<uint64_t>(h);
}

std::optional<ImageSize> Make(int64_t w, int64_t h) {
  if (w <= 0 || h <= 0) return std::nullopt;
  return ImageSize{w, h};
}

std::optional<ImageSize> ProbeJpeg(const uint8_t* p, size_t n) {
  size_t pos = 2;  // after SOI
  while (pos + 4 <= n) {
    if (p[pos] != 0xFF) return std::nullopt;
    uint8_t marker = p[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      pos += 2;
      continue;
    }
    const uint32_t len = Be16(p + pos + 2);
    if (len < 2) return std::nullopt;
    const bool sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      if (pos + 9 > n) return std::nullopt;
      return Make(Be16(p + pos + 7), Be16(p + pos + 5));
    }
    if (marker == 0xDA || marker == 0xD9) return std::nullopt;  // scan before frame header
    pos += 2 + len;
  }
  return std::nullopt;
}

// True when the JPEG's first scan (SOS) is followed somewhere by an EOI
// marker. libjpeg decodes a truncated file into a partly gray image with only
// a warning; this rejects it. Inside entropy-coded data 0xFF is always
// stuffed (FF 00) or a restart marker, so FF D9 there is the real end.
bool JpegComplete(const uint8_t* p, size_t n) {
  size_t pos = 2;
  while (pos + 4 <= n) {
    if (p[pos] != 0xFF) return false;
    const uint8_t marker = p[pos + 1];
    if (marker == 0xFF) {
      ++pos;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
      pos += 2;
      continue;
    }
    if (marker == 0xDA) {
      for (size_t i = pos + 2; i + 1 < n; ++i) {
        if (p[i] == 0xFF && p[i + 1] == 0xD9) return true;
      }
      return false;
    }
    pos += 2 + Be16(p + pos + 2);
  }
  return false;
}

std::optional<ImageSize> ProbeWebp(const uint8_t* p, size_t n) {
  if (n < 30) return std::nullopt;
  if (std::memcmp(p + 12, "VP8 ", 4) == 0) {
    if (p[23] != 0x9d || p[24] != 0x01 || p[25] != 0x2a) return std::nullopt;
    return Make(Le16(p + 26) & 0x3fff, Le16(p + 28) & 0x3fff);
  }
  if (std::memcmp(p + 12, "VP8L", 4) == 0) {
    if (p[20] != 0x2f) return std::nullopt;
    const uint32_t bits = Le32(p + 21);
    return Make((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1);
  }
  if (std::memcmp(p + 12, "VP8X", 4) == 0) {
    return Make(int64_t{Le24(p + 24)} + 1, int64_t{Le24(p + 27)} + 1);
  }
  return std::nullopt;
}

std::optional<ImageSize> ProbeTiff(const uint8_t* p, size_t n) {
  const bool le = p[0] == 'I';
  auto u16 = [&](size_t off) { return le ? Le16(p + off) : Be16(p + off); };
  auto u32 = [&](size_t off) { return le ? Le32(p + off) : Be32(p + off); };
  if (n < 8 || u16(2) != 42) return std::nullopt;  // BigTIFF (43) is left to OpenCV
  const size_t ifd = u32(4);
  if (ifd + 2 > n) return std::nullopt;
  const size_t count = u16(ifd);
  int64_t w = 0, h = 0;
  for (size_t i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + 12 * i;
    if (e + 12 > n) return std::nullopt;
    const uint32_t tag = u16(e), type = u16(e + 2);
    if (tag != 256 && tag != 257) continue;
    const int64_t v = type == 3 ? u16(e + 8) : type == 4 ? u32(e + 8) : -1;
    (tag == 256 ? w : h) = v;
  }
  return Make(w, h);
}

// ---- GIF (first frame) ------------------------------------------------------

struct GifReader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
};

int GifRead(GifFileType* gif, GifByteType* out, int want) {
  auto* r = static_cast<GifReader*>(gif->UserData);
  const size_t n = std::min<size_t>(static_cast<size_t>(want), r->size - r->pos);
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
  return static_cast<int>(n);
}

struct GifCloser {
  void operator()(GifFileType* gif) const {
    int error = 0;
    DGifCloseFile(gif, &error);
  }
};

StatusOr<DecodedImage> DecodeGif(std::string_view bytes, int64_t max_pixels) {
  const Status unsupported = InvalidArgumentError(kImageUnsupportedMessage);
  GifReader reader{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
  int error = 0;
  std::unique_ptr<GifFileType, GifCloser> gif(DGifOpen(&reader, GifRead, &error));
  if (!gif) return unsupported;
  int transparent = -1;
  for (;;) {
    GifRecordType type;
    if (DGifGetRecordType(gif.get(), &type) == GIF_ERROR) return unsupported;
    if (type == TERMINATE_RECORD_TYPE) return unsupported;  // no image at all
    if (type == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* ext = nullptr;
      if (DGifGetExtension(gif.get(), &code, &ext) == GIF_ERROR) return unsupported;
      if (code == GRAPHICS_EXT_FUNC_CODE && ext != nullptr && ext[0] >= 4 && (ext[1] & 1)) {
        transparent = ext[4];
      }
      while (ext != nullptr) {
        if (DGifGetExtensionNext(gif.get(), &ext) == GIF_ERROR) return unsupported;
      }
      continue;
    }
    if (type != IMAGE_DESC_RECORD_TYPE) continue;
    if (DGifGetImageDesc(gif.get()) == GIF_ERROR) return unsupported;
    const GifImageDesc& desc = gif->Image;
    const ColorMapObject* map = desc.ColorMap ? desc.ColorMap : gif->SColorMap;
    if (map == nullptr || desc.Width <= 0 || desc.Height <= 0) return unsupported;
    // Canvas: the logical screen, grown to hold the frame if the file lies.
    const int64_t cw = std::max<int64_t>(gif->SWidth, int64_t{desc.Left} + desc.Width);
    const int64_t ch = std::max<int64_t>(gif->SHeight, int64_t{desc.Top} + desc.Height);
    if (cw * ch > max_pixels) {
      return InvalidArgumentError(PixelLimitMessage(cw, ch, max_pixels));
    }
    DecodedImage image;
    image.width = static_cast<int>(cw);
    image.height = static_cast<int>(ch);
    image.rgb.assign(static_cast<size_t>(cw * ch * 3), 255);  // white background
    std::vector<GifPixelType> line(desc.Width);
    auto put_row = [&](int y) {
      uint8_t* row = image.rgb.data() + ((desc.Top + y) * cw + desc.Left) * 3;
      for (int x = 0; x < desc.Width; ++x) {
        const int index = line[x];
        if (index == transparent || index >= map->ColorCount) continue;
        const GifColorType& c = map->Colors[index];
        row[3 * x] = c.Red;
        row[3 * x + 1] = c.Green;
        row[3 * x + 2] = c.Blue;
      }
    };
    if (desc.Interlace) {
      static const int kStart[4] = {0, 4, 2, 1}, kStep[4] = {8, 8, 4, 2};
      for (int pass = 0; pass < 4; ++pass) {
        for (int y = kStart[pass]; y < desc.Height; y += kStep[pass]) {
          if (DGifGetLine(gif.get(), line.data(), desc.Width) == GIF_ERROR) return unsupported;
          put_row(y);
        }
      }
    } else {
      for (int y = 0; y < desc.Height; ++y) {
        if (DGifGetLine(gif.get(), line.data(), desc.Width) == GIF_ERROR) return unsupported;
        put_row(y);
      }
    }
    return image;
  }
}

// ---- OpenCV formats ---------------------------------------------------------

// Any OpenCV decode result -> RGB8 (see the header for the conversions).
StatusOr<DecodedImage> ToRgb8(cv::Mat mat) {
  if (mat.depth() == CV_16U) {
    mat.convertTo(mat, CV_8U, 1.0 / 257.0);
  } else if (mat.depth() == CV_32F || mat.depth() == CV_64F) {
    mat.convertTo(mat, CV_8U, 255.0);
  } else if (mat.depth() == CV_8S || mat.depth() == CV_16S || mat.depth() == CV_32S) {
    cv::normalize(mat, mat, 0, 255, cv::NORM_MINMAX, CV_8U);
  }
  cv::Mat rgb;
  switch (mat.channels()) {
    case 1:
      cv::cvtColor(mat, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 2: {  // gray + alpha
      std::vector<cv::Mat> planes;
      cv::split(mat, planes);
      cv::Mat out(mat.size(), CV_8UC3);
      for (int y = 0; y < out.rows; ++y) {
        const uint8_t* g = planes[0].ptr<uint8_t>(y);
        const uint8_t* a = planes[1].ptr<uint8_t>(y);
        uint8_t* o = out.ptr<uint8_t>(y);
        for (int x = 0; x < out.cols; ++x) {
          const int v = (g[x] * a[x] + 255 * (255 - a[x]) + 127) / 255;
          o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = static_cast<uint8_t>(v);
        }
      }
      rgb = out;
      break;
    }
    case 3:
      cv::cvtColor(mat, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4: {  // BGRA: composite on white
      rgb.create(mat.size(), CV_8UC3);
      for (int y = 0; y < mat.rows; ++y) {
        const uint8_t* s = mat.ptr<uint8_t>(y);
        uint8_t* o = rgb.ptr<uint8_t>(y);
        for (int x = 0; x < mat.cols; ++x) {
          const int a = s[4 * x + 3];
          for (int c = 0; c < 3; ++c) {
            o[3 * x + c] =
                static_cast<uint8_t>((s[4 * x + 2 - c] * a + 255 * (255 - a) + 127) / 255);
          }
        }
      }
      break;
    }
    default:
      return InvalidArgumentError("image has " + std::to_string(mat.channels()) +
                                  " channels; expected 1 to 4");
  }
  DecodedImage image;
  image.width = rgb.cols;
  image.height = rgb.rows;
  image.rgb.resize(static_cast<size_t>(rgb.cols) * rgb.rows * 3);
  for (int y = 0; y < rgb.rows; ++y) {
    std::memcpy(image.rgb.data() + static_cast<size_t>(y) * rgb.cols * 3, rgb.ptr<uint8_t>(y),
                static_cast<size_t>(rgb.cols) * 3);
  }
  return image;
}

}  // namespace

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kPng:
      return "png";
    case ImageFormat::kGif:
      return "gif";
    case ImageFormat::kBmp:
      return "bmp";
    case ImageFormat::kWebp:
      return "webp";
    case ImageFormat::kTiff:
      return "tiff";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

ImageFormat SniffImageFormat(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ImageFormat::kJpeg;
  if (n >= 8 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return ImageFormat::kPng;
  if (n >= 6 && (std::memcmp(p, "GIF87a", 6) == 0 || std::memcmp(p, "GIF89a", 6) == 0)) {
    return ImageFormat::kGif;
  }
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return ImageFormat::kBmp;
  if (n >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WEBP", 4) == 0) {
    return ImageFormat::kWebp;
  }
  if (n >= 4 && (std::memcmp(p, "II*\0", 4) == 0 || std::memcmp(p, "MM\0*", 4) == 0 ||
                 std::memcmp(p, "II+\0", 4) == 0 || std::memcmp(p, "MM\0+", 4) == 0)) {
    return ImageFormat::kTiff;
  }
  return ImageFormat::kUnknown;
}

std::optional<ImageSize> ProbeImageSize(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  switch (SniffImageFormat(bytes)) {
    case ImageFormat::kJpeg:
      return ProbeJpeg(p, n);
    case ImageFormat::kPng:
      if (n < 24 || std::memcmp(p + 12, "IHDR", 4) != 0) return std::nullopt;
      return Make(Be32(p + 16), Be32(p + 20));
    case ImageFormat::kGif:
      if (n < 10) return std::nullopt;
      return Make(Le16(p + 6), Le16(p + 8));
    case ImageFormat::kBmp: {
      if (n < 26) return std::nullopt;
      const uint32_t header = Le32(p + 14);
      if (header == 12) return Make(Le16(p + 18), Le16(p + 20));
      const int64_t h = static_cast<int32_t>(Le32(p + 22));  // negative: top-down
      return Make(static_cast<int32_t>(Le32(p + 18)), h < 0 ? -h : h);
    }
    case ImageFormat::kWebp:
      return ProbeWebp(p, n);
    case ImageFormat::kTiff:
      return ProbeTiff(p, n);
    case ImageFormat::kUnknown:
      break;
  }
  return std::nullopt;
}

std::string PixelLimitMessage(int64_t width, int64_t height, int64_t max_pixels) {
  return "image is " + std::to_string(width) + " x " + std::to_string(height) + " = " +
         std::to_string(PixelCount(width, height)) + " pixels, over the limit of " +
         std::to_string(max_pixels) + " pixels";
}

StatusOr<DecodedImage> DecodeImage(std::string_view bytes, int64_t max_pixels) {
  if (bytes.empty()) return InvalidArgumentError(kImageEmptyMessage);
  const ImageFormat format = SniffImageFormat(bytes);
  if (format == ImageFormat::kUnknown) return InvalidArgumentError(kImageUnsupportedMessage);
  if (std::optional<ImageSize> size = ProbeImageSize(bytes)) {
    if (PixelCount(size->width, size->height) > static_cast<uint64_t>(max_pixels)) {
      return InvalidArgumentError(PixelLimitMessage(size->width, size->height, max_pixels));
    }
  }
  StatusOr<DecodedImage> result = InvalidArgumentError(kImageUnsupportedMessage);
  if (format == ImageFormat::kJpeg &&
      !JpegComplete(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())) {
    return InvalidArgumentError(kImageUnsupportedMessage);
  }
  if (format == ImageFormat::kGif) {
    result = DecodeGif(bytes, max_pixels);
  } else {
    try {
      // cv::Mat over the caller's bytes, no copy; imdecode only reads it.
      const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                           const_cast<char*>(bytes.data()));
      // JPEG: IMREAD_COLOR applies EXIF orientation and converts gray/CMYK.
      // Others: IMREAD_UNCHANGED keeps alpha and 16-bit for our conversion.
      const int flags = format == ImageFormat::kJpeg ? cv::IMREAD_COLOR : cv::IMREAD_UNCHANGED;
      cv::Mat mat = cv::imdecode(buffer, flags);
      if (mat.empty() || mat.dims != 2) return InvalidArgumentError(kImageUnsupportedMessage);
      result = ToRgb8(std::move(mat));
    } catch (const cv::Exception& e) {
      // OpenCV's own size limit (validateInputImageSize) asserts.
      if (std::strstr(e.what(), "CV_IO_MAX_IMAGE_") != nullptr) {
        return InvalidArgumentError("image is over the pixel limit of " +
                                    std::to_string(max_pixels) + " pixels");
      }
      return InvalidArgumentError(kImageUnsupportedMessage);
    } catch (const std::exception& e) {  // e.g. std::bad_alloc on a hostile header
      return InvalidArgumentError(kImageUnsupportedMessage);
    }
  }
  if (!result.ok()) return result;
  if (int64_t{result->width} * result->height > max_pixels) {
    return InvalidArgumentError(PixelLimitMessage(result->width, result->height, max_pixels));
  }
  return result;
}

bool SetOpenCvPixelLimitEnv(int64_t max_pixels) {
  const std::string want = std::to_string(max_pixels);
  const char* have = std::getenv("OPENCV_IO_MAX_IMAGE_PIXELS");
  if (have != nullptr && want == have) return true;
  setenv("OPENCV_IO_MAX_IMAGE_PIXELS", want.c_str(), 1);
  return false;
}

DecodePool::DecodePool(int threads) : pool_(threads) {
  // The pool parallelizes across images; OpenCV's own thread pool inside each
  // decode would only oversubscribe the cores. (Process-wide: the server uses
  // OpenCV for decoding only.)
  cv::setNumThreads(1);
}

StatusOr<std::string> EncodeThumbnail(const DecodedImage& image, int max_side) {
  if (max_side < 1) {
    return InvalidArgumentError("thumbnail size " + std::to_string(max_side) + " is not positive");
  }
  if (image.width < 1 || image.height < 1 ||
      image.rgb.size() != static_cast<size_t>(image.width) * image.height * 3) {
    return InternalError("thumbnail of an empty or inconsistent image");
  }
  try {
    // OpenCV's view of our RGB buffer (read only); imencode wants BGR.
    const cv::Mat rgb(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.rgb.data()));
    const int longer = std::max(image.width, image.height);
    cv::Mat scaled = rgb;
    if (longer > max_side) {
      const double scale = static_cast<double>(max_side) / longer;
      const int w = std::max(1, static_cast<int>(std::lround(image.width * scale)));
      const int h = std::max(1, static_cast<int>(std::lround(image.height * scale)));
      cv::resize(rgb, scaled, cv::Size(w, h), 0, 0, cv::INTER_AREA);
    }
    cv::Mat bgr;
    cv::cvtColor(scaled, bgr, cv::COLOR_RGB2BGR);
    std::vector<uint8_t> jpeg;
    if (!cv::imencode(".jpg", bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, kThumbnailJpegQuality})) {
      return InternalError("encoding the thumbnail as JPEG failed");
    }
    return std::string(jpeg.begin(), jpeg.end());
  } catch (const cv::Exception& e) {
    return InternalError(std::string("making the thumbnail: ") + e.what());
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory making the thumbnail");
  }
}

namespace {

// One payload of DecodeAll: decoded, and its thumbnail when asked for.
StatusOr<DecodedImage> DecodeWithThumbnail(std::string_view payload, int64_t max_pixels,
                                           int thumbnail_size) {
  StatusOr<DecodedImage> decoded = DecodeImage(payload, max_pixels);
  if (!decoded.ok() || thumbnail_size <= 0) return decoded;
  StatusOr<std::string> thumbnail = EncodeThumbnail(*decoded, thumbnail_size);
  if (!thumbnail.ok()) return thumbnail.status();
  decoded->thumbnail = *std::move(thumbnail);
  return decoded;
}

}  // namespace

std::vector<StatusOr<DecodedImage>> DecodePool::DecodeAll(
    const std::vector<std::string_view>& payloads, int64_t max_pixels, int thumbnail_size) {
  std::vector<StatusOr<DecodedImage>> results(payloads.size(),
                                              StatusOr<DecodedImage>(InternalError("not run")));
  if (payloads.size() == 1) {  // no hand-off for the common single-image case
    results[0] = DecodeWithThumbnail(payloads[0], max_pixels, thumbnail_size);
    return results;
  }
  std::mutex mu;
  std::condition_variable done;
  size_t remaining = payloads.size();
  for (size_t i = 0; i < payloads.size(); ++i) {
    pool_.Submit([&, i] {
      StatusOr<DecodedImage> r = DecodeWithThumbnail(payloads[i], max_pixels, thumbnail_size);
      std::lock_guard<std::mutex> lock(mu);
      results[i] = std::move(r);
      if (--remaining == 0) done.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  done.wait(lock, [&] { return remaining == 0; });
  return results;
}

}  // namespace lookalike
