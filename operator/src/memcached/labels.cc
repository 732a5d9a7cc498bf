// Labels and selectors: see labels.h.
#include "memcached/labels.h"

namespace mcop::memcached {

std::map<std::string, std::string> selectorLabels(const std::string& cluster) {
  return {{kNameLabel, kAppName}, {kInstanceLabel, cluster}, {kClusterLabel, cluster}};
}

std::map<std::string, std::string> commonLabels(const std::string& cluster,
                                                const std::string& manager) {
  auto labels = selectorLabels(cluster);
  labels[kManagedByLabel] = manager;
  return labels;
}

std::string selectorString(const std::map<std::string, std::string>& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ",";
    out += k + "=" + v;
  }
  return out;
}

}  // namespace mcop::memcached
