// The client contract (README, "The client contract"): rendering the endpoints ConfigMap and
// deciding its version. Rendering is byte-for-byte deterministic (fixed field order, ordinal
// server order), so re-rendering the same membership yields the same bytes, a GitOps diff stays
// quiet, and "did the content change" is a string comparison. The version rises by one on a
// content change and never otherwise.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "memcached/desired_objects.h"
#include "memcached/json_util.h"

namespace mcop::memcached {

inline constexpr char kEndpointsSchema[] = "memcached.operator.io/endpoints/v1";
inline constexpr char kEndpointsJsonKey[] = "endpoints.json";
inline constexpr char kServersKey[] = "servers";
inline constexpr char kLibmemcachedConfKey[] = "libmemcached.conf";

struct PublishedServer {
  std::string name;     // pod name, "sessions-0"
  std::string host;     // stable DNS name: what the ring hashes
  std::string address;  // pod IP: where to connect
  int64_t port = 11211;
  int64_t weight = 1;
  std::string state;  // "active" or "unready"

  friend bool operator==(const PublishedServer&, const PublishedServer&) = default;
};

struct EndpointsContent {
  std::string cluster;  // "namespace/name"
  std::string hashing;  // "ketama-libmemcached" or "ketama-libketama"
  std::vector<PublishedServer> servers;  // ordinal order: exactly the ring
};

std::string renderEndpointsJson(const EndpointsContent& content, int64_t version);
// One host:port a line, ring order.
std::string renderServersList(const EndpointsContent& content);
// --SERVER=host:port/?weight in ring order, after a comment line reminding that weighted ketama
// must be switched on by the application. The layout (one comment line, then each option on its
// own line after a space) is what libmemcached 1.1.4's configuration parser accepts: a
// trailing comment, a second comment line or a bare newline between options are parse errors.
std::string renderLibmemcachedConf(const EndpointsContent& content);
// All three data keys.
std::map<std::string, std::string> renderEndpointsData(const EndpointsContent& content,
                                                       int64_t version);

// The version in a live ConfigMap's endpoints.json; nullopt when missing or unparseable.
std::optional<int64_t> publishedVersion(const Json& config_map);
// Server names in a live ConfigMap's endpoints.json; nullopt when it cannot be read (callers
// that guard a deletion must then assume the worst).
std::optional<std::vector<std::string>> publishedServerNames(const Json& config_map);

struct EndpointsDecision {
  bool changed = false;  // true: apply `data` (its version is `version`)
  int64_t version = 0;
  std::map<std::string, std::string> data;
};

// Decides the version to publish `content` with. The version is the operator's: it comes from
// `status_version` (the version last recorded in status) and only grows, by one per content
// change. Unchanged content keeps the recorded version (a version edited by hand in the
// ConfigMap is put back, without a bump); changed content gets recorded + 1, except that a
// version recorded but never published (live == recorded - 1) is published rather than
// skipped. The live version is used only when status has no record (0), and only when it is
// a sane JSON-safe number; versions never exceed 2^53 - 1.
EndpointsDecision decideEndpoints(const EndpointsContent& content, const Json* live_config_map,
                                  int64_t status_version);

// The ConfigMap apply body.
Json buildEndpointsConfigMap(const ClusterRef& ref, const std::string& name,
                             const std::map<std::string, std::string>& data,
                             const std::string& manager);

}  // namespace mcop::memcached
