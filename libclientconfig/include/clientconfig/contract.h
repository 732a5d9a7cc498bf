// The endpoints ConfigMap contract (docs/configmap-contract.md): its schema, its three keys
// and the one renderer and parser of each. The operator decides the content (version, servers,
// hashing) and renders it here; clients read it back with parseEndpointsJson / parseSnapshot /
// parseServersFile. Keeping both halves in this library is what makes "the bytes the operator
// publishes" and "the bytes a client accepts" one definition.
//
// Rendering is byte-for-byte deterministic (fixed field order, ring order, no locale): the
// operator's drift check compares a live ConfigMap's bytes with a fresh rendering, so any change
// to the output here re-publishes every cluster's ConfigMap under a new version.
// Thread-safety: pure functions and plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clientconfig/result.h"
#include "clientconfig/ring.h"

namespace clientconfig {

// Character arrays rather than string_views so that they convert to std::string, string_view
// and const char* alike (the operator indexes JSON objects keyed by std::string with them).

// endpoints.json's "schema": a reader refuses any other value.
inline constexpr char kEndpointsSchema[] = "memcached.operator.io/endpoints/v1";

// The ConfigMap's data keys (also the file names in a mounted directory).
inline constexpr char kEndpointsJsonKey[] = "endpoints.json";
inline constexpr char kServersKey[] = "servers";
inline constexpr char kLibmemcachedConfKey[] = "libmemcached.conf";

struct Server {
  std::string name;    // "sessions-0"
  std::string host;    // stable DNS name: what the ring hashes
  std::string address; // where to connect now (changes on reschedule; the ring does not)
  uint16_t port = 11211;
  uint32_t weight = 1;
  std::string state;   // "active", or another word: the member keeps its ring slot

  bool active() const { return state == "active"; }
  // "address:port", IPv6 in brackets.
  std::string endpoint() const;
  bool operator==(const Server&) const = default;
};

// One ring as endpoints.json states it: the top level, or "previous".
struct PublishedRing {
  uint64_t version = 0;
  Hashing hashing = Hashing::KetamaLibmemcached;
  std::vector<Server> servers; // ring order

  bool operator==(const PublishedRing&) const = default;
};

// Where a cluster stands in a change of its ring (docs/configmap-contract.md, "Transitions").
// Each phase is one published version; the document's `phase` field names it.
//   Stable:   one ring (`servers`).
//   Prepare:  `next` published beside `servers`; writes also delete the key on its next owner.
//   Copy:     as Prepare, while the operator copies moved items to their next owners.
//   Switch:   `servers` is the new ring, `previous` the old one; a miss on the owner is read
//             from the previous owner and backfilled; writes also delete on the previous owner.
//   Finalize: as Switch while `previous` is published (the operator cleans the old owners up).
enum class Phase { Stable, Prepare, Copy, Switch, Finalize };
std::string_view phaseName(Phase phase);
std::optional<Phase> parsePhase(std::string_view name);

// The content of endpoints.json, validated but without rings built (parseSnapshot builds them).
// Which rings a phase allows (parseEndpointsJson enforces it):
//   phase absent: no `next`; `previous` optional (a v1 document from before phases; it is read
//                 as Switch when `previous` is set, else Stable)
//   stable:       neither `next` nor `previous`
//   prepare/copy: `next` required, no `previous`
//   switch:       `previous` required, no `next`
//   finalize:     no `next`; `previous` optional
// What a client must speak to the cluster's servers. Rendered after `hashing` only when TLS or
// authentication is on, so a plaintext cluster's document is byte for byte what it was:
//   "tls": {"clientAuth": "none"|"require"}   TLS on every connection; "require": the server
//                                             verifies a client certificate too
//   "auth": "ascii"                           memcached ASCII authentication (-Y); the
//                                             credentials are never in the document
struct ServerSecurity {
  bool tls = false;
  bool client_certificate = false;  // tls.clientAuth "require"
  bool auth = false;
  bool operator==(const ServerSecurity&) const = default;
};

struct EndpointsDocument {
  std::string cluster;  // "namespace/name"
  ServerSecurity security;
  std::optional<Phase> phase;            // rendered only when set: a stable document is unchanged
  PublishedRing current;
  std::optional<PublishedRing> next;     // the ring to come (prepare, copy); rendered only when set
  std::optional<PublishedRing> previous; // the transition window; null when absent

  // The phase clients act on: `phase`, or for a document without it Switch when `previous` is
  // set, else Stable.
  Phase effectivePhase() const;

  bool operator==(const EndpointsDocument&) const = default;
};

// endpoints.json in its canonical layout (docs/configmap-contract.md).
std::string renderEndpointsJson(const EndpointsDocument& document);
// `servers`: "host:port" a line in ring order ([v6]:port for an IPv6 host).
std::string renderServersFile(const std::vector<Server>& servers);
// `libmemcached.conf`: a comment line reminding that weighted ketama must be switched on by the
// application (libmemcached's configuration language cannot select it), then one
// " --SERVER=host:port/?weight" line per server in ring order. libmemcached hashes the name it
// is given, so this lists `host`, never `address`. The layout is what libmemcached 1.1.4's
// memcached() parser accepts: a leading comment line only when every following option starts
// with a space; a trailing comment, a second comment line or a bare newline between options are
// parse errors there.
std::string renderLibmemcachedConf(const std::vector<Server>& servers);
// All three keys, as the ConfigMap's `data`.
std::map<std::string, std::string> renderConfigMapData(const EndpointsDocument& document);

// Parses and validates endpoints.json. Errors name the field
// ("servers[2].port: expected integer 1..65535") or, for text that is not strict JSON (RFC 8259:
// no comments, trailing commas, NaN, duplicate keys; UTF-8; nesting at most 64 deep), the place
// ("line 4 column 16: ..."), or for a ring the phase does not allow, the rule
// ("next: only allowed in phase prepare or copy, got phase \"switch\""). Unknown fields are
// ignored so that an operator adding a field does
// not break deployed clients; known fields are checked strictly.
Result<EndpointsDocument> parseEndpointsJson(std::string_view json_text);

} // namespace clientconfig
