// Rollout: see rollout.h.
#include "memcached/rollout.h"

#include "memcached/membership.h"

#include <algorithm>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

namespace mcop::memcached {

namespace {

bool listed(const RolloutInput& in, const std::string& name) {
  // Unreadable endpoints may list it: assume they do.
  if (!in.listed) return true;
  return std::find(in.listed->begin(), in.listed->end(), name) != in.listed->end();
}

const Member* memberNamed(const RolloutInput& in, const std::string& name) {
  for (const auto& m : in.recorded_members) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

const PodView* podNamed(const RolloutInput& in, const std::string& name) {
  for (const auto& [ordinal, pod] : in.pods) {
    if (pod.name == name) return &pod;
  }
  return nullptr;
}

// A member at or above the StatefulSet's replicas whose pod is gone or going: a scale-down
// removed it.
bool removedByScaleDown(const RolloutInput& in, const std::string& member) {
  const std::string cluster = in.key.substr(in.key.find('/') + 1);
  auto ordinal = ordinalOf(cluster, member);
  if (!ordinal || *ordinal < in.replicas) return false;
  const PodView* pod = podNamed(in, member);
  return !pod || pod->terminating;
}

// The member to restart next: every pod of the StatefulSet exists, is Ready and published, and
// the highest ordinal running an older template (the order a StatefulSet rolls in).
std::optional<std::string> nextOutdated(const RolloutInput& in) {
  if (in.update_revision.empty() || in.replicas <= 1) return std::nullopt;
  std::optional<std::string> pick;
  for (int64_t ordinal = 0; ordinal < in.replicas; ++ordinal) {
    auto pod = in.pods.find(ordinal);
    if (pod == in.pods.end() || !pod->second.ready || pod->second.terminating) return std::nullopt;
    const Member* m = memberNamed(in, pod->second.name);
    if (!m || !isPublished(m->state)) return std::nullopt;
    if (!pod->second.revision.empty() && pod->second.revision != in.update_revision) {
      pick = pod->second.name;
    }
  }
  return pick;
}

void event(RolloutStep& step, std::string reason, std::string message) {
  step.events.push_back({kube::EventSeverity::kNormal, std::move(reason), std::move(message)});
}

}  // namespace

RolloutStep planRollout(const RolloutInput& in) {
  RolloutStep step;
  if (!in.warm) return step;  // a recorded rollout ends: its member rejoins (emptied first)
  if (!in.recorded) {
    if (in.drain || in.transition) return step;
    auto member = nextOutdated(in);
    if (!member) return step;
    step.rollout = RolloutStatus{*member, kRolloutLeaving, in.update_revision, in.now_precise};
    event(step, "RollingUpdate",
          absl::StrCat("restarting ", *member, " with the new pod template: its keys move to the "
                       "other members first, and back once it is Ready"));
    spdlog::info("warm rollout started cluster={} member={} revision={}", in.key, *member,
                 in.update_revision);
  } else if (removedByScaleDown(in, in.recorded->member)) {
    // Its restart was recorded, then a scale-down drained and removed it: there is nothing left
    // to restart, and waiting for its pod would hold the rollout forever. The next outdated
    // member, if any, starts in a later pass.
    spdlog::info("warm rollout: member removed by a scale-down cluster={} member={}", in.key,
                 in.recorded->member);
    keepShorter(step.requeue, in.max_poll_interval);
    return step;
  } else {
    step.rollout = in.recorded;
  }
  RolloutStatus& r = *step.rollout;
  const PodView* pod = podNamed(in, r.member);
  if (r.phase == kRolloutLeaving && !in.transition && !listed(in, r.member)) {
    r.phase = kRolloutRestarting;
    spdlog::info("warm rollout: restarting cluster={} member={}", in.key, r.member);
  }
  // Until its pod runs the new template (every pass: a restart between recording this and the
  // deletion must not leave the old pod in place).
  if (r.phase == kRolloutRestarting && pod && !pod->terminating && pod->revision != r.revision &&
      !listed(in, r.member)) {
    step.delete_pod = r.member;
  }
  if (r.phase == kRolloutRestarting && pod && pod->ready && !pod->terminating &&
      pod->revision == r.revision) {
    r.phase = kRolloutRejoining;
    spdlog::info("warm rollout: rejoining cluster={} member={}", in.key, r.member);
  }
  if (r.phase == kRolloutRejoining) {
    const Member* m = memberNamed(in, r.member);
    if (m && isPublished(m->state) && !in.transition && listed(in, r.member)) {
      spdlog::info("warm rollout: member done cluster={} member={}", in.key, r.member);
      step.rollout.reset();
      // Look again soon: the next outdated member starts in a later pass, and nothing else may
      // wake this cluster (its own status writes do not), e.g. after a restart of the operator
      // right after the member's last publish.
      keepShorter(step.requeue, in.max_poll_interval);
      return step;
    }
    step.message = absl::StrCat("rolling update: ", r.member, " rejoins the endpoints");
  } else {
    step.excluded.insert(r.member);
    step.message = r.phase == kRolloutLeaving
                       ? absl::StrCat("rolling update: moving the keys of ", r.member,
                                      " to the other members before it restarts")
                       : absl::StrCat("rolling update: waiting for ", r.member,
                                      " to restart with the new pod template");
  }
  keepShorter(step.requeue, in.max_poll_interval);
  return step;
}

}  // namespace mcop::memcached
