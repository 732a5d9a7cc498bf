// Event predicates: see predicates.h.
#include "controller/predicates.h"

#include <optional>

#include "kube/object_meta.h"

namespace mcop::controller {

namespace {

// Missing and null read the same: a field removed is a field set to nothing.
bool sameField(const kube::Object& a, const kube::Object& b, std::initializer_list<const char*> path) {
  auto x = kube::field(a, path);
  auto y = kube::field(b, path);
  const bool x_absent = !x || x->is_null();
  const bool y_absent = !y || y->is_null();
  if (x_absent || y_absent) return x_absent == y_absent;
  return kube::jsonEqual(*x, *y);
}

bool isBookkeeping(const std::string& metadata_key) {
  return metadata_key == "resourceVersion" || metadata_key == "managedFields";
}

// jsonEqual over the metadata object, skipping bookkeeping keys on both sides.
bool sameMetadata(const kube::Object& a, const kube::Object& b) {
  const bool a_obj = a.is_object();
  const bool b_obj = b.is_object();
  if (!a_obj || !b_obj) return a_obj == b_obj && kube::jsonEqual(a, b);
  auto counted = [](const kube::Object& m) {
    size_t n = 0;
    for (const auto& kv : m.as_object()) n += isBookkeeping(kv.first) ? 0 : 1;
    return n;
  };
  if (counted(a) != counted(b)) return false;
  const auto& bo = b.as_object();
  for (const auto& [k, v] : a.as_object()) {
    if (isBookkeeping(k)) continue;
    auto it = bo.find(k);
    if (it == bo.end() || !kube::jsonEqual(v, it->second)) return false;
  }
  return true;
}

}  // namespace

bool generationChanged(const kube::Object& old_obj, const kube::Object& new_obj) {
  return !sameField(old_obj, new_obj, {"metadata", "generation"});
}

bool labelsChanged(const kube::Object& old_obj, const kube::Object& new_obj) {
  return !sameField(old_obj, new_obj, {"metadata", "labels"});
}

bool annotationsChanged(const kube::Object& old_obj, const kube::Object& new_obj) {
  return !sameField(old_obj, new_obj, {"metadata", "annotations"});
}

bool finalizersChanged(const kube::Object& old_obj, const kube::Object& new_obj) {
  return !sameField(old_obj, new_obj, {"metadata", "finalizers"});
}

bool deletionTimestampChanged(const kube::Object& old_obj, const kube::Object& new_obj) {
  return !sameField(old_obj, new_obj, {"metadata", "deletionTimestamp"});
}

bool ownerIntentChanged(const kube::Object& old_obj, const kube::Object& new_obj) {
  if (!kube::field(new_obj, {"metadata", "generation"})) {
    return changedBeyondBookkeeping(old_obj, new_obj);
  }
  return generationChanged(old_obj, new_obj) || labelsChanged(old_obj, new_obj) ||
         annotationsChanged(old_obj, new_obj) || finalizersChanged(old_obj, new_obj) ||
         deletionTimestampChanged(old_obj, new_obj);
}

bool changedBeyondBookkeeping(const kube::Object& old_obj, const kube::Object& new_obj) {
  if (!old_obj.is_object() || !new_obj.is_object()) return !kube::jsonEqual(old_obj, new_obj);
  const auto& a = old_obj.as_object();
  const auto& b = new_obj.as_object();
  if (a.size() != b.size()) return true;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) return true;
    if (k == "metadata" ? !sameMetadata(v, it->second) : !kube::jsonEqual(v, it->second)) return true;
  }
  return false;
}

}  // namespace mcop::controller
