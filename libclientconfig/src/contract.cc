// The endpoints ConfigMap contract: rendering of its three keys and validation of
// endpoints.json. See clientconfig/contract.h.
// Thread-safety: pure functions.
#include "clientconfig/contract.h"

#include "json.h"
#include "validate.h"

namespace clientconfig {
namespace {

using json::Value;

using detail::checkUnique;
using detail::fieldError;
using detail::kMaxServers;
using detail::kMaxWeight;
using detail::plainToken;

// ---- rendering ----

// A JSON string literal. The names are DNS and IP text; nlohmann escapes anything else, and an
// invalid UTF-8 byte (no parsed document holds one) becomes U+FFFD rather than an exception.
std::string jsonString(std::string_view s) {
  return Value(std::string(s)).dump(-1, ' ', false, Value::error_handler_t::replace);
}

// `after_hashing`: lines rendered between `hashing` and `servers` (the top level's security).
void appendRing(std::string& out, const PublishedRing& r, const std::string& indent,
                const std::string& after_hashing = {}) {
  out += indent + "\"version\": " + std::to_string(r.version) + ",\n";
  out += indent + "\"hashing\": " + jsonString(hashingName(r.hashing)) + ",\n";
  out += after_hashing;
  out += indent + "\"servers\": [";
  for (size_t i = 0; i < r.servers.size(); ++i) {
    const Server& s = r.servers[i];
    out += i == 0 ? "\n" : ",\n";
    out += indent + "  {\"name\": " + jsonString(s.name) + ", \"host\": " + jsonString(s.host) +
           ", \"address\": " + jsonString(s.address) + ", \"port\": " + std::to_string(s.port) +
           ", \"weight\": " + std::to_string(s.weight) + ", \"state\": " + jsonString(s.state) + "}";
  }
  if (!r.servers.empty()) out += "\n" + indent;
  out += "]";
}

// `tls` and `auth` lines, only for what is on: a plaintext cluster's document renders exactly as
// it did before these fields existed (the operator's drift check compares bytes).
std::string securityLines(const ServerSecurity& sec) {
  std::string out;
  if (sec.tls) {
    out += std::string("  \"tls\": {\"clientAuth\": ") + (sec.client_certificate ? "\"require\"" : "\"none\"") + "},\n";
  }
  if (sec.auth) out += "  \"auth\": \"ascii\",\n";
  return out;
}

// ---- parsing ----

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

Result<const Value*> required(const Value& obj, std::string_view key, const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end()) return fieldError(join(path, key), "missing");
  return &*it;
}

Result<std::string> stringField(const Value& obj, std::string_view key, const std::string& path, bool token) {
  auto v = required(obj, key, path);
  if (!v.ok()) return v.error();
  if (!(*v)->is_string()) return fieldError(join(path, key), std::string("expected string, got ") + json::kindName(**v));
  const std::string& s = (*v)->get_ref<const std::string&>();
  if (s.empty()) return fieldError(join(path, key), "must not be empty");
  if (token && !plainToken(s)) return fieldError(join(path, key), "expected a name without spaces or control characters");
  return s;
}

Result<int64_t> intField(const Value& obj, std::string_view key, const std::string& path, int64_t lo, int64_t hi) {
  auto v = required(obj, key, path);
  if (!v.ok()) return v.error();
  auto i = json::asInt64(**v);
  if (!i || *i < lo || *i > hi)
    return fieldError(join(path, key), "expected integer " + std::to_string(lo) + ".." + std::to_string(hi));
  return *i;
}

Result<Hashing> hashingField(const Value& obj, const std::string& path) {
  auto s = stringField(obj, "hashing", path, false);
  if (!s.ok()) return s.error();
  auto h = parseHashing(*s);
  if (!h) return fieldError(join(path, "hashing"), "expected \"ketama-libmemcached\" or \"ketama-libketama\", got \"" + *s + "\"");
  return *h;
}

Result<Server> serverFrom(const Value& e, const std::string& p) {
  if (!e.is_object()) return fieldError(p, std::string("expected object, got ") + json::kindName(e));
  auto name = stringField(e, "name", p, true);
  if (!name.ok()) return name.error();
  auto host = stringField(e, "host", p, true);
  if (!host.ok()) return host.error();
  auto address = stringField(e, "address", p, true);
  if (!address.ok()) return address.error();
  auto port = intField(e, "port", p, 1, 65535);
  if (!port.ok()) return port.error();
  auto weight = intField(e, "weight", p, 1, kMaxWeight);
  if (!weight.ok()) return weight.error();
  auto state = stringField(e, "state", p, true);
  if (!state.ok()) return state.error();
  Server s;
  s.name = std::move(*name);
  s.host = std::move(*host);
  s.address = std::move(*address);
  s.port = static_cast<uint16_t>(*port);
  s.weight = static_cast<uint32_t>(*weight);
  s.state = std::move(*state);
  return s;
}

Result<PublishedRing> ringFrom(const Value& obj, const std::string& path) {
  auto version = intField(obj, "version", path, 0, INT64_MAX);
  if (!version.ok()) return version.error();
  auto hashing = hashingField(obj, path);
  if (!hashing.ok()) return hashing.error();
  auto list = required(obj, "servers", path);
  if (!list.ok()) return list.error();
  std::string spath = join(path, "servers");
  if (!(*list)->is_array()) return fieldError(spath, std::string("expected array, got ") + json::kindName(**list));
  if ((*list)->size() > kMaxServers) return fieldError(spath, "more than " + std::to_string(kMaxServers) + " servers");
  PublishedRing r;
  r.version = static_cast<uint64_t>(*version);
  r.hashing = *hashing;
  r.servers.reserve((*list)->size());
  for (size_t i = 0; i < (*list)->size(); ++i) {
    auto s = serverFrom((**list)[i], spath + "[" + std::to_string(i) + "]");
    if (!s.ok()) return s.error();
    r.servers.push_back(std::move(*s));
  }
  if (auto u = checkUnique(r.servers, spath); !u.ok()) return u.error();
  return r;
}

// `phase`: absent (or null) means a document from before phases.
Result<std::optional<Phase>> phaseFrom(const Value& root) {
  auto it = root.find("phase");
  if (it == root.end() || it->is_null()) return std::optional<Phase>();
  if (!it->is_string()) return fieldError("phase", std::string("expected string, got ") + json::kindName(*it));
  auto p = parsePhase(it->get_ref<const std::string&>());
  if (!p)
    return fieldError("phase", "expected \"stable\", \"prepare\", \"copy\", \"switch\" or \"finalize\", got \"" +
                                   it->get_ref<const std::string&>() + "\"");
  return std::optional<Phase>(*p);
}

// `tls` and `auth`: absent (or null) means off. A value this client does not know is refused:
// a client that cannot speak what the servers require could only fail on every connection.
Result<ServerSecurity> securityFrom(const Value& root) {
  ServerSecurity sec;
  if (auto it = root.find("tls"); it != root.end() && !it->is_null()) {
    if (!it->is_object()) return fieldError("tls", std::string("expected null or object, got ") + json::kindName(*it));
    auto mode = stringField(*it, "clientAuth", "tls", false);
    if (!mode.ok()) return mode.error();
    if (*mode != "none" && *mode != "require")
      return fieldError("tls.clientAuth", "expected \"none\" or \"require\", got \"" + *mode + "\"");
    sec.tls = true;
    sec.client_certificate = *mode == "require";
  }
  if (auto it = root.find("auth"); it != root.end() && !it->is_null()) {
    if (!it->is_string()) return fieldError("auth", std::string("expected null or string, got ") + json::kindName(*it));
    if (it->get_ref<const std::string&>() != "ascii")
      return fieldError("auth", "expected \"ascii\" (memcached ASCII authentication), got \"" +
                                    it->get_ref<const std::string&>() + "\"");
    sec.auth = true;
  }
  return sec;
}

// `next` / `previous`: null or absent, or a ring.
Result<std::optional<PublishedRing>> optionalRing(const Value& root, const char* key) {
  auto it = root.find(key);
  if (it == root.end() || it->is_null()) return std::optional<PublishedRing>();
  if (!it->is_object()) return fieldError(key, std::string("expected null or object, got ") + json::kindName(*it));
  auto r = ringFrom(*it, key);
  if (!r.ok()) return r.error();
  return std::optional<PublishedRing>(std::move(*r));
}

// Which rings each phase allows (contract.h, EndpointsDocument). A client acting on a phase
// needs its ring: a prepare without `next` could not invalidate the copies the operator makes,
// and a ring published in a phase that does not use it means the writer is confused.
Result<void> checkPhaseRings(const EndpointsDocument& d) {
  std::string got = d.phase ? "phase \"" + std::string(phaseName(*d.phase)) + "\"" : std::string("no phase");
  bool next_phase = d.phase == Phase::Prepare || d.phase == Phase::Copy;
  bool previous_phase = !d.phase || d.phase == Phase::Switch || d.phase == Phase::Finalize;
  if (d.next && !next_phase) return fieldError("next", "only allowed in phase prepare or copy, got " + got);
  if (!d.next && next_phase) return fieldError("next", "required in " + got);
  if (d.previous && !previous_phase)
    return fieldError("previous", "must be null in " + got + " (allowed in switch, finalize or without a phase)");
  if (!d.previous && d.phase == Phase::Switch) return fieldError("previous", "required in " + got);
  return {};
}

} // namespace

