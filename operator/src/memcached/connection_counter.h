// ConnectionCounter: how the drain asks a memcached server how many client connections it has
// (`curr_connections` from `stats`). An interface so the drain state machine is tested with a
// fake; MemcachedConnectionCounter talks to the real server through libclientconfig's
// MemcachedAdmin.
// Thread-safety: implementations must be safe to call from many reconcile workers at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <absl/status/statusor.h>

#include "memcached/member_connection.h"

namespace mcop::memcached {

class ConnectionCounter {
 public:
  virtual ~ConnectionCounter() = default;
  // memcached's `curr_connections` at address:port. On memcached 1.6.x it counts open client
  // connections, the asking one included, and not the listening sockets (a fresh server asked
  // over one connection says 1). Other connections that are not applications (an exporter
  // sidecar, a health check) count too, which is why the drain compares it against a baseline
  // measured the same way before the pod joined the ring.
  // Asked over a connection secured as `member.security` says (TLS, authentication).
  virtual absl::StatusOr<int64_t> currentConnections(const MemberEndpoint& member) = 0;
};
using ConnectionCounterPtr = std::shared_ptr<ConnectionCounter>;

// Opens one short-lived admin connection per call (bounded by `timeout`), so no connection is
// held open that would itself count against the drain.
ConnectionCounterPtr makeMemcachedConnectionCounter(
    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

}  // namespace mcop::memcached
