#include "kube/memory_store.h"

#include <algorithm>
#include <mutex>

#include "kube/object_meta.h"

namespace mcop::kube {

namespace {

std::string compactText(const Object& obj) {
  std::string text = obj.serialize();
  // serialize() reserves by estimate; the stored copy should hold only what it needs.
  text.shrink_to_fit();
  return text;
}

// Orders a bucket's node pointers by their key, for lower_bound.
constexpr auto kKeyLess = [](const auto* node, const std::string& k) { return node->first < k; };

}  // namespace

Object MemoryStore::parse(const std::string& text) { return Object::parse(text); }

std::optional<Object> MemoryStore::get(const std::string& ns, const std::string& name) const {
  std::shared_lock lock(mu_);
  auto it = objects_.find(key(ns, name));
  if (it == objects_.end()) return std::nullopt;
  return parse(it->second.text);
}

bool MemoryStore::hasAll(const Entry& entry, const std::vector<const Bucket*>& want) {
  for (const Bucket* b : want) {
    bool found = std::any_of(entry.labels.begin(), entry.labels.end(),
                             [b](const LabelIndex::iterator& it) { return &it->second == b; });
    if (!found) return false;
  }
  return true;
}

std::vector<Object> MemoryStore::list(const std::string& ns,
                                      const std::map<std::string, std::string>& labels) const {
  std::shared_lock lock(mu_);
  std::vector<Object> out;
  const std::string prefix = ns + "/";
  // Walk the smallest label bucket when there is a label filter, else the namespace's range.
  std::vector<const Bucket*> want;
  const Bucket* smallest = nullptr;
  for (const auto& [k, v] : labels) {
    auto it = by_label_.find(k + "=" + v);
    if (it == by_label_.end()) return out;
    want.push_back(&it->second);
    if (!smallest || it->second.size() < smallest->size()) smallest = &it->second;
  }
  if (smallest) {
    for (const Node* node : *smallest) {
      if (!ns.empty() && node->first.compare(0, prefix.size(), prefix) != 0) continue;
      if (hasAll(node->second, want)) out.push_back(parse(node->second.text));
    }
    return out;
  }
  auto it = ns.empty() ? objects_.begin() : objects_.lower_bound(prefix);
  for (; it != objects_.end(); ++it) {
    if (!ns.empty() && it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.push_back(parse(it->second.text));
  }
  return out;
}

void MemoryStore::indexLocked(const Node& node, const Object& obj, Entry& entry) {
  auto labels = labelsOf(obj);
  entry.labels.clear();
  entry.labels.reserve(labels.size());
  for (const auto& [lk, lv] : labels) {
    auto bucket = by_label_.try_emplace(lk + "=" + lv).first;
    Bucket& b = bucket->second;
    b.insert(std::lower_bound(b.begin(), b.end(), node.first, kKeyLess), &node);
    entry.labels.push_back(bucket);
  }
}

void MemoryStore::unindexLocked(const Node& node, Entry& entry) {
  for (LabelIndex::iterator bucket : entry.labels) {
    Bucket& b = bucket->second;
    auto pos = std::lower_bound(b.begin(), b.end(), node.first, kKeyLess);
    if (pos != b.end() && *pos == &node) b.erase(pos);
    if (b.empty()) by_label_.erase(bucket);
  }
  entry.labels.clear();
}

std::optional<std::string> MemoryStore::upsertText(const Object& obj) {
  std::string text = compactText(obj);  // outside the lock: the slow part
  std::unique_lock lock(mu_);
  auto [it, inserted] = objects_.try_emplace(key(namespaceOf(obj), nameOf(obj)));
  std::optional<std::string> prev;
  if (!inserted) {
    prev = std::move(it->second.text);
    unindexLocked(*it, it->second);
  }
  it->second.text = std::move(text);
  indexLocked(*it, obj, it->second);
  return prev;
}

std::optional<Object> MemoryStore::upsert(const Object& obj) {
  auto prev = upsertText(obj);
  if (!prev) return std::nullopt;
  return parse(*prev);
}

std::optional<std::string> MemoryStore::eraseText(const std::string& ns, const std::string& name) {
  std::unique_lock lock(mu_);
  auto it = objects_.find(key(ns, name));
  if (it == objects_.end()) return std::nullopt;
  unindexLocked(*it, it->second);
  std::string prev = std::move(it->second.text);
  objects_.erase(it);
  return prev;
}

std::optional<Object> MemoryStore::erase(const std::string& ns, const std::string& name) {
  auto prev = eraseText(ns, name);
  if (!prev) return std::nullopt;
  return parse(*prev);
}

std::vector<Object> MemoryStore::all() const {
  std::shared_lock lock(mu_);
  std::vector<Object> out;
  out.reserve(objects_.size());
  for (const auto& [k, entry] : objects_) out.push_back(parse(entry.text));
  return out;
}

std::vector<std::pair<std::string, std::string>> MemoryStore::names() const {
  std::shared_lock lock(mu_);
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(objects_.size());
  for (const auto& [k, entry] : objects_) {
    size_t slash = k.find('/');
    out.emplace_back(k.substr(0, slash), k.substr(slash + 1));
  }
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
