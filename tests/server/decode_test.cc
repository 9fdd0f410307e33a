#include "server/decode.h"

#include <gif_lib.h>
#include <gtest/gtest.h>
#include <jpeglib.h>
#include <png.h>
#include <stdio.h>  // jpeglib.h needs FILE

#include <array>
#include <cstdlib>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <vector>

namespace lookalike {
namespace {

constexpr int64_t kLimit = 1'000'000;

// A 40 x 24 (w x h) BGR test image: a red block in the top-left corner, a
// blue block top-right, green elsewhere. Asymmetric so rotations show.
cv::Mat TestImage() {
  cv::Mat bgr(24, 40, CV_8UC3, cv::Scalar(0, 200, 0));
  bgr(cv::Rect(0, 0, 10, 8)).setTo(cv::Scalar(0, 0, 255));   // red
  bgr(cv::Rect(30, 0, 10, 8)).setTo(cv::Scalar(255, 0, 0));  // blue
  return bgr;
}

std::string Encode(const cv::Mat& mat, const std::string& ext, std::vector<int> params = {}) {
  std::vector<uint8_t> buf;
  EXPECT_TRUE(cv::imencode(ext, mat, buf, params)) << ext;
  return std::string(buf.begin(), buf.end());
}

// RGB at (x, y).
std::array<int, 3> Px(const DecodedImage& image, int x, int y) {
  const uint8_t* p = image.rgb.data() + (static_cast<size_t>(y) * image.width + x) * 3;
  return {p[0], p[1], p[2]};
}

void ExpectNear(std::array<int, 3> got, std::array<int, 3> want, int tolerance) {
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(got[c], want[c], tolerance) << "channel " << c;
  }
}

DecodedImage MustDecode(const std::string& bytes, int64_t limit = kLimit) {
  StatusOr<DecodedImage> image = DecodeImage(bytes, limit);
  EXPECT_TRUE(image.ok()) << image.status().ToString();
  return image.ok() ? std::move(image).value() : DecodedImage{};
}

void ExpectTestImage(const DecodedImage& image, int tolerance) {
  ASSERT_EQ(image.width, 40);
  ASSERT_EQ(image.height, 24);
  ASSERT_EQ(image.rgb.size(), 40u * 24u * 3u);
  ExpectNear(Px(image, 4, 3), {255, 0, 0}, tolerance);
  ExpectNear(Px(image, 35, 3), {0, 0, 255}, tolerance);
  ExpectNear(Px(image, 20, 18), {0, 200, 0}, tolerance);
}

TEST(DecodeTest, LosslessFormatsAreExactRgb) {
  for (const char* ext : {".png", ".bmp", ".tiff"}) {
    SCOPED_TRACE(ext);
    const std::string bytes = Encode(TestImage(), ext);
    ExpectTestImage(MustDecode(bytes), 0);
    std::optional<ImageSize> size = ProbeImageSize(bytes);
    ASSERT_TRUE(size.has_value());
    EXPECT_EQ(size->width, 40);
    EXPECT_EQ(size->height, 24);
  }
  const std::string webp = Encode(TestImage(), ".webp", {cv::IMWRITE_WEBP_QUALITY, 101});
  EXPECT_EQ(SniffImageFormat(webp), ImageFormat::kWebp);
  ExpectTestImage(MustDecode(webp), 0);
  ASSERT_TRUE(ProbeImageSize(webp).has_value());
  EXPECT_EQ(ProbeImageSize(webp)->width, 40);
}

TEST(DecodeTest, LossyWebpAndJpeg) {
  const std::string jpeg = Encode(TestImage(), ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
  EXPECT_EQ(SniffImageFormat(jpeg), ImageFormat::kJpeg);
  ExpectTestImage(MustDecode(jpeg), 40);
  ASSERT_TRUE(ProbeImageSize(jpeg).has_value());
  EXPECT_EQ(ProbeImageSize(jpeg)->width, 40);
  EXPECT_EQ(ProbeImageSize(jpeg)->height, 24);
  const std::string webp = Encode(TestImage(), ".webp", {cv::IMWRITE_WEBP_QUALITY, 90});
  ExpectTestImage(MustDecode(webp), 40);
}

TEST(DecodeTest, GrayBecomesRgb) {
  cv::Mat gray(10, 12, CV_8UC1, cv::Scalar(77));
  for (const char* ext : {".png", ".jpg", ".bmp", ".tiff"}) {
    SCOPED_TRACE(ext);
    DecodedImage image = MustDecode(Encode(gray, ext));
    ASSERT_EQ(image.width, 12);
    ExpectNear(Px(image, 5, 5), {77, 77, 77}, 2);
  }
}

TEST(DecodeTest, SixteenBitScalesToEight) {
  cv::Mat deep(8, 8, CV_16UC3, cv::Scalar(0, 257 * 100, 65535));  // B, G, R
  for (const char* ext : {".png", ".tiff"}) {
    SCOPED_TRACE(ext);
    DecodedImage image = MustDecode(Encode(deep, ext));
    ExpectNear(Px(image, 3, 3), {255, 100, 0}, 0);
  }
  cv::Mat gray16(8, 8, CV_16UC1, cv::Scalar(257 * 30));
  ExpectNear(Px(MustDecode(Encode(gray16, ".png")), 1, 1), {30, 30, 30}, 0);
}

TEST(DecodeTest, AlphaIsCompositedOnWhite) {
  cv::Mat bgra(4, 3, CV_8UC4, cv::Scalar(0, 0, 200, 255));  // opaque red-ish
  bgra.at<cv::Vec4b>(0, 1) = cv::Vec4b(0, 0, 200, 0);       // fully transparent
  bgra.at<cv::Vec4b>(0, 2) = cv::Vec4b(0, 0, 200, 128);     // half
  for (const char* ext : {".png", ".webp", ".tiff"}) {
    SCOPED_TRACE(ext);
    std::vector<int> params;
    if (std::string(ext) == ".webp") params = {cv::IMWRITE_WEBP_QUALITY, 101};
    DecodedImage image = MustDecode(Encode(bgra, ext, params));
    ExpectNear(Px(image, 0, 0), {200, 0, 0}, 0);
    ExpectNear(Px(image, 1, 0), {255, 255, 255}, 0);
    // 200*128/255 + 255*127/255 = 100.4 + 127 = 227; 0 -> 127
    ExpectNear(Px(image, 2, 0), {227, 127, 127}, 1);
  }
  // Gray + alpha PNG (two channels; OpenCV cannot write it, libpng can).
  const uint8_t ga[8] = {10, 255, 0, 0, 0, 0, 0, 0};  // (0,0) opaque 10; rest transparent
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = 2;
  png.height = 2;
  png.format = PNG_FORMAT_GA;
  png_alloc_size_t size = 0;
  ASSERT_TRUE(png_image_write_to_memory(&png, nullptr, &size, 0, ga, 0, nullptr));
  std::string bytes(size, '\0');
  ASSERT_TRUE(png_image_write_to_memory(&png, bytes.data(), &size, 0, ga, 0, nullptr));
  bytes.resize(size);
  DecodedImage image = MustDecode(bytes);
  ExpectNear(Px(image, 0, 0), {10, 10, 10}, 0);
  ExpectNear(Px(image, 1, 1), {255, 255, 255}, 0);
}

// Inserts an APP1 EXIF segment with the given orientation after SOI.
std::string WithExifOrientation(const std::string& jpeg, int orientation) {
  std::string tiff;
  tiff += std::string("MM\0*", 4);
  tiff += std::string("\0\0\0\x08", 4);  // IFD at offset 8
  tiff += std::string("\0\x01", 2);      // one entry
  tiff += std::string("\x01\x12", 2);    // tag 0x0112 Orientation
  tiff += std::string("\0\x03", 2);      // SHORT
  tiff += std::string("\0\0\0\x01", 4);  // count 1
  tiff += std::string("\0", 1) + static_cast<char>(orientation) + std::string("\0\0", 2);
  tiff += std::string("\0\0\0\0", 4);  // no next IFD
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  const size_t len = payload.size() + 2;
  std::string app1 = "\xFF\xE1";
  app1 += static_cast<char>(len >> 8);
  app1 += static_cast<char>(len & 0xFF);
  app1 += payload;
  return jpeg.substr(0, 2) + app1 + jpeg.substr(2);
}

TEST(DecodeTest, JpegExifOrientationIsApplied) {
  const std::string jpeg = Encode(TestImage(), ".jpg", {cv::IMWRITE_JPEG_QUALITY, 95});
  // 6 = the stored image must be rotated 90 degrees clockwise to display.
  DecodedImage image = MustDecode(WithExifOrientation(jpeg, 6));
  ASSERT_EQ(image.width, 24);
  ASSERT_EQ(image.height, 40);
  // Top-left red block moves to the top-right; top-right blue to bottom-right.
  ExpectNear(Px(image, 20, 4), {255, 0, 0}, 40);
  ExpectNear(Px(image, 20, 35), {0, 0, 255}, 40);
  // 1 = as stored.
  ExpectTestImage(MustDecode(WithExifOrientation(jpeg, 1)), 40);
}

// GIF written with giflib into memory.
std::string MakeGif(bool interlace, bool two_frames) {
  std::string out;
  auto write = [](GifFileType* gif, const GifByteType* data, int n) {
    static_cast<std::string*>(gif->UserData)->append(reinterpret_cast<const char*>(data), n);
    return n;
  };
  int error = 0;
  GifFileType* gif = EGifOpen(&out, write, &error);
  EXPECT_NE(gif, nullptr);
  GifColorType colors[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {9, 9, 9}};
  ColorMapObject* map = GifMakeMapObject(4, colors);
  EGifSetGifVersion(gif, true);
  EXPECT_EQ(EGifPutScreenDesc(gif, 6, 5, 2, 0, map), GIF_OK);
  // Graphics control: index 3 is transparent.
  GifByteType gce[4] = {0x01, 0, 0, 3};
  EXPECT_EQ(EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, 4, gce), GIF_OK);
  EXPECT_EQ(EGifPutImageDesc(gif, 0, 0, 6, 5, interlace, nullptr), GIF_OK);
  // Row y has color index y % 3, except pixel (5, y) which is transparent.
  // With interlace, giflib expects rows in interlaced order.
  std::vector<int> order;
  if (interlace) {
    for (int y = 0; y < 5; y += 8) order.push_back(y);
    for (int y = 4; y < 5; y += 8) order.push_back(y);
    for (int y = 2; y < 5; y += 4) order.push_back(y);
    for (int y = 1; y < 5; y += 2) order.push_back(y);
  } else {
    order = {0, 1, 2, 3, 4};
  }
  for (int y : order) {
    GifPixelType row[6];
    for (int x = 0; x < 6; ++x) row[x] = static_cast<GifPixelType>(x == 5 ? 3 : y % 3);
    EXPECT_EQ(EGifPutLine(gif, row, 6), GIF_OK);
  }
  if (two_frames) {
    EXPECT_EQ(EGifPutImageDesc(gif, 0, 0, 6, 5, false, nullptr), GIF_OK);
    GifPixelType row[6] = {2, 2, 2, 2, 2, 2};
    for (int y = 0; y < 5; ++y) EXPECT_EQ(EGifPutLine(gif, row, 6), GIF_OK);
  }
  EXPECT_EQ(EGifCloseFile(gif, &error), GIF_OK);
  GifFreeMapObject(map);
  return out;
}

TEST(DecodeTest, GifFirstFrameWithTransparencyAndInterlace) {
  for (bool interlace : {false, true}) {
    SCOPED_TRACE(interlace ? "interlaced" : "progressive");
    const std::string gif = MakeGif(interlace, /*two_frames=*/true);
    EXPECT_EQ(SniffImageFormat(gif), ImageFormat::kGif);
    ASSERT_TRUE(ProbeImageSize(gif).has_value());
    EXPECT_EQ(ProbeImageSize(gif)->width, 6);
    DecodedImage image = MustDecode(gif);
    ASSERT_EQ(image.width, 6);
    ASSERT_EQ(image.height, 5);
    const std::array<int, 3> palette[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    for (int y = 0; y < 5; ++y) {
      ExpectNear(Px(image, 0, y), palette[y % 3], 0);
      ExpectNear(Px(image, 5, y), {255, 255, 255}, 0);  // transparent -> white
    }
  }
}

// A CMYK JPEG written with libjpeg (OpenCV only writes gray/BGR JPEG). libjpeg
// stores CMYK with an Adobe marker in the Adobe (inverted) convention, where
// 255 means no ink.
std::string MakeCmykJpeg(int w, int h, const uint8_t cmyk[4]) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = w;
  cinfo.image_height = h;
  cinfo.input_components = 4;
  cinfo.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&cinfo);
  jpeg_set_colorspace(&cinfo, JCS_CMYK);
  jpeg_set_quality(&cinfo, 95, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  std::vector<uint8_t> row(static_cast<size_t>(w) * 4);
  for (int x = 0; x < w; ++x) std::memcpy(&row[4 * x], cmyk, 4);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW rows[1] = {row.data()};
    jpeg_write_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string out(reinterpret_cast<char*>(buffer), size);
  free(buffer);
  return out;
}

TEST(DecodeTest, CmykJpegIsConverted) {
  const uint8_t white[4] = {255, 255, 255, 255};
  const uint8_t cyan[4] = {0, 255, 255, 255};
  const uint8_t black[4] = {255, 255, 255, 0};
  DecodedImage image = MustDecode(MakeCmykJpeg(16, 8, white));
  ASSERT_EQ(image.width, 16);
  ASSERT_EQ(image.height, 8);
  ExpectNear(Px(image, 8, 4), {255, 255, 255}, 8);
  ExpectNear(Px(MustDecode(MakeCmykJpeg(16, 8, cyan)), 8, 4), {0, 255, 255}, 8);
  ExpectNear(Px(MustDecode(MakeCmykJpeg(16, 8, black)), 8, 4), {0, 0, 0}, 8);
}

TEST(DecodeTest, BadInputsAreInvalidArgumentWithExactMessage) {
  auto message = [](const std::string& bytes, int64_t limit = kLimit) {
    StatusOr<DecodedImage> r = DecodeImage(bytes, limit);
    EXPECT_FALSE(r.ok());
    if (r.ok()) return std::string();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    return r.status().message();
  };
  EXPECT_EQ(message(""), "image is empty");
  const std::string unsupported = kImageUnsupportedMessage;
  EXPECT_EQ(message("hello, not an image"), unsupported);
  std::mt19937 rng(7);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  EXPECT_EQ(message(noise), unsupported);
  const std::string jpeg = Encode(TestImage(), ".jpg");
  EXPECT_EQ(message(jpeg.substr(0, jpeg.size() / 2)), unsupported);
  EXPECT_EQ(message(jpeg.substr(0, 40)), unsupported);
  EXPECT_EQ(message(jpeg.substr(0, 3)), unsupported);
  // JPEG magic, then noise.
  EXPECT_EQ(message("\xFF\xD8\xFF" + noise), unsupported);
  const std::string png = Encode(TestImage(), ".png");
  EXPECT_EQ(message(png.substr(0, png.size() / 2)), unsupported);
  EXPECT_EQ(message(png.substr(0, 30)), unsupported);
  const std::string gif = MakeGif(false, false);
  EXPECT_EQ(message(gif.substr(0, gif.size() / 2)), unsupported);
  const std::string webp = Encode(TestImage(), ".webp");
  EXPECT_EQ(message(webp.substr(0, webp.size() / 2)), unsupported);
}

TEST(DecodeTest, PixelLimitIsCheckedFromTheHeader) {
  cv::Mat big(100, 120, CV_8UC3, cv::Scalar(1, 2, 3));
  for (const char* ext : {".png", ".jpg", ".bmp", ".tiff", ".webp"}) {
    SCOPED_TRACE(ext);
    StatusOr<DecodedImage> r = DecodeImage(Encode(big, ext), 5000);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), PixelLimitMessage(120, 100, 5000));
    EXPECT_EQ(r.status().message(),
              "image is 120 x 100 = 12000 pixels, over the limit of 5000 pixels");
    EXPECT_TRUE(DecodeImage(Encode(big, ext), 12000).ok());
  }
  StatusOr<DecodedImage> r = DecodeImage(MakeGif(false, false), 29);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), PixelLimitMessage(6, 5, 29));
  // A header that claims 60000 x 60000 is refused before any pixel is read.
  std::string png = Encode(TestImage(), ".png");
  const unsigned char dims[8] = {0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60};
  png.replace(16, 8, reinterpret_cast<const char*>(dims), 8);
  r = DecodeImage(png, kLimit);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), PixelLimitMessage(60000, 60000, kLimit));
  // The largest header sizes (2^32 - 1 each, found by tests/fuzz): their
  // product overflows int64, and once wrapped negative it passed the check.
  const unsigned char max_dims[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  png.replace(16, 8, reinterpret_cast<const char*>(max_dims), 8);
  r = DecodeImage(png, kLimit);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            "image is 4294967295 x 4294967295 = 18446744065119617025 "
            "pixels, over the limit of " +
                std::to_string(kLimit) + " pixels");
}

