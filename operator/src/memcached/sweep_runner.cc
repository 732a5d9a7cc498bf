// SweepRunner: see sweep_runner.h. One mutex guards the table of sweeps and every sweep's
// bookkeeping; a member's sweep itself runs without it, on a worker thread that holds the
// sweep alive (a dropped sweep's members finish on their own and nobody reads them).
#include "memcached/sweep_runner.h"

#include <algorithm>
#include <atomic>
#include <tuple>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <spdlog/spdlog.h>

#include "util/logging.h"
#include "memcached/metrics.h"

namespace mcop::memcached {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

struct SweepRunner::Job {
  enum class State { kWaiting, kRunning, kFinished };
  struct Member {
    size_t index = 0;  // in ring->servers()
    State state = State::kWaiting;
    MemberSweep result;
  };

  std::string cluster;
  SweepId id;
  clientconfig::SnapshotPtr ring;
  MemberSecurityPtr security;  // of the sweeper's connections
  std::vector<Member> members;  // ring order
  uint64_t seq = 0;             // start order
  uint64_t served = 0;          // when a member of it last got a thread (0: never)
  size_t running = 0;
  size_t finished = 0;
  steady_clock::time_point started;
  steady_clock::time_point deadline;
  steady_clock::time_point done_at;
  bool done = false;
  // Written under mu_, read by Control::check() without it: why must be set before cancelled.
  std::atomic<bool> cancelled{false};
  std::string why;
};

// What a member's sweep consults: the job's cancellation and the overall deadline.
class SweepRunner::Control : public SweepControl {
 public:
  Control(SweepRunner& runner, std::shared_ptr<Job> job)
      : runner_(runner), job_(std::move(job)) {}

  absl::Status check() const override {
    if (job_->cancelled.load(std::memory_order_acquire)) {
      return absl::CancelledError(absl::StrCat("sweep cancelled: ", job_->why));
    }
    if (runner_.clock_.steadyNow() >= job_->deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("the sweep's overall deadline of ",
                       duration_cast<std::chrono::seconds>(runner_.options_.deadline).count(),
                       "s passed"));
    }
    return absl::OkStatus();
  }

  void pause(milliseconds duration) const override {
    const auto left = duration_cast<milliseconds>(job_->deadline - runner_.clock_.steadyNow());
    std::unique_lock<std::mutex> lock(runner_.mu_);
    runner_.wake_cv_.wait_for(lock, std::max(milliseconds(0), std::min(duration, left)),
                              [&] { return job_->cancelled.load(); });
  }

 private:
  SweepRunner& runner_;
  std::shared_ptr<Job> job_;
};

SweepRunner::SweepRunner(StaleCopySweeperPtr sweeper, const util::Clock& clock,
                         SweepRunnerOptions options)
    : sweeper_(std::move(sweeper)), clock_(clock), options_(options),
      threads_(options_.threads, options_.idle_thread_linger) {}

SweepRunner::~SweepRunner() { stop(); }

bool SweepRunner::start(const std::string& cluster, const SweepId& id,
                        clientconfig::SnapshotPtr ring, const std::vector<size_t>& members,
                        MemberSecurityPtr security) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  forgetExpiredLocked();
  if (auto it = jobs_.find(cluster); it != jobs_.end()) {
    if (it->second->id == id) return true;
    cancelLocked(*it->second, "superseded by a sweep for another drain or ring");
    jobs_.erase(it);
  }
  auto job = std::make_shared<Job>();
  job->cluster = cluster;
  job->id = id;
  job->ring = std::move(ring);
  job->security = std::move(security);
  job->seq = next_seq_++;
  job->started = clock_.steadyNow();
  job->deadline = job->started + options_.deadline;
  std::vector<std::string> names;
  for (size_t index : members) {
    Job::Member m;
    m.index = index;
    m.result.name = index < job->ring->servers().size() ? job->ring->servers()[index].name
                                                        : absl::StrCat("#", index);
    names.push_back(m.result.name);
    job->members.push_back(std::move(m));
  }
  spdlog::info("stale copy sweep started cluster={} ring_version={} members={} deadline_s={}",
               cluster, id.ring_version, absl::StrJoin(names, ","),
               duration_cast<std::chrono::seconds>(options_.deadline).count());
  if (job->members.empty()) {
    job->done = true;
    job->done_at = job->started;
  }
  jobs_[cluster] = job;
  work_cv_.notify_all();
  threads_.wakeLocked(job->members.size(), [this] { work(); });
  return true;
}

std::optional<SweepProgress> SweepRunner::progress(const std::string& cluster,
                                                   const SweepId& id, milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  forgetExpiredLocked();
  auto it = jobs_.find(cluster);
  if (it == jobs_.end() || !(it->second->id == id)) return std::nullopt;
  std::shared_ptr<Job> job = it->second;
  expireLocked(*job);
  if (wait > milliseconds(0) && !job->done) {
    done_cv_.wait_for(lock, wait, [&] { return job->done || job->cancelled.load(); });
  }
  if (job->cancelled.load()) return std::nullopt;  // dropped while we waited
  SweepProgress p;
  p.done = job->done;
  for (const auto& m : job->members) {
    if (m.state == Job::State::kFinished) {
      p.finished.push_back(m.result);
    } else {
      p.pending.push_back(m.result.name);
    }
  }
  p.elapsed = duration_cast<milliseconds>((job->done ? job->done_at : clock_.steadyNow()) -
                                          job->started);
  return p;
}

