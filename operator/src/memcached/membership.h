// Membership: which pods are in the published ring and in what state. A pod joins once it is
// Ready for the first time and its baseline connection count has been measured; from then on it
// keeps its place whether Ready (active) or not (unready), so a readiness flap never remaps keys.
// Draining members are out of the ring but still tracked until their pods are gone.
// Thread-safety: pure functions (measuring is delegated to the caller's callback).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

#include "memcached/cluster_status.h"
#include "memcached/endpoints_config.h"
#include "memcached/json_util.h"

namespace mcop::memcached {

// What the reconciler needs to know about one pod of the StatefulSet.
struct PodView {
  std::string name;
  int64_t ordinal = 0;
  bool ready = false;
  bool terminating = false;
  std::string ip;
  std::string failure;  // "CrashLoopBackOff" etc. when a container cannot run; "" otherwise
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
  std::vector<Member> previous;
  std::map<int64_t, PodView> pods;
};

struct MembershipResult {
  std::vector<Member> members;                // ordinal order
  std::vector<std::string> joined;            // published for the first time in this pass
  // Ready but not joined: the baseline could not be read or the member could not be emptied.
  std::vector<std::string> measure_failures;
};

// What planning asks of a Ready pod that is not published yet.
struct MemberProbes {
  // curr_connections of the pod, its baseline before it first joins.
  std::function<absl::StatusOr<int64_t>(const PodView&)> measure;
  // Empties the pod (flush_all): a member coming back from a drain (flush_required) joins
  // only once this succeeded.
  std::function<absl::Status(const PodView&)> flush;
};

MembershipResult planMembers(const MembershipInput& input, const MemberProbes& probes);

// The published ring: active and unready members in ordinal order.
std::vector<PublishedServer> publishedServers(const std::vector<Member>& members, int64_t port);

}  // namespace mcop::memcached
