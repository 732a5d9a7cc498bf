// TransitionRunner: see transition_runner.h. One mutex guards the table of works, the FIFO of
// works waiting for a thread and every work's reported state; a work itself (its sweeps, then
// its copies) runs without the mutex on one pool thread, which holds the work alive (a dropped
// work finishes its current step on its own, cancelled, and nobody reads the result). Works
// take threads in start order, except that a cluster's work waits while a replaced work of the
// same cluster is still returning from its cancellation.
#include "memcached/transition_runner.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <spdlog/spdlog.h>

#include "util/logging.h"
#include "util/on_demand_threads.h"

namespace mcop::memcached {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

struct Job {
  std::string cluster;
  TransitionWorkId id;
  TransitionWork work;
  steady_clock::time_point started;
  steady_clock::time_point deadline;
  steady_clock::time_point done_at;
  // Guarded by the runner's mutex: what progress() reports.
  bool done = false;
  absl::Status status;
  std::map<std::string, WarmCopyProgress> copies;
  SweepCounts swept;
  // Written under the mutex, read by Control::check() without it: why is set before cancelled.
  std::atomic<bool> cancelled{false};
  std::string why;
};

std::string serverName(const clientconfig::SnapshotPtr& ring, size_t index) {
  if (ring && index < ring->servers().size()) return ring->servers()[index].name;
  return absl::StrCat("#", index);
}

// The same status with `what` in front of its message, so the failure names its step.
absl::Status prefixed(const absl::Status& s, const std::string& what) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

}  // namespace

struct TransitionRunner::Impl {
  class Control;

  Impl(StaleCopySweeperPtr sweeper_in, const util::Clock& clock_in, size_t threads_in,
       milliseconds linger)
      : sweeper(std::move(sweeper_in)), clock(clock_in), threads(threads_in, linger) {}

  void loop();
  // The first queued work whose cluster has no work on a thread (a replaced work still returning
  // from its cancellation keeps its cluster busy, so two works never touch one cluster's
  // servers at once); drops the cancelled ones it passes. Null when none can run.
  std::shared_ptr<Job> nextLocked();
  void run(const std::shared_ptr<Job>& job);
  absl::Status sweepAll(Job& job, const SweepControl& control);
  absl::Status copyAll(Job& job, const SweepControl& control);
  absl::Status copyOne(Job& job, size_t source, const SweepControl& control);
  void finish(Job& job, absl::Status status);
  void cancelLocked(Job& job, std::string_view why);

  const StaleCopySweeperPtr sweeper;
  const util::Clock& clock;

  mutable std::mutex mu;
  std::condition_variable work_cv;  // a work is queued, or stopping
  std::condition_variable wake_cv;  // a work was cancelled: cut its pauses short
  std::map<std::string, std::shared_ptr<Job>> jobs;  // by cluster; guarded by mu
  std::deque<std::shared_ptr<Job>> queue;            // waiting for a thread, FIFO; guarded by mu
  std::set<std::string> running;                     // clusters with a work on a thread; guarded by mu
  bool stopping = false;                             // guarded by mu
  util::OnDemandThreads threads;                     // counters guarded by mu
};

// What a work's sweeps and copies consult: its cancellation and its overall deadline.
class TransitionRunner::Impl::Control : public SweepControl {
 public:
  Control(Impl& impl, std::shared_ptr<Job> job) : impl_(impl), job_(std::move(job)) {}

  absl::Status check() const override {
    if (job_->cancelled.load(std::memory_order_acquire)) {
      return absl::CancelledError(absl::StrCat("transition work cancelled: ", job_->why));
    }
    if (impl_.clock.steadyNow() >= job_->deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the transition work's overall deadline of ",
          duration_cast<milliseconds>(job_->work.deadline).count(), "ms passed"));
    }
    return absl::OkStatus();
  }

  void pause(milliseconds duration) const override {
    const auto left = duration_cast<milliseconds>(job_->deadline - impl_.clock.steadyNow());
    std::unique_lock<std::mutex> lock(impl_.mu);
    impl_.wake_cv.wait_for(lock, std::max(milliseconds(0), std::min(duration, left)),
                           [&] { return job_->cancelled.load(); });
  }

 private:
  Impl& impl_;
  std::shared_ptr<Job> job_;
};

TransitionRunner::TransitionRunner(StaleCopySweeperPtr sweeper, const util::Clock& clock,
                                   size_t threads, milliseconds idle_thread_linger)
    : impl_(std::make_unique<Impl>(std::move(sweeper), clock, threads, idle_thread_linger)) {}

TransitionRunner::~TransitionRunner() { stop(); }

