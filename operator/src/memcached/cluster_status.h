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

// One server of a published ring, as endpoints.json lists it.
struct PublishedServer {
  std::string name;     // pod name, "sessions-0"
  std::string host;     // stable DNS name: what the ring hashes
  std::string address;  // pod IP: where to connect
  int64_t port = 11211;
  int64_t weight = 1;
  std::string state;  // "active" or "unready"

  friend bool operator==(const PublishedServer&, const PublishedServer&) = default;
};

// The phases of a Warm transition, in order; each is one published version.
inline constexpr char kPhasePrepare[] = "prepare";
inline constexpr char kPhaseCopy[] = "copy";
inline constexpr char kPhaseSwitch[] = "switch";
inline constexpr char kPhaseFinalize[] = "finalize";

// Where the copy from one source member stands; also what resumes it after a restart.
struct CopySourceStatus {
  std::string name;  // the source member (pod name)
  uint64_t processed = 0;
  uint64_t copied = 0;
  uint64_t skipped = 0;  // present, changed, gone or out of bounds
  uint64_t bytes = 0;
  bool done = false;
  // The resume cursor (WarmCopyProgress::cursor): the last candidate processed.
  int64_t cursor_last_access = 0;
  std::string cursor_key;  // "" = no cursor yet

  friend bool operator==(const CopySourceStatus&, const CopySourceStatus&) = default;
};

// status.transition: a Warm transition in progress (docs/transitions.md). Recorded before each
// phase is published, so a restart resumes the same phase and never skips one.
struct TransitionStatus {
  std::string phase;                   // kPhasePrepare ... kPhaseFinalize
  std::vector<PublishedServer> from;   // the ring clients used when it started
  std::vector<PublishedServer> to;     // the ring it moves to
  std::string started_at;              // RFC 3339 (microseconds): when it was first recorded
  std::string phase_started_at;        // RFC 3339 (microseconds): when this phase was recorded
  // RFC 3339 (microseconds): when this phase's version was first seen published; the phase's
  // waits count from here. "" until then.
  std::string published_at;
  std::vector<CopySourceStatus> copy;  // one per source member, ring order (phase copy on)
  // The copy failed or timed out: the keys that moved start cold (backfill still reads through
  // to the previous owner during switch). The reason, as reported in the Warning event.
  std::string cold_reason;
  // switch: once clients read the new ring, the items written on the old owners after their
  // copy (their next-owner copy was deleted by the writer) are copied once more, so the new
  // owners hold them before `previous` is dropped (what the clients' read-through would do,
  // for keys nobody reads within the window).
  bool backfilled = false;
  // finalize: the old owners that stay are cleaned of the copies they no longer own.
  bool cleaned = false;

  friend bool operator==(const TransitionStatus&, const TransitionStatus&) = default;
};

// status.rollout: the member a Warm rolling update is restarting (docs/transitions.md).
inline constexpr char kRolloutLeaving[] = "leaving";        // moving its keys out
inline constexpr char kRolloutRestarting[] = "restarting";  // pod deleted, waiting for the new one
inline constexpr char kRolloutRejoining[] = "rejoining";    // Ready again, moving its keys back
struct RolloutStatus {
  std::string member;    // pod name
  std::string phase;     // kRolloutLeaving ...
  std::string revision;  // the StatefulSet's updateRevision it restarts into
  std::string started_at;

  friend bool operator==(const RolloutStatus&, const RolloutStatus&) = default;
};

// status.tls: which certificate the members serve (spec.tls; docs/secrets-and-rotation.md).
// Rewritten when the validated Secret changes: the members are asked to reload (refresh_certs)
// until every one serves its tls.crt. Public data only (a certificate's hash and expiry).
struct TlsStatus {
  std::string secret_name;
  std::string secret_resource_version;  // of the Secret the certificate below came from
  std::string certificate_sha256;       // SHA-256 (hex) of tls.crt's leaf, DER
  std::string not_after;                // RFC 3339: its expiry
  int64_t members_serving = 0;          // members seen serving it
  std::vector<std::string> pending;     // members not serving it yet, ordinal order
  bool expiry_warned = false;           // CertificateExpiringSoon was sent for it

  friend bool operator==(const TlsStatus&, const TlsStatus&) = default;
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
  std::optional<TransitionStatus> transition;
  std::optional<RolloutStatus> rollout;
  std::optional<TlsStatus> tls;  // spec.tls on and its Secret validated at least once
  // The published ring has held spec.replicas members at least once. Until then the cluster is
  // coming up and its members join without Warm transitions (each would cost the propagation
  // waits, with little or nothing cached to keep warm).
  bool ring_established = false;
  std::vector<Condition> conditions;
};

ClusterStatus parseClusterStatus(const Json& cluster);
Json clusterStatusToJson(const ClusterStatus& status);

const Condition* findCondition(const std::vector<Condition>& conditions, const std::string& type);
// Sets a condition, keeping lastTransitionTime when its status did not flip.
void setCondition(std::vector<Condition>& conditions, Condition condition,
                  const std::string& now);

}  // namespace mcop::memcached
