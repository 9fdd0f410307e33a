#include "common/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace lookalike {
namespace {

// Decodes the escape after the backslash of `text`; "" and the error when refused.
std::string Decode(const std::string& text, std::string* error = nullptr, size_t* used = nullptr) {
  std::string out;
  const char* why = nullptr;
  const char* begin = text.data() + 1;  // after the backslash
  const char* next = DecodeJsonEscape(begin, text.data() + text.size(), &out, &why);
  if (next == nullptr) {
    if (error != nullptr) *error = why;
    return "";
  }
  if (used != nullptr) *used = static_cast<size_t>(next - text.data());
  return out;
}

TEST(DecodeJsonEscapeTest, OneLetterEscapes) {
  EXPECT_EQ(Decode("\\n"), "\n");
  EXPECT_EQ(Decode("\\\""), "\"");
  EXPECT_EQ(Decode("\\/"), "/");
  EXPECT_EQ(Decode("\\t"), "\t");
}

TEST(DecodeJsonEscapeTest, UnicodeEscapesBecomeUtf8) {
  size_t used = 0;
  EXPECT_EQ(Decode("\\u00e9rest", nullptr, &used), "\xc3\xa9");
  EXPECT_EQ(used, 6u);  // stops after the four hex digits
  EXPECT_EQ(Decode("\\u20AC"), "\xe2\x82\xac");
  // U+1F600 as a surrogate pair: one four-byte UTF-8 sequence.
  EXPECT_EQ(Decode("\\ud83d\\ude00", nullptr, &used), "\xf0\x9f\x98\x80");
  EXPECT_EQ(used, 12u);
}

TEST(DecodeJsonEscapeTest, MalformedEscapesAreNamed) {
  std::string error;
  EXPECT_EQ(Decode("\\x", &error), "");
  EXPECT_NE(error.find("bad escape"), std::string::npos) << error;
  EXPECT_EQ(Decode("\\", &error), "");
  EXPECT_EQ(error, "unterminated escape");
  EXPECT_EQ(Decode("\\u12g4", &error), "");
  EXPECT_NE(error.find("four hex digits"), std::string::npos) << error;
  EXPECT_EQ(Decode("\\u12", &error), "");
  EXPECT_NE(error.find("four hex digits"), std::string::npos) << error;
  EXPECT_EQ(Decode("\\udc00", &error), "");
  EXPECT_NE(error.find("lone low surrogate"), std::string::npos) << error;
  EXPECT_EQ(Decode("\\ud83dx", &error), "");
  EXPECT_NE(error.find("lone high surrogate"), std::string::npos) << error;
  EXPECT_EQ(Decode("\\ud83d\\u0041", &error), "");
  EXPECT_NE(error.find("lone high surrogate"), std::string::npos) << error;
}

}  // namespace
}  // namespace lookalike
