// Transition: how a Warm change of the ring moves through its published phases
// (docs/transitions.md). Its state lives in status.transition, so a restart anywhere resumes the
// same phase; each phase is recorded in status before it is published, and only moves on once
// its version has been seen published:
//   none     -> prepare:  the ring the members decide differs from the ring clients use; record
//                         {from, to}; publish `servers` = from, `next` = to.
//   prepare  -> copy:     propagationSeconds after prepare was seen published (every client
//                         now deletes a key on its next owner when it writes it).
//   copy     -> switch:   the copy is done (TransitionRunner: targets swept, moving items copied).
//                         A failed or timed-out copy records coldReason, warns, and goes on.
//   switch   -> finalize: windowSeconds after switch was seen published (`servers` = to,
//                         `previous` = from: clients read a miss through to the old owner), and
//                         the backfill is done: propagationSeconds after the publish (every
//                         client writes the new owners now) the moving items are copied once
//                         more, which brings over the ones written after their first copy.
//   finalize -> none:     propagationSeconds after finalize was seen published (no client reads
//                         the old owners any more), the old owners that stay are cleaned of the
//                         copies they no longer own; then `to` is published as stable, or the
//                         next transition starts from `to` when the members moved on meanwhile.
// A change of the members during a transition waits for it (never two transitions interleaved).
// The functions here decide; the reconciler asks the TransitionRunner for the work in between.
// Thread-safety: pure functions (they write log lines).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "memcached/cluster_spec.h"
#include "memcached/cluster_status.h"
#include "memcached/planned_event.h"
#include "memcached/transition_runner.h"

namespace mcop::memcached {

struct TransitionInput {
  std::string key;  // "namespace/name", for log lines
  TransitionSettings settings;
  std::optional<TransitionStatus> recorded;  // status.transition as read
  // The ring clients use when no transition is recorded (the members recorded as published).
  std::vector<PublishedServer> published;
  // The ring the members decide in this pass.
  std::vector<PublishedServer> desired;
  // status.ringEstablished: a cluster still coming up starts no transition.
  bool established = true;
  // The cached ConfigMap's version and phase ("" for none); nullopt when none is readable.
  std::optional<int64_t> cached_version;
  std::string cached_phase;
  int64_t recorded_version = 0;  // status.configVersion as read
  std::chrono::system_clock::time_point now;
  std::string now_precise;  // RFC 3339 with microseconds
  std::chrono::milliseconds max_poll_interval{2000};
};

// The work a phase needs from the TransitionRunner before it can move on.
enum class TransitionWorkKind { kNone, kCopy, kBackfill, kClean };

struct TransitionStep {
  std::optional<TransitionStatus> transition;  // what status records
  // What the endpoints publish in this pass.
  std::string phase;  // "" when no transition: `servers` only
  std::vector<PublishedServer> servers;
  std::vector<PublishedServer> next;
  std::vector<PublishedServer> previous;
  TransitionWorkKind work = TransitionWorkKind::kNone;
  std::string message;  // for Progressing; "" when no transition
  std::vector<PlannedEvent> events;
  std::optional<std::chrono::milliseconds> requeue;
  // Phases that ended in this pass, with how long each took from when it was recorded.
  std::vector<std::pair<std::string, double>> finished_phases;
};

// Start, advance or finish the transition, up to the work the current phase needs.
TransitionStep planTransition(const TransitionInput& in);

// Records the work's progress (TransitionRunner::progress) in the step (copy counters, coldReason, cleaned) and, once it is
// done, moves the transition on as planTransition would.
void applyTransitionWork(TransitionStep& step, const TransitionInput& in,
                         const TransitionWorkProgress& work);

// The work of the step's phase: copy (sweep the targets that stay against `from`, then copy
// every source) or clean (sweep the old owners that stay against `to`). Rings are built with
// `hashing`; an error when a ring cannot be built.
absl::StatusOr<TransitionWork> transitionWork(const TransitionStep& step,
                                              const std::string& cluster,
                                              const std::string& hashing,
                                              const TransitionSettings& settings);
TransitionWorkId transitionWorkId(const std::string& uid, const TransitionStatus& transition);

// Whether two rings list the same members in the same order.
bool sameNames(const std::vector<PublishedServer>& a, const std::vector<PublishedServer>& b);

}  // namespace mcop::memcached
