// WarmCopier: the copy engine of a warm transition (docs/transitions.md). Given one source
// member of the current ring and the ring to come, it copies every item of the source whose
// owner changes to its next owner, so the next owner starts warm:
//   enumerate (`lru_crawler metadump`) → pick the moving keys, hottest first, within the bounds →
//   per batch: read (`mg k v f t c`) → add to the next owner (`ms k T<ttl> F<flags> ME c`: never
//   overwrites an item already there) → re-read the source's CAS (`mg k c`) → where it changed
//   or the key is gone, delete the copy (`md k C<cas of the copy>`, so only that copy goes).
// A write to the source before the read is copied; one between the read and the re-check is
// caught by the re-check; one after it is the writer's to invalidate on the next owner (the
// prepare phase of the protocol, not this component).
//
// Resumable: metadump has no cursor, so a restarted copy enumerates the source again. The
// candidates are processed in a total order ((last access desc, key) when hottest-first, key
// otherwise), and WarmCopyProgress::cursor names the last one processed. A resumed run skips
// the candidates at or before the cursor. memcached's last access only grows, so that covers
// every item the interrupted run processed; it also covers items accessed or written since
// that became hotter than the cursor, which are left cold (never stale: the next owner gets
// no copy, and the switch phase's backfill fills it on a miss). The counters and the bounds
// (max items, per-target bytes) carry over. Re-processing an item is safe in any case (add
// never overwrites; a copy already there counts as skipped-present).
// Hottest-first is approximate: memcached moves last access on a write and on some hits only
// (an item becomes "active" on its second hit). The copier's own read and re-check are two
// hits (memcached has no read that leaves the LRU alone), so a copied item turns active on the
// source. The dump walks the hash table, not the LRUs, so items moving between LRUs are seen.
//
// Memory: the candidates kept are at most ~2 × max_items keys (all moving keys when unbounded).
// Cancellation and the overall deadline are checked between batches (and while enumerating), so
// a copy stopped that way has re-checked every copy it made. A connection error stops it with
// the error; the copies of the batch in flight that were not confirmed are then deleted from
// their targets (CAS-conditional, so a newer write there stays). Only a target that cannot be
// reached keeps them, and the error says so.
// Thread-safety: copy() keeps its state on the stack and its own connections; any number of
// threads may call it at once (the Clock and SweepControl must be thread-safe, as theirs are).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <absl/status/status.h>

#include "clientconfig/snapshot.h"
#include "memcached/member_connection.h"
#include "memcached/stale_copy_sweeper.h"
#include "util/clock.h"

namespace mcop::memcached {

struct WarmCopyOptions {
  // Rate limits, each with a burst of 0.1 s worth (items: at least one batch); 0 = unlimited.
  double items_per_second = 0;
  double bytes_per_second = 0;  // counts metadump's item sizes
  uint64_t max_items = 0;       // candidates processed at most, over resumes; 0 = no limit
  // Per next owner: the sum of metadump item sizes copied to it, over resumes; 0 = no limit.
  // A target fed by several sources gets a share of its memory per source (the caller splits).
  // Hottest-first, a target is closed at the first item that does not fit: nothing colder goes.
  uint64_t target_budget_bytes = 0;
  std::chrono::milliseconds deadline{std::chrono::minutes(10)};  // overall, from copy()
  bool hottest_first = true;
  size_t batch = 256;          // items a pipelined batch (read, add, re-check)
  int64_t min_ttl_seconds = 2;  // items expiring sooner are not copied
  std::chrono::milliseconds timeout{2000};  // each connect and each read
  std::chrono::milliseconds busy_backoff{100};  // pause after a BUSY metadump, doubling to 1 s
  // Secures every connection (source and targets; null: plaintext), each server's host its TLS
  // server name.
  MemberSecurityPtr security;
};

// scanned, candidates, already_done and skipped_bound describe the latest enumeration; the
// others add up over resumes.
struct WarmCopyCounts {
  uint64_t scanned = 0;          // items the dump listed
  uint64_t candidates = 0;       // of those: live, owned by the source now, by another server next
  uint64_t already_done = 0;     // candidates at or before the resume cursor (not processed again)
  uint64_t processed = 0;        // candidates taken within the bounds and handled
  uint64_t copied = 0;           // stored on the next owner and confirmed by the re-check
  uint64_t skipped_present = 0;  // the next owner already had the key (add refused)
  uint64_t skipped_changed = 0;  // written or deleted on the source before the re-check
  uint64_t skipped_gone = 0;     // missing or about to expire when read
  uint64_t skipped_bound = 0;    // candidates left out by max_items or target_budget_bytes
  uint64_t bytes = 0;            // value bytes copied
  uint64_t batches = 0;
  uint64_t busy_waits = 0;       // dumps refused with BUSY
};

// Where a copy stands; also what resumes it (see the file comment).
struct WarmCopyProgress {
  WarmCopyCounts counts;
  struct Cursor {
    bool valid = false;
    int64_t last_access = 0;    // of the last candidate processed
    std::string key;            // of the last candidate processed
  } cursor;
  std::map<std::string, uint64_t> target_bytes;  // by next owner's name: bytes taken (budget)
  bool done = false;  // every candidate within the bounds was processed
};

struct WarmCopyResult {
  absl::Status status;  // OK, Cancelled/DeadlineExceeded (from the control or options.deadline), or an I/O error
  WarmCopyProgress progress;
};

// Called on the copying thread; both may be empty.
struct WarmCopyObserver {
  std::function<void(const WarmCopyProgress&)> on_progress;  // after enumeration, after each batch
  // Between a batch's add and its re-check, with the keys stored on next owners (tests use it
  // to write to the source at exactly that point).
  std::function<void(const std::vector<std::string>&)> before_recheck;
};

class WarmCopier {
 public:
  // `clock` paces the rate limits and the deadline; `control.pause()` does the waiting (a test
  // control may advance a fake clock instead). Both must outlive the copier.
  WarmCopier(const util::Clock& clock, WarmCopyOptions options) : clock_(clock), options_(options) {}

  // Copies from `current.servers()[source]` the items whose owner in `next` is another server
  // (by host and port). `resume` continues an interrupted copy of the same transition.
  WarmCopyResult copy(const clientconfig::Snapshot& current, size_t source, const clientconfig::Snapshot& next,
                      const SweepControl& control, const WarmCopyProgress& resume = {},
                      const WarmCopyObserver& observer = {}) const;

 private:
  const util::Clock& clock_;
  const WarmCopyOptions options_;
};

}  // namespace mcop::memcached
