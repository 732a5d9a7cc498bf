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

EndpointsDecision decideEndpoints(const EndpointsContent& content, const Json* live_config_map,
                                  int64_t status_version) {
  EndpointsDecision d;
  std::optional<int64_t> live_version;
  if (live_config_map) live_version = publishedVersion(*live_config_map);
  if (live_version) {
    auto same = renderEndpointsData(content, *live_version);
    bool equal = true;
    for (const auto& [key, value] : same) {
      if (stringAt(*live_config_map, {"data", key}, "\x01") != value) {
        equal = false;
        break;
      }
    }
    if (equal) {
      d.version = *live_version;
      d.data = std::move(same);
      return d;
    }
  }
  // status_version can be one ahead of the ConfigMap when the operator stopped between
  // recording the planned version in status and publishing it; it must not be skipped.
  d.version = std::max(live_version.value_or(0) + 1, live_version ? status_version
                                                                  : status_version + 1);
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
