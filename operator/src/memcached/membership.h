// Membership: which pods are in the published ring and in what state. A pod joins once it is
// Ready for the first time and its baseline connection count has been measured; from then on it
// keeps its place whether Ready (active) or not (unready), so a readiness flap never remaps keys.
// Draining members are out of the ring but still tracked until their pods are gone.
// Thread-safety: pure functions (the reconciler probes memcached and passes the results in).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

#include "memcached/cluster_status.h"
#include "memcached/endpoints_config.h"
#include "memcached/json_util.h"
#include "memcached/planned_event.h"

namespace mcop::memcached {

// What the reconciler needs to know about one pod of the StatefulSet.
struct PodView {
  std::string name;
  int64_t ordinal = 0;
  bool ready = false;
  bool terminating = false;
  std::string ip;
  std::string failure;  // "CrashLoopBackOff" etc. when a container cannot run; "" otherwise
  std::string revision;  // its controller-revision-hash label: the template it runs
};

// The cluster's pods by ordinal; pods whose name is not "<cluster>-<ordinal>" are ignored.
std::map<int64_t, PodView> podsByOrdinal(const std::string& cluster, const std::vector<Json>& pods);
// "sessions-2" -> 2 for cluster "sessions"; nullopt for anything else.
std::optional<int64_t> ordinalOf(const std::string& cluster, const std::string& pod_name);
std::string podName(const std::string& cluster, int64_t ordinal);
// <pod>.<cluster>.<ns>.svc.<domain>: the stable name the ring hashes.
std::string memberHost(const std::string& pod, const std::string& cluster, const std::string& ns,
                       const std::string& domain);

struct MembershipInput {
  std::string cluster;
  std::string ns;
  std::string domain;
  // Ordinals [0, ring_size) are (or will be) in the ring.
  int64_t ring_size = 0;
  // Pod names being drained (ordinals >= ring_size): tracked as draining.
  std::vector<std::string> draining;
  // Pod names in [0, ring_size) kept out of the ring for now (a Warm rolling update restarting
  // them): tracked as draining, and emptied before they join again.
  std::set<std::string> excluded;
  std::vector<Member> previous;
  std::map<int64_t, PodView> pods;
};

// A Ready pod, not published yet, that must be emptied and/or measured before it joins: what
// the reconciler asks memcached (probeJoiners) before planMembers decides.
struct JoinProbe {
  std::string name;
  std::string address;
  // Coming back from a drain (flush_required): emptied (flush_all) first, and it joins only
  // once that succeeded.
  bool flush = false;
  // No baseline yet: curr_connections before it first joins (after the flush, if any).
  bool measure = false;
};
std::vector<JoinProbe> joinProbes(const MembershipInput& input);

// What the probes found, by pod name. A measurement is only taken when the flush (if any)
// succeeded.
struct JoinProbeResult {
  std::optional<absl::Status> flushed;
  std::optional<absl::StatusOr<int64_t>> connections;
};
using JoinProbeResults = std::map<std::string, JoinProbeResult>;

struct MembershipResult {
  std::vector<Member> members;                // ordinal order
  std::vector<std::string> joined;            // published for the first time in this pass
  // Ready but not joined: the baseline could not be read or the member could not be emptied.
  std::vector<std::string> measure_failures;
  std::vector<PlannedEvent> events;  // MemberFlushed
};

// The members this pass records: ordinals [0, ring_size) in the ring (joining until Ready and
// probed), then the draining ones.
MembershipResult planMembers(const MembershipInput& input, const JoinProbeResults& probed);

// Scaling: the StatefulSet replicas this pass applies. Without a StatefulSet, spec.replicas.
// A drain decided (outcome set) lowers to its target; without a drain, a higher spec.replicas
// scales up at once (the new pods join the ring once Ready and measured). Otherwise, current.
int64_t decideReplicas(bool has_stateful_set, int64_t wanted, int64_t current,
                       const std::optional<DrainStatus>& drain);

// The published ring: active and unready members in ordinal order.
std::vector<PublishedServer> publishedServers(const std::vector<Member>& members, int64_t port);

}  // namespace mcop::memcached
