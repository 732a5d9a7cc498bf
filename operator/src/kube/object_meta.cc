#include "kube/object_meta.h"

#include <cmath>

namespace mcop::kube {

std::string metaString(const Object& obj, const std::string& f) {
  if (!obj.is_object() || !obj.has_field("metadata")) return "";
  const auto& meta = obj.at("metadata");
  if (!meta.is_object() || !meta.has_field(f)) return "";
  const auto& v = meta.at(f);
  return v.is_string() ? v.as_string() : "";
}

std::string keyOf(const Object& obj) {
  std::string ns = namespaceOf(obj);
  return ns.empty() ? nameOf(obj) : ns + "/" + nameOf(obj);
}

std::map<std::string, std::string> labelsOf(const Object& obj) {
  std::map<std::string, std::string> out;
  auto labels = field(obj, {"metadata", "labels"});
  if (!labels || !labels->is_object()) return out;
  for (const auto& [k, v] : labels->as_object()) {
    if (v.is_string()) out[k] = v.as_string();
  }
  return out;
}

std::optional<Object> controllerOwnerOf(const Object& obj) {
  auto refs = field(obj, {"metadata", "ownerReferences"});
  if (!refs || !refs->is_array()) return std::nullopt;
  for (const auto& ref : refs->as_array()) {
    if (ref.is_object() && ref.has_field("controller") && ref.at("controller").is_boolean() &&
        ref.at("controller").as_bool()) {
      return ref;
    }
  }
  return std::nullopt;
}

std::optional<Object> field(const Object& obj, std::initializer_list<const char*> path) {
  const Object* cur = &obj;
  for (const char* step : path) {
    if (!cur->is_object() || !cur->has_field(step)) return std::nullopt;
    cur = &cur->at(step);
  }
  return *cur;
}

std::string stringField(const Object& obj, std::initializer_list<const char*> path) {
  auto v = field(obj, path);
  return v && v->is_string() ? v->as_string() : "";
}

bool jsonEqual(const Object& a, const Object& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integer() && b.is_integer()) {
      return a.as_number().to_int64() == b.as_number().to_int64();
    }
    return a.as_double() == b.as_double();
  }
  if (a.type() != b.type()) return false;
  if (a.is_object()) {
    const auto& ao = a.as_object();
    const auto& bo = b.as_object();
    if (ao.size() != bo.size()) return false;
    for (const auto& [k, v] : ao) {
      auto it = bo.find(k);
      if (it == bo.end() || !jsonEqual(v, it->second)) return false;
    }
    return true;
  }
  if (a.is_array()) {
    const auto& aa = a.as_array();
    const auto& ba = b.as_array();
    if (aa.size() != ba.size()) return false;
    for (size_t i = 0; i < aa.size(); ++i) {
      if (!jsonEqual(aa.at(i), ba.at(i))) return false;
    }
    return true;
  }
  return a == b;
}

Object mergePatch(const Object& target, const Object& patch) {
  if (!patch.is_object()) return patch;
  Object result = target.is_object() ? target : Object::object();
  for (const auto& [k, v] : patch.as_object()) {
    if (v.is_null()) {
      if (result.has_field(k)) result.erase(k);
    } else {
      Object base = result.has_field(k) ? result.at(k) : Object::null();
      result[k] = mergePatch(base, v);
    }
  }
  return result;
}

}  // namespace mcop::kube
