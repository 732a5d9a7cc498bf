// The drain: see drain.h.
#include "memcached/drain.h"

#include <algorithm>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <spdlog/spdlog.h>

#include "kube/api_client.h"
#include "memcached/endpoints_config.h"
#include "util/logging.h"
#include "util/time.h"

namespace mcop::memcached {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A sweep in progress is looked at again after as long as it has run so far, within these
// bounds: a small cache's sweep is recorded within moments, a big one's costs a pass a second.
constexpr milliseconds kSweepPollMin{50};
constexpr milliseconds kSweepPollMax{1000};

std::vector<std::string> outgoing(const std::string& cluster, int64_t from, int64_t to) {
  std::vector<std::string> names;
  for (int64_t i = from; i < to; ++i) names.push_back(podName(cluster, i));
  return names;
}

void event(DrainStep& step, kube::EventSeverity severity, std::string reason,
           std::string message) {
  step.events.push_back({severity, std::move(reason), std::move(message)});
}

// A drain whose StatefulSet is still above the target: cancel, retarget or go on.
void steerDrain(const DrainInput& in, DrainStep& step) {
  auto& drain = step.drain;
  if (in.wanted >= in.current) {
    event(step, kube::EventSeverity::kNormal, "DrainCancelled",
          absl::StrCat("spec.replicas is ", in.wanted, " again: ",
                       absl::StrJoin(drain->members, ", "), " rejoin the endpoints"));
    spdlog::info("drain cancelled cluster={} replicas={}", in.key, in.wanted);
    drain.reset();
  } else if (in.wanted != drain->target_replicas) {
    if (in.wanted < drain->target_replicas) {
      // More pods leave: the newly unpublished ones need the full minimum again, and the
      // members that stay need sweeping against the ring that still lists them.
      drain->published_at.clear();
      drain->stale_copies_swept = !in.sweep_before_publish;
    }
    drain->target_replicas = in.wanted;
    drain->members = outgoing(in.cluster, in.wanted, in.current);
    drain->outcome.clear();
    event(step, kube::EventSeverity::kNormal, "DrainStarted",
          absl::StrCat("draining ", absl::StrJoin(drain->members, ", "),
                       " before scaling down to ", in.wanted));
    spdlog::info("drain retargeted cluster={} target={} members={}", in.key, in.wanted,
                 absl::StrJoin(drain->members, ","));
    keepShorter(step.requeue, in.max_poll_interval);
  } else if (!drain->stale_copies_swept) {
    step.next = DrainNext::kSweep;
  } else if (drain->outcome.empty()) {
    step.next = DrainNext::kEvaluate;
  }
}

void startDrain(const DrainInput& in, DrainStep& step) {
  auto& drain = step.drain;
  drain = DrainStatus{in.wanted, outgoing(in.cluster, in.wanted, in.current), in.now_precise,
                      "", "", !in.sweep_before_publish};
  event(step, kube::EventSeverity::kNormal, "ScalingDown",
        absl::StrCat("scaling down from ", in.current, " to ", in.wanted,
                     " replicas: draining first"));
  event(step, kube::EventSeverity::kNormal, "DrainStarted",
        absl::StrCat("removing ", absl::StrJoin(drain->members, ", "), " from the endpoints ",
                     in.sweep_before_publish
                         ? "once the members that stay are swept of stale copies"
                         : "through a warm transition",
                     "; then waiting at least ", in.min_seconds,
                     "s and for their client connections to close"));
  spdlog::info("drain started cluster={} target={} members={}", in.key, in.wanted,
               absl::StrJoin(drain->members, ","));
  if (in.sweep_before_publish) {
    step.message = absl::StrCat("sweeping stale copies before publishing the endpoints without ",
                                absl::StrJoin(drain->members, ", "));
  }
  // The sweep runs in the next pass, once this record of it is in status.
  keepShorter(step.requeue, milliseconds(1));
}

}  // namespace

DrainStep planDrain(const DrainInput& in) {
  DrainStep step;
  if (!in.has_stateful_set) return step;  // nothing to drain: the StatefulSet is created
  step.drain = in.recorded;
  auto& drain = step.drain;
  if (drain && in.current > drain->target_replicas) {
    steerDrain(in, step);
  } else if (drain) {
    // The StatefulSet is already at (or below) the target: wait for the outgoing pods to go.
    bool gone = true;
    for (const auto& [ordinal, pod] : in.pods) {
      if (ordinal >= drain->target_replicas) gone = false;
    }
    if (gone) {
      spdlog::info("drain finished cluster={} replicas={}", in.key, in.current);
      drain.reset();
    } else {
      keepShorter(step.requeue, in.max_poll_interval);
    }
  }
  if (!drain && in.wanted < in.current) startDrain(in, step);
  return step;
}

