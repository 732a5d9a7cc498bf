// Strict JSON on nlohmann-json's SAX parser; see json.h for what "strict" adds to nlohmann.
// Thread-safety: pure functions.
#include "json.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

namespace clientconfig::json {

const char* kindName(const Value& v) {
  switch (v.type()) {
  case Value::value_t::null: return "null";
  case Value::value_t::boolean: return "boolean";
  case Value::value_t::number_integer:
  case Value::value_t::number_unsigned: return asInt64(v) ? "integer" : "number";
  case Value::value_t::number_float: return "number";
  case Value::value_t::string: return "string";
  case Value::value_t::array: return "array";
  case Value::value_t::object: return "object";
  default: return "binary"; // never produced from JSON text
  }
}

std::optional<int64_t> asInt64(const Value& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
    return static_cast<int64_t>(v.get<uint64_t>());
  return std::nullopt;
}

namespace {

// An input iterator over the text that publishes how far the lexer has read. nlohmann's SAX
// interface hands a position only to parse_error; a duplicate key or excessive nesting is found
// in the handler, which reads the position here to say where.
class CountingIterator {
public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator(const char* p, size_t* consumed) : p_(p), consumed_(consumed) {}
  reference operator*() const { return *p_; }
  CountingIterator& operator++() {
    ++p_;
    ++*consumed_;
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const CountingIterator& o) const { return p_ == o.p_; }

private:
  const char* p_;
  size_t* consumed_;
};

// "line L column C" of the byte before `offset` (the last one read), 1-based.
std::string where(std::string_view text, size_t offset) {
  // nlohmann counts the end of input as a character read: clamp to the text.
  const size_t end = std::min(offset, text.size());
  const size_t at = end == 0 ? 0 : end - 1;
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < at; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return "line " + std::to_string(line) + " column " + std::to_string(at - line_start + 1);
}

// nlohmann's message without its "[json.exception.parse_error.101] " tag and "parse error at
// line 4, column 16: " prefix (the position is restated in this library's form).
std::string withoutPrefix(const std::string& what) {
  std::string_view m = what;
  if (m.substr(0, 1) == "[") {
    if (size_t close = m.find("] "); close != std::string_view::npos) m.remove_prefix(close + 2);
  }
  if (m.substr(0, 11) == "parse error") {
    if (size_t colon = m.find(": "); colon != std::string_view::npos) m.remove_prefix(colon + 2);
  }
  return std::string(m);
}

// Builds the document as nlohmann's own DOM parser would, refusing duplicate keys and nesting
// deeper than kMaxDepth.
class StrictBuilder {
public:
  StrictBuilder(std::string_view text, const size_t* consumed) : text_(text), consumed_(consumed) {}

  bool null() { return put(Value(nullptr)); }
  bool boolean(bool v) { return put(Value(v)); }
  bool number_integer(Value::number_integer_t v) { return put(Value(v)); }
  bool number_unsigned(Value::number_unsigned_t v) { return put(Value(v)); }
  bool number_float(Value::number_float_t v, const std::string&) { return put(Value(v)); }
  bool string(std::string& v) { return put(Value(std::move(v))); }
  bool binary(Value::binary_t&) { return fail("binary values are not JSON"); }

  bool start_object(size_t) { return open(Value::object()); }
  bool start_array(size_t) { return open(Value::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(std::string& k) {
    if (stack_.back()->contains(k)) return fail("duplicate key \"" + k + "\"");
    key_ = std::move(k);
    return true;
  }

  bool parse_error(size_t position, const std::string&, const nlohmann::json::exception& ex) {
    error_ = where(text_, position) + ": " + withoutPrefix(ex.what());
    return false;
  }

  Result<Value> result(bool ok) {
    if (!ok) return makeError(ErrorCode::InvalidArgument, error_.empty() ? "invalid JSON" : error_);
    return std::move(root_);
  }

private:
  bool fail(const std::string& what) {
    error_ = where(text_, *consumed_) + ": " + what;
    return false;
  }

  // Places v in the open container (or as the root); returns it, or nullptr after fail().
  Value* place(Value v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Value& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    return &(parent[key_] = std::move(v));
  }

  bool put(Value v) { return place(std::move(v)) != nullptr; }

  bool open(Value container) {
    if (stack_.size() >= kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
    stack_.push_back(place(std::move(container)));
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  std::string_view text_;
  const size_t* consumed_;
  Value root_;
  std::vector<Value*> stack_;
  std::string key_;
  std::string error_;
};

} // namespace

Result<Value> parse(std::string_view text) {
  size_t consumed = 0;
  StrictBuilder builder(text, &consumed);
  CountingIterator first(text.data(), &consumed), last(text.data() + text.size(), &consumed);
  // strict: nothing may follow the value; comments are not JSON.
  bool ok = Value::sax_parse(first, last, &builder, nlohmann::json::input_format_t::json, /*strict=*/true,
                             /*ignore_comments=*/false);
  return builder.result(ok);
}

} // namespace clientconfig::json
