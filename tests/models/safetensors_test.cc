#include "models/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"

namespace lookalike {
namespace {

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/safetensors_test_" + std::to_string(::getpid()) + "_" + name;
}

// Writes [u64 header length][header][data] verbatim.
std::string WriteRaw(const std::string& name, const std::string& header,
                     const std::vector<uint8_t>& data, int64_t declared_len = -1) {
  const std::string path = TempPath(name);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  return path;
}

// Expects INVALID_ARGUMENT whose message names the file and contains `what`.
void ExpectBad(const std::string& path, const std::string& what) {
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok()) << path;
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument) << file.status().ToString();
  EXPECT_NE(file.status().message().find(path), std::string::npos) << file.status().ToString();
  EXPECT_NE(file.status().message().find(what), std::string::npos)
      << "expected '" << what << "' in: " << file.status().ToString();
}

TEST(SafetensorsTest, RoundTripsAllDtypes) {
  const std::vector<float> values = {1.0f, -2.5f, 0.0f, 3.14159f, 65504.0f, 1e-6f};
  std::vector<SafeTensorToWrite> tensors;
  tensors.push_back(MakeF32Tensor("a.f32", {2, 3}, values));
  SafeTensorToWrite h{"b.f16", SafeDType::kF16, {6}, {}};
  SafeTensorToWrite bf{"c.bf16", SafeDType::kBF16, {3, 2}, {}};
  for (float v : values) {
    const uint16_t hv = FloatToHalf(v), bv = FloatToBf16(v);
    h.bytes.push_back(hv & 0xff);
    h.bytes.push_back(hv >> 8);
    bf.bytes.push_back(bv & 0xff);
    bf.bytes.push_back(bv >> 8);
  }
  tensors.push_back(h);
  tensors.push_back(bf);
  tensors.push_back({"d.u8", SafeDType::kU8, {2, 2, 1}, {0, 7, 200, 255}});
  SafeTensorToWrite i32{"e.i32", SafeDType::kI32, {2}, std::vector<uint8_t>(8)};
  const int32_t iv[2] = {-5, 123456};
  std::memcpy(i32.bytes.data(), iv, 8);
  tensors.push_back(i32);
  tensors.push_back({"f.empty", SafeDType::kF32, {0, 4}, {}});
  const std::string path = TempPath("good.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, {{"format", "pt"}}).ok());

  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const SafetensorsFile& f = **file;
  EXPECT_EQ(f.names().size(), 6u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_NE(f.Find("a.f32"), nullptr);
  EXPECT_EQ(f.Find("a.f32")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.Find("missing"), nullptr);

  auto a = f.ReadF32("a.f32");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, values);
  auto b = f.ReadF32("b.f16");
  ASSERT_TRUE(b.ok());
  auto c = f.ReadF32("c.bf16");
  ASSERT_TRUE(c.ok());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_NEAR((*b)[i], values[i], std::fabs(values[i]) * 1e-3 + 1e-7) << i;
    EXPECT_NEAR((*c)[i], values[i], std::fabs(values[i]) * 8e-3 + 1e-9) << i;
  }
  EXPECT_EQ((*b)[4], 65504.0f);  // largest half, exact
  auto d = f.ReadU8("d.u8");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, (std::vector<uint8_t>{0, 7, 200, 255}));
  EXPECT_FALSE(f.ReadU8("a.f32").ok());
  auto e = f.ReadInt("e.i32");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, (std::vector<int64_t>{-5, 123456}));
  auto empty = f.ReadF32("f.empty");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
  auto missing = f.ReadF32("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  auto file = SafetensorsFile::Open(TempPath("does_not_exist.safetensors"));
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kNotFound);
  EXPECT_NE(file.status().message().find("does_not_exist"), std::string::npos);
}

TEST(SafetensorsTest, TruncatedFiles) {
  const std::string tiny = TempPath("tiny.safetensors");
  { std::ofstream(tiny, std::ios::binary) << "abc"; }
  ExpectBad(tiny, "truncated");
  // Header length larger than what follows.
  ExpectBad(WriteRaw("shortheader.safetensors", "{}", {}, 1000), "truncated: header length 1000");
  // Data cut off: the tensor's range runs past the end of the file.
  ExpectBad(
      WriteRaw("cutdata.safetensors", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
               std::vector<uint8_t>(10)),
      "out of range");
  ExpectBad(WriteRaw("zero.safetensors", "", {}), "header length is 0");
}