std::string_view phaseName(Phase phase) {
  switch (phase) {
  case Phase::Stable: return "stable";
  case Phase::Prepare: return "prepare";
  case Phase::Copy: return "copy";
  case Phase::Switch: return "switch";
  case Phase::Finalize: return "finalize";
  }
  return "stable";
}

std::optional<Phase> parsePhase(std::string_view name) {
  for (Phase p : {Phase::Stable, Phase::Prepare, Phase::Copy, Phase::Switch, Phase::Finalize}) {
    if (phaseName(p) == name) return p;
  }
  return std::nullopt;
}

Phase EndpointsDocument::effectivePhase() const {
  if (phase) return *phase;
  return previous ? Phase::Switch : Phase::Stable;
}

std::string renderEndpointsJson(const EndpointsDocument& d) {
  std::string out = "{\n  \"schema\": " + jsonString(kEndpointsSchema) + ",\n";
  out += "  \"cluster\": " + jsonString(d.cluster) + ",\n";
  // `phase` and `next` only when set, so a document without a transition renders exactly as it
  // did before they existed (the operator's drift check compares bytes).
  if (d.phase) out += "  \"phase\": " + jsonString(phaseName(*d.phase)) + ",\n";
  appendRing(out, d.current, "  ", securityLines(d.security));
  if (d.next) {
    out += ",\n  \"next\": {\n";
    appendRing(out, *d.next, "    ");
    out += "\n  }";
  }
  out += ",\n  \"previous\": ";
  if (d.previous) {
    out += "{\n";
    appendRing(out, *d.previous, "    ");
    out += "\n  }";
  } else {
    out += "null";
  }
  out += "\n}\n";
  return out;
}

