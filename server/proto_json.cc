#include "server/proto_json.h"

#include "common/utf8.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace lookalike {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Nesting deeper than this is left to protobuf's parser (and its limit).
constexpr int kMaxDepth = 64;

// Whether the direct reader and writer handle every field of `d` and of the
// messages it holds: no well-known types (their JSON forms are special), no
// groups.
bool DirectlyHandled(const Descriptor* d) {
  thread_local std::unordered_map<const Descriptor*, bool> cache;
  if (auto it = cache.find(d); it != cache.end()) return it->second;
  cache[d] = true;  // a recursive type refers back to itself: assume yes meanwhile
  bool ok = d->file()->package() != "google.protobuf";
  for (int i = 0; ok && i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->type() == FieldDescriptor::TYPE_GROUP) ok = false;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !DirectlyHandled(f->message_type())) {
      ok = false;
    }
  }
  cache[d] = ok;
  return ok;
}

// ------------------------------------------------------------------ base64
//
// Images travel as base64 in the JSON API, so these run over every byte of an
// image request: table lookups into a buffer sized once, no per-character
// branches (a branchy decoder mispredicts on base64's random-looking text
// and cost about 14 ns a character, 1 ms for a 50 KiB photo).

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void AppendBase64(const std::string& in, std::string* out) {
  const size_t n = in.size();
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  const size_t at = out->size();
  out->resize(at + (n + 2) / 3 * 4);
  char* o = out->data() + at;
  size_t i = 0;
  for (; i + 3 <= n; i += 3, o += 4) {
    const uint32_t v = (uint32_t{s[i]} << 16) | (uint32_t{s[i + 1]} << 8) | s[i + 2];
    o[0] = kBase64[v >> 18];
    o[1] = kBase64[(v >> 12) & 63];
    o[2] = kBase64[(v >> 6) & 63];
    o[3] = kBase64[v & 63];
  }
  if (n - i == 1) {
    const uint32_t v = uint32_t{s[i]} << 16;
    o[0] = kBase64[v >> 18];
    o[1] = kBase64[(v >> 12) & 63];
    o[2] = o[3] = '=';
  } else if (n - i == 2) {
    const uint32_t v = (uint32_t{s[i]} << 16) | (uint32_t{s[i + 1]} << 8);
    o[0] = kBase64[v >> 18];
    o[1] = kBase64[(v >> 12) & 63];
    o[2] = kBase64[(v >> 6) & 63];
    o[3] = '=';
  }
}

// Each character's 6-bit value, or-ed with kStandardOnly ('+', '/'),
// kUrlSafeOnly ('-', '_') or both (not base64): a text whose entries or-ed
// together carry both marks is not base64 in one alphabet.
constexpr uint8_t kStandardOnly = 64, kUrlSafeOnly = 128, kNotBase64 = kStandardOnly | kUrlSafeOnly;

struct Base64Table {
  uint8_t entry[256];
  constexpr Base64Table() : entry() {
    for (int c = 0; c < 256; ++c) entry[c] = kNotBase64;
    for (int v = 0; v < 62; ++v)
      entry[static_cast<unsigned char>(kBase64[v])] = static_cast<uint8_t>(v);
    entry['+'] = 62 | kStandardOnly;
    entry['/'] = 63 | kStandardOnly;
    entry['-'] = 62 | kUrlSafeOnly;
    entry['_'] = 63 | kUrlSafeOnly;
  }
};
constexpr Base64Table kBase64Values;

