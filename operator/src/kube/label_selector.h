// Kubernetes label selectors in their string form ("app=x,tier!=cache,env in (a,b),!legacy"),
// parsed once and matched against an object's labels. Used by the fake API, the caches and the
// informers; the REST client passes the string through to the server unchanged.
// Thread-safety: a parsed LabelSelector is immutable.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

namespace mcop::kube {

class LabelSelector {
 public:
  // "" selects everything.
  static absl::StatusOr<LabelSelector> parse(const std::string& text);
  // Equality-only selector from a map (what ObjectStore::list takes).
  static LabelSelector fromMap(const std::map<std::string, std::string>& labels);

  bool matches(const std::map<std::string, std::string>& labels) const;
  bool empty() const { return requirements_.empty(); }
  // Canonical string ("a=b,c=d"), for fromMap selectors handed to the API.
  std::string toString() const;

 private:
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kNotExists };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };
  std::vector<Requirement> requirements_;
};

}  // namespace mcop::kube
