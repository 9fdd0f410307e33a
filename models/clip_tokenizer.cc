#include "models/clip_tokenizer.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>

#include "common/utf8.h"
#include "models/clip_tokenizer_tables.h"
#include "models/json.h"

namespace lookalike {
namespace {

namespace tables = clip_tables;
using U32 = std::u32string;

// ---------------------------------------------------------------------------
// UTF-8
// ---------------------------------------------------------------------------

// Strict decoding, as Python's bytes.decode("utf-8") accepts it.
StatusOr<U32> DecodeUtf8(std::string_view s) {
  U32 out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b = p[i];
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    int len;
    char32_t cp;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
      cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      cp = b & 0x0F;
      if (b == 0xE0) lo = 0xA0;  // overlong
      if (b == 0xED) hi = 0x9F;  // surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      cp = b & 0x07;
      if (b == 0xF0) lo = 0x90;  // overlong
      if (b == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x", b);
      return InvalidArgumentError(std::string("text is not valid UTF-8: invalid start byte ") +
                                  hex + " at byte offset " + std::to_string(i));
    }
    for (int k = 1; k < len; ++k) {
      if (i + k >= n) {
        return InvalidArgumentError("text is not valid UTF-8: truncated sequence at byte offset " +
                                    std::to_string(i));
      }
      const unsigned char c = p[i + k];
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) {
        return InvalidArgumentError(
            "text is not valid UTF-8: invalid continuation byte at byte offset " +
            std::to_string(i + k));
      }
      cp = (cp << 6) | (c & 0x3F);
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

std::string EncodeUtf8(const char32_t* begin, const char32_t* end) {
  std::string out;
  out.reserve(end - begin);
  for (const char32_t* p = begin; p != end; ++p) AppendUtf8(*p, &out);
  return out;
}

// Appends the code points of a UTF-8 string from the generated tables (valid
// by construction).
void AppendDecoded(const char* utf8, U32* out) {
  StatusOr<U32> cps = DecodeUtf8(utf8);
  out->append(*cps);
}

// ---------------------------------------------------------------------------
// Table lookups
// ---------------------------------------------------------------------------

template <size_t N>
uint8_t RangeValue(const tables::CodePointRange (&ranges)[N], char32_t cp) {
  const auto* it =
      std::upper_bound(ranges, ranges + N, cp,
                       [](char32_t c, const tables::CodePointRange& r) { return c < r.first; });
  if (it == ranges) return 0;
  --it;
  return cp <= it->last ? it->value : 0;
}

template <size_t N>
const char* MappedString(const tables::CodePointString (&map)[N], char32_t cp) {
  const auto* it = std::lower_bound(
      map, map + N, cp, [](const tables::CodePointString& e, char32_t c) { return e.cp < c; });
  return it != map + N && it->cp == cp ? it->utf8 : nullptr;
}

template <size_t N>
const char* NamedValue(const tables::NamedString (&map)[N], const std::string& name) {
  const auto* it = std::lower_bound(map, map + N, name,
                                    [](const tables::NamedString& e, const std::string& key) {
                                      return std::strcmp(e.name, key.c_str()) < 0;
                                    });
  return it != map + N && name == it->name ? it->utf8 : nullptr;
}

bool IsPythonSpace(char32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
  return RangeValue(tables::kPythonSpace, cp) != 0;
}

// Applies a per-code-point translation (str.translate) in place.
template <size_t N>
void Translate(const tables::CodePointString (&map)[N], char32_t min_cp, U32* text) {
  size_t i = 0;
  for (; i < text->size() && ((*text)[i] < min_cp || !MappedString(map, (*text)[i])); ++i) {
  }
  if (i == text->size()) return;
  U32 out(text->begin(), text->begin() + i);
  for (; i < text->size(); ++i) {
    const char32_t cp = (*text)[i];
    const char* to = cp >= min_cp ? MappedString(map, cp) : nullptr;
    if (to) {
      AppendDecoded(to, &out);
    } else {
      out.push_back(cp);
    }
  }
  *text = std::move(out);
}

// ---------------------------------------------------------------------------
// Python's html.unescape (3.11)
// ---------------------------------------------------------------------------

bool IsAsciiDigit(char32_t c) { return c >= '0' && c <= '9'; }
bool IsAsciiHex(char32_t c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool IsAsciiAlnum(char32_t c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// html._replace_charref for a numeric reference whose value is `num`
// (saturated above U+10FFFF).
void AppendNumericCharref(uint64_t num, U32* out) {
  if (num < 0x110000) {
    if (const char* s = MappedString(tables::kHtmlInvalidCharrefs, static_cast<char32_t>(num))) {
      AppendDecoded(s, out);
      return;
    }
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out->push_back(0xFFFD);
    return;
  }
  if (RangeValue(tables::kHtmlInvalidCodepoints, static_cast<char32_t>(num))) return;
  out->push_back(static_cast<char32_t>(num));
}

// Python's html.unescape(s): the regex
//   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
// replaced by _replace_charref.
U32 PyHtmlUnescape(const U32& s) {
  if (s.find(U'&') == U32::npos) return s;
  U32 out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < n && s[j] == '#') {
      const bool hex = j + 1 < n && (s[j + 1] == 'x' || s[j + 1] == 'X');
      size_t k = hex ? j + 2 : j + 1;
      const size_t digits_begin = k;
      uint64_t num = 0;
      while (k < n && (hex ? IsAsciiHex(s[k]) : IsAsciiDigit(s[k]))) {
        const char32_t c = s[k];
        const uint64_t d = IsAsciiDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + d, 0x7FFFFFFF);
        ++k;
      }
      if (k == digits_begin) {  // no digits: no alternative matches
        out.push_back(s[i++]);
        continue;
      }
      if (k < n && s[k] == ';') ++k;
      AppendNumericCharref(num, &out);
      i = k;
      continue;
    }
    // Named: [^\t\n\f <&#;]{1,32};?
    size_t k = j;
    while (k < n && k - j < 32) {
      const char32_t c = s[k];
      if (c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' ||
          c == ';') {
        break;
      }
      ++k;
    }
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < n && s[k] == ';') ++k;
    // s[j, k) is the name (with its ';' if any).
    const std::string name = EncodeUtf8(s.data() + j, s.data() + k);
    if (const char* v = NamedValue(tables::kHtml5Entities, name)) {
      AppendDecoded(v, &out);
      i = k;
      continue;
    }
    // The longest prefix (of at least 2 code points) that is an entity.
    bool found = false;
    for (size_t len = k - j - 1; len >= 2 && len <= 32; --len) {
      const std::string prefix = EncodeUtf8(s.data() + j, s.data() + j + len);
      if (const char* v = NamedValue(tables::kHtml5Entities, prefix)) {
        AppendDecoded(v, &out);
        out.append(s, j + len, k - (j + len));
        found = true;
        break;
      }
    }
    if (!found) out.append(s, i, k - i);
    i = k;
  }
  return out;
}

// ---------------------------------------------------------------------------
// NFC (unicodedata.normalize("NFC", ...))
// ---------------------------------------------------------------------------

constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr int kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
              kSCount = kLCount * kNCount;

uint8_t CombiningClass(char32_t cp) {
  return cp < 0x300 ? 0 : RangeValue(tables::kCombiningClass, cp);
}

void AppendDecomposition(char32_t cp, U32* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const int s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out->push_back(kTBase + s % kTCount);
    return;
  }
  const auto* end = std::end(tables::kDecomposition);
  const auto* it = std::lower_bound(
      std::begin(tables::kDecomposition), end, cp,
      [](const tables::CodePointDecomposition& e, char32_t c) { return e.cp < c; });
  if (it == end || it->cp != cp) {
    out->push_back(cp);
    return;
  }
  for (int k = 0; k < tables::kMaxDecomposition && it->nfd[k]; ++k) out->push_back(it->nfd[k]);
}

