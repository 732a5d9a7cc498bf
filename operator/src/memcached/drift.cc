// isSubset and quantity parsing: see drift.h.
#include "memcached/drift.h"

#include <cctype>
#include <cmath>
#include <string>

namespace mcop::memcached {

std::optional<long double> parseQuantity(std::string_view s) {
  if (s.empty()) return std::nullopt;
  size_t i = 0;
  bool negative = false;
  if (s[i] == '+' || s[i] == '-') {
    negative = s[i] == '-';
    ++i;
  }
  long double value = 0;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    value = value * 10 + (s[i] - '0');
    ++i;
    ++digits;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    long double scale = 0.1L;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      value += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
      ++digits;
    }
  }
  if (digits == 0) return std::nullopt;
  std::string_view suffix = s.substr(i);
  long double mult = 1;
  if (suffix.empty()) {
  } else if (suffix == "Ki") {
    mult = 1024.0L;
  } else if (suffix == "Mi") {
    mult = 1024.0L * 1024;
  } else if (suffix == "Gi") {
    mult = 1024.0L * 1024 * 1024;
  } else if (suffix == "Ti") {
    mult = std::pow(1024.0L, 4);
  } else if (suffix == "Pi") {
    mult = std::pow(1024.0L, 5);
  } else if (suffix == "Ei") {
    mult = std::pow(1024.0L, 6);
  } else if (suffix == "n") {
    mult = 1e-9L;
  } else if (suffix == "u") {
    mult = 1e-6L;
  } else if (suffix == "m") {
    mult = 1e-3L;
  } else if (suffix == "k") {
    mult = 1e3L;
  } else if (suffix == "M") {
    mult = 1e6L;
  } else if (suffix == "G") {
    mult = 1e9L;
  } else if (suffix == "T") {
    mult = 1e12L;
  } else if (suffix == "P") {
    mult = 1e15L;
  } else if (suffix == "E") {
    mult = 1e18L;
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    std::string_view exp = suffix.substr(1);
    bool exp_negative = false;
    if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) {
      exp_negative = exp[0] == '-';
      exp.remove_prefix(1);
    }
    if (exp.empty()) return std::nullopt;
    int e = 0;
    for (char c : exp) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      e = e * 10 + (c - '0');
      if (e > 64) return std::nullopt;
    }
    mult = std::pow(10.0L, exp_negative ? -e : e);
  } else {
    return std::nullopt;
  }
  value *= mult;
  return negative ? -value : value;
}

namespace {

// A quantity may come as a JSON number (`cpu: 1` in a spec) and go back as a string (the API
// server serializes every resource.Quantity canonically: "1"), so both sides are read as
// quantities by value.
std::optional<long double> quantityOf(const Json& v) {
  if (v.is_string()) return parseQuantity(v.as_string());
  if (v.is_number()) return parseQuantity(v.serialize());
  return std::nullopt;
}

bool scalarEqual(const Json& desired, const Json& live) {
  if (desired.is_number() && live.is_number()) return jsonEqual(desired, live);
  if (desired.is_string() && live.is_string() && desired.as_string() == live.as_string()) {
    return true;
  }
  if ((desired.is_string() || desired.is_number()) && (live.is_string() || live.is_number())) {
    auto qa = quantityOf(desired);
    auto qb = quantityOf(live);
    if (!qa || !qb) return false;
    long double scale = std::max(std::fabs(*qa), std::fabs(*qb));
    return std::fabs(*qa - *qb) <= scale * 1e-12L;
  }
  return jsonEqual(desired, live);
}

}  // namespace

bool isSubset(const Json& desired, const Json& live) {
  if (desired.is_object()) {
    if (!live.is_object()) return false;
    const auto& live_obj = live.as_object();
    for (const auto& [key, value] : desired.as_object()) {
      auto it = live_obj.find(key);
      if (it == live_obj.end()) {
        // A desired null means "absent", which an absent live field satisfies.
        if (value.is_null()) continue;
        return false;
      }
      if (!isSubset(value, it->second)) return false;
    }
    return true;
  }
  if (desired.is_array()) {
    if (!live.is_array()) return false;
    const auto& d = desired.as_array();
    const auto& l = live.as_array();
    if (d.size() != l.size()) return false;
    for (size_t i = 0; i < d.size(); ++i) {
      if (!isSubset(d.at(i), l.at(i))) return false;
    }
    return true;
  }
  return scalarEqual(desired, live);
}

}  // namespace mcop::memcached
