// isSubset: see drift.h.
#include "memcached/drift.h"

#include "memcached/quantity.h"

namespace mcop::memcached {

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
