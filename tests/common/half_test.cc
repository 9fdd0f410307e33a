// The one fp16 / bf16 converter (common/half.h), checked against known bit
// patterns and exhaustively over every finite half.
#include "common/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace lookalike {
namespace {

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.f), 0x7bff);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7c00);                // overflow -> inf
  EXPECT_EQ(FloatToHalf(5.9604645e-8f), 0x0001);       // smallest subnormal
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 2048), 0x3c00);  // tie -> even
  EXPECT_EQ(FloatToHalf(1.0f + 3.0f / 2048), 0x3c02);  // tie -> even (up)
  EXPECT_FLOAT_EQ(HalfToFloat(0x3555), 0.33325195f);
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_FLOAT_EQ(Bf16ToFloat(0x4049), 3.140625f);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-100.f, 100.f);
  for (int i = 0; i < 1000; ++i) {
    const float f = dist(rng);
    EXPECT_NEAR(RoundHalf(f), f, std::fabs(f) * (1.0f / 2048) + 1e-7f);
    EXPECT_NEAR(RoundBf16(f), f, std::fabs(f) * (1.0f / 256));
  }
}

TEST(HalfTest, EveryFiniteHalfRoundTrips) {
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7c00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_EQ(Bf16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(Bf16ToFloat(0xc0a0), -5.0f);
  // Every finite half survives half -> float -> half.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00) continue;
    ASSERT_EQ(FloatToHalf(HalfToFloat(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(FloatToHalf(1e6f), 0x7c00);
}

TEST(HalfTest, RoundHalfRoundsToNearestEven) {
  EXPECT_EQ(RoundHalf(1.f), 1.f);
  EXPECT_EQ(RoundHalf(1.f + std::ldexp(1.f, -11)), 1.f);  // halfway: to even
  EXPECT_EQ(RoundHalf(1.f + 3 * std::ldexp(1.f, -11)), 1.f + std::ldexp(1.f, -9));
  EXPECT_EQ(RoundHalf(1.f + std::ldexp(1.f, -10)), 1.f + std::ldexp(1.f, -10));
  EXPECT_EQ(RoundHalf(-0.1f), -0.0999755859375f);
  EXPECT_EQ(RoundHalf(65504.f), 65504.f);
  EXPECT_TRUE(std::isinf(RoundHalf(70000.f)));
  EXPECT_EQ(RoundHalf(std::ldexp(1.f, -24)), std::ldexp(1.f, -24));  // smallest subnormal
  EXPECT_EQ(RoundHalf(std::ldexp(1.f, -26)), 0.f);
}

TEST(HalfTest, NanStaysNan) {
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::nanf("")))));
}

}  // namespace
}  // namespace lookalike
