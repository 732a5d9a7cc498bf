// Endpoints ConfigMap rendering: see endpoints_config.h.
#include "memcached/endpoints_config.h"

#include <algorithm>

namespace mcop::memcached {

clientconfig::ServerSecurity serverSecurity(const ClusterSpec& spec) {
  clientconfig::ServerSecurity security;
  security.tls = spec.tls.enabled;
  security.client_certificate = spec.tls.enabled && spec.tls.client_auth == ClientAuth::kRequire;
  security.auth = spec.auth.enabled;
  return security;
}

clientconfig::Server toServer(const PublishedServer& s) {
  // Ports and weights are validated by the spec (1..65535, 1..); the narrowing is exact.
  return {s.name, s.host, s.address, static_cast<uint16_t>(s.port),
          static_cast<uint32_t>(s.weight), s.state};
}

namespace {

// The published endpoints.json of a live ConfigMap, read as clients read it.
std::optional<clientconfig::EndpointsDocument> parsedEndpoints(const Json& config_map) {
  const Json* text = findPath(config_map, {"data", kEndpointsJsonKey});
  if (!text || !text->is_string()) return std::nullopt;
  auto parsed = clientconfig::parseEndpointsJson(text->as_string());
  if (!parsed.ok()) return std::nullopt;
  return std::move(*parsed);
}

}  // namespace

clientconfig::EndpointsDocument endpointsDocument(const EndpointsContent& content,
                                                  int64_t version) {
  clientconfig::EndpointsDocument d;
  d.cluster = content.cluster;
  d.security = content.security;
  d.current.version = static_cast<uint64_t>(version);
  // Spec validation admits only the two names parseHashing knows.
  d.current.hashing = clientconfig::parseHashing(content.hashing)
                          .value_or(clientconfig::Hashing::KetamaLibmemcached);
  d.current.servers.reserve(content.servers.size());
  for (const auto& s : content.servers) d.current.servers.push_back(toServer(s));
  if (content.phase.empty()) return d;
  d.phase = clientconfig::parsePhase(content.phase);
  // The other ring of a transition hashes the same way; it carries the document's version (a
  // client reads the version only from the top level).
  const auto ringOf = [&](const std::vector<PublishedServer>& servers) {
    clientconfig::PublishedRing r;
    r.version = d.current.version;
    r.hashing = d.current.hashing;
    for (const auto& s : servers) r.servers.push_back(toServer(s));
    return r;
  };
  if (!content.next.empty()) d.next = ringOf(content.next);
  if (!content.previous.empty()) d.previous = ringOf(content.previous);
  return d;
}

std::string renderEndpointsJson(const EndpointsContent& content, int64_t version) {
  return clientconfig::renderEndpointsJson(endpointsDocument(content, version));
}

std::string renderServersList(const EndpointsContent& content) {
  return clientconfig::renderServersFile(endpointsDocument(content, 0).current.servers);
}

std::string renderLibmemcachedConf(const EndpointsContent& content) {
  return clientconfig::renderLibmemcachedConf(endpointsDocument(content, 0).current.servers);
}

std::map<std::string, std::string> renderEndpointsData(const EndpointsContent& content,
                                                       int64_t version) {
  return clientconfig::renderConfigMapData(endpointsDocument(content, version));
}

std::optional<int64_t> publishedVersion(const Json& config_map) {
  auto parsed = parsedEndpoints(config_map);
  if (!parsed) return std::nullopt;
  return static_cast<int64_t>(parsed->current.version);
}

std::optional<std::vector<std::string>> publishedServerNames(const Json& config_map) {
  auto parsed = parsedEndpoints(config_map);
  if (!parsed) return std::nullopt;
  std::vector<std::string> names;
  const auto add = [&](const std::vector<clientconfig::Server>& servers) {
    for (const auto& s : servers) {
      if (std::find(names.begin(), names.end(), s.name) == names.end()) names.push_back(s.name);
    }
  };
  add(parsed->current.servers);
  if (parsed->next) add(parsed->next->servers);
  if (parsed->previous) add(parsed->previous->servers);
  return names;
}

std::string publishedPhase(const Json& config_map) {
  auto parsed = parsedEndpoints(config_map);
  if (!parsed || !parsed->phase) return "";
  return std::string(clientconfig::phaseName(*parsed->phase));
}

namespace {

// Versions stay where every JSON reader represents them exactly (2^53 - 1), so a hand-edited
// 2^63 - 1 can never overflow into a small number.
constexpr int64_t kMaxVersion = (int64_t{1} << 53) - 1;

std::optional<int64_t> saneVersion(std::optional<int64_t> v) {
  if (!v || *v < 1 || *v >= kMaxVersion) return std::nullopt;
  return v;
}

bool sameData(const std::map<std::string, std::string>& data, const Json& live) {
  for (const auto& [key, value] : data) {
    if (stringAt(live, {"data", key}, "\x01") != value) return false;
  }
  return true;
}

}  // namespace

EndpointsDecision decideEndpoints(const EndpointsContent& content, const Json* live_config_map,
                                  int64_t status_version) {
  EndpointsDecision d;
  // The version is the operator's own record (status), never the live object's: a hand edit
  // of the ConfigMap must not move it backwards (or overflow it). Only a status without a
  // record (restored from a backup without status) continues from a sane live version.
  const std::optional<int64_t> recorded = saneVersion(status_version);
  std::optional<int64_t> live_version;
  if (live_config_map) live_version = publishedVersion(*live_config_map);
  const std::optional<int64_t> live = saneVersion(live_version);

  if (live_version && sameData(renderEndpointsData(content, *live_version), *live_config_map)) {
    // The published content is already this content. Keep the recorded version; when only the
    // version was edited by hand, put the recorded one back (no content change, no new
    // version).
    d.version = recorded ? *recorded : live.value_or(1);
    d.data = renderEndpointsData(content, d.version);
    d.changed = d.version != *live_version;
    return d;
  }
  if (recorded && live && *live == *recorded - 1) {
    // The operator recorded the next version in status and stopped before publishing it:
    // that version was never seen by a client, so it is published now rather than skipped.
    d.version = *recorded;
  } else if (recorded) {
    d.version = *recorded + 1;
  } else {
    d.version = live.value_or(0) + 1;
  }
  d.changed = true;
  d.data = renderEndpointsData(content, d.version);
  return d;
}

Json buildEndpointsConfigMap(const ClusterRef& ref, const std::string& name,
                             const std::map<std::string, std::string>& data,
                             const std::string& manager) {
  return jsonObject({{"apiVersion", jsonString("v1")},
                     {"kind", jsonString("ConfigMap")},
                     {"metadata", childMetadata(ref, name, manager)},
                     {"data", jsonStringMap(data)}});
}

}  // namespace mcop::memcached
