// Small accessors for the metadata every Kubernetes object carries, and JSON helpers shared by
// the fake API, the caches and the informers. They never throw: a missing or mistyped field
// reads as empty.
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "kube/api_client.h"

namespace mcop::kube {

std::string metaString(const Object& obj, const std::string& field);  // metadata.<field>
inline std::string nameOf(const Object& obj) { return metaString(obj, "name"); }
inline std::string namespaceOf(const Object& obj) { return metaString(obj, "namespace"); }
inline std::string uidOf(const Object& obj) { return metaString(obj, "uid"); }
inline std::string resourceVersionOf(const Object& obj) {
  return metaString(obj, "resourceVersion");
}
// "ns/name", or "name" for cluster-scoped objects: the workqueue and cache key.
std::string keyOf(const Object& obj);
std::map<std::string, std::string> labelsOf(const Object& obj);
// The ownerReference with controller=true, if any.
std::optional<Object> controllerOwnerOf(const Object& obj);

// Reads a nested field by path ({"status", "readyReplicas"}); nullopt when any step is missing.
std::optional<Object> field(const Object& obj, std::initializer_list<const char*> path);
std::string stringField(const Object& obj, std::initializer_list<const char*> path);

// Structural equality where 1 == 1.0 (cpprestsdk compares number representations).
bool jsonEqual(const Object& a, const Object& b);

// RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces.
Object mergePatch(const Object& target, const Object& patch);

}  // namespace mcop::kube
