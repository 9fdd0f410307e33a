#include "models/json.h"

#include "common/utf8.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <sstream>

namespace lookalike {

class JsonParser {
 public:
  JsonParser(const char* data, size_t size) : p_(data), begin_(data), end_(data + size) {}

  StatusOr<JsonValue> ParseDocument() {
    JsonValue v;
    RETURN_IF_ERROR(ParseValue(&v, 0));
    SkipSpace();
    if (p_ != end_) return Error("unexpected trailing characters");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;

  Status Error(const std::string& what) const {
    return InvalidArgumentError("JSON parse error at byte " + std::to_string(p_ - begin_) + ": " +
                                what);
  }

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool Consume(const char* literal) {
    const size_t n = std::strlen(literal);
    if (static_cast<size_t>(end_ - p_) >= n && std::memcmp(p_, literal, n) == 0) {
      p_ += n;
      return true;
    }
    return false;
  }

  Status ParseValue(JsonValue* v, int depth) {
    if (depth > kMaxDepth) return Error("nesting deeper than " + std::to_string(kMaxDepth));
    SkipSpace();
    if (p_ == end_) return Error("unexpected end of input, expected a value");
    const char c = *p_;
    if (c == '{') return ParseObject(v, depth);
    if (c == '[') return ParseArray(v, depth);
    if (c == '"') {
      v->type_ = JsonValue::Type::kString;
      return ParseString(&v->string_);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(v);
    if (Consume("true")) {
      v->type_ = JsonValue::Type::kBool;
      v->bool_ = true;
      return Status::Ok();
    }
    if (Consume("false")) {
      v->type_ = JsonValue::Type::kBool;
      return Status::Ok();
    }
    if (Consume("null")) return Status::Ok();
    return Error(std::string("unexpected character '") + c + "'");
  }

  Status ParseObject(JsonValue* v, int depth) {
    v->type_ = JsonValue::Type::kObject;
    ++p_;  // '{'
    SkipSpace();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return Status::Ok();
    }
    while (true) {
      SkipSpace();
      if (p_ == end_ || *p_ != '"') return Error("expected a string key");
      std::string key;
      RETURN_IF_ERROR(ParseString(&key));
      SkipSpace();
      if (p_ == end_ || *p_ != ':') return Error("expected ':' after key \"" + key + "\"");
      ++p_;
      JsonValue member;
      RETURN_IF_ERROR(ParseValue(&member, depth + 1));
      v->members_.emplace_back(std::move(key), std::move(member));
      SkipSpace();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        continue;
      }
      if (p_ < end_ && *p_ == '}') {
        ++p_;
        return Status::Ok();
      }
      return Error("expected ',' or '}' in object");
    }
  }

  Status ParseArray(JsonValue* v, int depth) {
    v->type_ = JsonValue::Type::kArray;
    ++p_;  // '['
    SkipSpace();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return Status::Ok();
    }
    while (true) {
      JsonValue item;
      RETURN_IF_ERROR(ParseValue(&item, depth + 1));
      v->items_.push_back(std::move(item));
      SkipSpace();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        continue;
      }
      if (p_ < end_ && *p_ == ']') {
        ++p_;
        return Status::Ok();
      }
      return Error("expected ',' or ']' in array");
    }
  }

  Status ParseString(std::string* out) {
    ++p_;  // '"'
    while (true) {
      if (p_ == end_) return Error("unterminated string");
      const char c = *p_++;
      if (c == '"') return Status::Ok();
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      const char* error = nullptr;
      const char* next = DecodeJsonEscape(p_, end_, out, &error);
      if (next == nullptr) return Error(error);
      p_ = next;
    }
  }

  Status ParseNumber(JsonValue* v) {
    const char* start = p_;
    if (*p_ == '-') ++p_;
    if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) return Error("bad number");
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    bool integral = true;
    if (p_ < end_ && *p_ == '.') {
      integral = false;
      ++p_;
      if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) return Error("bad number fraction");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !(*p_ >= '0' && *p_ <= '9')) return Error("bad number exponent");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    const std::string text(start, p_);
    v->type_ = JsonValue::Type::kNumber;
    v->number_ = std::strtod(text.c_str(), nullptr);
    // 1e400 would read as infinity, which no JSON text (and no model value)
    // can mean.
    if (!std::isfinite(v->number_)) {
      p_ = start;
      return Error("number out of the range of a double");
    }
    if (integral) {
      errno = 0;
      const long long i = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == 0) {
        v->is_int_ = true;
        v->int_ = static_cast<int64_t>(i);
      }
    }
    return Status::Ok();
  }

  const char* p_;
  const char* begin_;
  const char* end_;
};

const JsonValue* JsonValue::Find(const std::string& key) const {
  const JsonValue* found = nullptr;
  for (const auto& m : members_)
    if (m.first == key) found = &m.second;
  return found;
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out + "\"";
}

std::string JsonValue::Dump() const {
  switch (type_) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return bool_ ? "true" : "false";
    case Type::kNumber: {
      if (is_int_) return std::to_string(int_);
      std::ostringstream os;
      os.precision(17);
      os << number_;
      return os.str();
    }
    case Type::kString:
      return JsonQuote(string_);
    case Type::kArray: {
      std::string s = "[";
      for (size_t i = 0; i < items_.size(); ++i) s += (i ? "," : "") + items_[i].Dump();
      return s + "]";
    }
    case Type::kObject: {
      std::string s = "{";
      for (size_t i = 0; i < members_.size(); ++i) {
        s += (i ? "," : "") + JsonQuote(members_[i].first) + ":" + members_[i].second.Dump();
      }
      return s + "}";
    }
  }
  return "";
}

StatusOr<JsonValue> ParseJson(const char* data, size_t size) {
  return JsonParser(data, size).ParseDocument();
}

}  // namespace lookalike
