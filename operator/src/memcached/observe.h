// Observe: what one reconcile pass reads before it decides. observeCluster fills one immutable
// ClusterSnapshot from the informer caches alone (the cluster, its parsed spec and recorded
// status, its pods, its children: the child caches hold every object of their kinds, so a name
// they do not hold is free). The other reads
// here are the ones a decision asks for, each an explicit step of the pass: the progress of a
// drain's stale-copy sweep, the outgoing members' connection counts, the probes of members about
// to join (flush_all of a member coming back, then its baseline), and the live endpoints before
// the StatefulSet is lowered. Steps that wait honour the pass's Context.
// Thread-safety: functions; safe to call from several workers for different clusters.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

#include "controller/reconciler.h"
#include "kube/api_client.h"
#include "kube/object_store.h"
#include "memcached/certificate_rotation.h"
#include "memcached/cluster_security.h"
#include "memcached/cluster_spec.h"
#include "memcached/cluster_status.h"
#include "memcached/connection_counter.h"
#include "memcached/desired_objects.h"
#include "memcached/drain.h"
#include "memcached/member_flusher.h"
#include "memcached/member_connection.h"
#include "memcached/membership.h"
#include "memcached/sweep_runner.h"

namespace mcop::memcached {

// The informer caches the reconciler reads. All but service_monitors must be non-null, and all
// must outlive the reconciler.
// The runtime should watch every StatefulSet, Service, ConfigMap, PDB, NetworkPolicy and
// (when served) ServiceMonitor in the watched namespaces, with no label selector, through the
// cacheChildOrStub transform (child_cache.h: ours whole, others as stubs), and Pods carrying
// `app.kubernetes.io/name=memcached`, and map each child to its owner via the
// `memcached.operator.io/cluster` label (or the controller ownerReference).
struct ClusterStores {
  const kube::ObjectStore* clusters = nullptr;
  const kube::ObjectStore* stateful_sets = nullptr;
  const kube::ObjectStore* services = nullptr;
  const kube::ObjectStore* config_maps = nullptr;
  const kube::ObjectStore* pod_disruption_budgets = nullptr;
  const kube::ObjectStore* pods = nullptr;
  const kube::ObjectStore* network_policies = nullptr;
  // Null when the monitoring.coreos.com/v1 API is not served: no ServiceMonitor is written.
  const kube::ObjectStore* service_monitors = nullptr;
};

// The existing objects that share a name with this cluster's children. A name taken by an object
// this cluster does not control is a conflict: that child is left unset and nothing is written.
struct ObservedChildren {
  std::optional<Json> headless;
  std::optional<Json> client;
  std::optional<Json> pdb;
  std::optional<Json> network_policy;
  std::optional<Json> service_monitor;
  std::optional<Json> config_map;
  std::optional<Json> stateful_set;
  // The endpoints ConfigMap as the cache holds it: the same as config_map, now that children
  // are read from the caches only (kept as its own field for the readers that ask for the
  // cache by name).
  std::optional<Json> cached_config_map;
  std::vector<std::string> conflicts;
  std::string conflict_reason;  // "ConfigMapConflict", ... (the first one)
};

struct ClusterSnapshot {
  Json cluster;
  ClusterRef ref;
  std::string key;  // "namespace/name"
  ParsedSpec parsed;
  ClusterStatus recorded;  // status as read
  std::map<int64_t, PodView> pods;
  // Read only for a valid, unpaused spec (an invalid or paused one writes nothing but status).
  ObservedChildren children;
  int64_t current_replicas = 0;  // the StatefulSet's spec.replicas; 0 without one
};

// How a pass reaches its cluster's members: the port, their published DNS names (the TLS server
// name) and the security of the connections (null: plaintext).
struct MemberAccess {
  std::string cluster;  // name
  std::string ns;
  std::string domain;
  int port = 11211;
  MemberSecurityPtr security;

  MemberEndpoint endpoint(const std::string& pod, const std::string& address) const {
    return MemberEndpoint{pod, address, port, memberHost(pod, cluster, ns, domain), security};
  }
};

// The controller ownerReference of `obj`, if any; whether it names `uid`.
const Json* controllerOf(const Json& obj);
bool controlledBy(const Json& obj, const std::string& uid);

// The Secrets `snap`'s spec references, read by name and validated (cluster_security.h) and
// resolved against the cluster's last good material in `tracker`; sets
// snap.parsed.spec.auth.file_hash to the hash of the auth file in use (the validated one, else
// the last good one), which the pod template carries.
ClusterSecrets observeSecrets(kube::ApiClient& api, SecretTracker& tracker, ClusterSnapshot& snap,
                              std::chrono::system_clock::time_point now);

// Reads the snapshot of `cluster` (from the clusters cache): no API request.
ClusterSnapshot observeCluster(const ClusterStores& stores, Json cluster);

// The stale-copy sweep of `drain`: reads the live endpoints (the API server, the cache when it
// fails), starts the sweep in `sweeps` if it is not held, and waits up to ctx.bound(wait) for an
// unfinished one.
// `security` secures the sweep's connections.
SweepObservation observeSweep(const controller::Context& ctx, kube::ApiClient& api,
                              const ClusterStores& stores, SweepRunner& sweeps,
                              const ClusterSnapshot& snap, const DrainStatus& drain,
                              std::chrono::milliseconds wait, MemberSecurityPtr security);

// curr_connections of each probe, by name. Cancelled when the controller is stopping; past the
// deadline the remaining probes are left out (the drain counts them as not measured, so it
// waits for a later pass rather than deciding without them).
absl::StatusOr<ConnectionCounts> measureConnections(const controller::Context& ctx,
                                                    ConnectionCounter& counter,
                                                    const std::vector<ConnectionProbe>& probes,
                                                    const MemberAccess& access);

// Empties (flush_all) and measures the members about to join, in that order: a member that
// cannot be emptied is not measured (and does not join). Cancelled when the controller is
// stopping (nothing is recorded; a flush already made is made again by the next pass, since
// flush_required is only cleared in status by a pass that flushed). Past the deadline the
// remaining members are left out: they stay joining, reported as not probed, and a later pass
// probes them, so a few hung members cannot keep the others from joining.
absl::StatusOr<JoinProbeResults> probeJoiners(const controller::Context& ctx,
                                              ConnectionCounter& counter, MemberFlusher& flusher,
                                              const std::vector<JoinProbe>& probes,
                                              const MemberAccess& access, const std::string& key);

// The certificate each of `members` serves, and for one that does not serve `want`,
// refresh_certs and a second look (certificate_rotation.h). Cancelled when the controller is
// stopping; past the deadline the remaining members are left out (they count as pending).
absl::StatusOr<CertificateChecks> checkCertificates(const controller::Context& ctx,
                                                    CertificateReloader& reloader,
                                                    const std::vector<MemberEndpoint>& members,
                                                    const std::string& want);

// The endpoints clients may read once this pass has published: when the pass publishes (the
// cache differs from `decided`), `decided` itself (it is written before the StatefulSet, and a
// failed publish stops the pass); otherwise the live object from the API server, not the cache.
absl::StatusOr<Json> endpointsAfterPublish(kube::ApiClient& api, const ClusterSnapshot& snap,
                                           const std::string& config_map_name,
                                           const Json& decided);

}  // namespace mcop::memcached