// The primary composite of (a, b) or 0.
char32_t Compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto* end = std::end(tables::kComposition);
  const auto* it = std::lower_bound(
      std::begin(tables::kComposition), end, std::make_pair(a, b),
      [](const tables::CodePointComposition& e, const std::pair<char32_t, char32_t>& key) {
        return e.first != key.first ? e.first < key.first : e.second < key.second;
      });
  return it != end && it->first == a && it->second == b ? it->composed : 0;
}

// Code points that NFC may change or that may change their neighbour: those
// with a decomposition (Hangul syllables aside: they recompose to
// themselves), a non-zero combining class, or a place as the second of a
// composition (Hangul V and T jamo included). Text without any is NFC.
class NfcSensitive {
 public:
  NfcSensitive() : bits_(0x110000 / 64) {
    for (const auto& d : tables::kDecomposition) Set(d.cp);
    for (const auto& r : tables::kCombiningClass) {
      for (char32_t c = r.first; c <= r.last; ++c) Set(c);
    }
    for (const auto& c : tables::kComposition) Set(c.second);
    for (char32_t c = kVBase; c < kVBase + kVCount; ++c) Set(c);
    for (char32_t c = kTBase + 1; c < kTBase + kTCount; ++c) Set(c);
  }
  bool operator()(char32_t c) const { return c < 0x110000 && (bits_[c >> 6] >> (c & 63) & 1); }