TEST(SafetensorsTest, BadJson) {
  ExpectBad(WriteRaw("badjson.safetensors", R"({"w": {"dtype": "F32", )", {}), "not valid JSON");
  ExpectBad(WriteRaw("array.safetensors", "[1, 2]", {}), "not an object");
  ExpectBad(WriteRaw("entry.safetensors", R"({"w": 5})", {}), "tensor 'w': entry is not an object");
  ExpectBad(WriteRaw("nodtype.safetensors", R"({"w":{"shape":[1],"data_offsets":[0,4]}})",
                     std::vector<uint8_t>(4)),
            "tensor 'w': missing or non-string 'dtype'");
  ExpectBad(WriteRaw("meta.safetensors", R"({"__metadata__":{"a":1}})", {}), "not a string");
}

TEST(SafetensorsTest, BadShapesAndDtypes) {
  ExpectBad(
      WriteRaw("dtype.safetensors", R"({"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})",
               std::vector<uint8_t>(1)),
      "unsupported dtype 'F8'");
  ExpectBad(
      WriteRaw("negshape.safetensors", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
               std::vector<uint8_t>(4)),
      "non-negative integers");
  // Byte range does not match dtype x shape (F16 {3} needs 6 bytes, not 12).
  ExpectBad(
      WriteRaw("size.safetensors", R"({"w":{"dtype":"F16","shape":[3],"data_offsets":[0,12]}})",
               std::vector<uint8_t>(12)),
      "tensor 'w': byte range [0, 12) holds 12 bytes but dtype F16 with shape [3] needs 6");
}

TEST(SafetensorsTest, BadOffsets) {
  ExpectBad(
      WriteRaw("range.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
               std::vector<uint8_t>(8)),
      "tensor 'w': data_offsets [8, 16] out of range: the data section has 8 bytes");
  ExpectBad(
      WriteRaw("order.safetensors", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})",
               std::vector<uint8_t>(8)),
      "begin > end");
  ExpectBad(WriteRaw("overlap.safetensors",
                     R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     std::vector<uint8_t>(12)),
            "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
  ExpectBad(
      WriteRaw("offsets.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})",
               std::vector<uint8_t>(4)),
      "'data_offsets' must be an array [begin, end]");
}

TEST(SafetensorsTest, CorruptedBytesNeverCrash) {
  // Random byte edits and truncations of a valid file: every Open either
  // fails with INVALID_ARGUMENT or yields tensors that read back in bounds.
  const std::string good = TempPath("fuzz_src.safetensors");
  ASSERT_TRUE(WriteSafetensors(good,
                               {MakeF32Tensor("a", {2, 3}, std::vector<float>(6, 1.0f)),
                                MakeF32Tensor("b.c", {4}, {1, 2, 3, 4})},
                               {{"k", "v"}})
                  .ok());
  std::ifstream in(good, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  std::mt19937 rng(11);
  const std::string path = TempPath("fuzz.safetensors");
  int rejected = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::vector<char> b = bytes;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      b[rng() % std::min<size_t>(b.size(), 160)] = static_cast<char>(rng() % 256);
    }
    if (iter % 4 == 0) b.resize(rng() % b.size());
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(b.data(), static_cast<std::streamsize>(b.size()));
    }
    auto f = SafetensorsFile::Open(path);
    if (!f.ok()) {
      EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << f.status().ToString();
      ++rejected;
      continue;
    }
    for (const std::string& name : (*f)->names()) {
      auto v = (*f)->ReadF32(name);
      ASSERT_TRUE(v.ok());
      EXPECT_EQ(v->size(), static_cast<size_t>((*f)->Find(name)->numel));
    }
  }
  EXPECT_GT(rejected, 100);
}

// A tensor's pages leave the resident set once it is read (a model's load
// peaks at its weights, not weights plus file); reading it, or a neighbour
// sharing a boundary page, again must give the same values from the file.
TEST(SafetensorsTest, ReadingTensorsAgainGivesTheSameValues) {
  std::vector<float> a(100003), b(70001);  // odd sizes: tensors share pages
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(static_cast<float>(i));
  for (size_t i = 0; i < b.size(); ++i) b[i] = std::cos(static_cast<float>(i)) * 3.f;
  const std::string path = TempPath("reread.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, {MakeF32Tensor("a", {static_cast<int64_t>(a.size())}, a),
                                      MakeF32Tensor("b", {static_cast<int64_t>(b.size())}, b)})
                  .ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  for (int round = 0; round < 3; ++round) {
    auto ra = (*file)->ReadF32("a");
    auto rb = (*file)->ReadF32("b");
    ASSERT_TRUE(ra.ok() && rb.ok());
    EXPECT_EQ(*ra, a) << "round " << round;
    EXPECT_EQ(*rb, b) << "round " << round;
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace lookalike
