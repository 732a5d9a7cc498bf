// Kubernetes quantities: see quantity.h.
#include "memcached/quantity.h"

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

}  // namespace mcop::memcached
