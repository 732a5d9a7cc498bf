// WrittenStatus: the status writes of this operator that the cluster cache may not have seen
// yet. A status write's own watch event reaches the informer a little after the write returns;
// a pass started in between (woken by a child the same pass created) would decide from the
// status before the write, find it different from what it decides, and write again with the old
// resourceVersion: a 409, a failed pass and a backoff, for nothing. So the reconciler remembers
// each write it made (the resourceVersion it replaced, the one it got and the status it wrote)
// and a pass that sees the replaced resourceVersion in the cache works from the written status.
// Only an exact match of the replaced resourceVersion is used (resourceVersions are opaque and
// never compared for order): any other version in the cache is newer than the write, or
// another writer's, and is used as it is.
// Thread-safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "memcached/json_util.h"

namespace mcop::memcached {

class WrittenStatus {
 public:
  // `before` was the cluster the write was made over; `after` is what the API server returned.
  // `now` (steady) ages the entry: one the cache never matched is dropped after kMaxAge.
  void remember(const std::string& key, const Json& before, const Json& after,
                std::chrono::steady_clock::time_point now);
  // `cached` as the cache has it, or, when the cache still holds a version one of our writes
  // replaced, `cached` with that write's status and resourceVersion. The entry is dropped once
  // the cache holds any other version.
  Json freshest(const std::string& key, Json cached, std::chrono::steady_clock::time_point now);
  void forget(const std::string& key);
  size_t size() const;

  // Far longer than a watch event takes to arrive; bounds what a cluster that is never
  // reconciled again keeps here.
  static constexpr std::chrono::seconds kMaxAge{60};

 private:
  struct Entry {
    std::vector<std::string> replaced;  // resourceVersions our writes replaced, oldest first
    std::string resource_version;       // the one the last write got
    Json status;                        // what it wrote
    std::chrono::steady_clock::time_point at;
  };
  void dropOld(std::chrono::steady_clock::time_point now);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
  std::chrono::steady_clock::time_point last_drop_{};  // guarded by mu_
};

}  // namespace mcop::memcached