bool TransitionRunner::start(const std::string& cluster, const TransitionWorkId& id,
                             TransitionWork work) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->stopping) return false;
  if (auto it = impl_->jobs.find(cluster); it != impl_->jobs.end()) {
    if (it->second->id == id) return true;
    impl_->cancelLocked(*it->second, "superseded by another transition work");
    impl_->jobs.erase(it);
  }
  auto job = std::make_shared<Job>();
  job->cluster = cluster;
  job->id = id;
  job->work = std::move(work);
  job->started = impl_->clock.steadyNow();
  job->deadline = job->started + job->work.deadline;
  // A resumed copy reports what its source had done until it gets a thread again, so the
  // progress recorded in status never goes back.
  for (size_t source : job->work.sources) {
    const std::string name = serverName(job->work.from, source);
    if (auto r = job->work.resume.find(name); r != job->work.resume.end()) {
      job->copies[name] = r->second;
    }
  }
  std::vector<std::string> sweeps, sources;
  for (size_t i : job->work.sweep) sweeps.push_back(serverName(job->work.sweep_ring, i));
  for (size_t i : job->work.sources) sources.push_back(serverName(job->work.from, i));
  spdlog::info("transition work started cluster={} phase={} started_at={} sweep={} sources={} "
               "resumed={} deadline_s={}",
               cluster, id.phase, id.started_at, absl::StrJoin(sweeps, ","),
               absl::StrJoin(sources, ","), job->copies.size(),
               duration_cast<std::chrono::seconds>(job->work.deadline).count());
  impl_->jobs[cluster] = job;
  impl_->queue.push_back(std::move(job));
  impl_->work_cv.notify_one();
  impl_->threads.wakeLocked(impl_->queue.size(), [this] { impl_->loop(); });
  return true;
}

std::optional<TransitionWorkProgress> TransitionRunner::progress(const std::string& cluster,
                                                                 const TransitionWorkId& id) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->jobs.find(cluster);
  if (it == impl_->jobs.end() || !(it->second->id == id)) return std::nullopt;
  const Job& job = *it->second;
  TransitionWorkProgress p;
  p.done = job.done;
  p.status = job.status;
  p.copies = job.copies;
  p.swept = job.swept;
  p.elapsed = duration_cast<milliseconds>((job.done ? job.done_at : impl_->clock.steadyNow()) -
                                          job.started);
  return p;
}

std::optional<TransitionWorkId> TransitionRunner::held(const std::string& cluster) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->jobs.find(cluster);
  if (it == impl_->jobs.end()) return std::nullopt;
  return it->second->id;
}

void TransitionRunner::drop(const std::string& cluster, std::string_view why) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->jobs.find(cluster);
  if (it == impl_->jobs.end()) return;
  if (it->second->done) {
    spdlog::debug("transition work forgotten cluster={} phase={} reason={}", cluster,
                  it->second->id.phase, util::quoted(why));
  } else {
    impl_->cancelLocked(*it->second, why);
  }
  impl_->jobs.erase(it);
}

void TransitionRunner::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->stopping) {
      impl_->stopping = true;
      for (auto& [cluster, job] : impl_->jobs) {
        if (!job->done) impl_->cancelLocked(*job, "the operator is stopping");
      }
      impl_->jobs.clear();
      impl_->queue.clear();
      impl_->work_cv.notify_all();
    }
  }
  impl_->threads.joinAll();
}

void TransitionRunner::Impl::loop() {
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    std::shared_ptr<Job> job;
    if (!threads.waitLocked(lock, work_cv, [&] { return stopping || (job = nextLocked()) != nullptr; })) {
      return;  // no work for a while: the thread ends
    }
    if (stopping) return;
    running.insert(job->cluster);
    lock.unlock();
    run(job);
    lock.lock();
    running.erase(job->cluster);
    work_cv.notify_all();  // a work of the same cluster may have waited for this one
  }
}

std::shared_ptr<Job> TransitionRunner::Impl::nextLocked() {
  for (auto it = queue.begin(); it != queue.end();) {
    if ((*it)->cancelled.load()) {
      it = queue.erase(it);  // dropped or replaced while it waited: never runs
    } else if (running.count((*it)->cluster)) {
      ++it;
    } else {
      std::shared_ptr<Job> job = std::move(*it);
      queue.erase(it);
      return job;
    }
  }
  return nullptr;
}

void TransitionRunner::Impl::run(const std::shared_ptr<Job>& job) {
  Control control(*this, job);
  // Cancelled or past the deadline while it waited for a thread: the first step says so.
  absl::Status status = sweepAll(*job, control);
  if (status.ok()) status = copyAll(*job, control);
  finish(*job, std::move(status));
}

