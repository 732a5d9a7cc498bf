// Endpoints ConfigMap rendering: see endpoints_config.h.
#include "memcached/endpoints_config.h"

#include <absl/strings/str_cat.h>

#include "util/json_text.h"

namespace mcop::memcached {
namespace {

// A JSON string literal; names and addresses are DNS/IP text, but escape anyway.
std::string quote(const std::string& s) { return "\"" + util::jsonEscape(s) + "\""; }

}  // namespace

std::string renderEndpointsJson(const EndpointsContent& content, int64_t version) {
  std::string out = "{\n";
  absl::StrAppend(&out, "  \"schema\": ", quote(kEndpointsSchema), ",\n");
  absl::StrAppend(&out, "  \"cluster\": ", quote(content.cluster), ",\n");
  absl::StrAppend(&out, "  \"version\": ", version, ",\n");
  absl::StrAppend(&out, "  \"hashing\": ", quote(content.hashing), ",\n");
  if (content.servers.empty()) {
    out += "  \"servers\": [],\n";
  } else {
    out += "  \"servers\": [\n";
    for (size_t i = 0; i < content.servers.size(); ++i) {
      const auto& s = content.servers[i];
      absl::StrAppend(&out, "    {\"name\": ", quote(s.name), ", \"host\": ", quote(s.host),
                      ", \"address\": ", quote(s.address), ", \"port\": ", s.port,
                      ", \"weight\": ", s.weight, ", \"state\": ", quote(s.state), "}",
                      i + 1 < content.servers.size() ? ",\n" : "\n");
    }
    out += "  ],\n";
  }
  out += "  \"previous\": null\n}\n";
  return out;
}

std::string renderServersList(const EndpointsContent& content) {
  std::string out;
  for (const auto& s : content.servers) absl::StrAppend(&out, s.host, ":", s.port, "\n");
  return out;
}

std::string renderLibmemcachedConf(const EndpointsContent& content) {
  std::string out =
      "# libmemcached cannot select weighted ketama here: call "
      "memcached_behavior_set(m, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) after memcached(conf).\n";
  for (const auto& s : content.servers) {
    absl::StrAppend(&out, " --SERVER=", s.host, ":", s.port, "/?", s.weight, "\n");
  }
  return out;
}

std::map<std::string, std::string> renderEndpointsData(const EndpointsContent& content,
                                                       int64_t version) {
  return {{kEndpointsJsonKey, renderEndpointsJson(content, version)},
          {kServersKey, renderServersList(content)},
          {kLibmemcachedConfKey, renderLibmemcachedConf(content)}};
}

namespace {

std::optional<Json> parsedEndpoints(const Json& config_map) {
  const Json* text = findPath(config_map, {"data", kEndpointsJsonKey});
  if (!text || !text->is_string()) return std::nullopt;
  std::error_code ec;
  Json parsed = Json::parse(text->as_string(), ec);
  if (ec || !parsed.is_object()) return std::nullopt;
  return parsed;
}

}  // namespace

std::optional<int64_t> publishedVersion(const Json& config_map) {
  auto parsed = parsedEndpoints(config_map);
  if (!parsed) return std::nullopt;
  return intAt(*parsed, {"version"});
}

std::optional<std::vector<std::string>> publishedServerNames(const Json& config_map) {
  auto parsed = parsedEndpoints(config_map);
  if (!parsed) return std::nullopt;
  const Json* servers = findPath(*parsed, {"servers"});
  if (!servers || !servers->is_array()) return std::nullopt;
  std::vector<std::string> names;
  for (const auto& s : servers->as_array()) {
    names.push_back(stringAt(s, {"name"}));
  }
  return names;
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
