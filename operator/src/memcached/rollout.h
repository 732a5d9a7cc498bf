// Rollout: a Warm rolling update (spec.updateStrategy Warm with spec.transition.mode Warm). The
// StatefulSet is OnDelete, so a template change restarts nothing by itself; the operator
// restarts one member at a time, each through two Warm transitions, so its keys stay warm on
// the other members while it restarts. Its state lives in status.rollout:
//   none       -> leaving:    a member runs an older template than the StatefulSet's
//                             updateRevision, every member is Ready, no drain or transition is
//                             under way: the highest such ordinal is kept out of the ring, which
//                             starts a transition to the ring without it.
//   leaving    -> restarting: that transition is over and the published endpoints no longer
//                             list the member: its pod is deleted (the StatefulSet recreates it
//                             from the new template).
//   restarting -> rejoining:  the new pod runs the update revision and is Ready: it is let back
//                             into the ring (emptied first, then a transition copies its keys
//                             back).
//   rejoining  -> none:       the member is published again and no transition is under way.
// At most one member is out of the ring at a time.
// Thread-safety: pure functions (they write log lines).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "memcached/cluster_status.h"
#include "memcached/membership.h"
#include "memcached/planned_event.h"

namespace mcop::memcached {

struct RolloutInput {
  std::string key;      // "namespace/name", for log lines
  bool warm = false;    // warmRollout(spec)
  std::string update_revision;  // the StatefulSet's status.updateRevision ("" when unknown)
  int64_t replicas = 0;         // the StatefulSet's replicas as observed
  std::map<int64_t, PodView> pods;
  std::optional<RolloutStatus> recorded;
  std::vector<Member> recorded_members;
  bool drain = false;       // status.drain is set
  bool transition = false;  // status.transition is set
  // Every name the cached endpoints list in any ring; nullopt when unreadable.
  std::optional<std::vector<std::string>> listed;
  std::string now_precise;
  std::chrono::milliseconds max_poll_interval{2000};
};

struct RolloutStep {
  std::optional<RolloutStatus> rollout;  // what status records
  std::set<std::string> excluded;        // kept out of the ring in this pass
  std::string delete_pod;                // the pod to delete in this pass ("" none)
  std::string message;                   // for Progressing ("" none)
  std::vector<PlannedEvent> events;
  std::optional<std::chrono::milliseconds> requeue;
};

RolloutStep planRollout(const RolloutInput& in);

}  // namespace mcop::memcached
