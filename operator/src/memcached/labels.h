// The labels every object of a MemcachedCluster carries, and the selector built from them. The
// child caches keep objects with kManagedByLabel whole (child_cache.h), and the runtime maps a
// child back to its cluster by kClusterLabel.
// Thread-safety: pure functions and constants.
#pragma once

#include <map>
#include <string>

namespace mcop::memcached {

inline constexpr char kNameLabel[] = "app.kubernetes.io/name";
inline constexpr char kInstanceLabel[] = "app.kubernetes.io/instance";
inline constexpr char kManagedByLabel[] = "app.kubernetes.io/managed-by";
inline constexpr char kClusterLabel[] = "memcached.operator.io/cluster";
inline constexpr char kAppName[] = "memcached";
inline constexpr char kDefaultManager[] = "memcached-operator";
// Hash of the desired object we last applied: lets isSubset notice fields we stopped setting.
inline constexpr char kSpecHashAnnotation[] = "memcached.operator.io/spec-hash";

// The pod selector of a cluster (StatefulSet selector, Services, PDB). Immutable in a
// StatefulSet, so it never includes labels that could change.
std::map<std::string, std::string> selectorLabels(const std::string& cluster);
// selectorLabels plus managed-by: what every child object carries.
std::map<std::string, std::string> commonLabels(const std::string& cluster,
                                                const std::string& manager = kDefaultManager);
// "k1=v1,k2=v2" in key order: the form status.selector and label-selector queries take.
std::string selectorString(const std::map<std::string, std::string>& labels);

}  // namespace mcop::memcached
