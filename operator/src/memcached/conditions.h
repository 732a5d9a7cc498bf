// Conditions: what a MemcachedCluster's status says about it (Available, Progressing, Degraded
// and the phase printed by kubectl), decided from one pass's plan. Available follows minimum
// availability as a Deployment reports it; Progressing says what the pass is waiting for;
// Degraded says what needs a human (failing pods, a forced scale-down, unreadable stats, a
// failed write). cluster_status.h holds the types; this file decides their values.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "memcached/cluster_security.h"
#include "memcached/cluster_spec.h"
#include "memcached/cluster_status.h"
#include "memcached/membership.h"

namespace mcop::memcached {

// A Degraded reason that is carried over passes of the same generation until the writes of a
// pass all succeed, so a failing write does not flip Degraded on every retry.
inline constexpr char kReasonApplyFailed[] = "ApplyFailed";

struct ConditionsInput {
  int64_t generation = 0;
  int64_t spec_replicas = 0;
  int64_t pdb_max_unavailable = 0;
  int64_t drain_timeout_seconds = 0;
  bool paused = false;
  std::vector<Member> members;      // as this pass decided them
  std::map<int64_t, PodView> pods;  // as observed
  std::optional<DrainStatus> drain;  // as this pass decided it
  std::string drain_message;        // the drain's own account of what it waits for; "" = none
  // A Warm transition in progress: its account of what it waits for ("" = none). It comes
  // first: while it runs, a drain waits for it.
  std::string transition_message;
  bool lowering_blocked = false;    // the live endpoints may still list an outgoing pod
  bool scaling_up = false;          // this pass raises the StatefulSet's replicas
  bool rolling_update = false;      // the StatefulSet's update and current revisions differ
  std::string rollout_message;      // a Warm rolling update's account of itself; "" = none
  std::vector<std::string> measure_failures;  // members whose stats could not be read
  // A referenced Secret is invalid (cluster_security.h): Degraded says so first, whatever else
  // is wrong, because it holds every pod start, restart and deletion until fixed.
  std::vector<SecretProblem> secret_problems;
  // Members whose refresh_certs failed ("member: error"): they keep serving their previous
  // certificate.
  std::vector<std::string> certificate_failures;
  int64_t config_version = 0;
  // Degraded as recorded before this pass: a DrainTimeout (and, with carry_write_failure, an
  // ApplyFailed) of this generation is kept.
  std::optional<Condition> previous_degraded;
  bool carry_write_failure = true;
};

struct ConditionsDecision {
  Condition available;
  // Unset for a paused cluster: its Progressing is set by the caller and Degraded is kept.
  std::optional<Condition> progressing;
  std::optional<Condition> degraded;
  std::string phase;  // "" when paused (the caller says "Paused")
};

Condition availableCondition(const ConditionsInput& in);
Condition progressingCondition(const ConditionsInput& in);
Condition degradedCondition(const ConditionsInput& in);
// All three and the phase: Degraded over Progressing over Available over Unavailable.
ConditionsDecision decideConditions(const ConditionsInput& in);
// Writes `decision` into `conditions` (keeping lastTransitionTime where a status did not flip).
void applyConditions(const ConditionsDecision& decision, const std::string& now,
                     std::vector<Condition>& conditions);

}  // namespace mcop::memcached
