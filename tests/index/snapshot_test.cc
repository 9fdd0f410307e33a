// Durable files and the snapshot container (index/snapshot.h).
#include "index/snapshot.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "test_util.h"

namespace lookalike {
namespace {

using testing::TempDir;

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

// SyncDirectory used to swallow its errors (void, a log line at most).
TEST(SnapshotTest, SyncDirectoryReportsErrors) {
  TempDir dir;
  EXPECT_TRUE(SyncDirectory(dir.path()).ok());
  const Status missing = SyncDirectory(dir.path() + "/does-not-exist");
  EXPECT_EQ(missing.code(), StatusCode::kInternal);
  EXPECT_NE(missing.message().find("does-not-exist"), std::string::npos) << missing.ToString();
}

TEST(SnapshotTest, WriteFileDurablyReplacesAndReportsErrors) {
  TempDir dir;
  const std::string path = dir.path() + "/f";
  ASSERT_TRUE(WriteFileDurably(path, {1, 2, 3}).ok());
  ASSERT_TRUE(WriteFileDurably(path, {4, 5}).ok());
  EXPECT_EQ(ReadAll(path), (std::vector<uint8_t>{4, 5}));
  EXPECT_FALSE(std::ifstream(path + ".tmp").good());
  EXPECT_FALSE(WriteFileDurably(dir.path() + "/no/such/dir/f", {1}).ok());
}

TEST(SnapshotTest, RoundTripAndValidation) {
  TempDir dir;
  const std::string path = dir.path() + "/" + kSnapshotFileName;
  EXPECT_EQ(ReadSnapshotFile(path).status().code(), StatusCode::kNotFound);

  const std::vector<uint8_t> payload = {9, 8, 7, 6, 5};
  ASSERT_TRUE(WriteSnapshotFile(path, 42, payload).ok());
  auto read = ReadSnapshotFile(path);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->seq, 42);
  EXPECT_EQ(read->payload, payload);

  const std::vector<uint8_t> good = ReadAll(path);
  ASSERT_EQ(good.size(), 32u + payload.size());
  auto rewrite = [&](std::vector<uint8_t> bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  };
  std::vector<uint8_t> flipped = good;
  flipped.back() ^= 1;
  rewrite(flipped);
  EXPECT_EQ(ReadSnapshotFile(path).status().code(), StatusCode::kDataLoss);
  rewrite(std::vector<uint8_t>(good.begin(), good.end() - 1));
  EXPECT_EQ(ReadSnapshotFile(path).status().code(), StatusCode::kDataLoss);
  rewrite(std::vector<uint8_t>(good.begin(), good.begin() + 16));
  EXPECT_EQ(ReadSnapshotFile(path).status().code(), StatusCode::kDataLoss);
  std::vector<uint8_t> foreign = good;
  foreign[0] = 'X';
  rewrite(foreign);
  auto bad = ReadSnapshotFile(path);
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status().ToString();
}

}  // namespace
}  // namespace lookalike
