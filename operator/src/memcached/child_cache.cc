// The child caches' transform: see child_cache.h.
#include "memcached/child_cache.h"

#include <utility>

#include "kube/informer.h"
#include "kube/object_meta.h"
#include "memcached/labels.h"

namespace mcop::memcached {
namespace {

constexpr const char* kStubFields[] = {"name", "namespace", "uid", "resourceVersion",
                                       "ownerReferences"};

bool controlledByACluster(const kube::Object& obj) {
  auto owner = kube::controllerOwnerOf(obj);
  if (!owner) return false;
  const std::string api_version = kube::stringField(*owner, {"apiVersion"});
  return kube::stringField(*owner, {"kind"}) == "MemcachedCluster" &&
         api_version.substr(0, api_version.find('/')) == "memcached.operator.io";
}

}  // namespace

bool isOurChild(const kube::Object& obj) {
  auto labels = kube::labelsOf(obj);
  auto it = labels.find(kManagedByLabel);
  return (it != labels.end() && it->second == kDefaultManager) || controlledByACluster(obj);
}

void cacheChildOrStub(kube::Object& obj) {
  if (!obj.is_object() || !obj.has_field("metadata") || !obj.at("metadata").is_object()) return;
  if (isOurChild(obj)) {
    kube::stripManagedFields(obj);
    return;
  }
  auto& meta = obj.at("metadata").as_object();
  kube::Object stub_meta = kube::Object::object();
  for (const char* f : kStubFields) {
    auto it = meta.find(f);
    if (it != meta.end()) stub_meta[f] = std::move(it->second);
  }
  kube::Object stub = kube::Object::object();
  stub["metadata"] = std::move(stub_meta);
  obj = std::move(stub);
}

}  // namespace mcop::memcached