void applySweep(DrainStep& step, const SweepObservation& sweep, const std::string& key,
                milliseconds max_poll_interval) {
  auto& drain = *step.drain;
  const std::string members = absl::StrJoin(drain.members, ", ");
  using Kind = SweepObservation::Kind;
  if (sweep.kind == Kind::kRunning) {
    step.message = absl::StrCat("sweeping stale copies from ", absl::StrJoin(sweep.pending, ", "),
                                " (", sweep.finished, " of ", sweep.total,
                                " done) before publishing the endpoints without ", members);
    const milliseconds longest =
        std::max(kSweepPollMin, std::min(kSweepPollMax, max_poll_interval));
    keepShorter(step.requeue, std::clamp(sweep.elapsed, kSweepPollMin, longest));
    return;
  }
  drain.stale_copies_swept = true;
  if (drain.outcome.empty()) step.next = DrainNext::kEvaluate;
  if (sweep.kind == Kind::kUnreadable) {
    event(step, kube::EventSeverity::kWarning, "StaleCopySweepFailed",
          absl::StrCat(sweep.error, "; continuing the drain of ", members));
    spdlog::warn("stale copy sweep failed cluster={} error={}", key, util::quoted(sweep.error));
  }
  if (sweep.kind != Kind::kDone) return;
  SweepCounts total;
  std::vector<std::string> swept;
  std::vector<std::string> failed;
  for (const auto& member : sweep.results) {
    if (!member.counts.ok()) {
      failed.push_back(absl::StrCat(member.name, " (", member.counts.status().message(), ")"));
      continue;
    }
    total.scanned += member.counts->scanned;
    total.removed += member.counts->removed;
    swept.push_back(member.name);
  }
  if (!swept.empty()) {
    event(step, kube::EventSeverity::kNormal, "StaleCopiesRemoved",
          absl::StrCat("removed ", total.removed, " of ", total.scanned, " items from ",
                       absl::StrJoin(swept, ", "), " (keys that version ", sweep.ring_version,
                       " of the endpoints routes elsewhere) before publishing the endpoints "
                       "without ", members));
  }
  if (!failed.empty()) {
    event(step, kube::EventSeverity::kWarning, "StaleCopySweepFailed",
          absl::StrCat("could not sweep ", absl::StrJoin(failed, ", "),
                       ": keys moving back to it may be served stale; continuing the drain of ",
                       members));
  }
  spdlog::info("stale copy sweep done cluster={} swept={} failed={} scanned={} removed={} "
               "took_ms={}", key, swept.size(), failed.size(), total.scanned, total.removed,
               sweep.elapsed.count());
}

DrainClock drainClock(const DrainStatus& drain,
                      const std::optional<std::vector<std::string>>& names,
                      std::chrono::system_clock::time_point now, const std::string& now_precise,
                      int64_t min_seconds) {
  DrainClock clock;
  clock.published_at = drain.published_at;
  if (clock.published_at.empty()) {
    // The clock starts once the list without the outgoing pods is visibly published.
    bool excluded = names.has_value();
    for (const auto& m : drain.members) {
      if (names && std::find(names->begin(), names->end(), m) != names->end()) excluded = false;
    }
    if (!excluded) return clock;
    clock.published_at = now_precise;
  }
  clock.published = true;
  auto started = util::parseRfc3339(clock.published_at);
  if (!started) {
    // Unreadable time (hand-edited status): restart the clock rather than cut it short.
    clock.published_at = now_precise;
    started = now;
  }
  clock.started = *started;
  clock.elapsed = std::chrono::duration_cast<milliseconds>(now - *started);
  clock.measuring = clock.elapsed >= milliseconds(seconds(min_seconds));
  return clock;
}

std::vector<ConnectionProbe> drainConnectionProbes(const DrainStatus& drain,
                                                   const std::string& cluster,
                                                   const std::vector<Member>& recorded_members,
                                                   const std::map<int64_t, PodView>& pods) {
  std::map<std::string, const Member*> members;
  for (const auto& m : recorded_members) members[m.name] = &m;
  std::vector<ConnectionProbe> probes;
  for (const auto& name : drain.members) {
    auto ordinal = ordinalOf(cluster, name);
    auto pod = ordinal ? pods.find(*ordinal) : pods.end();
    // A pod that is gone or has no address serves no clients. A pod that is not Ready may:
    // clients use the published list, not readiness, and a node that missed its heartbeats
    // (an API server outage) turns every pod NotReady while memcached keeps serving.
    if (pod == pods.end() || pod->second.ip.empty()) continue;
    auto member = members.find(name);
    // Never published (no baseline): no client ever had it in its ring.
    if (member == members.end() || !member->second->baseline_connections) continue;
    probes.push_back(
        {name, pod->second.ip, *member->second->baseline_connections, pod->second.ready});
  }
  return probes;
}

