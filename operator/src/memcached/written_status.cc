// WrittenStatus: see written_status.h.
#include "memcached/written_status.h"

#include <algorithm>
#include <utility>

namespace mcop::memcached {

namespace {
std::string resourceVersionOf(const Json& obj) {
  return stringAt(obj, {"metadata", "resourceVersion"});
}
}  // namespace

void WrittenStatus::remember(const std::string& key, const Json& before, const Json& after,
                             std::chrono::steady_clock::time_point now) {
  const std::string replaced = resourceVersionOf(before);
  const std::string got = resourceVersionOf(after);
  if (replaced.empty() || got.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  dropOld(now);
  Entry& e = entries_[key];
  // A write over our own previous write (a pass that records twice): the cache may still hold
  // any version of the chain.
  if (e.resource_version != replaced) e.replaced.clear();
  e.replaced.push_back(replaced);
  e.resource_version = got;
  const Json* status = findPath(after, {"status"});
  e.status = status ? *status : Json::object();
  e.at = now;
}

Json WrittenStatus::freshest(const std::string& key, Json cached,
                             std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  dropOld(now);
  auto it = entries_.find(key);
  if (it == entries_.end()) return cached;
  const Entry& e = it->second;
  const std::string version = resourceVersionOf(cached);
  if (std::find(e.replaced.begin(), e.replaced.end(), version) == e.replaced.end()) {
    entries_.erase(it);  // the cache has our write, or something newer
    return cached;
  }
  // A status subresource write changes only status and the resourceVersion (and managedFields,
  // which no pass reads).
  cached["status"] = e.status;
  cached["metadata"]["resourceVersion"] = Json::string(e.resource_version);
  return cached;
}

void WrittenStatus::forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_.erase(key);
}

size_t WrittenStatus::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

void WrittenStatus::dropOld(std::chrono::steady_clock::time_point now) {
  // A look over every entry at most once a second, not once per pass.
  if (now - last_drop_ < std::chrono::seconds(1)) return;
  last_drop_ = now;
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = now - it->second.at > kMaxAge ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace mcop::memcached
