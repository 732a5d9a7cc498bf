// TransitionRunner: the background work of Warm transitions (docs/transitions.md), run on
// threads of its own so a reconcile worker never waits on memcached. Two kinds of work:
//   copy      first the members of the current ring that also stay in the next one are swept
//             of copies they do not own under the current ring (an `add` of the copy would not
//             replace such a stale copy), then each source member's moving items are copied to
//             their next owners (WarmCopier), resuming from the recorded cursors.
//   finalize  the old owners that stay are swept of the copies they no longer own under the
//             new ring (so no server serves a stale copy when ownership comes back later).
// A reconcile pass starts the work of its phase, later passes ask for its progress (recorded in
// status.transition), and once it is done the pass moves the transition on. The finished result
// stays until the reconciler drops it, so a status write lost to a conflict keeps it.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/status.h>

#include "clientconfig/snapshot.h"
#include "memcached/stale_copy_sweeper.h"
#include "memcached/warm_copier.h"
#include "util/clock.h"

namespace mcop::memcached {

// Which work: the cluster object (uid), the transition (its startedAt) and the phase it serves
// (kPhaseCopy or kPhaseFinalize).
struct TransitionWorkId {
  std::string uid;
  std::string started_at;
  std::string phase;

  friend bool operator==(const TransitionWorkId&, const TransitionWorkId&) = default;
};

struct TransitionWork {
  // Swept first, one after another: `sweep` are indices into sweep_ring->servers(); each is
  // cleaned of the items sweep_ring routes to another server.
  clientconfig::SnapshotPtr sweep_ring;
  std::vector<size_t> sweep;
  // Then copied, one after another: `sources` are indices into from->servers(); each source's
  // items whose owner in `to` is another server go to that owner. Empty for finalize.
  clientconfig::SnapshotPtr from;
  clientconfig::SnapshotPtr to;
  std::vector<size_t> sources;
  std::map<std::string, WarmCopyProgress> resume;  // by source name: what a restart continues
  WarmCopyOptions copy;  // per source; its deadline is capped by what is left of `deadline`
  std::chrono::milliseconds deadline{std::chrono::minutes(10)};  // the whole work
};

struct TransitionWorkProgress {
  bool done = false;
  // Once done: OK, or the first failure (a sweep or a copy that failed, was cancelled or ran
  // past the deadline); the work stops at the first failure.
  absl::Status status;
  std::map<std::string, WarmCopyProgress> copies;  // by source name, as far as they got
  SweepCounts swept;                               // summed over the members swept
  std::chrono::milliseconds elapsed{0};            // since the start; start to finish once done
};

class TransitionRunner {
 public:
  // At most `threads` works run at once over all clusters (at least one); more wait in order.
  // The threads exist only while there is work: one without any for `idle_thread_linger` ends
  // (util/on_demand_threads.h), so an idle operator keeps none.
  TransitionRunner(StaleCopySweeperPtr sweeper, const util::Clock& clock, size_t threads = 2,
                   std::chrono::milliseconds idle_thread_linger = std::chrono::seconds(10));
  ~TransitionRunner();  // stop()
  TransitionRunner(const TransitionRunner&) = delete;
  TransitionRunner& operator=(const TransitionRunner&) = delete;

  // Starts `work` for `cluster` ("namespace/name") unless the runner already holds `id` for it
  // (running or finished): then nothing changes. Work of the cluster with another id is
  // cancelled and dropped first. Returns false after stop().
  bool start(const std::string& cluster, const TransitionWorkId& id, TransitionWork work);
  // The progress of `id`; nullopt when the runner holds none for the cluster or another id.
  std::optional<TransitionWorkProgress> progress(const std::string& cluster,
                                                 const TransitionWorkId& id) const;
  std::optional<TransitionWorkId> held(const std::string& cluster) const;
  // Forgets the cluster's work, cancelling it if it is still running.
  void drop(const std::string& cluster, std::string_view why);
  // Cancels everything and joins the threads; start() refuses afterwards. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
using TransitionRunnerPtr = std::unique_ptr<TransitionRunner>;

}  // namespace mcop::memcached
