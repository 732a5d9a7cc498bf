// StaleCopySweeper: how a scale-down removes, from each member that stays, the copies of keys
// that member does not own under the still-published ring. Such copies are unreachable for
// every up-to-date client, and once the outgoing members leave the ring some of those keys
// move back to the member that holds the old copy, which would then serve it as a stale hit.
// An interface so the drain state machine is tested with a fake; the real one walks the
// server with `lru_crawler metadump all` and deletes with pipelined meta deletes through
// libclientconfig's MemcachedAdmin, routing with libclientconfig's Ring.
// Thread-safety: implementations must be safe to call from many threads at once (SweepRunner
// sweeps several members, of several clusters, concurrently).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "clientconfig/snapshot.h"
#include "memcached/member_connection.h"

namespace mcop::memcached {

struct SweepCounts {
  uint64_t scanned = 0;     // live items the dump listed
  uint64_t removed = 0;     // items deleted because another server owns their key
  uint64_t busy_waits = 0;  // dumps memcached refused with BUSY (its crawler was running)
};

// What a sweep in progress consults between items and while it waits: whether it must stop
// (the scale-down it serves was cancelled, the operator is shutting down, or the overall
// deadline of the sweep has passed), and a pause that ends early when it must.
class SweepControl {
 public:
  virtual ~SweepControl() = default;
  // OK to go on; otherwise Cancelled or DeadlineExceeded, with a message saying why.
  virtual absl::Status check() const = 0;
  // Waits up to `duration`; returns early when check() stops being OK.
  virtual void pause(std::chrono::milliseconds duration) const = 0;

  // A control that never stops a sweep (tools, tests): only the sweeper's own budget applies.
  static const SweepControl& unlimited();
};

class StaleCopySweeper {
 public:
  virtual ~StaleCopySweeper() = default;
  // Deletes from `ring.servers()[member]` (reached at its address and port) every item whose
  // key `ring` routes to another server. Idempotent; an error leaves some copies in place.
  // Returns `control.check()`'s status when it stops early because of it. Its connections are
  // secured as `security` says (null: plaintext), the member's host its TLS server name.
  virtual absl::StatusOr<SweepCounts> sweep(const clientconfig::Snapshot& ring, size_t member,
                                            const SweepControl& control,
                                            const MemberSecurity* security) = 0;
};
using StaleCopySweeperPtr = std::shared_ptr<StaleCopySweeper>;

// Two short-lived admin connections per sweep (one streams the dump, one deletes), `timeout`
// bounding each connect and read; the whole sweep of one member gives up after `budget`
// (DeadlineExceeded) so a huge or slow server cannot hold the drain. A dump refused because
// memcached's crawler is busy is retried after `busy_backoff`, doubling up to 1 s, within the
// budget.
StaleCopySweeperPtr makeMemcachedStaleCopySweeper(
    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000),
    std::chrono::milliseconds budget = std::chrono::seconds(60),
    std::chrono::milliseconds busy_backoff = std::chrono::milliseconds(100));

}  // namespace mcop::memcached