 private:
  void Set(char32_t c) { bits_[c >> 6] |= uint64_t{1} << (c & 63); }
  std::vector<uint64_t> bits_;
};

U32 Nfc(const U32& text) {
  // Below U+0300 every code point is NFC and a starter that composes with
  // nothing below U+0300 (the generator checks this).
  static const NfcSensitive sensitive;
  if (std::none_of(text.begin(), text.end(),
                   [](char32_t c) { return c >= 0x300 && sensitive(c); })) {
    return text;
  }
  U32 d;
  d.reserve(text.size() + 8);
  for (char32_t c : text) AppendDecomposition(c, &d);
  // Canonical ordering: stable sort of each run of non-starters.
  for (size_t i = 0; i < d.size();) {
    if (CombiningClass(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && CombiningClass(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](char32_t x, char32_t y) { return CombiningClass(x) < CombiningClass(y); });
    i = j;
  }
  // Canonical composition.
  U32 out;
  out.reserve(d.size());
  ptrdiff_t starter = -1;
  int last_class = 0;
  for (char32_t c : d) {
    const int cc = CombiningClass(c);
    if (starter >= 0) {
      const bool adjacent = static_cast<ptrdiff_t>(out.size()) - 1 == starter;
      const bool blocked = !adjacent && (last_class == 0 || last_class >= cc);
      if (!blocked) {
        if (char32_t composed = Compose(out[starter], c)) {
          out[starter] = composed;
          continue;
        }
      }
    }
    if (cc == 0) starter = static_cast<ptrdiff_t>(out.size());
    last_class = cc;
    out.push_back(c);
  }
  return out;
}

// ---------------------------------------------------------------------------
// ftfy.fix_text (6.3.1, default configuration, without fix_encoding)
// ---------------------------------------------------------------------------

// ftfy.fixes.unescape_html: &#?[0-9A-Za-z]{1,24}; from ftfy's entity table,
// numeric references through html.unescape unless that leaves a ';'.
U32 FtfyUnescapeHtml(const U32& s) {
  if (s.find(U'&') == U32::npos) return s;
  U32 out;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != '&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < n && s[j] == '#') ++j;
    size_t k = j;
    while (k < n && IsAsciiAlnum(s[k])) ++k;
    if (k == j || k - j > 24 || k >= n || s[k] != ';') {
      out.push_back(s[i++]);
      continue;
    }
    ++k;  // the match is s[i, k)
    const U32 match = s.substr(i, k - i);
    const std::string name = EncodeUtf8(match.data(), match.data() + match.size());
    if (const char* v = NamedValue(tables::kFtfyEntities, name)) {
      AppendDecoded(v, &out);
    } else if (match[1] == '#') {
      const U32 unescaped = PyHtmlUnescape(match);
      out.append(unescaped.find(U';') == U32::npos ? unescaped : match);
    } else {
      out.append(match);
    }
    i = k;
  }
  return out;
}

// ftfy.fixes.fix_line_breaks.
void FixLineBreaks(U32* text) {
  U32 out;
  out.reserve(text->size());
  for (size_t i = 0; i < text->size(); ++i) {
    const char32_t c = (*text)[i];
    if (c == '\r') {
      if (i + 1 < text->size() && (*text)[i + 1] == '\n') ++i;
      out.push_back('\n');
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back('\n');
    } else {
      out.push_back(c);
    }
  }
  *text = std::move(out);
}