std::string renderServersFile(const std::vector<Server>& servers) {
  std::string out;
  for (const auto& s : servers) {
    bool v6 = s.host.find(':') != std::string::npos;
    out += (v6 ? "[" + s.host + "]" : s.host) + ":" + std::to_string(s.port) + "\n";
  }
  return out;
}

std::string renderLibmemcachedConf(const std::vector<Server>& servers) {
  std::string out =
      "# libmemcached cannot select weighted ketama here: call "
      "memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) after memcached(conf).\n";
  for (const auto& s : servers) {
    out += " --SERVER=" + s.host + ":" + std::to_string(s.port) + "/?" + std::to_string(s.weight) + "\n";
  }
  return out;
}

std::map<std::string, std::string> renderConfigMapData(const EndpointsDocument& d) {
  return {{kEndpointsJsonKey, renderEndpointsJson(d)},
          {kServersKey, renderServersFile(d.current.servers)},
          {kLibmemcachedConfKey, renderLibmemcachedConf(d.current.servers)}};
}

Result<EndpointsDocument> parseEndpointsJson(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc.ok()) return doc.error();
  const Value& root = *doc;
  if (!root.is_object()) return fieldError("(document)", std::string("expected object, got ") + json::kindName(root));
  auto schema = stringField(root, "schema", "", false);
  if (!schema.ok()) return schema.error();
  if (*schema != kEndpointsSchema)
    return fieldError("schema", "expected \"" + std::string(kEndpointsSchema) + "\", got \"" + *schema + "\"");
  auto cluster = stringField(root, "cluster", "", true);
  if (!cluster.ok()) return cluster.error();
  auto current = ringFrom(root, "");
  if (!current.ok()) return current.error();
  EndpointsDocument d;
  d.cluster = std::move(*cluster);
  d.current = std::move(*current);
  auto security = securityFrom(root);
  if (!security.ok()) return security.error();
  d.security = *security;
  auto phase = phaseFrom(root);
  if (!phase.ok()) return phase.error();
  d.phase = *phase;
  auto next = optionalRing(root, "next");
  if (!next.ok()) return next.error();
  d.next = std::move(*next);
  auto previous = optionalRing(root, "previous");
  if (!previous.ok()) return previous.error();
  d.previous = std::move(*previous);
  if (auto rule = checkPhaseRings(d); !rule.ok()) return rule.error();
  return d;
}

} // namespace clientconfig