void evaluateDrain(DrainStep& step, const DrainEvaluation& in) {
  auto& drain = *step.drain;
  const auto& clock = in.clock;
  const std::string members = absl::StrJoin(drain.members, ", ");
  if (!clock.published) {
    step.message = absl::StrCat("publishing the endpoints without ", members);
    keepShorter(step.requeue, in.max_poll_interval);
    return;
  }
  drain.published_at = clock.published_at;
  const milliseconds min_wait = seconds(in.settings.min_seconds);
  const milliseconds timeout = seconds(in.settings.timeout_seconds);
  // Messages name absolute times, never a countdown: a message that changes on every poll
  // would rewrite status on every poll.
  if (!clock.measuring) {
    step.message = absl::StrCat("waiting until ", util::formatRfc3339(clock.started + min_wait),
                                " for clients to load the new endpoints before removing ",
                                members);
    keepShorter(step.requeue, std::min(min_wait - clock.elapsed, in.max_poll_interval));
    return;
  }
  std::vector<std::string> busy;        // with counts, for the log and the timeout event
  std::vector<std::string> busy_names;  // for the status message, which must stay stable
  for (const auto& probe : in.probes) {
    auto it = in.counts.find(probe.name);
    if ((it == in.counts.end() || !it->second.ok()) && !probe.ready) {
      continue;  // not Ready and not answering: no client can be using it
    }
    if (it == in.counts.end() || !it->second.ok()) {
      const std::string why = it == in.counts.end() ? std::string("not measured in time")
                                                    : std::string(it->second.status().message());
      busy.push_back(absl::StrCat(probe.name, " (stats unavailable: ", why, ")"));
      busy_names.push_back(probe.name);
      continue;
    }
    const int64_t clients = *it->second - probe.baseline;
    spdlog::debug("drain connections cluster={} pod={} clients={} threshold={}", in.key,
                  probe.name, clients, in.settings.connection_threshold);
    if (clients > in.settings.connection_threshold) {
      busy.push_back(absl::StrCat(probe.name, " (", clients, " client connections)"));
      busy_names.push_back(probe.name);
    }
  }
  const int64_t took = clock.elapsed.count() / 1000;
  if (busy.empty() || clock.elapsed >= timeout) {
    step.decided_after_seconds = static_cast<double>(clock.elapsed.count()) / 1000.0;
  }
  if (busy.empty()) {
    drain.outcome = kDrainOutcomeDrained;
    event(step, kube::EventSeverity::kNormal, "DrainCompleted",
          absl::StrCat(members, " drained after ", took, "s; scaling down to ",
                       drain.target_replicas));
    spdlog::info("drain completed cluster={} members={} took_s={}", in.key,
                 absl::StrJoin(drain.members, ","), took);
    return;
  }
  if (clock.elapsed >= timeout) {
    drain.outcome = kDrainOutcomeTimedOut;
    event(step, kube::EventSeverity::kWarning, "DrainTimeout",
          absl::StrCat("drain timed out after ", in.settings.timeout_seconds,
                       "s with clients still connected to ", absl::StrJoin(busy, ", "),
                       "; scaling down to ", drain.target_replicas, " anyway"));
    spdlog::warn("drain timed out cluster={} busy={}", in.key,
                 util::quoted(absl::StrJoin(busy, ", ")));
    return;
  }
  step.message = absl::StrCat("waiting for clients to leave ", absl::StrJoin(busy_names, ", "),
                              " (at most ", in.settings.connection_threshold,
                              " client connections each; scaling down anyway at ",
                              util::formatRfc3339(clock.started + timeout), ")");
  spdlog::debug("drain waiting cluster={} busy={}", in.key,
                util::quoted(absl::StrJoin(busy, ", ")));
  keepShorter(step.requeue, std::min(timeout - clock.elapsed, in.max_poll_interval));
}

bool loweringBlocked(const absl::StatusOr<Json>& endpoints, const std::string& cluster,
                     int64_t decided, int64_t current) {
  if (decided >= current) return false;
  // Nothing published means no client lists anything; any other failure blocks.
  if (!endpoints.ok()) return !kube::IsNotFound(endpoints.status());
  auto listed = publishedServerNames(*endpoints);
  if (!listed) return true;
  for (int64_t i = decided; i < current; ++i) {
    if (std::find(listed->begin(), listed->end(), podName(cluster, i)) != listed->end()) {
      return true;
    }
  }
  return false;
}

int64_t ringSize(int64_t decided, const std::optional<DrainStatus>& drain,
                 const std::vector<Member>& recorded_members) {
  if (!drain) return decided;
  int64_t size = std::min(decided, drain->target_replicas);
  if (!drain->stale_copies_swept) {
    int64_t published = 0;
    for (const auto& m : recorded_members) {
      if (isPublished(m.state)) published = std::max(published, m.ordinal + 1);
    }
    size = std::max(size, std::min(published, decided));
  }
  return size;
}

}  // namespace mcop::memcached
