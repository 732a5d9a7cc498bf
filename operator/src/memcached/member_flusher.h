// MemberFlusher: how the operator empties a memcached member (`flush_all`) that must not serve
// what it holds, e.g. a member coming back from a cancelled drain: while it was out of the
// published list, clients overwrote and deleted its keys on other members, so every value it
// still has may be stale. An interface so the membership rules are tested with a fake;
// makeMemcachedMemberFlusher talks to the real server through libclientconfig's MemcachedAdmin.
// Thread-safety: implementations must be safe to call from many reconcile workers at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <absl/status/status.h>

#include "memcached/member_connection.h"

namespace mcop::memcached {

class MemberFlusher {
 public:
  virtual ~MemberFlusher() = default;
  // Invalidates every item on `member` (`flush_all`, answered `OK`), over a connection secured
  // as member.security says.
  virtual absl::Status flushAll(const MemberEndpoint& member) = 0;
};
using MemberFlusherPtr = std::shared_ptr<MemberFlusher>;

// One short-lived admin connection per call, bounded by `timeout`.
MemberFlusherPtr makeMemcachedMemberFlusher(
    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

}  // namespace mcop::memcached
