// The drain: how a scale-down takes members out without losing a client's hit or serving a
// stale value. Its state lives in status.drain, so a restart anywhere resumes it. Steps:
//   none    -> start:   wanted < current; record {target, members, startedAt,
//                       staleCopiesSwept: false} in status; the published ring is left as it is.
//   start   -> swept:   (next passes) sweep the members that stay of copies they do not own under
//                       that still-published ring (the SweepRunner does it; each pass looks at
//                       its progress until done), record staleCopiesSwept: true, then publish
//                       the endpoints without the outgoing pods. A failed sweep is reported and
//                       the drain goes on.
//   swept   -> waiting: the cached ConfigMap shows them gone; record publishedAt.
//   waiting -> decided: minSeconds after publishedAt, every outgoing pod's connections are at most
//                       threshold above its baseline (Drained), or timeoutSeconds passed
//                       (TimedOut); recorded in status.
//   decided -> lowered: StatefulSet replicas set to target (only once the live ConfigMap no
//                       longer lists an outgoing pod).
//   lowered -> none:    the outgoing pods are gone.
// While current > target, wanted >= current cancels the drain (the pods are still there with
// their data) and another wanted < current retargets it (a deeper target sweeps again, against
// the ring published at that time).
// The functions here decide; the reconciler does the reads they need in between (the sweep's
// progress, the outgoing members' connection counts) and passes the results in.
// Thread-safety: pure functions (they write log lines).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

#include "memcached/cluster_spec.h"
#include "memcached/cluster_status.h"
#include "memcached/json_util.h"
#include "memcached/membership.h"
#include "memcached/planned_event.h"
#include "memcached/sweep_runner.h"

namespace mcop::memcached {

// What the drain needs to look at next, in this pass.
enum class DrainNext {
  kNothing,   // no drain, or nothing to look at (waiting for pods to go, already decided)
  kSweep,     // the stale-copy sweep of the members that stay is not recorded as done
  kEvaluate,  // swept: wait for the publish, the minimum and the clients to leave
};

struct DrainInput {
  std::string key;      // "namespace/name", for log lines
  std::string cluster;  // name: pods are <cluster>-<ordinal>
  bool has_stateful_set = false;
  int64_t current = 0;  // the StatefulSet's replicas
  int64_t wanted = 0;   // spec.replicas
  std::optional<DrainStatus> recorded;  // status.drain as read
  std::map<int64_t, PodView> pods;
  int64_t min_seconds = 0;  // spec.drain.minSeconds, for the DrainStarted message
  // Cold: the members that stay are swept of stale copies before the list without the outgoing
  // pods is published. Warm (spec.transition.mode): the transition's copy phase sweeps them, and
  // the drain only waits for the outgoing pods to leave every published ring.
  bool sweep_before_publish = true;
  std::string now_precise;  // RFC 3339 with microseconds: the drain's timestamps
  std::chrono::milliseconds max_poll_interval{2000};
};

struct DrainStep {
  std::optional<DrainStatus> drain;  // what status records
  DrainNext next = DrainNext::kNothing;
  std::string message;  // what the drain waits for, for Progressing ("" = the default)
  std::vector<PlannedEvent> events;
  std::optional<std::chrono::milliseconds> requeue;
  // Set when this pass decided the outcome: how long the drain took (for the metrics).
  std::optional<double> decided_after_seconds;
};

// Start, cancel, retarget or finish the drain, and say what it needs to look at next.
DrainStep planDrain(const DrainInput& in);

// What the reconciler saw of the stale-copy sweep (observeSweep in the reconciler).
struct SweepObservation {
  enum class Kind {
    kNothingToSweep,  // nothing published, or no outgoing member in the published ring
    kUnreadable,      // the published endpoints cannot be parsed: nothing to route by
    kRunning,         // started or still running
    kDone,
  };
  Kind kind = Kind::kNothingToSweep;
  std::string error;              // kUnreadable
  uint64_t ring_version = 0;      // kRunning, kDone
  std::vector<std::string> pending;  // kRunning: members not finished, ring order
  size_t finished = 0;               // kRunning
  size_t total = 0;                  // kRunning
  std::chrono::milliseconds elapsed{0};
  std::vector<MemberSweep> results;  // kDone, ring order
};

// Records what the sweep observation means for the drain: swept (then next is kEvaluate), or
// still sweeping (a requeue soon, within [sweep_poll_min, max(sweep_poll_min, min(max, poll)])).
void applySweep(DrainStep& step, const SweepObservation& sweep, const std::string& key,
                std::chrono::milliseconds max_poll_interval);

// Where a swept drain stands on the clock. `names` is the cached ConfigMap's published list
// (nullopt: none or unreadable); `recorded_at` is status.drain.publishedAt.
struct DrainClock {
  bool published = false;     // the list without the outgoing pods is published
  std::string published_at;   // what status records ("" until published)
  std::chrono::system_clock::time_point started;
  std::chrono::milliseconds elapsed{0};
  bool measuring = false;  // the minimum has passed: connection counts decide
};
DrainClock drainClock(const DrainStatus& drain, const std::optional<std::vector<std::string>>& names,
                      std::chrono::system_clock::time_point now, const std::string& now_precise,
                      int64_t min_seconds);

// An outgoing member whose clients the drain waits for: with an address and a baseline (a
// member never published had no clients), Ready or not (see ConnectionProbe::ready).
struct ConnectionProbe {
  std::string name;
  std::string address;
  int64_t baseline = 0;
  // The pod's Ready condition. Clients connect by the published list, not by readiness, so a
  // not-Ready member is measured too; only when it does not answer is it taken as serving none.
  bool ready = true;
};
std::vector<ConnectionProbe> drainConnectionProbes(const DrainStatus& drain,
                                                   const std::string& cluster,
                                                   const std::vector<Member>& recorded_members,
                                                   const std::map<int64_t, PodView>& pods);

// The connection counts read for the probes, by member name.
using ConnectionCounts = std::map<std::string, absl::StatusOr<int64_t>>;

struct DrainEvaluation {
  std::string key;
  DrainClock clock;
  std::vector<ConnectionProbe> probes;
  ConnectionCounts counts;  // one per probe once clock.measuring
  DrainSettings settings;
  std::chrono::system_clock::time_point now;
  std::chrono::milliseconds max_poll_interval{2000};
};
// Decides the outcome (Drained, TimedOut) or what the drain still waits for.
void evaluateDrain(DrainStep& step, const DrainEvaluation& in);

// decided -> lowered: lowering the StatefulSet to `decided` waits while `endpoints` (what clients
// may read once this pass has published; see endpointsAfterPublish) may list an outgoing pod:
// when it cannot be read or parsed, or lists one. NotFound means nothing is published.
bool loweringBlocked(const absl::StatusOr<Json>& endpoints, const std::string& cluster,
                     int64_t decided, int64_t current);

// Members [0, ringSize) are in the ring this pass publishes. Until a drain's sweep is done the
// ring stays as last published (the outgoing members with it): the sweep routes by that ring,
// and the clients must keep using it until the members that stay hold no stale copies.
int64_t ringSize(int64_t decided, const std::optional<DrainStatus>& drain,
                 const std::vector<Member>& recorded_members);

}  // namespace mcop::memcached
