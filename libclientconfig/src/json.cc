// Strict recursive-descent JSON parser; see json.h for what "strict" rejects.
// Thread-safety: pure functions.
#include "json.h"

#include <charconv>
#include <cmath>
#include <unordered_set>

namespace clientconfig::json {

const char* kindName(Kind k) {
  switch (k) {
  case Kind::Null: return "null";
  case Kind::Bool: return "boolean";
  case Kind::Integer: return "integer";
  case Kind::Number: return "number";
  case Kind::String: return "string";
  case Kind::Array: return "array";
  case Kind::Object: return "object";
  }
  return "?";
}

const Value* Value::find(std::string_view key) const {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == key) return &values[i];
  }
  return nullptr;
}

namespace {

class Parser {
public:
  explicit Parser(std::string_view text) : s_(text) {}

  Result<Value> document() {
    // A UTF-8 byte order mark is not JSON, but editors write it; refusing it
    // would only confuse people editing a servers file by hand.
    if (s_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
    Value v;
    if (!value(v, 0)) return error_;
    skipWs();
    if (pos_ != s_.size()) return err("unexpected data after the top-level value");
    return v;
  }

private:
  Error err(const std::string& what) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    error_ = makeError(ErrorCode::InvalidArgument,
                       "line " + std::to_string(line) + " column " + std::to_string(col) + ": " + what);
    return error_;
  }
  bool fail(const std::string& what) {
    err(what);
    return false;
  }

  void skipWs() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool value(Value& out, size_t depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
    skipWs();
    if (pos_ >= s_.size()) return fail("unexpected end of input, expected a value");
    char c = s_[pos_];
    switch (c) {
    case 'n': out.kind = Kind::Null; return literal("null");
    case 't': out.kind = Kind::Bool; out.boolean = true; return literal("true");
    case 'f': out.kind = Kind::Bool; out.boolean = false; return literal("false");
    case '"': out.kind = Kind::String; return string(out.string);
    case '[': return array(out, depth);
    case '{': return object(out, depth);
    default:
      if (c == '-' || (c >= '0' && c <= '9')) return number(out);
      return fail(std::string("unexpected character '") + (c >= 0x20 && c < 0x7f ? std::string(1, c) : "?") + "'");
    }
  }

  bool array(Value& out, size_t depth) {
    out.kind = Kind::Array;
    ++pos_; // [
    skipWs();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      out.array.emplace_back();
      if (!value(out.array.back(), depth + 1)) return false;
      skipWs();
      if (pos_ >= s_.size()) return fail("unexpected end of input in array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool object(Value& out, size_t depth) {
    out.kind = Kind::Object;
    std::unordered_set<std::string> seen;
    ++pos_; // {
    skipWs();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skipWs();
      if (pos_ >= s_.size() || s_[pos_] != '"') return fail("expected a string key");
      std::string key;
      size_t key_pos = pos_;
      if (!string(key)) return false;
      // A set, not a scan of out.keys: a hostile object with many keys must not
      // make parsing quadratic.
      if (!seen.insert(key).second) {
        pos_ = key_pos;
        return fail("duplicate key \"" + key + "\"");
      }
      skipWs();
      if (pos_ >= s_.size() || s_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      out.keys.push_back(std::move(key));
      out.values.emplace_back();
      if (!value(out.values.back(), depth + 1)) return false;
      skipWs();
      if (pos_ >= s_.size()) return fail("unexpected end of input in object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  static void appendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool hex4(uint32_t& out) {
    if (pos_ + 4 > s_.size()) return fail("truncated \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      uint32_t d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else return fail("invalid hex digit in \\u escape");
      out = out * 16 + d;
    }
    return true;
  }

  // Validates one UTF-8 sequence starting at pos_ (first byte >= 0x80) and copies it.
  bool utf8(std::string& out) {
    auto b = [&](size_t i) { return static_cast<unsigned char>(s_[i]); };
    unsigned char c0 = b(pos_);
    size_t len;
    uint32_t cp, min;
    if (c0 >= 0xC2 && c0 <= 0xDF) { len = 2; cp = c0 & 0x1F; min = 0x80; }
    else if (c0 >= 0xE0 && c0 <= 0xEF) { len = 3; cp = c0 & 0x0F; min = 0x800; }
    else if (c0 >= 0xF0 && c0 <= 0xF4) { len = 4; cp = c0 & 0x07; min = 0x10000; }
    else return fail("invalid UTF-8");
    if (pos_ + len > s_.size()) return fail("truncated UTF-8");
    for (size_t i = 1; i < len; ++i) {
      unsigned char c = b(pos_ + i);
      if ((c & 0xC0) != 0x80) return fail("invalid UTF-8");
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return fail("invalid UTF-8");
    out.append(s_.substr(pos_, len));
    pos_ += len;
    return true;
  }

  bool string(std::string& out) {
    ++pos_; // opening quote
    for (;;) {
      if (pos_ >= s_.size()) return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return fail("control character in string");
      if (c >= 0x80) {
        if (!utf8(out)) return false;
        continue;
      }
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      ++pos_;
      if (pos_ >= s_.size()) return fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        uint32_t cp;
        if (!hex4(cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("unpaired low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (s_.substr(pos_, 2) != "\\u") return fail("unpaired high surrogate");
          pos_ += 2;
          uint32_t lo;
          if (!hex4(lo)) return false;
          if (lo < 0xDC00 || lo > 0xDFFF) return fail("invalid low surrogate");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        appendUtf8(out, cp);
        break;
      }
      default: return fail("invalid escape");
      }
    }
  }

  bool number(Value& out) {
    size_t start = pos_;
    auto digit = [&](size_t i) { return i < s_.size() && s_[i] >= '0' && s_[i] <= '9'; };
    if (s_[pos_] == '-') ++pos_;
    if (!digit(pos_)) return fail("invalid number");
    if (s_[pos_] == '0') {
      ++pos_;
      if (digit(pos_)) return fail("leading zero in number");
    } else {
      while (digit(pos_)) ++pos_;
    }
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digit(pos_)) return fail("invalid number: digit expected after '.'");
      while (digit(pos_)) ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digit(pos_)) return fail("invalid number: digit expected in exponent");
      while (digit(pos_)) ++pos_;
    }
    std::string_view text = s_.substr(start, pos_ - start);
    if (integral) {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec == std::errc() && p == text.data() + text.size()) {
        out.kind = Kind::Integer;
        out.integer = v;
        out.number = static_cast<double>(v);
        return true;
      }
      // Out of int64 range: keep it as a (lossy) number; field checks reject it.
    }
    // from_chars, not strtod: an application's locale must not change how we parse.
    double d = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
    if (ec == std::errc::result_out_of_range) return fail("number out of range");
    if (ec != std::errc() || p != text.data() + text.size()) return fail("invalid number");
    if (!std::isfinite(d)) return fail("number out of range");
    out.kind = Kind::Number;
    out.number = d;
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  Error error_;
};

} // namespace

Result<Value> parse(std::string_view text) { return Parser(text).document(); }

} // namespace clientconfig::json