std::optional<SweepId> SweepRunner::held(const std::string& cluster) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(cluster);
  if (it == jobs_.end()) return std::nullopt;
  return it->second->id;
}

void SweepRunner::drop(const std::string& cluster, std::string_view why) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(cluster);
  if (it == jobs_.end()) return;
  if (it->second->done) {
    spdlog::debug("stale copy sweep forgotten cluster={} reason={}", cluster, util::quoted(why));
  } else {
    cancelLocked(*it->second, why);
  }
  jobs_.erase(it);
}

void SweepRunner::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      stopping_ = true;
      for (auto& [cluster, job] : jobs_) {
        if (!job->done) cancelLocked(*job, "the operator is stopping");
      }
      jobs_.clear();
      work_cv_.notify_all();
    }
  }
  threads_.joinAll();
}

size_t SweepRunner::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

void SweepRunner::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    std::shared_ptr<Job> job;
    size_t member = 0;
    if (!threads_.waitLocked(lock, work_cv_, [&] { return stopping_ || nextLocked(job, member); })) {
      return;  // nothing to sweep for a while: the thread ends
    }
    if (stopping_) return;
    Job::Member& m = job->members[member];
    m.state = Job::State::kRunning;
    ++job->running;
    job->served = ++dispatches_;
    lock.unlock();

    Control control(*this, job);
    const auto t0 = clock_.steadyNow();
    absl::StatusOr<SweepCounts> counts;
    if (absl::Status stop = control.check(); !stop.ok()) {
      counts = std::move(stop);  // cancelled or past the deadline before its turn came
    } else {
      counts = sweeper_->sweep(*job->ring, m.index, control, job->security.get());
    }
    const auto took = duration_cast<milliseconds>(clock_.steadyNow() - t0);

    lock.lock();
    finishLocked(*job, member, std::move(counts), took);
  }
}

bool SweepRunner::nextLocked(std::shared_ptr<Job>& job, size_t& member) {
  Job* best = nullptr;
  for (auto& [cluster, j] : jobs_) {
    expireLocked(*j);
    if (j->done || j->running + j->finished == j->members.size()) continue;
    // Fewest members in flight, then the one served longest ago: round robin between sweeps.
    if (!best || std::tie(j->running, j->served, j->seq) <
                     std::tie(best->running, best->served, best->seq)) {
      best = j.get();
      job = j;
    }
  }
  if (!best) return false;
  for (size_t i = 0; i < best->members.size(); ++i) {
    if (best->members[i].state == Job::State::kWaiting) {
      member = i;
      return true;
    }
  }
  return false;
}

void SweepRunner::finishLocked(Job& job, size_t member, absl::StatusOr<SweepCounts> counts,
                               milliseconds took) {
  Job::Member& m = job.members[member];
  if (m.state == Job::State::kRunning) --job.running;
  m.state = Job::State::kFinished;
  m.result.counts = std::move(counts);
  m.result.took = took;
  ++job.finished;
  const std::string& name = m.result.name;
  if (m.result.counts.ok()) {
    const SweepCounts& c = *m.result.counts;
    // Counted as the work happens, whether or not status ever records it.
    staleCopiesRemoved().inc({job.cluster}, static_cast<double>(c.removed));
    spdlog::info("swept stale copies cluster={} pod={} version={} scanned={} removed={} "
                 "busy_waits={} took_ms={}",
                 job.cluster, name, job.id.ring_version, c.scanned, c.removed, c.busy_waits,
                 took.count());
  } else if (absl::IsCancelled(m.result.counts.status())) {
    spdlog::info("stale copy sweep cancelled cluster={} pod={} took_ms={} reason={}", job.cluster,
                 name, took.count(), util::quoted(std::string(m.result.counts.status().message())));
  } else {
    staleCopySweepFailures().inc({job.cluster});
    spdlog::warn("stale copy sweep failed cluster={} pod={} took_ms={} error={}", job.cluster,
                 name, took.count(), util::quoted(std::string(m.result.counts.status().message())));
  }
  if (!job.done && job.finished == job.members.size()) {
    job.done = true;
    job.done_at = clock_.steadyNow();
    done_cv_.notify_all();
  }
}

void SweepRunner::expireLocked(Job& job) {
  if (job.done || job.cancelled.load() || clock_.steadyNow() < job.deadline) return;
  for (size_t i = 0; i < job.members.size(); ++i) {
    if (job.members[i].state != Job::State::kWaiting) continue;
    finishLocked(job, i,
                 absl::DeadlineExceededError(absl::StrCat(
                     "not swept: the sweep's overall deadline of ",
                     duration_cast<std::chrono::seconds>(options_.deadline).count(),
                     "s passed before its turn")),
                 milliseconds(0));
  }
}

void SweepRunner::cancelLocked(Job& job, std::string_view why) {
  job.why = std::string(why);
  job.cancelled.store(true, std::memory_order_release);
  spdlog::info("stale copy sweep cancelled cluster={} ring_version={} finished={} of={} reason={}",
               job.cluster, job.id.ring_version, job.finished, job.members.size(),
               util::quoted(why));
  wake_cv_.notify_all();
  done_cv_.notify_all();
}

void SweepRunner::forgetExpiredLocked() {
  const auto now = clock_.steadyNow();
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    const Job& job = *it->second;
    if (job.done && now - job.done_at >= options_.result_ttl) {
      spdlog::info("stale copy sweep result expired unrecorded cluster={} ring_version={}",
                   job.cluster, job.id.ring_version);
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace mcop::memcached
