// A read-only view of an informer's cache: what reconcilers read instead of the API server.
// Thread-safety: implementations are safe for concurrent readers; returned objects are copies.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kube/api_client.h"

namespace mcop::kube {

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  virtual std::optional<Object> get(const std::string& ns, const std::string& name) const = 0;
  // Objects in ns ("" = all) whose labels contain every pair of `labels` (empty = all).
  virtual std::vector<Object> list(const std::string& ns,
                                   const std::map<std::string, std::string>& labels) const = 0;
};

}  // namespace mcop::kube
