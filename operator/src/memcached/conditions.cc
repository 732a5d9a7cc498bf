// Conditions: see conditions.h.
#include "memcached/conditions.h"

#include <algorithm>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

namespace mcop::memcached {

// Minimum availability, as a Deployment reports it. As many published members may be unready as
// the disruption budget allows (a node drain or one restarting pod is routine, and must not flip
// GitOps health), as long as at least one answers.
Condition availableCondition(const ConditionsInput& in) {
  std::vector<std::string> unready;
  size_t published = 0;
  for (const auto& m : in.members) {
    if (isPublished(m.state)) ++published;
    if (m.state == MemberState::kUnready) unready.push_back(m.name);
  }
  Condition available{kConditionAvailable, "False", "", "", in.generation, ""};
  const size_t allowed_unready =
      static_cast<size_t>(std::max<int64_t>(0, in.pdb_max_unavailable));
  if (published == 0 && in.spec_replicas == 0) {
    available.status = "True";
    available.reason = "ScaledToZero";
    available.message = "spec.replicas is 0";
  } else if (published == 0) {
    available.reason = "NoMembers";
    available.message = "no member is Ready yet";
  } else if (unready.size() >= published || unready.size() > allowed_unready) {
    available.reason = "MembersUnready";
    available.message = absl::StrCat("published but not Ready: ", absl::StrJoin(unready, ", "),
                                     " (at most ", allowed_unready,
                                     " may be, spec.podDisruptionBudget.maxUnavailable)");
  } else if (!unready.empty()) {
    available.status = "True";
    available.reason = "MinimumMembersReady";
    available.message = absl::StrCat(published - unready.size(), " of ", published,
                                     " published members Ready; not Ready: ",
                                     absl::StrJoin(unready, ", "));
  } else {
    available.status = "True";
    available.reason = "MembersReady";
    available.message = absl::StrCat(published, " of ", published, " published members Ready");
  }
  return available;
}

Condition progressingCondition(const ConditionsInput& in) {
  std::vector<std::string> joining;
  for (const auto& m : in.members) {
    if (m.state == MemberState::kJoining) joining.push_back(m.name);
  }
  Condition progressing{kConditionProgressing, "True", "", "", in.generation, ""};
  const auto& drain = in.drain;
  const auto& prev = in.previous_degraded;
  if (in.carry_write_failure && prev && prev->status == "True" &&
      prev->reason == kReasonApplyFailed && prev->observed_generation == in.generation) {
    // A child write the API server refuses blocks everything after it: nothing is scaling up
    // or rolling out until it goes through (Degraded says why).
    progressing.status = "False";
    progressing.reason = kReasonApplyFailed;
    progressing.message = "blocked until the API server accepts the write that Degraded reports";
  } else if (!in.transition_message.empty()) {
    progressing.reason = "Transitioning";
    progressing.message = in.transition_message;
  } else if (drain && drain->outcome.empty()) {
    progressing.reason = "Draining";
    progressing.message = in.drain_message.empty()
                              ? absl::StrCat("draining ", absl::StrJoin(drain->members, ", "))
                              : in.drain_message;
  } else if (drain) {
    progressing.reason = "ScalingDown";
    progressing.message =
        in.lowering_blocked
            ? "waiting for the published endpoints to drop the outgoing pods"
            : absl::StrCat("waiting for ", absl::StrJoin(drain->members, ", "), " to terminate");
  } else if (!joining.empty()) {
    progressing.reason = in.scaling_up ? "ScalingUp" : "WaitingForPods";
    progressing.message = absl::StrCat("waiting for ", absl::StrJoin(joining, ", "),
                                       " to become Ready and join the endpoints");
  } else if (in.rolling_update || !in.rollout_message.empty()) {
    progressing.reason = "RollingUpdate";
    progressing.message = in.rollout_message.empty()
                              ? "the StatefulSet is rolling out a new pod template"
                              : in.rollout_message;
  } else {
    progressing.status = "False";
    progressing.reason = "Stable";
    progressing.message = absl::StrCat(in.members.size(), " members, endpoints version ",
                                       in.config_version);
  }
  return progressing;
}

Condition degradedCondition(const ConditionsInput& in) {
  std::vector<std::string> failing;
  for (const auto& [ordinal, pod] : in.pods) {
    if (!pod.failure.empty()) failing.push_back(absl::StrCat(pod.name, " (", pod.failure, ")"));
  }
  Condition degraded{kConditionDegraded, "False", "AsExpected", "", in.generation, ""};
  const auto& prev = in.previous_degraded;
  const auto kept = [&](const char* reason) {
    return prev && prev->status == "True" && prev->reason == reason &&
           prev->observed_generation == in.generation;
  };
  if (!in.secret_problems.empty()) {
    degraded.status = "True";
    degraded.reason = in.secret_problems.front().reason;
    degraded.message = secretProblemsMessage(in.secret_problems);
  } else if (!in.certificate_failures.empty()) {
    degraded.status = "True";
    degraded.reason = "CertificateReloadFailed";
    degraded.message = absl::StrCat(
        "refresh_certs failed on ", absl::StrJoin(in.certificate_failures, "; "),
        ": those members keep serving their previous certificate; retried every few seconds");
  } else if (!failing.empty()) {
    degraded.status = "True";
    degraded.reason = "PodsFailing";
    degraded.message = absl::StrCat("pods cannot run: ", absl::StrJoin(failing, ", "));
  } else if (in.drain && in.drain->outcome == kDrainOutcomeTimedOut) {
    degraded.status = "True";
    degraded.reason = "DrainTimeout";
    degraded.message = absl::StrCat("scaled down after spec.drain.timeoutSeconds (",
                                    in.drain_timeout_seconds,
                                    "s) with clients still connected to ",
                                    absl::StrJoin(in.drain->members, ", "));
  } else if (kept("DrainTimeout")) {
    // Keep reporting the forced scale-down until the spec changes again.
    degraded = *prev;
  } else if (in.carry_write_failure && kept(kReasonApplyFailed)) {
    degraded = *prev;
  } else if (!in.measure_failures.empty()) {
    degraded.status = "True";
    degraded.reason = "StatsUnavailable";
    degraded.message = absl::StrCat("cannot read memcached stats: ",
                                    absl::StrJoin(in.measure_failures, "; "));
  }
  return degraded;
}

ConditionsDecision decideConditions(const ConditionsInput& in) {
  ConditionsDecision d;
  d.available = availableCondition(in);
  if (in.paused) return d;
  d.progressing = progressingCondition(in);
  d.degraded = degradedCondition(in);
  if (d.degraded->status == "True") {
    d.phase = "Degraded";
  } else if (d.progressing->status == "True") {
    d.phase = "Progressing";
  } else if (d.available.status == "True") {
    d.phase = "Available";
  } else {
    d.phase = "Unavailable";
  }
  return d;
}

void applyConditions(const ConditionsDecision& decision, const std::string& now,
                     std::vector<Condition>& conditions) {
  setCondition(conditions, decision.available, now);
  if (decision.progressing) setCondition(conditions, *decision.progressing, now);
  if (decision.degraded) setCondition(conditions, *decision.degraded, now);
}

}  // namespace mcop::memcached
