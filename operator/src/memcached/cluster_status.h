// ClusterStatus: the typed form of a MemcachedCluster's status, read from and written to JSON.
// Status carries what cannot be rebuilt from the world (member baselines, the drain in
// progress and its start time, the published version), so it is written before any step that
// depends on it; the rest (replicas, conditions) is recomputed every pass.
// Thread-safety: value types and pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "memcached/json_util.h"

namespace mcop::memcached {

enum class MemberState {
  kJoining,   // pod exists (or will), not yet Ready and measured: not published
  kActive,    // published, pod Ready
  kUnready,   // published, pod not Ready (keeps its place so keys do not move)
  kDraining,  // removed from the published list, waiting for its clients to leave
};
const char* memberStateName(MemberState state);
std::optional<MemberState> parseMemberState(const std::string& s);
inline bool isPublished(MemberState s) {
  return s == MemberState::kActive || s == MemberState::kUnready;
}

struct Member {
  std::string name;
  int64_t ordinal = 0;
  std::string host;
  std::string address;
  MemberState state = MemberState::kJoining;
  // curr_connections measured before the pod was first published: the measuring connection
  // and any non-client ones (memcached 1.6.x does not count listeners). The drain compares
  // against it.
  std::optional<int64_t> baseline_connections;
  // Left the published list (a drain) and is coming back (the drain was cancelled): it still
  // holds values that clients have since overwritten or deleted on other members, so it is
  // emptied (flush_all) before it is published again. Recorded so a restart cannot skip it.
  bool flush_required = false;

  friend bool operator==(const Member&, const Member&) = default;
};

inline constexpr char kDrainOutcomeDrained[] = "Drained";
inline constexpr char kDrainOutcomeTimedOut[] = "TimedOut";

struct DrainStatus {
  int64_t target_replicas = 0;
  std::vector<std::string> members;  // pod names leaving, ordinal order
  std::string started_at;            // RFC 3339: when the scale-down was first seen
  // RFC 3339: when the endpoints without the outgoing pods were first seen published; the
  // drain's minimum and timeout count from here, so a slow or failing publish never eats into
  // the time clients get to pick up the new list. "" until then.
  std::string published_at;
  // "" while waiting; kDrainOutcomeDrained or kDrainOutcomeTimedOut once decided: from then on
  // the StatefulSet may be lowered to target_replicas.
  std::string outcome;
  // false from the moment the drain is recorded until every member that stays has been swept
  // of the copies it holds for keys it does not own under the still-published ring (see
  // StaleCopySweeper); the list without the outgoing pods is only published once it is true.
  // Drains recorded before this field existed read as true: their list may already be shrunk.
  bool stale_copies_swept = true;

  friend bool operator==(const DrainStatus&, const DrainStatus&) = default;
};

struct Condition {
  std::string type;
  std::string status;  // "True", "False", "Unknown"
  std::string reason;
  std::string message;
  int64_t observed_generation = 0;
  std::string last_transition_time;

  friend bool operator==(const Condition&, const Condition&) = default;
};

inline constexpr char kConditionAvailable[] = "Available";
inline constexpr char kConditionProgressing[] = "Progressing";
inline constexpr char kConditionDegraded[] = "Degraded";

struct ClusterStatus {
  int64_t observed_generation = 0;
  int64_t replicas = 0;
  int64_t ready_replicas = 0;
  std::string selector;
  int64_t config_version = 0;
  std::string config_map_name;
  std::string phase;  // Available, Progressing, Degraded, Paused: the printer column
  std::vector<Member> members;
  std::optional<DrainStatus> drain;
  std::vector<Condition> conditions;
};

ClusterStatus parseClusterStatus(const Json& cluster);
Json clusterStatusToJson(const ClusterStatus& status);

const Condition* findCondition(const std::vector<Condition>& conditions, const std::string& type);
// Sets a condition, keeping lastTransitionTime when its status did not flip.
void setCondition(std::vector<Condition>& conditions, Condition condition,
                  const std::string& now);

}  // namespace mcop::memcached