// ftfy.fixes.remove_terminal_escapes: \033\[((?:\d|;)*)([a-zA-Z]) with re's
// Unicode \d.
void RemoveTerminalEscapes(U32* text) {
  if (text->find(U'\033') == U32::npos) return;
  U32 out;
  const size_t n = text->size();
  for (size_t i = 0; i < n;) {
    const U32& s = *text;
    if (s[i] == 0x1B && i + 1 < n && s[i + 1] == '[') {
      size_t k = i + 2;
      while (k < n && (s[k] == ';' || RangeValue(tables::kReDigit, s[k]))) ++k;
      if (k < n && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z'))) {
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  *text = std::move(out);
}

// ftfy.fixes.remove_control_chars.
void RemoveControlChars(U32* text) {
  text->erase(std::remove_if(text->begin(), text->end(),
                             [](char32_t c) { return RangeValue(tables::kFtfyRemoved, c) != 0; }),
              text->end());
}

// ftfy's fix_and_explain on one segment: every fixer in order, then NFC,
// until nothing changes.
U32 FtfyFixSegment(U32 text, bool unescape_html) {
  while (true) {
    const U32 orig = text;
    if (unescape_html) text = FtfyUnescapeHtml(text);
    Translate(tables::kFtfyC1, 0x80, &text);
    Translate(tables::kFtfyLigatures, 0x80, &text);
    Translate(tables::kFtfyWidth, 0x3000, &text);
    Translate(tables::kFtfyQuotes, 0x2BC, &text);
    FixLineBreaks(&text);
    // fix_surrogates: valid UTF-8 holds no surrogates.
    RemoveTerminalEscapes(&text);
    RemoveControlChars(&text);
    text = Nfc(text);
    if (text == orig) return text;
  }
}

// ftfy.fix_text: segments end after each '\n' (or every 1,000,000 code
// points); "auto" HTML unescaping turns off for good at the first segment that
// holds '<'.
U32 FtfyFixText(const U32& text) {
  constexpr size_t kMaxDecodeLength = 1000000;
  U32 out;
  bool unescape_html = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t brk = text.find(U'\n', pos);
    brk = brk == U32::npos ? text.size() : brk + 1;
    if (brk - pos > kMaxDecodeLength) brk = pos + kMaxDecodeLength;
    U32 segment = text.substr(pos, brk - pos);
    if (unescape_html && segment.find(U'<') != U32::npos) unescape_html = false;
    out += FtfyFixSegment(std::move(segment), unescape_html);
    pos = brk;
  }
  return out;
}

// ---------------------------------------------------------------------------
// str.lower() with Final_Sigma
// ---------------------------------------------------------------------------

U32 PyLower(const U32& s) {
  U32 out;
  out.reserve(s.size());
  const size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
      continue;
    }
    if (c == 0x3A3) {
      auto context = [](char32_t x) { return RangeValue(tables::kSigmaContext, x); };
      ptrdiff_t j = static_cast<ptrdiff_t>(i) - 1;
      while (j >= 0 && context(s[j]) == 1) --j;
      bool final_sigma = j >= 0 && context(s[j]) == 2;
      if (final_sigma) {
        size_t k = i + 1;
        while (k < n && context(s[k]) == 1) ++k;
        final_sigma = k == n || context(s[k]) != 2;
      }
      out.push_back(final_sigma ? 0x3C2 : 0x3C3);
      continue;
    }
    const auto* end = std::end(tables::kLower);
    const auto* it =
        std::lower_bound(std::begin(tables::kLower), end, c,
                         [](const tables::CodePointLower& e, char32_t x) { return e.cp < x; });
    if (it == end || it->cp != c) {
      out.push_back(c);
      continue;
    }
    for (int k = 0; k < 3 && it->lower[k]; ++k) out.push_back(it->lower[k]);
  }
  return out;
}

// open_clip's _clean_lower: whitespace_clean(basic_clean(text)).lower().
U32 CleanLower(const U32& text) {
  U32 t = PyHtmlUnescape(PyHtmlUnescape(FtfyFixText(text)));
  // strip(), then " ".join(split()) (which also strips).
  U32 joined;
  joined.reserve(t.size());
  size_t i = 0;
  while (i < t.size()) {
    while (i < t.size() && IsPythonSpace(t[i])) ++i;
    if (i == t.size()) break;
    if (!joined.empty()) joined.push_back(' ');
    while (i < t.size() && !IsPythonSpace(t[i])) joined.push_back(t[i++]);
  }
  return PyLower(joined);
}