// Standard or URL-safe base64 (one alphabet, not mixed), padded or not, with
// zero bits after the last byte. False for anything else (left to protobuf,
// whose decoder is more lenient).
bool DecodeBase64(std::string_view in, std::string* out) {
  size_t padding = 0;
  while (!in.empty() && in.back() == '=') in.remove_suffix(1), ++padding;
  if (in.size() % 4 == 1) return false;
  if (padding > 0 && (in.size() + padding) % 4 != 0) return false;
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  out->resize(n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1));
  auto* o = reinterpret_cast<unsigned char*>(out->data());
  const uint8_t* value = kBase64Values.entry;
  uint8_t seen = 0;  // every entry or-ed: its marks
  size_t i = 0;
  for (; i + 4 <= n; i += 4, o += 3) {
    const uint8_t a = value[s[i]], b = value[s[i + 1]], c = value[s[i + 2]], d = value[s[i + 3]];
    seen |= a | b | c | d;
    const uint32_t v = (uint32_t{a & 63u} << 18) | (uint32_t{b & 63u} << 12) |
                       (uint32_t{c & 63u} << 6) | (d & 63u);
    o[0] = static_cast<unsigned char>(v >> 16);
    o[1] = static_cast<unsigned char>(v >> 8);
    o[2] = static_cast<unsigned char>(v);
  }
  if (n - i >= 2) {  // 2 or 3 characters: 1 or 2 bytes, then bits that must be zero
    const uint8_t a = value[s[i]], b = value[s[i + 1]], c = n - i == 3 ? value[s[i + 2]] : 0;
    seen |= a | b | c;
    const uint32_t v =
        (uint32_t{a & 63u} << 18) | (uint32_t{b & 63u} << 12) | (uint32_t{c & 63u} << 6);
    o[0] = static_cast<unsigned char>(v >> 16);
    if (n - i == 3) o[1] = static_cast<unsigned char>(v >> 8);
    if ((v & (n - i == 3 ? 0xffu : 0xffffu)) != 0) return false;
  }
  return (seen & kNotBase64) != kNotBase64;
}

// ------------------------------------------------------------------ reader

// A JSON number token, as written: sign, digits, whether it has a fraction
// or an exponent.
struct NumberToken {
  std::string_view text;
  bool integral = true;  // no '.', no exponent
};

class Reader {
 public:
  explicit Reader(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  Status ReadTop(Message* m) {
    SkipSpace();
    Status s = ReadMessage(m, 0);
    if (!s.ok()) return s;
    SkipSpace();
    if (p_ != end_) return Fail("unexpected text after the JSON object");
    return Status::Ok();
  }

 private:
  // Where in the message the reader is, for errors: "queries[0].vector".
  struct PathPart {
    const FieldDescriptor* field = nullptr;
    std::string_view key;  // an unknown field's name or a map key
    int64_t index = -1;    // element of a repeated field
  };

  std::string PathString() const {
    std::string s;
    for (const PathPart& p : path_) {
      if (p.field != nullptr && !p.field->is_map()) {
        if (!s.empty()) s += '.';
        s += p.field->json_name();
      } else if (p.field != nullptr) {
        if (!s.empty()) s += '.';
        s += p.field->json_name();
        s += "[\"" + std::string(p.key.substr(0, 64)) + "\"]";
        continue;
      } else {
        if (!s.empty()) s += '.';
        s += std::string(p.key.substr(0, 64));
      }
      if (p.index >= 0) s += "[" + std::to_string(p.index) + "]";
    }
    return s;
  }

  Status Fail(const std::string& what) const {
    const std::string path = PathString();
    return InvalidArgumentError(path.empty() ? what : path + ": " + what);
  }

  // A form the direct reader leaves to protobuf's parser (whose error, if
  // any, is then the one reported).
  Status Decline(const std::string& what) const {
    return UnimplementedError(PathString() + ": " + what);
  }

  // A short quote of the input at the current position, for errors.
  std::string Here() const {
    if (p_ >= end_) return "the end of the body";
    std::string_view rest(p_, static_cast<size_t>(end_ - p_));
    std::string q(rest.substr(0, 24));
    for (char& c : q) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
    }
    return "'" + q + (rest.size() > 24 ? "...'" : "'");
  }

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool Consume(char c) {
    SkipSpace();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }

