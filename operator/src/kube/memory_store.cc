#include "kube/memory_store.h"

#include <mutex>

#include "kube/object_meta.h"

namespace mcop::kube {

namespace {

bool hasLabels(const Object& obj, const std::map<std::string, std::string>& want) {
  if (want.empty()) return true;
  auto have = labelsOf(obj);
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

std::optional<Object> MemoryStore::get(const std::string& ns, const std::string& name) const {
  std::shared_lock lock(mu_);
  auto it = objects_.find(key(ns, name));
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

std::vector<Object> MemoryStore::list(const std::string& ns,
                                      const std::map<std::string, std::string>& labels) const {
  std::shared_lock lock(mu_);
  std::vector<Object> out;
  // Walk the smallest label bucket when there is a label filter, else the namespace's range.
  const std::set<std::string>* smallest = nullptr;
  for (const auto& [k, v] : labels) {
    auto it = by_label_.find(k + "=" + v);
    if (it == by_label_.end()) return out;
    if (!smallest || it->second.size() < smallest->size()) smallest = &it->second;
  }
  if (smallest) {
    for (const std::string& k : *smallest) {
      const Object& obj = objects_.at(k);
      if ((ns.empty() || namespaceOf(obj) == ns) && hasLabels(obj, labels)) out.push_back(obj);
    }
    return out;
  }
  auto it = ns.empty() ? objects_.begin() : objects_.lower_bound(ns + "/");
  for (; it != objects_.end(); ++it) {
    if (!ns.empty() && it->first.compare(0, ns.size() + 1, ns + "/") != 0) break;
    out.push_back(it->second);
  }
  return out;
}

void MemoryStore::indexLocked(const std::string& k, const Object& obj, bool add) {
  for (const auto& [lk, lv] : labelsOf(obj)) {
    std::string idx = lk + "=" + lv;
    if (add) {
      by_label_[idx].insert(k);
    } else {
      auto it = by_label_.find(idx);
      if (it == by_label_.end()) continue;
      it->second.erase(k);
      if (it->second.empty()) by_label_.erase(it);
    }
  }
}

std::optional<Object> MemoryStore::upsert(const Object& obj) {
  std::unique_lock lock(mu_);
  std::string k = key(namespaceOf(obj), nameOf(obj));
  std::optional<Object> prev;
  auto it = objects_.find(k);
  if (it != objects_.end()) {
    prev = it->second;
    indexLocked(k, it->second, false);
    it->second = obj;
  } else {
    objects_.emplace(k, obj);
  }
  indexLocked(k, obj, true);
  return prev;
}

std::optional<Object> MemoryStore::erase(const std::string& ns, const std::string& name) {
  std::unique_lock lock(mu_);
  std::string k = key(ns, name);
  auto it = objects_.find(k);
  if (it == objects_.end()) return std::nullopt;
  Object prev = it->second;
  indexLocked(k, prev, false);
  objects_.erase(it);
  return prev;
}

std::vector<Object> MemoryStore::all() const {
  std::shared_lock lock(mu_);
  std::vector<Object> out;
  out.reserve(objects_.size());
  for (const auto& [k, obj] : objects_) out.push_back(obj);
  return out;
}

size_t MemoryStore::size() const {
  std::shared_lock lock(mu_);
  return objects_.size();
}

void MemoryStore::clear() {
  std::unique_lock lock(mu_);
  objects_.clear();
  by_label_.clear();
}

}  // namespace mcop::kube
