// Failpoints: named steps at which the operator can be made to exit abruptly, to prove that a
// restart at any of them is safe (docs/reliability.md). Armed only by the environment variable
// MCOP_FAILPOINTS, a comma list of `name` or `name@N` (exit the N-th time that step is reached;
// N defaults to 1), parsed once at start-up by main.cc. A failpoint that fires writes one line on
// stderr and calls _exit(kFailpointExitCode): no destructor, flush or graceful shutdown runs, as
// close to SIGKILL as a process can do to itself, yet distinguishable by a test harness.
//
// Cost when off: failpoint(Name) is an inline relaxed load of one atomic flag, set only when
// MCOP_FAILPOINTS armed something; the lookup and the hit counting happen only when it is on.
// Thread-safety: arm() once before any thread reaches a failpoint; failpoint() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>

namespace mcop::util {

// The exit code of a process stopped by a failpoint (no other exit of the operator uses it).
inline constexpr int kFailpointExitCode = 87;

// The known failpoints. The names are stable: tests and docs refer to them.
enum class Failpoint : uint8_t {
  kStatusWriteBefore,
  kStatusWriteAfter,
  kDecisionRecorded,
  kDrainStarted,
  kEndpointsPublished,
  kTransitionPreparePublished,
  kTransitionCopyPublished,
  kTransitionSwitchPublished,
  kTransitionFinalizePublished,
  kWarmCopyFirstBatch,
  kSweepFirstPass,
  kReplicasLowerBefore,
  kReplicasLowerAfter,
  kRolloutDeleteBefore,
  kRolloutDeleteAfter,
  kCount,
};

struct FailpointInfo {
  Failpoint point;
  std::string_view name;
  std::string_view description;
};

// Name and one-line description of each failpoint, in enum order (docs render this list).
inline constexpr std::array<FailpointInfo, static_cast<size_t>(Failpoint::kCount)> kFailpoints{{
    {Failpoint::kStatusWriteBefore, "status-write-before",
     "a status write is about to be sent (the decision is not recorded)"},
    {Failpoint::kStatusWriteAfter, "status-write-after",
     "a status write returned, before its result is used"},
    {Failpoint::kDecisionRecorded, "decision-recorded",
     "a pass recorded its decision in status, before acting on it"},
    {Failpoint::kDrainStarted, "drain-started",
     "a pass recorded a new scale-down drain in status, before acting on it"},
    {Failpoint::kEndpointsPublished, "endpoints-published",
     "a new version of the endpoints ConfigMap was applied"},
    {Failpoint::kTransitionPreparePublished, "transition-prepare-published",
     "a Warm transition's prepare phase was published"},
    {Failpoint::kTransitionCopyPublished, "transition-copy-published",
     "a Warm transition's copy phase was published"},
    {Failpoint::kTransitionSwitchPublished, "transition-switch-published",
     "a Warm transition's switch phase was published"},
    {Failpoint::kTransitionFinalizePublished, "transition-finalize-published",
     "a Warm transition's finalize phase was published"},
    {Failpoint::kWarmCopyFirstBatch, "warm-copy-first-batch",
     "a warm copy (or backfill) copied its first batch from a source"},
    {Failpoint::kSweepFirstPass, "sweep-first-pass",
     "a stale-copy sweep of a member finished its first walk, before reporting"},
    {Failpoint::kReplicasLowerBefore, "replicas-lower-before",
     "the StatefulSet's replicas are about to be lowered"},
    {Failpoint::kReplicasLowerAfter, "replicas-lower-after",
     "the StatefulSet's replicas were lowered"},
    {Failpoint::kRolloutDeleteBefore, "rollout-delete-before",
     "a Warm rolling update is about to delete a member's pod"},
    {Failpoint::kRolloutDeleteAfter, "rollout-delete-after",
     "a Warm rolling update deleted a member's pod"},
}};

// Which failpoints are armed, and at which hit each fires.
using FailpointPlan = std::map<Failpoint, uint64_t>;

// Parses MCOP_FAILPOINTS' syntax. Empty (or only spaces and commas) is an empty plan. An
// unknown name, an empty name, a bad or zero count, or a name given twice is an
// InvalidArgument error whose message names every known failpoint, so a typo fails loudly
// instead of silently testing nothing.
absl::StatusOr<FailpointPlan> parseFailpoints(std::string_view text);

// Arms the plan (replacing any earlier one and resetting every hit count). An empty plan
// disarms everything, and failpoint() is then a single relaxed load.
void armFailpoints(const FailpointPlan& plan);

// How many times `point` was reached since it was armed (0 when unarmed: unarmed points are
// not counted).
uint64_t failpointHits(Failpoint point);

namespace failpoint_internal {
extern std::atomic<bool> g_armed;
// Counts the hit and exits the process when it is the armed one.
void reached(Failpoint point);
}  // namespace failpoint_internal

// Whether anything is armed: lets a call site skip work done only to decide whether it is at a
// failpoint.
inline bool failpointsArmed() {
  return failpoint_internal::g_armed.load(std::memory_order_relaxed);
}

// A step the failpoint tests can stop the process at. Free when nothing is armed.
inline void failpoint(Failpoint point) {
  if (failpointsArmed()) failpoint_internal::reached(point);
}

}  // namespace mcop::util
