// MemoryStore: the in-memory ObjectStore behind each informer, with a label index so that
// "pods of cluster X" does not scan every pod. Tests can fill one directly with upsert().
// Thread-safety: all methods are thread-safe (a reader-writer lock); readers get copies.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "kube/object_store.h"

namespace mcop::kube {

class MemoryStore : public ObjectStore {
 public:
  std::optional<Object> get(const std::string& ns, const std::string& name) const override;
  std::vector<Object> list(const std::string& ns,
                           const std::map<std::string, std::string>& labels) const override;

  // Inserts or replaces by metadata.namespace/name; returns the previous object, if any.
  std::optional<Object> upsert(const Object& obj);
  // Removes; returns the removed object, if any.
  std::optional<Object> erase(const std::string& ns, const std::string& name);
  // Every object (sorted by namespace/name).
  std::vector<Object> all() const;
  size_t size() const;
  void clear();

 private:
  static std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }
  void indexLocked(const std::string& k, const Object& obj, bool add);  // mu_ held exclusively

  mutable std::shared_mutex mu_;
  std::map<std::string, Object> objects_;                 // "ns/name" -> object; guarded by mu_
  std::map<std::string, std::set<std::string>> by_label_;  // "k=v" -> keys; guarded by mu_
};

}  // namespace mcop::kube
