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
// `cluster_domain` names the members' DNS names, which the exporter checks memcached's
// certificate against when TLS is on.
Json buildStatefulSet(const ClusterRef& ref, const ClusterSpec& spec, int64_t replicas,
                      const std::string& manager, const std::string& cluster_domain);
// PodDisruptionBudget <name> (only when spec.podDisruptionBudget.enabled).
Json buildPodDisruptionBudget(const ClusterRef& ref, const ClusterSpec& spec,
                              const std::string& manager);

// The container's environment variable holding the pod IP (downward API status.podIP).
inline constexpr char kPodIpEnv[] = "POD_IP";
// The exporter's environment variable holding the pod's name (downward API metadata.name).
inline constexpr char kPodNameEnv[] = "POD_NAME";

// Where the Secrets are mounted (read-only, mode 0440, group 11211 through the pod's fsGroup):
// spec.tls.secretName (tls.crt, tls.key, ca.crt) in memcached and the exporter, the auth file
// in memcached only, and spec.tls.clientSecretName in the exporter only.
inline constexpr char kTlsMountPath[] = "/etc/memcached/tls";
inline constexpr char kAuthMountPath[] = "/etc/memcached/auth";
inline constexpr char kClientTlsMountPath[] = "/etc/memcached/client-tls";
// The pod template annotation carrying spec.auth.file_hash: memcached reads its auth file only
// at start, so a changed file reaches the members by a (warm) rolling restart.
inline constexpr char kAuthHashAnnotation[] = "memcached.operator.io/auth-hash";
// The exporter sidecar's container name, and the Services' port name for its metrics.
inline constexpr char kExporterContainer[] = "exporter";
inline constexpr char kMetricsPortName[] = "metrics";

// memcached's arguments: -p PORT -U 0 -l $(POD_IP),127.0.0.1 -m MB -c CONNS -t THREADS -I SIZE,
// with spec.tls -Z -o ssl_chain_cert=...,ssl_key=...,ssl_ca_cert=...,ssl_verify_mode=0|2, with
// spec.auth -Y <auth mount>/<key>, then extraArgs. The kubelet expands $(POD_IP): memcached
// listens on the pod IP (what clients, the operator and the readiness probe connect to) and the
// pod's own loopback (kubectl port-forward and localhost sidecars), not on every interface of
// the pod (a second network, IPv6 addresses).
std::vector<std::string> memcachedArgs(const ClusterSpec& spec);
// The readiness probe's command: bash sends "version" to $POD_IP:port and needs the answer
// within 2 s (with spec.auth the answer is "CLIENT_ERROR unauthenticated"); with spec.tls, where
// bash cannot speak TLS, it needs memcached to answer the plaintext with a close (a failed
// handshake) or any line within 2 s. Either way a hung memcached times out.
std::vector<std::string> readinessCommand(const ClusterSpec& spec);
// The exporter sidecar's arguments (spec.monitoring.enabled): memcached on $(POD_IP), the
// metrics on the monitoring port, and with TLS the CA, the server name
// $(POD_NAME).<name>.<ns>.svc.<domain> and, under clientAuth Require, a client certificate.
std::vector<std::string> exporterArgs(const ClusterRef& ref, const ClusterSpec& spec,
                                      const std::string& cluster_domain);
// Container resources when spec.resources is unset: memory for the cache plus room for
// memcached's hash table, connection buffers and threads.
Json defaultResources(const ClusterSpec& spec);

std::string clientServiceName(const std::string& cluster);

}  // namespace mcop::memcached
