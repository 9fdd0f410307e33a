#include "models/json.h"

#include <gtest/gtest.h>

namespace lookalike {
namespace {

TEST(JsonTest, ParsesValues) {
  auto v = ParseJson(R"( {"a": [1, -2, 3.5e2, 0], "b": {"c": "x\"y\u00e9\n"}, "t": true,
                         "f": false, "n": null, "big": 123456789012345} )");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_TRUE(v->is_object());
  const JsonValue* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items().size(), 4u);
  EXPECT_TRUE(a->items()[0].is_integer());
  EXPECT_EQ(a->items()[1].as_int(), -2);
  EXPECT_FALSE(a->items()[2].is_integer());
  EXPECT_DOUBLE_EQ(a->items()[2].as_double(), 350.0);
  EXPECT_EQ(v->Find("b")->Find("c")->as_string(), "x\"y\xc3\xa9\n");
  EXPECT_TRUE(v->Find("t")->as_bool());
  EXPECT_TRUE(v->Find("f")->is_bool());
  EXPECT_TRUE(v->Find("n")->is_null());
  EXPECT_EQ(v->Find("big")->as_int(), 123456789012345);
  EXPECT_EQ(v->Find("missing"), nullptr);
  EXPECT_EQ(v->members()[0].first, "a");  // document order
  auto again = ParseJson(v->Dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Dump(), v->Dump());
}

TEST(JsonTest, RejectsMalformed) {
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "{\"a\":1,}", "tru", "\"abc", "01", "1.",
                          "{} x", "\"\\q\"", "[1 2]", "-"}) {
    auto v = ParseJson(bad);
    EXPECT_FALSE(v.ok()) << "accepted: " << bad;
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(v.status().message().find("at byte"), std::string::npos);
    }
  }
  std::string deep(100, '[');
  EXPECT_FALSE(ParseJson(deep).ok());
}

// Found by tests/fuzz: 1e400 used to read as infinity (and dumped as "inf",
// which is no JSON).
TEST(JsonTest, RejectsNumbersBeyondDoubleRange) {
  for (const char* bad : {"1e400", "[0,-1e400]", "{\"eps\": 1e30551616}"}) {
    auto v = ParseJson(bad);
    ASSERT_FALSE(v.ok()) << "accepted: " << bad;
    EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(v.status().message().find("out of the range of a double"), std::string::npos)
        << v.status().ToString();
  }
  auto ok = ParseJson("[1.7976931348623157e308, 1e-400]");  // largest; underflow is 0
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->items()[1].as_double(), 0.0);
}

}  // namespace
}  // namespace lookalike
