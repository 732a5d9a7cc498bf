// Snapshot: one immutable, validated version of a cluster's endpoint list as the
// operator publishes it (endpoints.json, schema memcached.operator.io/endpoints/v1,
// or the plain `servers` file), with its ring(s) built and ready for lookups.
// Thread-safety: immutable once built; share it as SnapshotPtr across threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "clientconfig/contract.h"
#include "clientconfig/result.h"
#include "clientconfig/ring.h"

namespace clientconfig {

// One ring: a hashing scheme, the servers in ring order, and its continuum.
struct Topology {
  uint64_t version = 0;
  Hashing hashing = Hashing::KetamaLibmemcached;
  std::vector<Server> servers;
  Ring ring;

  // nullptr on an empty ring.
  const Server* owner(std::string_view key) const;
};

// What route() returns: the owner, and during a transition the key's owner in the ring to
// come (`next`: prepare, copy) or in the ring before (`previous`: switch, finalize) when it
// differs from the owner (by host:port). A phase-aware client writes to the owner and deletes
// the key on the other one; on a miss it reads the previous owner.
struct Route {
  const Server* owner = nullptr;
  const Server* next_owner = nullptr;     // null unless `next` is published and names another server
  const Server* previous_owner = nullptr; // null unless `previous` is published and names another server
};

class Snapshot;
using SnapshotPtr = std::shared_ptr<const Snapshot>;

class Snapshot {
public:
  enum class Source { EndpointsJson, ServersFile };

  std::string schema;
  std::string cluster;     // "namespace/name"
  std::optional<Phase> published_phase; // `phase` as published (absent in documents before phases)
  ServerSecurity security; // what the servers speak: TLS, client certificates, authentication
  Topology current;
  std::optional<Topology> next;     // the ring to come (prepare, copy)
  std::optional<Topology> previous; // the ring before (switch, finalize)
  Source source = Source::EndpointsJson;

  // The phase clients act on (EndpointsDocument::effectivePhase).
  Phase phase() const;
  uint64_t version() const { return current.version; }
  Hashing hashing() const { return current.hashing; }
  const std::vector<Server>& servers() const { return current.servers; }

  Route route(std::string_view key) const;
  // Index into servers(); Ring::kNoServer on an empty ring.
  uint32_t serverIndex(std::string_view key) const { return current.ring.serverIndex(key); }
};

// Parses and validates endpoints.json (parseEndpointsJson, with its error messages) and
// builds the rings.
Result<SnapshotPtr> parseSnapshot(std::string_view json_text);

// Parses the plain `servers` file: one host:port a line ([v6]:port for IPv6),
// blank lines and '#' comments ignored. Every server gets weight 1, address = host,
// state "active"; the ring uses `hashing`.
Result<SnapshotPtr> parseServersFile(std::string_view text, Hashing hashing = Hashing::KetamaLibmemcached);

// Builds a snapshot from parts (for tools and tests). Validates like parseSnapshot.
Result<SnapshotPtr> makeSnapshot(std::string cluster, uint64_t version, Hashing hashing, std::vector<Server> servers);

// Where `next` stands relative to `current` in a cluster's version series. The operator's
// versions only grow within one cluster; a snapshot of another cluster, or a change of
// source (the versionless `servers` file has version 0), starts a new series that no
// version of the old one can be compared with.
enum class Succession {
  Initial,   // there is no current snapshot
  Newer,     // a higher version of the same series
  Same,      // the same version (normally the same content)
  Older,     // a lower version of the same series: a stale copy, or a re-created cluster
  NewSeries, // another cluster, schema or source
};
Succession succession(const Snapshot* current, const Snapshot& next);

// Fraction (0..1) of `sample_keys` generated keys whose owner (by host:port)
// differs between two snapshots: how much of the cache a change invalidates.
double movedFraction(const Snapshot& old_snapshot, const Snapshot& new_snapshot, size_t sample_keys = 100000);

// The snapshot as endpoints.json states it (for rendering it back with the contract's renderers).
EndpointsDocument toDocument(const Snapshot& snapshot);

// The ConfigMap's keys rendered from a snapshot (renderEndpointsJson, renderServersFile,
// renderLibmemcachedConf of toDocument()), so every form names the same ring; used by tools and
// tests.
std::string toJson(const Snapshot& snapshot);
std::string toServersFile(const Snapshot& snapshot);
std::string toLibmemcachedConf(const Snapshot& snapshot);

} // namespace clientconfig
