// Status (de)serialization and the condition list helpers: see cluster_status.h (conditions.h
// decides the conditions).
#include "memcached/cluster_status.h"

#include <algorithm>

namespace mcop::memcached {
namespace {

// Copy counters are written where every JSON reader holds them exactly (2^53 - 1, as the
// endpoints versions) and where the CRD's int64 accepts them; a hand-edited negative or
// non-integer value reads as 0 rather than wrapping into a huge count.
constexpr uint64_t kMaxJsonCounter = (uint64_t{1} << 53) - 1;

Json counterJson(uint64_t value) {
  return Json::number(static_cast<int64_t>(std::min(value, kMaxJsonCounter)));
}

uint64_t counterAt(const Json& v, std::initializer_list<std::string_view> path) {
  const Json* f = findPath(v, path);
  if (!f || !f->is_number() || !f->is_integer()) return 0;
  const auto& n = f->as_number();
  if (n.is_uint64()) return std::min(n.to_uint64(), kMaxJsonCounter);
  return 0;  // a negative integer
}

std::vector<PublishedServer> parseServers(const Json* list) {
  std::vector<PublishedServer> out;
  if (!list || !list->is_array()) return out;
  for (const auto& j : list->as_array()) {
    PublishedServer server;
    server.name = stringAt(j, {"name"});
    server.host = stringAt(j, {"host"});
    server.address = stringAt(j, {"address"});
    server.port = intAt(j, {"port"}).value_or(server.port);
    server.weight = intAt(j, {"weight"}).value_or(server.weight);
    server.state = stringAt(j, {"state"});
    if (!server.name.empty()) out.push_back(std::move(server));
  }
  return out;
}

Json serversToJson(const std::vector<PublishedServer>& servers) {
  std::vector<Json> out;
  for (const auto& server : servers) {
    out.push_back(jsonObject({{"name", jsonString(server.name)},
                              {"host", jsonString(server.host)},
                              {"address", jsonString(server.address)},
                              {"port", Json::number(server.port)},
                              {"weight", Json::number(server.weight)},
                              {"state", jsonString(server.state)}}));
  }
  return jsonArray(std::move(out));
}

std::vector<CopySourceStatus> parseCopy(const Json* list) {
  std::vector<CopySourceStatus> out;
  if (!list || !list->is_array()) return out;
  for (const auto& j : list->as_array()) {
    CopySourceStatus source;
    source.name = stringAt(j, {"name"});
    source.processed = counterAt(j, {"processed"});
    source.copied = counterAt(j, {"copied"});
    source.skipped = counterAt(j, {"skipped"});
    source.bytes = counterAt(j, {"bytes"});
    source.done = boolAt(j, {"done"}).value_or(false);
    source.cursor_last_access = intAt(j, {"cursorLastAccess"}).value_or(0);
    source.cursor_key = stringAt(j, {"cursorKey"});
    if (!source.name.empty()) out.push_back(std::move(source));
  }
  return out;
}

Json copyToJson(const std::vector<CopySourceStatus>& copy) {
  std::vector<Json> out;
  for (const auto& source : copy) {
    Json j = jsonObject({{"name", jsonString(source.name)},
                         {"processed", counterJson(source.processed)},
                         {"copied", counterJson(source.copied)},
                         {"skipped", counterJson(source.skipped)},
                         {"bytes", counterJson(source.bytes)},
                         {"done", Json::boolean(source.done)},
                         {"cursorLastAccess", Json::number(source.cursor_last_access)}});
    if (!source.cursor_key.empty()) j["cursorKey"] = jsonString(source.cursor_key);
    out.push_back(std::move(j));
  }
  return jsonArray(std::move(out));
}

TransitionStatus parseTransition(const Json& t) {
  TransitionStatus out;
  out.phase = stringAt(t, {"phase"});
  out.from = parseServers(findPath(t, {"from"}));
  out.to = parseServers(findPath(t, {"to"}));
  out.started_at = stringAt(t, {"startedAt"});
  out.phase_started_at = stringAt(t, {"phaseStartedAt"});
  out.published_at = stringAt(t, {"publishedAt"});
  out.copy = parseCopy(findPath(t, {"copy"}));
  out.cold_reason = stringAt(t, {"coldReason"});
  out.backfilled = boolAt(t, {"backfilled"}).value_or(false);
  out.cleaned = boolAt(t, {"cleaned"}).value_or(false);
  return out;
}

Json transitionToJson(const TransitionStatus& t) {
  Json out = jsonObject({{"phase", jsonString(t.phase)},
                         {"from", serversToJson(t.from)},
                         {"to", serversToJson(t.to)},
                         {"startedAt", jsonString(t.started_at)},
                         {"phaseStartedAt", jsonString(t.phase_started_at)},
                         {"backfilled", Json::boolean(t.backfilled)},
                         {"cleaned", Json::boolean(t.cleaned)}});
  if (!t.published_at.empty()) out["publishedAt"] = jsonString(t.published_at);
  if (!t.copy.empty()) out["copy"] = copyToJson(t.copy);
  if (!t.cold_reason.empty()) out["coldReason"] = jsonString(t.cold_reason);
  return out;
}

}  // namespace

const char* memberStateName(MemberState state) {
  switch (state) {
    case MemberState::kJoining: return "joining";
    case MemberState::kActive: return "active";
    case MemberState::kUnready: return "unready";
    case MemberState::kDraining: return "draining";
  }
  return "joining";
}

std::optional<MemberState> parseMemberState(const std::string& s) {
  if (s == "joining") return MemberState::kJoining;
  if (s == "active") return MemberState::kActive;
  if (s == "unready") return MemberState::kUnready;
  if (s == "draining") return MemberState::kDraining;
  return std::nullopt;
}

ClusterStatus parseClusterStatus(const Json& cluster) {
  ClusterStatus s;
  const Json* st = findPath(cluster, {"status"});
  if (!st || !st->is_object()) return s;
  s.observed_generation = intAt(*st, {"observedGeneration"}).value_or(0);
  s.replicas = intAt(*st, {"replicas"}).value_or(0);
  s.ready_replicas = intAt(*st, {"readyReplicas"}).value_or(0);
  s.selector = stringAt(*st, {"selector"});
  s.config_version = intAt(*st, {"configVersion"}).value_or(0);
  s.config_map_name = stringAt(*st, {"configMapName"});
  s.phase = stringAt(*st, {"phase"});
  if (const Json* members = findPath(*st, {"members"}); members && members->is_array()) {
    for (const auto& m : members->as_array()) {
      Member member;
      member.name = stringAt(m, {"name"});
      member.ordinal = intAt(m, {"ordinal"}).value_or(0);
      member.host = stringAt(m, {"host"});
      member.address = stringAt(m, {"address"});
      member.state = parseMemberState(stringAt(m, {"state"})).value_or(MemberState::kJoining);
      member.baseline_connections = intAt(m, {"baselineConnections"});
      member.flush_required = boolAt(m, {"flushRequired"}).value_or(false);
      if (!member.name.empty()) s.members.push_back(std::move(member));
    }
  }
  if (const Json* d = findPath(*st, {"drain"}); d && d->is_object()) {
    DrainStatus drain;
    drain.target_replicas = intAt(*d, {"targetReplicas"}).value_or(0);
    if (const Json* names = findPath(*d, {"members"}); names && names->is_array()) {
      for (const auto& n : names->as_array()) {
        if (n.is_string()) drain.members.push_back(n.as_string());
      }
    }
    drain.started_at = stringAt(*d, {"startedAt"});
    drain.published_at = stringAt(*d, {"publishedAt"});
    drain.outcome = stringAt(*d, {"outcome"});
    drain.stale_copies_swept = boolAt(*d, {"staleCopiesSwept"}).value_or(true);
    s.drain = std::move(drain);
  }
  if (const Json* t = findPath(*st, {"transition"}); t && t->is_object()) {
    s.transition = parseTransition(*t);
  }
  s.ring_established = boolAt(*st, {"ringEstablished"}).value_or(false);
  if (const Json* t = findPath(*st, {"tls"}); t && t->is_object()) {
    TlsStatus tls;
    tls.secret_name = stringAt(*t, {"secretName"});
    tls.secret_resource_version = stringAt(*t, {"secretResourceVersion"});
    tls.certificate_sha256 = stringAt(*t, {"certificateSHA256"});
    tls.not_after = stringAt(*t, {"notAfter"});
    tls.members_serving = intAt(*t, {"membersServing"}).value_or(0);
    if (const Json* names = findPath(*t, {"pending"}); names && names->is_array()) {
      for (const auto& n : names->as_array()) {
        if (n.is_string()) tls.pending.push_back(n.as_string());
      }
    }
    tls.expiry_warned = boolAt(*t, {"expiryWarned"}).value_or(false);
    s.tls = std::move(tls);
  }
  if (const Json* r = findPath(*st, {"rollout"}); r && r->is_object()) {
    RolloutStatus rollout{stringAt(*r, {"member"}), stringAt(*r, {"phase"}),
                          stringAt(*r, {"revision"}), stringAt(*r, {"startedAt"})};
    if (!rollout.member.empty()) s.rollout = std::move(rollout);
  }
  if (const Json* conds = findPath(*st, {"conditions"}); conds && conds->is_array()) {
    for (const auto& c : conds->as_array()) {
      Condition cond;
      cond.type = stringAt(c, {"type"});
      cond.status = stringAt(c, {"status"});
      cond.reason = stringAt(c, {"reason"});
      cond.message = stringAt(c, {"message"});
      cond.observed_generation = intAt(c, {"observedGeneration"}).value_or(0);
      cond.last_transition_time = stringAt(c, {"lastTransitionTime"});
      if (!cond.type.empty()) s.conditions.push_back(std::move(cond));
    }
  }
  return s;
}

Json clusterStatusToJson(const ClusterStatus& s) {
  Json out = Json::object();
  out["observedGeneration"] = Json::number(s.observed_generation);
  out["replicas"] = Json::number(s.replicas);
  out["readyReplicas"] = Json::number(s.ready_replicas);
  out["selector"] = jsonString(s.selector);
  out["configVersion"] = Json::number(s.config_version);
  out["configMapName"] = jsonString(s.config_map_name);
  out["phase"] = jsonString(s.phase);
  std::vector<Json> members;
  for (const auto& m : s.members) {
    Json j = jsonObject({{"name", jsonString(m.name)},
                         {"ordinal", Json::number(m.ordinal)},
                         {"host", jsonString(m.host)},
                         {"address", jsonString(m.address)},
                         {"state", jsonString(memberStateName(m.state))}});
    if (m.baseline_connections) {
      j["baselineConnections"] = Json::number(*m.baseline_connections);
    }
    if (m.flush_required) j["flushRequired"] = Json::boolean(true);
    members.push_back(std::move(j));
  }
  out["members"] = jsonArray(std::move(members));
  if (s.drain) {
    Json d = jsonObject({{"targetReplicas", Json::number(s.drain->target_replicas)},
                         {"members", jsonStringArray(s.drain->members)},
                         {"startedAt", jsonString(s.drain->started_at)}});
    if (!s.drain->published_at.empty()) d["publishedAt"] = jsonString(s.drain->published_at);
    if (!s.drain->outcome.empty()) d["outcome"] = jsonString(s.drain->outcome);
    d["staleCopiesSwept"] = Json::boolean(s.drain->stale_copies_swept);
    out["drain"] = d;
  }
  if (s.ring_established) out["ringEstablished"] = Json::boolean(true);
  if (s.transition) out["transition"] = transitionToJson(*s.transition);
  if (s.rollout) {
    out["rollout"] = jsonObject({{"member", jsonString(s.rollout->member)},
                                 {"phase", jsonString(s.rollout->phase)},
                                 {"revision", jsonString(s.rollout->revision)},
                                 {"startedAt", jsonString(s.rollout->started_at)}});
  }
  if (s.tls) {
    Json t = jsonObject({{"secretName", jsonString(s.tls->secret_name)},
                         {"secretResourceVersion", jsonString(s.tls->secret_resource_version)},
                         {"certificateSHA256", jsonString(s.tls->certificate_sha256)},
                         {"notAfter", jsonString(s.tls->not_after)},
                         {"membersServing", Json::number(s.tls->members_serving)}});
    if (!s.tls->pending.empty()) t["pending"] = jsonStringArray(s.tls->pending);
    if (s.tls->expiry_warned) t["expiryWarned"] = Json::boolean(true);
    out["tls"] = t;
  }
  std::vector<Json> conds;
  for (const auto& c : s.conditions) {
    conds.push_back(jsonObject({{"type", jsonString(c.type)},
                                {"status", jsonString(c.status)},
                                {"reason", jsonString(c.reason)},
                                {"message", jsonString(c.message)},
                                {"observedGeneration", Json::number(c.observed_generation)},
                                {"lastTransitionTime", jsonString(c.last_transition_time)}}));
  }
  out["conditions"] = jsonArray(std::move(conds));
  return out;
}

const Condition* findCondition(const std::vector<Condition>& conditions, const std::string& type) {
  for (const auto& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

void setCondition(std::vector<Condition>& conditions, Condition condition,
                  const std::string& now) {
  for (auto& c : conditions) {
    if (c.type != condition.type) continue;
    condition.last_transition_time =
        c.status == condition.status && !c.last_transition_time.empty() ? c.last_transition_time
                                                                        : now;
    c = std::move(condition);
    return;
  }
  condition.last_transition_time = now;
  conditions.push_back(std::move(condition));
}

}  // namespace mcop::memcached