  char Peek() {
    SkipSpace();
    return p_ < end_ ? *p_ : '\0';
  }

  // A JSON string (at '"') into `out`, escapes resolved, checked as UTF-8.
  Status ReadString(std::string* out) {
    if (Peek() != '"') return Fail("expected a string, found " + Here());
    ++p_;
    out->clear();
    while (true) {
      const char* start = p_;
      while (p_ < end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20 &&
             static_cast<unsigned char>(*p_) < 0x80) {
        ++p_;
      }
      out->append(start, static_cast<size_t>(p_ - start));
      if (p_ >= end_) return Fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return Status::Ok();
      }
      if (c < 0x20) return Fail("control character in a string (escape it)");
      if (c >= 0x80) {
        const size_t len =
            Utf8SequenceLength(reinterpret_cast<const unsigned char*>(p_), end_ - p_);
        if (len == 0) return Fail("a string is not valid UTF-8");
        out->append(p_, len);
        p_ += len;
        continue;
      }
      // A backslash.
      const char* error = nullptr;
      const char* next = DecodeJsonEscape(p_ + 1, end_, out, &error);
      if (next == nullptr) return Fail(std::string(error) + " in a string");
      p_ = next;
    }
  }

  // A number token by JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  bool ReadNumberToken(NumberToken* t) {
    SkipSpace();
    const char* start = p_;
    auto digits = [this] {
      const char* s = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
      return p_ - s;
    };
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ < end_ && *p_ == '0') {
      ++p_;
    } else if (digits() == 0) {
      p_ = start;
      return false;
    }
    t->integral = true;
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      t->integral = false;
      if (digits() == 0) return p_ = start, false;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      t->integral = false;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (digits() == 0) return p_ = start, false;
    }
    t->text = std::string_view(start, static_cast<size_t>(p_ - start));
    return true;
  }

  bool ReadLiteral(std::string_view word) {
    SkipSpace();
    if (static_cast<size_t>(end_ - p_) >= word.size() &&
        std::memcmp(p_, word.data(), word.size()) == 0) {
      p_ += word.size();
      return true;
    }
    return false;
  }

  // A plain integer (no fraction or exponent, no "-0", no leading zeros) in
  // [lo, hi], from a number token or (as protobuf allows) a string holding
  // one. Other forms protobuf also takes ("1.0", "1e2") are declined.
  template <typename T>
  Status ReadInteger(T* value) {
    std::string_view text;
    std::string quoted;
    if (Peek() == '"') {
      RETURN_IF_ERROR(ReadString(&quoted));
      text = quoted;
    } else {
      NumberToken t;
      if (!ReadNumberToken(&t)) return Fail("expected an integer, found " + Here());
      if (!t.integral) return Fail(std::string(t.text) + " is not an integer");
      text = t.text;
    }
    const bool canonical = !text.empty() && text != "-0" && !(text.size() > 1 && text[0] == '0') &&
                           !(text.size() > 2 && text[0] == '-' && text[1] == '0');
    T v{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (!canonical || end != text.data() + text.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range)) {
      return Fail("\"" + std::string(text.substr(0, 32)) + "\" is not an integer");
    }
    if (ec == std::errc::result_out_of_range) {
      return Fail(std::string(text.substr(0, 32)) + " is out of range for the field's type");
    }
    *value = v;
    return Status::Ok();
  }

  // A float or double: a number token, or "NaN", "Infinity", "-Infinity".
  // Integers beyond 2^24 (float) or 2^53 (double) and numbers as strings are
  // declined (protobuf's rules for them differ in detail).
  template <typename T>
  Status ReadFloating(T* value) {
    if (Peek() == '"') {
      std::string s;
      RETURN_IF_ERROR(ReadString(&s));
      if (s == "NaN") {
        *value = std::numeric_limits<T>::quiet_NaN();
      } else if (s == "Infinity") {
        *value = std::numeric_limits<T>::infinity();
      } else if (s == "-Infinity") {
        *value = -std::numeric_limits<T>::infinity();
      } else {
        return Decline("a number in a string");
      }
      return Status::Ok();
    }
    NumberToken t;
    if (!ReadNumberToken(&t)) return Fail("expected a number, found " + Here());
    const char* b = t.text.data();
    const char* e = b + t.text.size();
    if (t.integral) {
      // Protobuf reads an integer token as an int64 (so "-0" is 0) and
      // converts that; one beyond int64 it reads as a double (declined).
      int64_t i = 0;
      const auto [end, ec] = std::from_chars(b, e, i);
      if (ec != std::errc() || end != e) {
        return Decline(std::string(t.text.substr(0, 32)) + " as a floating-point number");
      }
      *value = static_cast<T>(i);
      return Status::Ok();
    }
    // Protobuf reads the number as a double, then narrows it to a float.
    double d = 0;
    const auto [end, ec] = std::from_chars(b, e, d);
    if (ec != std::errc() || end != e || !std::isfinite(d)) {
      return Fail(std::string(t.text.substr(0, 32)) + " is out of range for a double");
    }
    *value = static_cast<T>(d);
    // Narrowed like protobuf: what rounds to the largest float is that float.
    if (std::isinf(*value)) {
      return Fail(std::string(t.text.substr(0, 32)) + " is out of range for a float");
    }
    return Status::Ok();
  }

  Status ReadBool(bool* value) {
    if (ReadLiteral("true")) {
      *value = true;
    } else if (ReadLiteral("false")) {
      *value = false;
    } else {
      return Fail("expected true or false, found " + Here());
    }
    return Status::Ok();
  }

  Status ReadEnum(const FieldDescriptor* f, int* value) {
    if (Peek() == '"') {
      std::string name;
      RETURN_IF_ERROR(ReadString(&name));
      const EnumValueDescriptor* v = f->enum_type()->FindValueByName(name);
      if (v == nullptr) {
        return Fail("\"" + name.substr(0, 64) + "\" is not a value of " +
                    f->enum_type()->full_name());
      }
      *value = v->number();
      return Status::Ok();
    }
    int32_t n = 0;
    RETURN_IF_ERROR(ReadInteger(&n));
    // Proto3 enums are open: any number is kept. Proto2 ones are left to protobuf.
    if (f->enum_type()->FindValueByNumber(n) == nullptr &&
        f->enum_type()->file()->syntax() != google::protobuf::FileDescriptor::SYNTAX_PROTO3) {
      return Decline(std::to_string(n) + " is not a value of " + f->enum_type()->full_name());
    }
    *value = n;
    return Status::Ok();
  }

  // Base64 text needs no escapes: it is decoded where it lies in the body (an
  // image's text is most of a request). Text with escapes, or that is not
  // base64, goes the way of any string (unescaped first; its errors).
  Status ReadBytes(std::string* out) {
    if (Peek() != '"') return Fail("expected a string, found " + Here());
    const size_t left = static_cast<size_t>(end_ - p_ - 1);
    const auto* close = static_cast<const char*>(std::memchr(p_ + 1, '"', left));
    if (close != nullptr) {
      const std::string_view text(p_ + 1, static_cast<size_t>(close - p_ - 1));
      if (text.find('\\') == std::string_view::npos && DecodeBase64(text, out)) {
        p_ = close + 1;
        return Status::Ok();
      }
    }
    std::string unescaped;
    RETURN_IF_ERROR(ReadString(&unescaped));
    if (!DecodeBase64(unescaped, out)) return Fail("not base64");
    return Status::Ok();
  }

  // One value of a singular field, or an element of a repeated one.
  Status ReadValue(Message* m, const FieldDescriptor* f, bool element, int depth) {
    const Reflection* r = m->GetReflection();
    if (Peek() == 'n') return Decline("null");
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t v;
        RETURN_IF_ERROR(ReadInteger(&v));
        element ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        RETURN_IF_ERROR(ReadInteger(&v));
        element ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t v;
        RETURN_IF_ERROR(ReadInteger(&v));
        element ? r->AddUInt32(m, f, v) : r->SetUInt32(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v;
        RETURN_IF_ERROR(ReadInteger(&v));
        element ? r->AddUInt64(m, f, v) : r->SetUInt64(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_FLOAT: {
        float v;
        RETURN_IF_ERROR(ReadFloating(&v));
        element ? r->AddFloat(m, f, v) : r->SetFloat(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double v;
        RETURN_IF_ERROR(ReadFloating(&v));
        element ? r->AddDouble(m, f, v) : r->SetDouble(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool v;
        RETURN_IF_ERROR(ReadBool(&v));
        element ? r->AddBool(m, f, v) : r->SetBool(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        int v;
        RETURN_IF_ERROR(ReadEnum(f, &v));
        element ? r->AddEnumValue(m, f, v) : r->SetEnumValue(m, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string v;
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          RETURN_IF_ERROR(ReadBytes(&v));
        } else {
          RETURN_IF_ERROR(ReadString(&v));
        }
        element ? r->AddString(m, f, std::move(v)) : r->SetString(m, f, std::move(v));
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        Message* sub = element ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        RETURN_IF_ERROR(ReadMessage(sub, depth + 1));
        break;
      }
    }
    return Status::Ok();
  }

  // A repeated float field: the hot shape (vectors), without reflection per
  // element.
  Status ReadFloatArray(Message* m, const FieldDescriptor* f) {
    google::protobuf::MutableRepeatedFieldRef<float> values =
        m->GetReflection()->GetMutableRepeatedFieldRef<float>(m, f);
    path_.back().index = 0;
    if (Consume(']')) return Status::Ok();
    while (true) {
      float v;
      if (Peek() == 'n') return Decline("null");
      RETURN_IF_ERROR(ReadFloating(&v));
      values.Add(v);
      if (Consume(']')) return Status::Ok();
      if (!Consume(',')) return Fail("expected ',' or ']', found " + Here());
      ++path_.back().index;
    }
  }

  Status ReadArray(Message* m, const FieldDescriptor* f, int depth) {
    if (!Consume('[')) return Fail("expected an array, found " + Here());
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) return ReadFloatArray(m, f);
    path_.back().index = 0;
    if (Consume(']')) return Status::Ok();
    while (true) {
      RETURN_IF_ERROR(ReadValue(m, f, /*element=*/true, depth));
      if (Consume(']')) return Status::Ok();
      if (!Consume(',')) return Fail("expected ',' or ']', found " + Here());
      ++path_.back().index;
    }
  }

  Status ReadMap(Message* m, const FieldDescriptor* f, int depth) {
    if (!Consume('{')) return Fail("expected an object, found " + Here());
    if (Consume('}')) return Status::Ok();
    const Reflection* r = m->GetReflection();
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    std::unordered_set<std::string> keys;
    std::string key;
    while (true) {
      RETURN_IF_ERROR(ReadString(&key));
      if (!keys.insert(key).second) return Fail("map key \"" + key.substr(0, 64) + "\" repeated");
      path_.back().key = *keys.find(key);
      if (!Consume(':')) return Fail("expected ':', found " + Here());
      Message* entry = r->AddMessage(m, f);
      const Reflection* er = entry->GetReflection();
      // The key, as its field type reads it from a string.
      switch (key_field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING:
          er->SetString(entry, key_field, key);
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          if (key != "true" && key != "false") return Fail("map key is not true or false");
          er->SetBool(entry, key_field, key == "true");
          break;
        default: {
          // Integer keys: the same rules as integers in strings.
          Reader key_reader("\"" + key + "\"");
          key_reader.path_ = path_;
          Status s;
          switch (key_field->cpp_type()) {
            case FieldDescriptor::CPPTYPE_INT32: {
              int32_t v;
              s = key_reader.ReadInteger(&v);
              if (s.ok()) er->SetInt32(entry, key_field, v);
              break;
            }
            case FieldDescriptor::CPPTYPE_INT64: {
              int64_t v;
              s = key_reader.ReadInteger(&v);
              if (s.ok()) er->SetInt64(entry, key_field, v);
              break;
            }
            case FieldDescriptor::CPPTYPE_UINT32: {
              uint32_t v;
              s = key_reader.ReadInteger(&v);
              if (s.ok()) er->SetUInt32(entry, key_field, v);
              break;
            }
            case FieldDescriptor::CPPTYPE_UINT64: {
              uint64_t v;
              s = key_reader.ReadInteger(&v);
              if (s.ok()) er->SetUInt64(entry, key_field, v);
              break;
            }
            default:
              s = Fail("unsupported map key type");
          }
          RETURN_IF_ERROR(s);
        }
      }
      RETURN_IF_ERROR(ReadValue(entry, value_field, /*element=*/false, depth));
      if (Consume('}')) return Status::Ok();
      if (!Consume(',')) return Fail("expected ',' or '}', found " + Here());
    }
  }

  const FieldDescriptor* FindField(const Descriptor* d, std::string_view name) {
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (f->json_name() == name || f->name() == name) return f;
    }
    return nullptr;
  }

  Status ReadMessage(Message* m, int depth) {
    if (depth > kMaxDepth) return Fail("nested too deeply");
    if (!Consume('{')) return Fail("expected an object, found " + Here());
    if (Consume('}')) return Status::Ok();
    const Descriptor* d = m->GetDescriptor();
    // Fields and oneofs already given: a repeated one is left to protobuf.
    uint64_t seen_small = 0;
    std::vector<bool> seen_large;
    if (d->field_count() > 64) seen_large.resize(static_cast<size_t>(d->field_count()));
    std::vector<const FieldDescriptor*> oneof_set(static_cast<size_t>(d->oneof_decl_count()));
    std::string name;
    while (true) {
      RETURN_IF_ERROR(ReadString(&name));
      const FieldDescriptor* f = FindField(d, name);
      if (f == nullptr) {
        path_.push_back(PathPart{nullptr, name, -1});
        return Fail("unknown field of " + d->full_name());
      }
      const int i = f->index();
      const bool seen = i < 64 ? (seen_small >> i) & 1 : seen_large[static_cast<size_t>(i)];
      if (i < 64) {
        seen_small |= uint64_t{1} << i;
      } else {
        seen_large[static_cast<size_t>(i)] = true;
      }
      path_.push_back(PathPart{f, {}, -1});
      if (seen) return Fail("given twice");
      if (const google::protobuf::OneofDescriptor* o = f->real_containing_oneof()) {
        const FieldDescriptor*& other = oneof_set[static_cast<size_t>(o->index())];
        if (other != nullptr) {
          return Fail("oneof " + o->name() + " already set by " + other->json_name());
        }
        other = f;
      }
      if (!Consume(':')) return Fail("expected ':', found " + Here());
      if (Peek() == 'n') return Decline("null");
      if (f->is_map()) {
        RETURN_IF_ERROR(ReadMap(m, f, depth));
      } else if (f->is_repeated()) {
        RETURN_IF_ERROR(ReadArray(m, f, depth));
      } else {
        RETURN_IF_ERROR(ReadValue(m, f, /*element=*/false, depth));
      }
      path_.pop_back();
      if (Consume('}')) return Status::Ok();
      if (!Consume(',')) return Fail("expected ',' or '}', found " + Here());
    }
  }

  const char* p_;
  const char* end_;
  std::vector<PathPart> path_;
};

// ------------------------------------------------------------------ writer

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  bool WriteMessage(const Message& m) {
    const Reflection* r = m.GetReflection();
    std::vector<const FieldDescriptor*> fields;
    r->ListFields(m, &fields);
    out_->push_back('{');
    bool first = true;
    for (const FieldDescriptor* f : fields) {
      if (f->is_extension()) return false;
      if (!first) out_->push_back(',');
      first = false;
      out_->push_back('"');
      out_->append(f->json_name());  // lowerCamelCase letters and digits: nothing to escape
      out_->append("\":");
      if (f->is_map()) {
        if (!WriteMap(m, f)) return false;
      } else if (f->is_repeated()) {
        out_->push_back('[');
        const int n = r->FieldSize(m, f);
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
          const google::protobuf::RepeatedFieldRef<float> values =
              r->GetRepeatedFieldRef<float>(m, f);
          for (int i = 0; i < n; ++i) {
            if (i > 0) out_->push_back(',');
            WriteFloating(values.Get(i));
          }
        } else {
          for (int i = 0; i < n; ++i) {
            if (i > 0) out_->push_back(',');
            if (!WriteValue(m, f, i)) return false;
          }
        }
        out_->push_back(']');
      } else if (!WriteValue(m, f, -1)) {
        return false;
      }
    }
    out_->push_back('}');
    return true;
  }

 private:
  template <typename T>
  void WriteFloating(T v) {
    if (std::isnan(v)) {
      out_->append("\"NaN\"");
    } else if (std::isinf(v)) {
      out_->append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else if (v == 0 && std::signbit(v)) {
      out_->append("-0.0");  // "-0" reads back as the integer 0, without the sign
    } else {
      char buf[32];
      const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
      out_->append(buf, static_cast<size_t>(end - buf));
    }
  }

  template <typename T>
  void WriteInteger(T v, bool quoted) {
    char buf[24];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
    if (quoted) out_->push_back('"');
    out_->append(buf, static_cast<size_t>(end - buf));
    if (quoted) out_->push_back('"');
  }

  // A JSON string; false when `s` is not valid UTF-8.
  bool WriteString(const std::string& s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out_->push_back('"');
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
      const size_t start = i;
      while (i < n && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') ++i;
      out_->append(s, start, i - start);
      if (i >= n) break;
      const unsigned char c = p[i];
      if (c >= 0x80) {
        const size_t len = Utf8SequenceLength(p + i, n - i);
        if (len == 0) return false;
        out_->append(s, i, len);
        i += len;
        continue;
      }
      ++i;
      switch (c) {
        case '"':
          out_->append("\\\"");
          break;
        case '\\':
          out_->append("\\\\");
          break;
        case '\n':
          out_->append("\\n");
          break;
        case '\r':
          out_->append("\\r");
          break;
        case '\t':
          out_->append("\\t");
          break;
        case '\b':
          out_->append("\\b");
          break;
        case '\f':
          out_->append("\\f");
          break;
        default: {
          const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
          out_->append(u, 6);
        }
      }
    }
    out_->push_back('"');
    return true;
  }

  // Field `f` of `m`: its element `index`, or the singular value (index -1).
  bool WriteValue(const Message& m, const FieldDescriptor* f, int index) {
    const Reflection* r = m.GetReflection();
    const bool rep = index >= 0;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        WriteInteger(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), false);
        return true;
      case FieldDescriptor::CPPTYPE_UINT32:
        WriteInteger(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), false);
        return true;
      case FieldDescriptor::CPPTYPE_INT64:
        WriteInteger(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), true);
        return true;
      case FieldDescriptor::CPPTYPE_UINT64:
        WriteInteger(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), true);
        return true;
      case FieldDescriptor::CPPTYPE_FLOAT:
        WriteFloating(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
        return true;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        WriteFloating(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
        return true;
      case FieldDescriptor::CPPTYPE_BOOL:
        out_->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
        return true;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const int v = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
        if (const EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(v)) {
          out_->push_back('"');
          out_->append(e->name());  // an identifier: nothing to escape
          out_->push_back('"');
        } else {
          WriteInteger(v, false);
        }
        return true;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                   : r->GetStringReference(m, f, &scratch);
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          out_->push_back('"');
          AppendBase64(s, out_);
          out_->push_back('"');
          return true;
        }
        return WriteString(s);
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return WriteMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
    }
    return false;
  }

  // A map as a JSON object. Reflection sees a map as its repeated entries,
  // where a message built through reflection may repeat a key: the last
  // entry wins, as in the map itself.
  bool WriteMap(const Message& m, const FieldDescriptor* f) {
    const Reflection* r = m.GetReflection();
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    const int n = r->FieldSize(m, f);
    std::vector<std::string> keys(static_cast<size_t>(n));
    std::unordered_map<std::string_view, int> last;
    for (int i = 0; i < n; ++i) {
      const Message& entry = r->GetRepeatedMessage(m, f, i);
      const Reflection* er = entry.GetReflection();
      std::string& key = keys[static_cast<size_t>(i)];
      switch (key_field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING:
          key = er->GetString(entry, key_field);
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          key = er->GetBool(entry, key_field) ? "true" : "false";
          break;
        case FieldDescriptor::CPPTYPE_INT32:
          key = std::to_string(er->GetInt32(entry, key_field));
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          key = std::to_string(er->GetInt64(entry, key_field));
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          key = std::to_string(er->GetUInt32(entry, key_field));
          break;
        case FieldDescriptor::CPPTYPE_UINT64:
          key = std::to_string(er->GetUInt64(entry, key_field));
          break;
        default:
          return false;
      }
    }
    for (int i = 0; i < n; ++i) last[keys[static_cast<size_t>(i)]] = i;
    out_->push_back('{');
    bool first = true;
    for (int i = 0; i < n; ++i) {
      if (last[keys[static_cast<size_t>(i)]] != i) continue;
      if (!first) out_->push_back(',');
      first = false;
      if (!WriteString(keys[static_cast<size_t>(i)])) return false;
      out_->push_back(':');
      if (!WriteValue(r->GetRepeatedMessage(m, f, i), value_field, -1)) return false;
    }
    out_->push_back('}');
    return true;
  }

  std::string* out_;
};

}  // namespace

