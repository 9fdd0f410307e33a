// A small JSON reader for safetensors headers and fixture metadata (RFC 8259
// values; numbers kept as double plus an exact int64 when integral). Kept
// in-tree so the engine builds where no JSON library is installed (the GPU
// build machine).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace lookalike {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  // A number written without fraction or exponent that fits int64.
  bool is_integer() const { return type_ == Type::kNumber && is_int_; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool as_bool() const { return bool_; }
  double as_double() const { return number_; }
  int64_t as_int() const { return int_; }
  const std::string& as_string() const { return string_; }
  const std::vector<JsonValue>& items() const { return items_; }
  // Object members in document order.
  const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }
  // Member `key` or nullptr (last one wins on duplicates).
  const JsonValue* Find(const std::string& key) const;

  // Compact text form (for error messages).
  std::string Dump() const;

 private:
  friend class JsonParser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  bool is_int_ = false;
  double number_ = 0;
  int64_t int_ = 0;
  std::string string_;
  std::vector<JsonValue> items_;
  std::vector<std::pair<std::string, JsonValue>> members_;
};

// Parses exactly one JSON value (surrounding whitespace allowed). Errors are
// INVALID_ARGUMENT with the byte offset and what was expected.
StatusOr<JsonValue> ParseJson(const char* data, size_t size);
inline StatusOr<JsonValue> ParseJson(const std::string& text) {
  return ParseJson(text.data(), text.size());
}

// Escapes `s` as a JSON string literal (with quotes).
std::string JsonQuote(const std::string& s);

}  // namespace lookalike