// ---------------------------------------------------------------------------
// Pre-tokenization (open_clip's regex, IGNORECASE)
// ---------------------------------------------------------------------------

constexpr uint8_t kLetter = 1, kNumber = 2, kOther = 4;

// The classes of U+0000..U+007F, looked up once.
struct AsciiTokenClasses {
  uint8_t value[128];
  AsciiTokenClasses() {
    for (char32_t c = 0; c < 128; ++c) value[c] = RangeValue(tables::kTokenClass, c);
  }
};

uint8_t TokenClass(char32_t cp) {
  static const AsciiTokenClasses ascii;
  return cp < 128 ? ascii.value[cp] : RangeValue(tables::kTokenClass, cp);
}

// `c` matches the pattern's letter `p` under IGNORECASE.
bool LiteralMatches(char32_t p, char32_t c) {
  if (c == p) return true;
  for (const auto& alt : tables::kLiteralAlternates) {
    if (alt[0] == p && alt[1] == c) return true;
  }
  return false;
}

// Length of the literal `lit` (ASCII) matched at s[i], or 0.
size_t MatchLiteral(const U32& s, size_t i, const char* lit) {
  const size_t len = std::strlen(lit);
  if (s.size() - i < len) return 0;
  for (size_t k = 0; k < len; ++k) {
    if (!LiteralMatches(static_cast<unsigned char>(lit[k]), s[i + k])) return 0;
  }
  return len;
}

constexpr char kStartOfText[] = "<start_of_text>";
constexpr char kEndOfText[] = "<end_of_text>";

// Calls emit(begin, end) for each match of re.findall, left to right.
template <typename Emit>
void PreTokenize(const U32& s, Emit emit) {
  static const char* const kAlternatives[] = {kStartOfText, kEndOfText, "'s",  "'t", "'re",
                                              "'ve",        "'m",       "'ll", "'d"};
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    if (s[i] == '<' || s[i] == '\'') {  // every literal alternative starts so
      for (const char* alt : kAlternatives) {
        if ((len = MatchLiteral(s, i, alt)) != 0) break;
      }
    }
    if (len == 0) {
      const uint8_t cls = TokenClass(s[i]);
      if (cls & kLetter) {
        len = 1;
        while (i + len < s.size() && (TokenClass(s[i + len]) & kLetter)) ++len;
      } else if (cls & kNumber) {
        len = 1;
      } else if (cls & kOther) {
        len = 1;
        while (i + len < s.size() && (TokenClass(s[i + len]) & kOther)) ++len;
      }
    }
    if (len == 0) {
      ++i;  // whitespace: no match here
      continue;
    }
    emit(s.data() + i, s.data() + i + len);
    i += len;
  }
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

// bytes_to_unicode(): the printable stand-in for each byte.
std::vector<char32_t> ByteToUnicode() {
  std::vector<char32_t> map(256, 0);
  std::vector<bool> printable(256, false);
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b) map[b] = printable[b] ? b : 256 + n++;
  return map;
}

// The order of bytes_to_unicode().values(): printable bytes first.
std::vector<int> ByteOrder() {
  std::vector<int> order;
  for (int b = '!'; b <= '~'; ++b) order.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) order.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) order.push_back(b);
  for (int b = 0; b < 256; ++b) {
    if (std::find(order.begin(), order.end(), b) == order.end()) order.push_back(b);
  }
  return order;
}

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The file's bytes, gunzipped when it starts with the gzip magic.
StatusOr<std::string> ReadMaybeGzip(const std::string& path) {
  if (!IsFile(path)) return NotFoundError("tokenizer file not found: " + path);
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f && !f.eof()) return DataLossError("cannot read " + path);
  std::string data = ss.str();
  if (data.size() < 2 || static_cast<unsigned char>(data[0]) != 0x1F ||
      static_cast<unsigned char>(data[1]) != 0x8B) {
    return data;
  }
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return InternalError("zlib inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(data.data());
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[1 << 16];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return DataLossError(path + ": corrupt gzip data (zlib: " +
                           (zs.msg ? std::string(zs.msg) : std::to_string(rc)) + ")");
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
  } while (rc != Z_STREAM_END);
  inflateEnd(&zs);
  return out;
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (true) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      lines.push_back(text.substr(pos));
      return lines;
    }
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
}

