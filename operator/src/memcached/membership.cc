// Membership: see membership.h.
#include "memcached/membership.h"

#include <algorithm>
#include <cctype>

#include <absl/strings/str_cat.h>

namespace mcop::memcached {
namespace {

// Container states that mean "this will not become Ready by waiting".
bool isFailureReason(const std::string& reason) {
  static const std::set<std::string> reasons = {
      "CrashLoopBackOff",  "ImagePullBackOff",  "ErrImagePull",
      "InvalidImageName",  "CreateContainerConfigError", "CreateContainerError",
      "RunContainerError"};
  return reasons.count(reason) > 0;
}

}  // namespace

std::optional<int64_t> ordinalOf(const std::string& cluster, const std::string& pod_name) {
  if (pod_name.size() <= cluster.size() + 1 || pod_name.compare(0, cluster.size(), cluster) != 0 ||
      pod_name[cluster.size()] != '-') {
    return std::nullopt;
  }
  const std::string digits = pod_name.substr(cluster.size() + 1);
  if (digits.empty() || digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) {
    return std::nullopt;
  }
  int64_t n = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

std::string podName(const std::string& cluster, int64_t ordinal) {
  return absl::StrCat(cluster, "-", ordinal);
}

std::string memberHost(const std::string& pod, const std::string& cluster, const std::string& ns,
                       const std::string& domain) {
  return absl::StrCat(pod, ".", cluster, ".", ns, ".svc.", domain);
}

std::map<int64_t, PodView> podsByOrdinal(const std::string& cluster,
                                         const std::vector<Json>& pods) {
  std::map<int64_t, PodView> out;
  for (const auto& pod : pods) {
    PodView v;
    v.name = stringAt(pod, {"metadata", "name"});
    auto ordinal = ordinalOf(cluster, v.name);
    if (!ordinal) continue;
    v.ordinal = *ordinal;
    v.terminating = findPath(pod, {"metadata", "deletionTimestamp"}) != nullptr &&
                    !findPath(pod, {"metadata", "deletionTimestamp"})->is_null();
    v.ip = stringAt(pod, {"status", "podIP"});
    v.revision = stringAt(pod, {"metadata", "labels", "controller-revision-hash"});
    if (const Json* conds = findPath(pod, {"status", "conditions"}); conds && conds->is_array()) {
      for (const auto& c : conds->as_array()) {
        if (stringAt(c, {"type"}) == "Ready") v.ready = stringAt(c, {"status"}) == "True";
      }
    }
    if (v.terminating) v.ready = false;
    if (const Json* cs = findPath(pod, {"status", "containerStatuses"}); cs && cs->is_array()) {
      for (const auto& c : cs->as_array()) {
        const std::string reason = stringAt(c, {"state", "waiting", "reason"});
        if (isFailureReason(reason)) v.failure = reason;
      }
    }
    out[v.ordinal] = std::move(v);
  }
  return out;
}

namespace {

// The member at `ordinal` as recorded, with its pod's current address.
Member recordedMember(const MembershipInput& input,
                      const std::map<std::string, const Member*>& previous, int64_t ordinal) {
  Member m;
  m.ordinal = ordinal;
  m.name = podName(input.cluster, ordinal);
  m.host = memberHost(m.name, input.cluster, input.ns, input.domain);
  if (auto it = previous.find(m.name); it != previous.end()) {
    m.address = it->second->address;
    m.baseline_connections = it->second->baseline_connections;
    m.state = it->second->state;
    m.flush_required = it->second->flush_required;
  }
  if (auto it = input.pods.find(ordinal);
      it != input.pods.end() && !it->second.ip.empty() && !it->second.terminating) {
    m.address = it->second.ip;
  }
  return m;
}

std::map<std::string, const Member*> byName(const std::vector<Member>& members) {
  std::map<std::string, const Member*> out;
  for (const auto& m : members) out[m.name] = &m;
  return out;
}

// Where a ring ordinal stands before probing: published members keep their place; the others
// are joining, and a Ready one is probed.
struct RingSlot {
  Member member;
  bool published = false;
  bool ready = false;
  std::string address;  // the Ready pod's IP
};

RingSlot ringSlot(const MembershipInput& input,
                  const std::map<std::string, const Member*>& previous, int64_t ordinal) {
  RingSlot slot;
  slot.member = recordedMember(input, previous, ordinal);
  Member& m = slot.member;
  auto pod = input.pods.find(ordinal);
  slot.ready = pod != input.pods.end() && pod->second.ready && !pod->second.ip.empty();
  if (slot.ready) slot.address = pod->second.ip;
  auto prev = previous.find(m.name);
  slot.published = prev != previous.end() && isPublished(prev->second->state);
  // A member coming back from a cancelled drain left the published list: clients have since
  // overwritten and deleted its keys elsewhere, so it must be emptied before it serves again.
  // It keeps its baseline (no new, client-inflated measurement).
  if (prev != previous.end() && prev->second->state == MemberState::kDraining) {
    m.flush_required = true;
  }
  if (slot.published) {
    m.state = slot.ready ? MemberState::kActive : MemberState::kUnready;
    m.flush_required = false;
  } else {
    m.state = MemberState::kJoining;
  }
  return slot;
}

// A Ready joining member: joins once emptied (if required) and measured (if not yet).
void join(Member& m, const JoinProbeResults& probed, MembershipResult& result) {
  auto it = probed.find(m.name);
  const JoinProbeResult none;
  const JoinProbeResult& probe = it == probed.end() ? none : it->second;
  if (m.flush_required) {
    if (!probe.flushed || !probe.flushed->ok()) {
      const std::string why = probe.flushed ? std::string(probe.flushed->message())
                                            : std::string("not probed in time");
      result.measure_failures.push_back(
          absl::StrCat(m.name, ": cannot empty it before it rejoins: ", why));
      return;
    }
    result.events.push_back(
        {kube::EventSeverity::kNormal, "MemberFlushed",
         absl::StrCat(m.name, " left the endpoints and is coming back: emptied it "
                              "(flush_all) so it cannot serve values changed meanwhile")});
    m.flush_required = false;
  }
  if (!m.baseline_connections) {
    if (!probe.connections || !probe.connections->ok()) {
      const std::string why = probe.connections
                                  ? std::string(probe.connections->status().message())
                                  : std::string("not measured in time");
      result.measure_failures.push_back(absl::StrCat(m.name, ": ", why));
      return;
    }
    m.baseline_connections = **probe.connections;
  }
  m.state = MemberState::kActive;
  result.joined.push_back(m.name);
}

}  // namespace

std::vector<JoinProbe> joinProbes(const MembershipInput& input) {
  const auto previous = byName(input.previous);
  std::vector<JoinProbe> probes;
  for (int64_t ordinal = 0; ordinal < input.ring_size; ++ordinal) {
    if (input.excluded.count(podName(input.cluster, ordinal))) continue;
    RingSlot slot = ringSlot(input, previous, ordinal);
    if (slot.published || !slot.ready) continue;
    const bool measure = !slot.member.baseline_connections;
    if (!slot.member.flush_required && !measure) continue;
    probes.push_back({slot.member.name, slot.address, slot.member.flush_required, measure});
  }
  return probes;
}

MembershipResult planMembers(const MembershipInput& input, const JoinProbeResults& probed) {
  MembershipResult result;
  const auto previous = byName(input.previous);
  for (int64_t ordinal = 0; ordinal < input.ring_size; ++ordinal) {
    if (input.excluded.count(podName(input.cluster, ordinal))) {
      Member m = recordedMember(input, previous, ordinal);
      m.state = MemberState::kDraining;
      result.members.push_back(std::move(m));
      continue;
    }
    RingSlot slot = ringSlot(input, previous, ordinal);
    if (!slot.published && slot.ready) join(slot.member, probed, result);
    result.members.push_back(std::move(slot.member));
  }
  std::vector<int64_t> draining;
  for (const auto& name : input.draining) {
    if (auto ordinal = ordinalOf(input.cluster, name); ordinal && *ordinal >= input.ring_size) {
      draining.push_back(*ordinal);
    }
  }
  std::sort(draining.begin(), draining.end());
  draining.erase(std::unique(draining.begin(), draining.end()), draining.end());
  for (int64_t ordinal : draining) {
    Member m = recordedMember(input, previous, ordinal);
    m.state = MemberState::kDraining;
    result.members.push_back(std::move(m));
  }
  return result;
}

int64_t decideReplicas(bool has_stateful_set, int64_t wanted, int64_t current,
                       const std::optional<DrainStatus>& drain) {
  if (!has_stateful_set) return wanted;
  if (drain && !drain->outcome.empty() && current > drain->target_replicas) {
    return drain->target_replicas;
  }
  if (!drain && wanted > current) return wanted;
  return current;
}

std::vector<PublishedServer> publishedServers(const std::vector<Member>& members, int64_t port) {
  std::vector<const Member*> ring;
  for (const auto& m : members) {
    if (isPublished(m.state)) ring.push_back(&m);
  }
  std::sort(ring.begin(), ring.end(),
            [](const Member* a, const Member* b) { return a->ordinal < b->ordinal; });
  std::vector<PublishedServer> out;
  for (const Member* m : ring) {
    PublishedServer s;
    s.name = m->name;
    s.host = m->host;
    s.address = m->address;
    s.port = port;
    s.weight = 1;
    s.state = memberStateName(m->state);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace mcop::memcached
