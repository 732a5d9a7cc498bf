// A small strict JSON parser (RFC 8259) for endpoints.json: no comments, no
// trailing commas, no NaN/Infinity, no duplicate object keys, UTF-8 validated,
// bounded depth. Internal to libclientconfig; the public entry is parseSnapshot().
// Thread-safety: values are immutable after parsing; the parser is a pure function.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clientconfig/result.h"

namespace clientconfig::json {

enum class Kind { Null, Bool, Integer, Number, String, Array, Object };

const char* kindName(Kind k);

class Value {
public:
  Kind kind = Kind::Null;
  bool boolean = false;
  int64_t integer = 0;  // Kind::Integer: no fraction or exponent, fits int64
  double number = 0;    // Kind::Number (and Integer, converted)
  std::string string;
  std::vector<Value> array;
  // Object members in document order, keys unique. Two parallel vectors because
  // std::pair<std::string, Value> needs Value complete here (clang enforces it).
  std::vector<std::string> keys;
  std::vector<Value> values;

  // nullptr when absent (or not an object).
  const Value* find(std::string_view key) const;
};

constexpr size_t kMaxDepth = 64;

// Error messages carry "line L column C: ..." positions (1-based).
Result<Value> parse(std::string_view text);

} // namespace clientconfig::json