TEST(DecodeTest, PoolDecodesInOrderWithPerItemErrors) {
  DecodePool pool(2);
  const std::string png = Encode(TestImage(), ".png");
  cv::Mat small(3, 5, CV_8UC3, cv::Scalar(0, 0, 0));
  const std::string small_png = Encode(small, ".png");
  std::vector<std::string_view> payloads = {png, "", small_png, "junk", png};
  std::vector<StatusOr<DecodedImage>> results = pool.DecodeAll(payloads, kLimit);
  ASSERT_EQ(results.size(), 5u);
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ(results[0]->width, 40);
  EXPECT_EQ(results[1].status().message(), "image is empty");
  ASSERT_TRUE(results[2].ok());
  EXPECT_EQ(results[2]->width, 5);
  EXPECT_EQ(results[3].status().message(), kImageUnsupportedMessage);
  EXPECT_TRUE(results[4].ok());
}

// Thumbnails: the longer side becomes max_side (rounded, aspect kept), never
// enlarged; colours and layout survive (RGB in, JPEG out); a bad size is refused.
TEST(DecodeTest, ThumbnailsShrinkKeepingAspectAndColours) {
  const DecodedImage image = MustDecode(Encode(TestImage(), ".png"));  // 40 x 24
  StatusOr<std::string> jpeg = EncodeThumbnail(image, 20);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status().ToString();
  EXPECT_EQ(SniffImageFormat(*jpeg), ImageFormat::kJpeg);
  DecodedImage thumb = MustDecode(*jpeg);
  EXPECT_EQ(thumb.width, 20);
  EXPECT_EQ(thumb.height, 12);
  ExpectNear(Px(thumb, 2, 1), {255, 0, 0}, 40);   // red top-left (not swapped to blue)
  ExpectNear(Px(thumb, 17, 1), {0, 0, 255}, 40);  // blue top-right
  ExpectNear(Px(thumb, 10, 9), {0, 200, 0}, 20);

  thumb = MustDecode(*EncodeThumbnail(image, 7));  // 24 * 7 / 40 = 4.2
  EXPECT_EQ(thumb.width, 7);
  EXPECT_EQ(thumb.height, 4);
  cv::Mat tall(300, 2, CV_8UC3, cv::Scalar(10, 20, 30));  // a side rounds to 0: kept at 1
  thumb = MustDecode(*EncodeThumbnail(MustDecode(Encode(tall, ".png")), 16));
  EXPECT_EQ(thumb.width, 1);
  EXPECT_EQ(thumb.height, 16);
  thumb = MustDecode(*EncodeThumbnail(image, 256));  // smaller than asked: as is
  EXPECT_EQ(thumb.width, 40);
  EXPECT_EQ(thumb.height, 24);

  EXPECT_EQ(EncodeThumbnail(image, 0).status().code(), StatusCode::kInvalidArgument);

  // The pool makes them beside the decode when asked, and only then.
  DecodePool pool(2);
  const std::string png = Encode(TestImage(), ".png");
  std::vector<std::string_view> payloads = {png, "junk", png};
  std::vector<StatusOr<DecodedImage>> results = pool.DecodeAll(payloads, kLimit, 10);
  ASSERT_TRUE(results[0].ok() && results[2].ok());
  EXPECT_FALSE(results[1].ok());
  EXPECT_EQ(MustDecode(results[0]->thumbnail).width, 10);
  EXPECT_EQ(results[0]->thumbnail, results[2]->thumbnail);  // deterministic
  EXPECT_TRUE(pool.DecodeAll({png}, kLimit)[0]->thumbnail.empty());
}

}  // namespace
}  // namespace lookalike
