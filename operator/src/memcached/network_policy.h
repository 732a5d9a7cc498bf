// The NetworkPolicy of a MemcachedCluster (spec.networkPolicy): ingress to its pods only from
// the peers the spec allows, the operator's own pods and the cluster's own pods, on memcached's
// port and (with monitoring) the exporter's. Also the validation of the NetworkPolicyPeer lists
// the spec carries, which the CRD repeats at admission with the same rules and words.
// Thread-safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "memcached/cluster_spec.h"
#include "memcached/desired_objects.h"
#include "memcached/json_util.h"

namespace mcop::memcached {

// The items of a NetworkPolicyPeer list as given, after checking each one: an object with a
// podSelector and/or namespaceSelector, or an ipBlock alone; label selectors typed as the API
// server types them (matchLabels strings, matchExpressions with In/NotIn values and
// Exists/DoesNotExist without). Problems go to `errors`, naming `field` and the item's index.
std::vector<Json> checkNetworkPolicyPeers(const std::string& field, const Json& list,
                                          std::vector<std::string>& errors);

// Where the operator's own pods run, so its memcached connections (stats, drain, copy) are
// admitted. Empty namespace: unknown (the operator runs outside the cluster); then no peer is
// added for it and its traffic must be allowed by spec.networkPolicy.allowedClients.
struct OperatorPeer {
  std::string ns;
  std::map<std::string, std::string> pod_labels;  // empty: every pod of that namespace
};

// NetworkPolicy <name> (only when spec.networkPolicy.enabled): podSelector the cluster's
// selector labels, policyTypes [Ingress], one rule for spec.port and, with monitoring, one for
// the exporter's port.
Json buildNetworkPolicy(const ClusterRef& ref, const ClusterSpec& spec,
                        const OperatorPeer& operator_peer, const std::string& manager);

}  // namespace mcop::memcached