// Python's str.split() for the ASCII whitespace a merges line can hold.
std::vector<std::string_view> SplitWords(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  auto space = [](char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F);
  };
  while (i < line.size()) {
    while (i < line.size() && space(line[i])) ++i;
    const size_t b = i;
    while (i < line.size() && !space(line[i])) ++i;
    if (i > b) words.push_back(line.substr(b, i - b));
  }
  return words;
}

// Both readers take merges lines [1, 1 + kMaxMerges) of their file.
constexpr size_t kMaxMerges = 49152 - 256 - 2;

struct MergeLine {
  std::string left, right;
  size_t line;  // 1-based, for errors
};

// Parses the merge lines. With `vocab` (OpenCLIP), appends each merge's
// symbol to it, and an empty line adds an empty symbol (an id that matches
// nothing), as the reference does.
StatusOr<std::vector<MergeLine>> ParseMerges(std::string_view text, const std::string& path,
                                             std::vector<std::string>* vocab) {
  std::vector<std::string_view> lines = SplitLines(text);
  std::vector<MergeLine> merges;
  for (size_t i = 1; i < lines.size() && i <= kMaxMerges; ++i) {
    std::vector<std::string_view> words = SplitWords(lines[i]);
    if (words.empty()) {
      if (vocab) vocab->emplace_back();
      continue;
    }
    if (words.size() != 2) {
      return DataLossError(path + ": line " + std::to_string(i + 1) +
                           ": a merge is two symbols separated by a space");
    }
    merges.push_back({std::string(words[0]), std::string(words[1]), i + 1});
    if (vocab) vocab->push_back(merges.back().left + merges.back().right);
  }
  return merges;
}

}  // namespace

StatusOr<std::string> ClipTokenizer::CleanText(std::string_view utf8) {
  ASSIGN_OR_RETURN(U32 text, DecodeUtf8(utf8));
  const U32 clean = CleanLower(text);
  return EncodeUtf8(clean.data(), clean.data() + clean.size());
}