namespace proto_json_internal {

Status ReadDirect(std::string_view json, Message* message) {
  message->Clear();
  if (!DirectlyHandled(message->GetDescriptor())) {
    return UnimplementedError(message->GetDescriptor()->full_name() + " holds well-known types");
  }
  return Reader(json).ReadTop(message);
}

bool WriteDirect(const Message& message, std::string* json) {
  json->clear();
  if (!DirectlyHandled(message.GetDescriptor())) return false;
  return Writer(json).WriteMessage(message);
}

}  // namespace proto_json_internal

Status JsonToMessage(std::string_view json, Message* message) {
  const Status direct = proto_json_internal::ReadDirect(json, message);
  if (direct.ok()) return direct;
  // Declined: protobuf's parser decides.
  message->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), message, options);
  if (parsed.ok()) return Status::Ok();
  message->Clear();
  if (direct.code() == StatusCode::kInvalidArgument) return direct;
  return InvalidArgumentError(std::string(parsed.message()) + " (near " + direct.message() + ")");
}

Status MessageToJson(const Message& message, std::string* json) {
  if (proto_json_internal::WriteDirect(message, json)) return Status::Ok();
  json->clear();
  const auto printed = google::protobuf::util::MessageToJsonString(message, json);
  if (!printed.ok()) {
    return InternalError("cannot write a " + message.GetDescriptor()->full_name() +
                         " as JSON: " + std::string(printed.message()));
  }
  return Status::Ok();
}

}  // namespace lookalike
