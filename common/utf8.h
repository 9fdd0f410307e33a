// UTF-8 encoding and validation, and JSON's one-character escapes, shared by
// the JSON readers and writers (models/json.cc, server/proto_json.cc) and the
// CLIP tokenizer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lookalike {

// Appends code point `cp` (at most 0x10FFFF) to `out` in UTF-8.
inline void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The length of the well-formed UTF-8 sequence of a non-ASCII character at
// s[0..n) (n > 0, s[0] >= 0x80): 2 to 4; 0 when it is not one (a stray or
// missing continuation byte, an overlong form, a surrogate, beyond 0x10FFFF).
inline size_t Utf8SequenceLength(const unsigned char* s, size_t n) {
  const unsigned char c = s[0];
  size_t len;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return len;
}

// The character JSON's escape `\e` stands for, for e one of " \ / b f n r t;
// '\0' for any other e ('u' starts a \uXXXX escape, the rest are errors).
inline char JsonEscapedChar(char e) {
  switch (e) {
    case '"':
    case '\\':
    case '/':
      return e;
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    default:
      return '\0';
  }
}

// Decodes the JSON escape that starts at `p` (just after its backslash) and
// appends the character, UTF-8 encoded, to `out`: the one-letter escapes and
// \uXXXX, where a high surrogate must be followed by \uXXXX with its low
// surrogate. Returns the position after the escape, or nullptr with `*error`
// saying what was wrong ("bad \\u escape", "lone high surrogate", ...).
inline const char* DecodeJsonEscape(const char* p, const char* end, std::string* out,
                                    const char** error) {
  if (p >= end) {
    *error = "unterminated escape";
    return nullptr;
  }
  const char e = *p++;
  if (const char plain = JsonEscapedChar(e)) {
    out->push_back(plain);
    return p;
  }
  if (e != 'u') {
    *error = "bad escape (JSON has \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)";
    return nullptr;
  }
  auto hex4 = [&](uint32_t* cp) {
    if (end - p < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = p[i];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    p += 4;
    *cp = v;
    return true;
  };
  uint32_t cp = 0;
  if (!hex4(&cp)) {
    *error = "bad \\u escape (four hex digits expected)";
    return nullptr;
  }
  if (cp >= 0xdc00 && cp <= 0xdfff) {
    *error = "lone low surrogate in a \\u escape";
    return nullptr;
  }
  if (cp >= 0xd800 && cp <= 0xdbff) {
    uint32_t low = 0;
    if (end - p < 2 || p[0] != '\\' || p[1] != 'u') {
      *error = "lone high surrogate in a \\u escape";
      return nullptr;
    }
    p += 2;
    if (!hex4(&low) || low < 0xdc00 || low > 0xdfff) {
      *error = "lone high surrogate in a \\u escape";
      return nullptr;
    }
    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
  }
  AppendUtf8(cp, out);
  return p;
}

}  // namespace lookalike