StatusOr<ClipTokenizer> ClipTokenizer::Load(const std::string& path) {
  // Which format: a directory or a vocab.json / merges.txt is Hugging Face's.
  std::string vocab_json, merges_txt;
  auto dir_of = [](const std::string& p) {
    const size_t slash = p.rfind('/');
    return slash == std::string::npos ? std::string(".") : p.substr(0, slash);
  };
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (IsDirectory(path)) {
    vocab_json = path + "/vocab.json";
    merges_txt = path + "/merges.txt";
  } else if (ends_with(path, "vocab.json")) {
    vocab_json = path;
    merges_txt = dir_of(path) + "/merges.txt";
  } else if (ends_with(path, "merges.txt")) {
    merges_txt = path;
    vocab_json = dir_of(path) + "/vocab.json";
  }

  std::unordered_map<std::string, int32_t> encoder;
  std::vector<MergeLine> merges;
  ClipTokenizer tok;
  if (!vocab_json.empty()) {
    // Hugging Face: ids from vocab.json, ranks from merges.txt (its text
    // stripped, then lines [1, 48895) as CLIPTokenizer reads them).
    ASSIGN_OR_RETURN(std::string json_text, ReadMaybeGzip(vocab_json));
    StatusOr<JsonValue> json = ParseJson(json_text);
    if (!json.ok()) return DataLossError(vocab_json + ": " + json.status().message());
    if (!json->is_object()) return DataLossError(vocab_json + ": expected a JSON object");
    for (const auto& [token, id] : json->members()) {
      if (!id.is_integer() || id.as_int() < 0 || id.as_int() >= INT32_MAX) {
        return DataLossError(vocab_json + ": id of \"" + token +
                             "\" is not a non-negative integer");
      }
      encoder[token] = static_cast<int32_t>(id.as_int());
      tok.vocab_size_ = std::max(tok.vocab_size_, static_cast<int32_t>(id.as_int()) + 1);
    }
    ASSIGN_OR_RETURN(std::string merges_text, ReadMaybeGzip(merges_txt));
    std::string_view stripped(merges_text);
    while (!stripped.empty() && std::isspace(static_cast<unsigned char>(stripped.front()))) {
      stripped.remove_prefix(1);
    }
    while (!stripped.empty() && std::isspace(static_cast<unsigned char>(stripped.back()))) {
      stripped.remove_suffix(1);
    }
    ASSIGN_OR_RETURN(merges, ParseMerges(stripped, merges_txt, nullptr));
  } else {
    // OpenCLIP: the vocabulary is the 256 byte symbols, the same ending a
    // word ("</w>"), one symbol per merge, then the special tokens.
    ASSIGN_OR_RETURN(std::string text, ReadMaybeGzip(path));
    if (!DecodeUtf8(text).ok()) return DataLossError(path + ": not UTF-8 text");
    const std::vector<char32_t> byte_to_unicode = ByteToUnicode();
    std::vector<std::string> vocab;
    for (int b : ByteOrder())
      vocab.push_back(EncodeUtf8(&byte_to_unicode[b], &byte_to_unicode[b] + 1));
    for (size_t i = 0; i < 256; ++i) vocab.push_back(vocab[i] + "</w>");
    ASSIGN_OR_RETURN(merges, ParseMerges(text, path, &vocab));
    vocab.push_back(kStartOfText);
    vocab.push_back(kEndOfText);
    for (size_t i = 0; i < vocab.size(); ++i) encoder[vocab[i]] = static_cast<int32_t>(i);
    tok.vocab_size_ = static_cast<int32_t>(vocab.size());
  }
  const std::string& source = vocab_json.empty() ? path : vocab_json;

  auto find = [&](const std::string& token) {
    auto it = encoder.find(token);
    return it == encoder.end() ? -1 : it->second;
  };
  tok.start_token_ = find(kStartOfText) >= 0 ? find(kStartOfText) : find("<|startoftext|>");
  tok.end_token_ = find(kEndOfText) >= 0 ? find(kEndOfText) : find("<|endoftext|>");
  if (tok.start_token_ < 0 || tok.end_token_ < 0) {
    return DataLossError(source +
                         ": no start/end token (<start_of_text>/<end_of_text> or "
                         "<|startoftext|>/<|endoftext|>)");
  }
  const std::vector<char32_t> byte_to_unicode = ByteToUnicode();
  for (int b = 0; b < 256; ++b) {
    const std::string sym = EncodeUtf8(&byte_to_unicode[b], &byte_to_unicode[b] + 1);
    tok.byte_id_[b] = find(sym);
    tok.byte_end_id_[b] = find(sym + "</w>");
    if (tok.byte_id_[b] < 0 || tok.byte_end_id_[b] < 0) {
      return DataLossError(source + ": the vocabulary lacks the symbol of byte " +
                           std::to_string(b));
    }
  }
  tok.cache_ = std::make_shared<PieceCache>();
  tok.merges_.reserve(merges.size() * 2);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const MergeLine& m = merges[rank];
    const int32_t left = find(m.left), right = find(m.right), merged = find(m.left + m.right);
    if (left < 0 || right < 0 || merged < 0) {
      return DataLossError((vocab_json.empty() ? path : merges_txt) + ": line " +
                           std::to_string(m.line) + ": merge \"" + m.left + " " + m.right +
                           "\" names a symbol outside the vocabulary");
    }
    const uint64_t key = (static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right);
    tok.merges_[key] = Merge{static_cast<int32_t>(rank), merged};  // last one wins, as in a dict
  }
  return tok;
}

// BPE results of pieces up to kMaxBytes long, in kShards independently
// locked maps of at most kMaxEntries each (a full shard starts over).
class ClipTokenizer::PieceCache {
 public:
  static constexpr size_t kMaxBytes = 64, kShards = 16, kMaxEntries = 8192;

  bool Find(std::string_view piece, std::vector<int32_t>* ids) {
    Shard& shard = ShardOf(piece);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(std::string(piece));  // C++17: no heterogeneous find
    if (it == shard.map.end()) return false;
    ids->insert(ids->end(), it->second.begin(), it->second.end());
    return true;
  }
  void Insert(std::string_view piece, const int32_t* begin, const int32_t* end) {
    Shard& shard = ShardOf(piece);
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.map.size() >= kMaxEntries) shard.map.clear();
    shard.map.emplace(std::string(piece), std::vector<int32_t>(begin, end));
  }

 private:
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  Shard& ShardOf(std::string_view piece) {
    return shards_[std::hash<std::string_view>()(piece) % kShards];
  }
  Shard shards_[kShards];
};

