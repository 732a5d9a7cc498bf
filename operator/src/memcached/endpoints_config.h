// The client contract (docs/configmap-contract.md): what the operator publishes in the
// endpoints ConfigMap and under which version. The operator decides the content (cluster,
// hashing, the members in ordinal order, their states) and the version; libclientconfig
// (clientconfig/contract.h) owns the schema, the keys, and the rendering and parsing of all three
// keys, so the bytes published and the bytes clients accept have one definition. Rendering is
// byte-for-byte deterministic, so re-rendering the same membership yields the same bytes, a
// GitOps diff stays quiet, and "did the content change" is a string comparison. The version
// rises by one on a content change and never otherwise.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <clientconfig/contract.h>

#include "memcached/cluster_spec.h"
#include "memcached/cluster_status.h"
#include "memcached/desired_objects.h"
#include "memcached/json_util.h"

namespace mcop::memcached {

using clientconfig::kEndpointsJsonKey;
using clientconfig::kEndpointsSchema;
using clientconfig::kLibmemcachedConfKey;
using clientconfig::kServersKey;

struct EndpointsContent {
  std::string cluster;  // "namespace/name"
  std::string hashing;  // "ketama-libmemcached" or "ketama-libketama" (spec validation)
  std::vector<PublishedServer> servers;  // ordinal order: exactly the ring
  // A Warm transition's phase (kPhasePrepare ...), "" when none: then neither ring below is
  // rendered and the document is what it was before transitions existed.
  std::string phase;
  std::vector<PublishedServer> next;      // prepare, copy: the ring to come
  std::vector<PublishedServer> previous;  // switch: the ring before
  // TLS / authentication on the servers (spec.tls, spec.auth): rendered only when on.
  clientconfig::ServerSecurity security;
};

// What the spec asks clients to speak (spec.tls, spec.auth): rendered in endpoints.json so that
// clients know to use TLS, a client certificate, or credentials (never the credentials).
clientconfig::ServerSecurity serverSecurity(const ClusterSpec& spec);

// One published server as libclientconfig's contract types it.
clientconfig::Server toServer(const PublishedServer& s);
// The document libclientconfig renders for `content` at `version`.
clientconfig::EndpointsDocument endpointsDocument(const EndpointsContent& content,
                                                  int64_t version);
// Each key as libclientconfig renders it (clientconfig/contract.h has the layouts).
std::string renderEndpointsJson(const EndpointsContent& content, int64_t version);
std::string renderServersList(const EndpointsContent& content);
std::string renderLibmemcachedConf(const EndpointsContent& content);
// All three data keys.
std::map<std::string, std::string> renderEndpointsData(const EndpointsContent& content,
                                                       int64_t version);

// The version in a live ConfigMap's endpoints.json; nullopt when missing or not a valid
// endpoints.json (read by libclientconfig's parser, as clients read it).
std::optional<int64_t> publishedVersion(const Json& config_map);
// Server names in a live ConfigMap's endpoints.json, in any of its rings (servers, then next and
// previous during a transition: a member listed in any of them still gets client requests);
// nullopt when it cannot be read, by the parser clients use (callers that guard a deletion must
// then assume the worst).
std::optional<std::vector<std::string>> publishedServerNames(const Json& config_map);
// The `phase` of a live ConfigMap's endpoints.json; "" when absent or unreadable.
std::string publishedPhase(const Json& config_map);

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
