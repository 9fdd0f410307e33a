// faiss::IDSelector -> row allow-set conversion (CPU only).
#include "index/gpu/id_selector_bitset.h"

#include <gtest/gtest.h>

#include <vector>

namespace lookalike {
namespace {

bool Bit(const std::vector<uint32_t>& bits, int64_t r) { return (bits[r >> 5] >> (r & 31)) & 1u; }

class IdSelectorBitsetTest : public ::testing::Test {
 protected:
  // 70 rows labelled 100 + 3 * r (crosses two word boundaries).
  void SetUp() override {
    for (int r = 0; r < kRows; ++r) labels_.push_back(100 + 3 * r);
  }
  static constexpr int kRows = 70;
  std::vector<int64_t> labels_;
};

TEST_F(IdSelectorBitsetTest, Range) {
  faiss::IDSelectorRange sel(103, 130);  // labels 103..127 -> rows 1..9
  const auto bits = RowBitsetFromSelector(sel, labels_.data(), kRows);
  ASSERT_EQ(bits.size(), 3u);
  for (int r = 0; r < kRows; ++r) EXPECT_EQ(Bit(bits, r), r >= 1 && r <= 9) << r;
}

TEST_F(IdSelectorBitsetTest, Batch) {
  const int64_t ids[] = {100, 196, 304, 307, 5};  // rows 0, 32, 68, 69; 5 is absent
  faiss::IDSelectorBatch sel(5, ids);
  const auto bits = RowBitsetFromSelector(sel, labels_.data(), kRows);
  for (int r = 0; r < kRows; ++r) {
    EXPECT_EQ(Bit(bits, r), r == 0 || r == 32 || r == 68 || r == 69) << r;
  }
}

TEST_F(IdSelectorBitsetTest, BitmapOverLabels) {
  // Bitmap of 40 bytes covers labels 0..319; set labels 100 and 301.
  std::vector<uint8_t> map(40, 0);
  map[100 >> 3] |= 1 << (100 & 7);
  map[301 >> 3] |= 1 << (301 & 7);
  faiss::IDSelectorBitmap sel(map.size(), map.data());
  const auto bits = RowBitsetFromSelector(sel, labels_.data(), kRows);
  for (int r = 0; r < kRows; ++r) EXPECT_EQ(Bit(bits, r), r == 0 || r == 67) << r;
  // Labels past the bitmap are not members.
  std::vector<int64_t> big = {100, 5000};
  const auto b2 = RowBitsetFromSelector(sel, big.data(), 2);
  EXPECT_TRUE(Bit(b2, 0));
  EXPECT_FALSE(Bit(b2, 1));
}

TEST_F(IdSelectorBitsetTest, GenericSelectorsThroughIsMember) {
  const int64_t ids[] = {103, 106};
  faiss::IDSelectorArray arr(2, ids);
  faiss::IDSelectorNot inv(&arr);
  const auto bits = RowBitsetFromSelector(inv, labels_.data(), kRows);
  for (int r = 0; r < kRows; ++r) EXPECT_EQ(Bit(bits, r), r != 1 && r != 2) << r;
  // Unused high bits of the last word stay clear.
  EXPECT_EQ(bits[2] >> (kRows - 64), 0u);
}

}  // namespace
}  // namespace lookalike