void ClipTokenizer::AppendPieceIds(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece == kStartOfText) {
    ids->push_back(start_token_);
    return;
  }
  if (piece == kEndOfText) {
    ids->push_back(end_token_);
    return;
  }
  if (piece.size() == 1) {
    ids->push_back(byte_end_id_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (piece.size() > PieceCache::kMaxBytes) {
    AppendPieceIdsUncached(piece, ids);
    return;
  }
  if (cache_->Find(piece, ids)) return;
  const size_t begin = ids->size();
  AppendPieceIdsUncached(piece, ids);
  cache_->Insert(piece, ids->data() + begin, ids->data() + ids->size());
}

void ClipTokenizer::AppendPieceIdsUncached(std::string_view piece,
                                           std::vector<int32_t>* ids) const {
  // The reference merges, while any adjacent pair has a rank, every
  // occurrence of the lowest-ranked pair, left to right without overlap. Done
  // here on a linked list with a heap of candidate pairs ordered by (rank,
  // position): all candidates of the lowest rank are merged as one batch in
  // position order, and only then are the pairs the batch created queued, so
  // the order of merges is exactly the reference's; O(n log n) rather than
  // the reference's O(n^2) on very long pieces.
  const int n = static_cast<int>(piece.size());
  std::vector<int32_t> sym(n);
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    const auto b = static_cast<unsigned char>(piece[i]);
    sym[i] = i + 1 == n ? byte_end_id_[b] : byte_id_[b];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int pos;  // the left node
    int32_t left, right, merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Candidate> heap;
  auto push_pair = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    const int32_t left = sym[pos], right = sym[next[pos]];
    auto it = merges_.find((static_cast<uint64_t>(left) << 32) | static_cast<uint32_t>(right));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, pos, left, right, it->second.merged});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int i = 0; i + 1 < n; ++i) push_pair(i);
  std::vector<int> merged_nodes;
  while (!heap.empty()) {
    const int32_t rank = heap.front().rank;
    merged_nodes.clear();
    while (!heap.empty() && heap.front().rank == rank) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>());
      const Candidate c = heap.back();
      heap.pop_back();
      // Stale when a merge consumed either node since it was queued.
      const int right = next[c.pos];
      if (sym[c.pos] != c.left || right < 0 || sym[right] != c.right) continue;
      sym[c.pos] = c.merged;
      sym[right] = -1;  // removed
      next[c.pos] = next[right];
      if (next[right] >= 0) prev[next[right]] = c.pos;
      merged_nodes.push_back(c.pos);
    }
    for (int pos : merged_nodes) {
      if (sym[pos] < 0) continue;
      push_pair(prev[pos]);
      push_pair(pos);
    }
  }
  for (int i = 0; i >= 0; i = next[i]) ids->push_back(sym[i]);
}

StatusOr<std::vector<int32_t>> ClipTokenizer::Encode(std::string_view utf8) const {
  ASSIGN_OR_RETURN(U32 text, DecodeUtf8(utf8));
  const U32 clean = CleanLower(text);
  std::vector<int32_t> ids;
  ids.reserve(clean.size() / 3 + 4);
  std::string piece;
  PreTokenize(clean, [&](const char32_t* begin, const char32_t* end) {
    piece.clear();
    for (const char32_t* p = begin; p != end; ++p) AppendUtf8(*p, &piece);
    AppendPieceIds(piece, &ids);
  });
  return ids;
}

StatusOr<std::vector<int32_t>> ClipTokenizer::Tokenize(std::string_view utf8,
                                                       int context_length) const {
  if (context_length < 1) {
    return InvalidArgumentError("context_length must be >= 1, got " +
                                std::to_string(context_length));
  }
  ASSIGN_OR_RETURN(std::vector<int32_t> encoded, Encode(utf8));
  std::vector<int32_t> ids;
  ids.reserve(std::max<size_t>(context_length, encoded.size() + 2));
  ids.push_back(start_token_);
  ids.insert(ids.end(), encoded.begin(), encoded.end());
  ids.push_back(end_token_);
  if (ids.size() > static_cast<size_t>(context_length)) {
    ids.resize(context_length);
    ids.back() = end_token_;
  }
  ids.resize(context_length, 0);
  return ids;
}

}  // namespace lookalike
