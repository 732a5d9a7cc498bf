// StaleCopySweeper: how a scale-down removes, from each member that stays, the copies of keys
// that member does not own under the still-published ring. Such copies are unreachable for
// every up-to-date client, and once the outgoing members leave the ring some of those keys
// move back to the member that holds the old copy, which would then serve it as a stale hit.
// An interface so the drain state machine is tested with a fake; the real one walks the
// server with `lru_crawler metadump all` and deletes with pipelined meta deletes through
// libclientconfig's MemcachedAdmin, routing with libclientconfig's Ring.
// Thread-safety: implementations must be safe to call from many reconcile workers at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <absl/status/statusor.h>

#include "clientconfig/snapshot.h"

namespace mcop::memcached {

struct SweepCounts {
  uint64_t scanned = 0;  // live items the dump listed
  uint64_t removed = 0;  // items deleted because another server owns their key
};

class StaleCopySweeper {
 public:
  virtual ~StaleCopySweeper() = default;
  // Deletes from `ring.servers()[member]` (reached at its address and port) every item whose
  // key `ring` routes to another server. Idempotent; an error leaves some copies in place.
  virtual absl::StatusOr<SweepCounts> sweep(const clientconfig::Snapshot& ring,
                                            size_t member) = 0;
};
using StaleCopySweeperPtr = std::shared_ptr<StaleCopySweeper>;

// Two short-lived admin connections per sweep (one streams the dump, one deletes), `timeout`
// bounding each connect and read; the whole sweep of one member gives up after `budget`
// (DeadlineExceeded) so a huge or slow server cannot hold the drain.
StaleCopySweeperPtr makeMemcachedStaleCopySweeper(
    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000),
    std::chrono::milliseconds budget = std::chrono::seconds(60));

}  // namespace mcop::memcached
