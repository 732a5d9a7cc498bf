// Desired-object builders: the Services, StatefulSet and PodDisruptionBudget a MemcachedCluster
// should have, as server-side-apply bodies (apiVersion, kind, metadata, spec: only the fields we
// own). Quantities are written in the API server's canonical form ("104Mi", "100m") so that the
// live object reads back identical and isSubset() holds in steady state. Every body carries the
// kSpecHashAnnotation of its own content, so dropping a field (a nodeSelector entry, a label)
// still changes the desired object and is applied.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "memcached/cluster_spec.h"
#include "memcached/json_util.h"

namespace mcop::memcached {

// The identity of the cluster its children point back to.
struct ClusterRef {
  std::string ns;
  std::string name;
  std::string uid;
  int64_t generation = 0;
};

ClusterRef clusterRefOf(const Json& cluster);

// The controller ownerReference (blockOwnerDeletion) every child carries, so deleting the
// MemcachedCluster garbage-collects them.
Json ownerReference(const ClusterRef& ref);
// metadata {name, namespace, labels, ownerReferences} of a child.
Json childMetadata(const ClusterRef& ref, const std::string& name, const std::string& manager);
// Adds metadata.annotations[kSpecHashAnnotation] = hash of `desired` (before adding it).
Json withSpecHash(Json desired);

// Headless Service <name>: stable per-pod DNS names (<pod>.<name>.<ns>.svc), also for pods that
// are not Ready, because a member that flaps keeps its place and its name.
Json buildHeadlessService(const ClusterRef& ref, const ClusterSpec& spec,
                          const std::string& manager);
// ClusterIP Service <name>-client, for tools and clients that do not shard.
Json buildClientService(const ClusterRef& ref, const ClusterSpec& spec,
                        const std::string& manager);
// StatefulSet <name> with `replicas` (decided by the drain logic, not necessarily spec.replicas).
Json buildStatefulSet(const ClusterRef& ref, const ClusterSpec& spec, int64_t replicas,
                      const std::string& manager);
// PodDisruptionBudget <name> (only when spec.podDisruptionBudget.enabled).
Json buildPodDisruptionBudget(const ClusterRef& ref, const ClusterSpec& spec,
                              const std::string& manager);

// The container's environment variable holding the pod IP (downward API status.podIP).
inline constexpr char kPodIpEnv[] = "POD_IP";

// memcached's arguments: -p PORT -U 0 -l $(POD_IP),127.0.0.1 -m MB -c CONNS -t THREADS -I SIZE,
// then extraArgs. The kubelet expands $(POD_IP): memcached listens on the pod IP (what clients,
// the operator and the readiness probe connect to) and the pod's own loopback (kubectl
// port-forward and localhost sidecars), not on every interface of the pod (a second network,
// IPv6 addresses).
std::vector<std::string> memcachedArgs(const ClusterSpec& spec);
// The readiness probe's command: bash sends "version" to $POD_IP:port and needs the answer
// within 2 s.
std::vector<std::string> readinessCommand(const ClusterSpec& spec);
// Container resources when spec.resources is unset: memory for the cache plus room for
// memcached's hash table, connection buffers and threads.
Json defaultResources(const ClusterSpec& spec);

std::string clientServiceName(const std::string& cluster);

}  // namespace mcop::memcached
