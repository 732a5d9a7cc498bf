// JSON accessors: see json_util.h.
#include "memcached/json_util.h"

#include <cstdio>

namespace mcop::memcached {

const Json* findPath(const Json& v, std::initializer_list<std::string_view> path) {
  const Json* cur = &v;
  for (std::string_view key : path) {
    if (!cur->is_object()) return nullptr;
    const auto& obj = cur->as_object();
    auto it = obj.find(std::string(key));
    if (it == obj.end()) return nullptr;
    cur = &it->second;
  }
  return cur;
}

std::string stringAt(const Json& v, std::initializer_list<std::string_view> path,
                     const std::string& fallback) {
  const Json* f = findPath(v, path);
  return f && f->is_string() ? f->as_string() : fallback;
}

std::optional<int64_t> intAt(const Json& v, std::initializer_list<std::string_view> path) {
  const Json* f = findPath(v, path);
  if (!f || !f->is_number()) return std::nullopt;
  if (f->is_integer()) return f->as_number().to_int64();
  return static_cast<int64_t>(f->as_double());
}

std::optional<bool> boolAt(const Json& v, std::initializer_list<std::string_view> path) {
  const Json* f = findPath(v, path);
  if (!f || !f->is_boolean()) return std::nullopt;
  return f->as_bool();
}

std::map<std::string, std::string> stringMapAt(const Json& v,
                                               std::initializer_list<std::string_view> path) {
  std::map<std::string, std::string> out;
  const Json* f = findPath(v, path);
  if (!f || !f->is_object()) return out;
  for (const auto& [k, val] : f->as_object()) {
    if (val.is_string()) out[k] = val.as_string();
  }
  return out;
}

Json jsonString(std::string_view s) { return Json::string(std::string(s)); }

Json jsonStringArray(const std::vector<std::string>& items) {
  std::vector<Json> out;
  out.reserve(items.size());
  for (const auto& s : items) out.push_back(Json::string(s));
  return Json::array(std::move(out));
}

Json jsonStringMap(const std::map<std::string, std::string>& m) {
  Json out = Json::object();
  for (const auto& [k, v] : m) out[k] = Json::string(v);
  return out;
}

Json jsonObject(std::initializer_list<std::pair<std::string, Json>> fields) {
  Json out = Json::object();
  for (const auto& [k, v] : fields) out[k] = v;
  return out;
}

Json jsonArray(std::vector<Json> items) { return Json::array(std::move(items)); }

std::string jsonHash(const Json& v) {
  const std::string s = v.serialize();
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace mcop::memcached
