// SweepRunner: runs the stale-copy sweeps of scale-downs (StaleCopySweeper) on threads of its
// own, so a reconcile worker never waits on memcached. A reconcile pass starts the sweep of a
// drain, later passes ask for its progress, and once it is done the pass records the result in
// status. The finished result stays in the runner until the reconciler drops it (once the
// record is visible in status), so a status write lost to a conflict does not throw a finished
// sweep away; a result nobody collects is dropped after a TTL.
// At most `threads` members are swept at once over all clusters (each member is its own
// memcached server); a worker that frees up takes the next member of the sweep with the fewest
// members in flight (round robin among equals), so one big cluster does not starve the others.
// Each sweep has an overall deadline on top of the sweeper's per-member budget, and can be
// cancelled (the drain it serves was cancelled or retargeted, the cluster was deleted, the
// operator is stopping): cancellation and the deadline reach a member in progress through
// SweepControl, checked between items.
// The drain step it serves is described in docs/drain-protocol.md.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <absl/status/statusor.h>

#include "clientconfig/snapshot.h"
#include "memcached/stale_copy_sweeper.h"
#include "util/clock.h"
#include "util/on_demand_threads.h"

namespace mcop::memcached {

struct SweepRunnerOptions {
  // Members swept at once, over all clusters.
  size_t threads = 4;
  // Overall time for one sweep, from its start; a member not finished by then fails with
  // DeadlineExceeded (the drain goes on).
  std::chrono::milliseconds deadline{std::chrono::seconds(120)};
  // A finished result that nobody collects or drops is forgotten after this long.
  std::chrono::milliseconds result_ttl{std::chrono::minutes(10)};
  // The threads exist only while there are sweeps: one without a member to sweep for this
  // long ends (util/on_demand_threads.h), so an idle operator keeps none.
  std::chrono::milliseconds idle_thread_linger{std::chrono::seconds(10)};
};

// Which sweep: the cluster object (its uid, so a cluster deleted and re-created under the same
// name is another), the drain it belongs to (target replicas and the outgoing members), and the
// version of the published ring it routes by.
struct SweepId {
  std::string uid;
  int64_t target_replicas = 0;
  std::vector<std::string> leaving;
  uint64_t ring_version = 0;

  friend bool operator==(const SweepId&, const SweepId&) = default;
};

// The sweep of one member that stays.
struct MemberSweep {
  std::string name;
  absl::StatusOr<SweepCounts> counts;
  std::chrono::milliseconds took{0};
};

struct SweepProgress {
  bool done = false;
  std::vector<std::string> pending;   // not finished (being swept or waiting), ring order
  std::vector<MemberSweep> finished;  // ring order
  std::chrono::milliseconds elapsed{0};  // since the start; start to finish once done

  size_t total() const { return pending.size() + finished.size(); }
};

class SweepRunner {
 public:
  // Up to `options.threads` worker threads (at least one), started when sweeps need them.
  // `clock` must outlive the runner.
  SweepRunner(StaleCopySweeperPtr sweeper, const util::Clock& clock,
              SweepRunnerOptions options = {});
  ~SweepRunner();  // stop()
  SweepRunner(const SweepRunner&) = delete;
  SweepRunner& operator=(const SweepRunner&) = delete;

  // Starts sweeping `members` (indices into ring->servers()) for `cluster` ("namespace/name"),
  // unless the runner already holds the sweep `id` for it (running or finished): then nothing
  // changes. A sweep of the cluster with another id is cancelled and dropped first. Returns
  // false after stop().
  // `security` secures the sweeper's connections (null: plaintext).
  bool start(const std::string& cluster, const SweepId& id, clientconfig::SnapshotPtr ring,
             const std::vector<size_t>& members, MemberSecurityPtr security = {});
  // The progress of the sweep `id` of `cluster`; nullopt when the runner holds none (never
  // started, dropped, expired, or it holds another id). A positive `wait` blocks up to that
  // long for an unfinished sweep to finish.
  std::optional<SweepProgress> progress(const std::string& cluster, const SweepId& id,
                                        std::chrono::milliseconds wait = {});
  // The id of the sweep held for `cluster`, running or finished.
  std::optional<SweepId> held(const std::string& cluster) const;
  // Forgets the cluster's sweep and its result, cancelling it if it is still running (`why`
  // goes to the log and to the members' Cancelled status). Does nothing when none is held.
  void drop(const std::string& cluster, std::string_view why);
  // Cancels every sweep and joins the threads; start() refuses afterwards. Idempotent.
  void stop();
  // Sweeps held, running or finished.
  size_t size() const;

 private:
  struct Job;
  class Control;

  void work();
  // The next member to sweep: of the sweep with the fewest members in flight, then the one
  // served longest ago. Returns false when no sweep has a member waiting.
  bool nextLocked(std::shared_ptr<Job>& job, size_t& member);
  void finishLocked(Job& job, size_t member, absl::StatusOr<SweepCounts> counts,
                    std::chrono::milliseconds took);
  // Members still waiting when the deadline has passed fail without a thread.
  void expireLocked(Job& job);
  void cancelLocked(Job& job, std::string_view why);
  void forgetExpiredLocked();

  const StaleCopySweeperPtr sweeper_;
  const util::Clock& clock_;
  const SweepRunnerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // a member is waiting, or stopping
  std::condition_variable done_cv_;  // a sweep finished
  std::condition_variable wake_cv_;  // a sweep was cancelled: cut its pauses short
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // by cluster; guarded by mu_
  uint64_t next_seq_ = 0;                             // guarded by mu_
  uint64_t dispatches_ = 0;                           // guarded by mu_
  bool stopping_ = false;                             // guarded by mu_
  util::OnDemandThreads threads_;  // counters guarded by mu_
};
using SweepRunnerPtr = std::unique_ptr<SweepRunner>;

}  // namespace mcop::memcached