absl::Status TransitionRunner::Impl::sweepAll(Job& job, const SweepControl& control) {
  for (size_t member : job.work.sweep) {
    const std::string what = absl::StrCat("sweep of ", serverName(job.work.sweep_ring, member));
    if (absl::Status s = control.check(); !s.ok()) return prefixed(s, what);
    if (!job.work.sweep_ring || member >= job.work.sweep_ring->servers().size()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": not a member of the ring"));
    }
    absl::StatusOr<SweepCounts> counts =
        sweeper->sweep(*job.work.sweep_ring, member, control, job.work.copy.security.get());
    if (!counts.ok()) return prefixed(counts.status(), what);
    std::lock_guard<std::mutex> lock(mu);
    job.swept.scanned += counts->scanned;
    job.swept.removed += counts->removed;
    job.swept.busy_waits += counts->busy_waits;
  }
  return absl::OkStatus();
}

absl::Status TransitionRunner::Impl::copyAll(Job& job, const SweepControl& control) {
  for (size_t source : job.work.sources) {
    if (absl::Status s = copyOne(job, source, control); !s.ok()) {
      return prefixed(s, absl::StrCat("copy from ", serverName(job.work.from, source)));
    }
  }
  return absl::OkStatus();
}

absl::Status TransitionRunner::Impl::copyOne(Job& job, size_t source, const SweepControl& control) {
  if (absl::Status s = control.check(); !s.ok()) return s;
  if (!job.work.from || !job.work.to || source >= job.work.from->servers().size()) {
    return absl::InvalidArgumentError("not a member of the current ring");
  }
  const std::string name = job.work.from->servers()[source].name;
  WarmCopyProgress resume;
  if (auto r = job.work.resume.find(name); r != job.work.resume.end()) resume = r->second;
  // A source finished before a restart is not enumerated again: its copies were made and
  // re-checked, and what was written since is the writers' to invalidate.
  if (resume.done) return absl::OkStatus();

  WarmCopyOptions options = job.work.copy;
  // Rounded up: the work's own deadline (the control) is the one that ends it, not a
  // truncated copy of it a millisecond early.
  const auto left = std::chrono::ceil<milliseconds>(job.deadline - clock.steadyNow());
  options.deadline = std::min(options.deadline, left);
  WarmCopyObserver observer;
  observer.on_progress = [&](const WarmCopyProgress& p) {
    std::lock_guard<std::mutex> lock(mu);
    job.copies[name] = p;
  };
  const auto t0 = clock.steadyNow();
  WarmCopyResult result = WarmCopier(clock, options)
                              .copy(*job.work.from, source, *job.work.to, control, resume, observer);
  const auto took = duration_cast<milliseconds>(clock.steadyNow() - t0);
  {
    std::lock_guard<std::mutex> lock(mu);
    job.copies[name] = result.progress;
  }
  const WarmCopyCounts& c = result.progress.counts;
  spdlog::info("warm copy finished cluster={} phase={} source={} status={} candidates={} "
               "already_done={} copied={} skipped_present={} skipped_changed={} skipped_gone={} "
               "skipped_bound={} bytes={} took_ms={}",
               job.cluster, job.id.phase, name, util::quoted(result.status.ToString()),
               c.candidates, c.already_done, c.copied, c.skipped_present, c.skipped_changed,
               c.skipped_gone, c.skipped_bound, c.bytes, took.count());
  return result.status;
}

void TransitionRunner::Impl::finish(Job& job, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu);
  job.done = true;
  job.done_at = clock.steadyNow();
  job.status = std::move(status);
  const auto took = duration_cast<milliseconds>(job.done_at - job.started);
  if (job.cancelled.load()) {
    spdlog::info("transition work stopped after its cancellation cluster={} phase={} took_ms={}",
                 job.cluster, job.id.phase, took.count());
  } else if (job.status.ok()) {
    spdlog::info("transition work finished cluster={} phase={} swept_removed={} took_ms={}",
                 job.cluster, job.id.phase, job.swept.removed, took.count());
  } else {
    spdlog::warn("transition work failed cluster={} phase={} took_ms={} error={}", job.cluster,
                 job.id.phase, took.count(), util::quoted(std::string(job.status.message())));
  }
}

void TransitionRunner::Impl::cancelLocked(Job& job, std::string_view why) {
  job.why = std::string(why);
  job.cancelled.store(true, std::memory_order_release);
  spdlog::info("transition work cancelled cluster={} phase={} started_at={} reason={}",
               job.cluster, job.id.phase, job.id.started_at, util::quoted(why));
  wake_cv.notify_all();
}

}  // namespace mcop::memcached
