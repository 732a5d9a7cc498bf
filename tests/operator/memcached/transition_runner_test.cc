// TransitionRunner: with real memcached processes, a whole copy work (2 → 3, the real sweeper
// first), the sweep that clears a stale copy before the copy replaces it, resuming from recorded
// progress, cancellation by drop() and the overall deadline of a rate-limited copy; with a fake
// sweeper, the same-id / other-id rules of start(), the first failure ending the work, the FIFO
// of works waiting for a thread, a cluster's new work waiting for the one it replaced, and stop().
#include "memcached/transition_runner.h"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include <absl/strings/match.h>
#include <gtest/gtest.h>

#include "memcached/cluster_status.h"
#include "memcached/three_memcached_fixture.h"
#include "testing/fake_clock.h"

namespace mcop::memcached {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

// Each sweep blocks until released (all at once) or until its control stops it; records the
// order of the sweeps and how the control stopped them.
class FakeSweeper : public StaleCopySweeper {
 public:
  absl::StatusOr<SweepCounts> sweep(const clientconfig::Snapshot& ring, size_t member,
                                    const SweepControl& control,
                                    const MemberSecurity* security) override {
    const std::string name = ring.cluster + "/" + ring.servers()[member].name;
    std::unique_lock<std::mutex> lock(mu_);
    calls_.push_back(name);
    securities_.push_back(security);
    max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    cv_.notify_all();
    while (!open_) {
      if (auto s = control.check(); !s.ok() && !stubborn_) {
        stops_.push_back(s);
        --in_flight_;
        cv_.notify_all();
        return s;
      }
      // The control's deadline may follow a FakeClock, which notifies nobody: poll it.
      cv_.wait_for(lock, milliseconds(2));
    }
    --in_flight_;
    if (failing_.count(name)) return absl::UnavailableError("connect refused");
    return SweepCounts{10, member + 1, 0};
  }

  void open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  // Sweeps ignore their control: they end only once opened.
  void stubborn() {
    std::lock_guard<std::mutex> lock(mu_);
    stubborn_ = true;
  }
  void fail(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    failing_.insert(name);
  }
  // Waits (bounded) until `calls` sweeps have begun and `stops` were stopped by their control.
  bool waitFor(size_t calls, size_t stops = 0) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(10),
                        [&] { return calls_.size() >= calls && stops_.size() >= stops; });
  }
  std::vector<const MemberSecurity*> securities() const {
    std::lock_guard<std::mutex> lock(mu_);
    return securities_;
  }
  std::vector<std::string> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  std::vector<absl::Status> stops() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stops_;
  }
  int maxInFlight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_in_flight_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  bool stubborn_ = false;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
  std::set<std::string> failing_;
  std::vector<std::string> calls_;
  std::vector<const MemberSecurity*> securities_;
  std::vector<absl::Status> stops_;
};

// A control that cancels once told to (to interrupt a WarmCopier directly).
class CancelControl : public SweepControl {
 public:
  absl::Status check() const override {
    return cancelled_ ? absl::CancelledError("test") : absl::OkStatus();
  }
  void pause(milliseconds duration) const override { std::this_thread::sleep_for(duration); }
  void cancel() { cancelled_ = true; }

 private:
  std::atomic<bool> cancelled_{false};
};

// A ring of `n` members no test contacts (for the fake sweeper).
clientconfig::SnapshotPtr fakeRing(const std::string& cluster, int n) {
  std::vector<clientconfig::Server> servers;
  for (int i = 0; i < n; ++i) {
    const std::string name = "x-" + std::to_string(i);
    servers.push_back({name, name + ".svc", "127.0.0.1", static_cast<uint16_t>(20000 + i), 1,
                       "active"});
  }
  auto s = clientconfig::makeSnapshot(cluster, 1, clientconfig::Hashing::KetamaLibmemcached,
                                      servers);
  EXPECT_TRUE(s.ok()) << s.error().toString();
  return *s;
}

TransitionWorkId idOf(const std::string& started_at, const std::string& phase = kPhaseCopy) {
  return TransitionWorkId{"uid-1", started_at, phase};
}

TransitionWork sweepOnly(const std::string& cluster, std::vector<size_t> members) {
  TransitionWork work;
  work.sweep_ring = fakeRing(cluster, 3);
  work.sweep = std::move(members);
  return work;
}

// Polls until the work is done (or `limit` passes); nullopt when the runner does not hold it.
std::optional<TransitionWorkProgress> waitDone(const TransitionRunner& r, const std::string& cluster,
                                               const TransitionWorkId& id,
                                               milliseconds limit = seconds(20)) {
  const auto until = steady_clock::now() + limit;
  auto p = r.progress(cluster, id);
  while (p && !p->done && steady_clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(5));
    p = r.progress(cluster, id);
  }
  return p;
}

class TransitionRunnerTest : public ThreeMemcachedTest {
 protected:
  // The copy work of 2 → 3: both members stay and are swept under the current ring, then both
  // are copied from.
  TransitionWork twoToThree(WarmCopyOptions copy = {}) {
    TransitionWork work;
    work.sweep_ring = two_;
    work.sweep = {0, 1};
    work.from = two_;
    work.to = three_;
    work.sources = {0, 1};
    work.copy = copy;
    return work;
  }

  util::RealClock clock_;
  std::shared_ptr<FakeSweeper> fake_ = std::make_shared<FakeSweeper>();
};

// The runner's own rules, with the fake sweeper only (no memcached).
class TransitionRunnerRulesTest : public testing::Test {
 protected:
  util::RealClock clock_;
  util::FakeClock fake_clock_;
  std::shared_ptr<FakeSweeper> fake_ = std::make_shared<FakeSweeper>();
};

// 2 → 3 end to end: the real sweeper, then both sources copied; every key that moves is on c
// (and only those), the counts add up, the sweep found nothing stale.
TEST_F(TransitionRunnerTest, CopiesEveryMovingItemToItsNextOwner) {
  const auto on_a = keysOwned(*two_, 0, 1500, "item:");
  const auto on_b = keysOwned(*two_, 1, 1500, "item:");
  put(0, on_a);
  put(1, on_b);
  std::set<std::string> moving;
  std::map<std::string, uint64_t> moving_from;
  for (const auto& k : on_a) {
    if (three_->serverIndex(k) == 2) moving.insert(k), ++moving_from["cache-0"];
  }
  for (const auto& k : on_b) {
    if (three_->serverIndex(k) == 2) moving.insert(k), ++moving_from["cache-1"];
  }
  ASSERT_GT(moving_from["cache-0"], 100u);
  ASSERT_GT(moving_from["cache-1"], 100u);

  TransitionRunner r(makeMemcachedStaleCopySweeper(), clock_);
  const auto id = idOf("2026-12-07T10:00:00Z");
  ASSERT_TRUE(r.start("shop/cache", id, twoToThree({.batch = 64})));
  auto p = waitDone(r, "shop/cache", id);
  ASSERT_TRUE(p.has_value());
  ASSERT_TRUE(p->done);
  ASSERT_TRUE(p->status.ok()) << p->status;
  EXPECT_EQ(p->swept.scanned, on_a.size() + on_b.size());
  EXPECT_EQ(p->swept.removed, 0u);
  ASSERT_EQ(p->copies.size(), 2u);
  for (const auto& [source, n] : moving_from) {
    const WarmCopyProgress& c = p->copies.at(source);
    EXPECT_TRUE(c.done) << source;
    EXPECT_EQ(c.counts.candidates, n) << source;
    EXPECT_EQ(c.counts.copied, n) << source;
    EXPECT_EQ(c.counts.skipped_present + c.counts.skipped_changed + c.counts.skipped_gone, 0u);
  }
  EXPECT_EQ(keysOn(2), moving);
  for (const auto& k : moving) {
    auto got = admins_[2]->metaGet(k);
    ASSERT_TRUE(got.ok() && got->has_value()) << k;
    EXPECT_EQ((*got)->value, valueOf(k));
  }
  EXPECT_GT(p->elapsed.count(), 0);
  // Kept until dropped.
  EXPECT_EQ(r.held("shop/cache"), id);
  r.drop("shop/cache", "recorded");
  EXPECT_FALSE(r.held("shop/cache").has_value());
  EXPECT_FALSE(r.progress("shop/cache", id).has_value());
}

// 3 → 2: a holds a stale copy of a key c owns now and a owns next. The sweep of a (under the
// current ring) removes it first, so the copy's add stores c's fresh value in its place.
TEST_F(TransitionRunnerTest, SweepsTheStaleCopyBeforeTheFreshCopyReplacesIt) {
  std::vector<std::string> to_a;
  for (const auto& k : keysOwned(*three_, 2, 600, "item:")) {
    if (two_->serverIndex(k) == 0) to_a.push_back(k);
  }
  ASSERT_GT(to_a.size(), 20u);
  put(2, to_a);
  const std::vector<std::string> stale(to_a.begin(), to_a.begin() + 20);
  for (const auto& k : stale) ASSERT_TRUE(*admins_[0]->metaSet(k, "stale", 0, 0));
  const auto a_owns = keysOwned(*three_, 0, 200, "own:");
  put(0, a_owns);

  TransitionWork work;
  work.sweep_ring = three_;
  work.sweep = {0, 1};  // the members that stay
  work.from = three_;
  work.to = two_;
  work.sources = {2};
  TransitionRunner r(makeMemcachedStaleCopySweeper(), clock_);
  const auto id = idOf("2026-12-07T10:00:00Z");
  ASSERT_TRUE(r.start("shop/cache", id, work));
  auto p = waitDone(r, "shop/cache", id);
  ASSERT_TRUE(p && p->done);
  ASSERT_TRUE(p->status.ok()) << p->status;
  EXPECT_EQ(p->swept.removed, stale.size());
  EXPECT_EQ(p->swept.scanned, stale.size() + a_owns.size());
  const WarmCopyProgress& c = p->copies.at("cache-2");
  EXPECT_EQ(c.counts.skipped_present, 0u);
  EXPECT_EQ(c.counts.candidates, to_a.size());
  EXPECT_EQ(c.counts.copied, to_a.size());
  for (const auto& k : stale) {
    auto got = admins_[0]->metaGet(k);
    ASSERT_TRUE(got.ok() && got->has_value()) << k;
    EXPECT_EQ((*got)->value, valueOf(k)) << k << " kept its stale copy";
  }
  for (const auto& k : a_owns) EXPECT_TRUE(admins_[0]->metaGet(k)->has_value()) << k;
}

// A copy interrupted after two batches resumes from its recorded progress: nothing processed
// twice, the rest copied; a source whose recorded copy is done is not copied again. Until the
// work gets a thread, progress reports the recorded copies.
TEST_F(TransitionRunnerTest, ResumesFromTheRecordedProgress) {
  const auto moving = movingKeys(1200);
  put(0, moving);
  std::vector<std::string> b_moving;
  for (const auto& k : keysOwned(*two_, 1, 600, "item:")) {
    if (three_->serverIndex(k) == 2) b_moving.push_back(k);
  }
  put(1, b_moving);
  CancelControl control;
  WarmCopyObserver observer;
  observer.on_progress = [&](const WarmCopyProgress& p) {
    if (p.counts.batches == 2) control.cancel();
  };
  auto first = WarmCopier(clock_, {.batch = 50}).copy(*two_, 0, *three_, control, {}, observer);
  ASSERT_EQ(first.status.code(), absl::StatusCode::kCancelled) << first.status;
  ASSERT_EQ(first.progress.counts.processed, 100u);
  WarmCopyProgress b_done;
  b_done.done = true;
  b_done.counts.copied = 7;

  TransitionRunner r(fake_, clock_, 1);
  ASSERT_TRUE(r.start("shop/other", idOf("t0"), sweepOnly("shop/other", {0})));
  ASSERT_TRUE(fake_->waitFor(1));  // the only thread is busy
  TransitionWork work = twoToThree({.batch = 50});
  work.sweep.clear();
  work.resume = {{"cache-0", first.progress}, {"cache-1", b_done}};
  const auto id = idOf("2026-12-07T10:00:00Z");
  ASSERT_TRUE(r.start("shop/cache", id, work));
  auto waiting = r.progress("shop/cache", id);
  ASSERT_TRUE(waiting.has_value());
  EXPECT_FALSE(waiting->done);
  EXPECT_EQ(waiting->copies.at("cache-0").counts.processed, 100u);
  EXPECT_EQ(waiting->copies.at("cache-1").counts.copied, 7u);

  fake_->open();
  auto p = waitDone(r, "shop/cache", id);
  ASSERT_TRUE(p && p->done);
  ASSERT_TRUE(p->status.ok()) << p->status;
  const WarmCopyProgress& a = p->copies.at("cache-0");
  EXPECT_TRUE(a.done);
  EXPECT_EQ(a.counts.already_done, 100u);
  EXPECT_EQ(a.counts.skipped_present, 0u);  // nothing processed twice
  EXPECT_EQ(a.counts.copied, moving.size());
  EXPECT_EQ(a.counts.processed, moving.size());
  EXPECT_EQ(p->copies.at("cache-1").counts.copied, 7u);
  EXPECT_EQ(keysOn(2), std::set<std::string>(moving.begin(), moving.end()));  // none of b's
}

// drop() cancels a running, rate-limited copy: it stops between batches, the runner forgets it,
// and its thread is free at once for the next work.
TEST_F(TransitionRunnerTest, DropCancelsARunningCopyPromptly) {
  const auto moving = movingKeys(3000);
  put(0, moving);
  TransitionRunner r(fake_, clock_, 1);
  TransitionWork work = twoToThree({.items_per_second = 100, .batch = 10});
  work.sweep.clear();
  work.sources = {0};
  const auto id = idOf("2026-12-07T10:00:00Z");
  ASSERT_TRUE(r.start("shop/cache", id, work));
  for (int i = 0; i < 2000; ++i) {
    auto p = r.progress("shop/cache", id);
    ASSERT_TRUE(p.has_value());
    if (p->copies.count("cache-0") && p->copies.at("cache-0").counts.batches >= 2) break;
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_GE(r.progress("shop/cache", id)->copies.at("cache-0").counts.batches, 2u);
  r.drop("shop/cache", "the transition was cancelled");
  EXPECT_FALSE(r.progress("shop/cache", id).has_value());
  EXPECT_FALSE(r.held("shop/cache").has_value());

  // The next work gets the only thread once the dropped copy has returned.
  fake_->open();
  const auto dropped_at = steady_clock::now();
  const auto next = idOf("t1");
  ASSERT_TRUE(r.start("shop/other", next, sweepOnly("shop/other", {0})));
  auto p = waitDone(r, "shop/other", next, seconds(5));
  ASSERT_TRUE(p && p->done);
  EXPECT_LT(steady_clock::now() - dropped_at, milliseconds(1000));
  const size_t copied = keysOn(2).size();
  EXPECT_LT(copied, moving.size() / 2);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(keysOn(2).size(), copied);  // the copy really stopped
}

// The work's deadline caps each copy's: a rate-limited copy that cannot finish in time ends
// the work with DeadlineExceeded, naming the source.
TEST_F(TransitionRunnerTest, TheOverallDeadlineEndsACopy) {
  put(0, movingKeys(3000));
  TransitionRunner r(fake_, clock_);
  TransitionWork work = twoToThree({.items_per_second = 100, .batch = 10});
  work.sweep.clear();
  work.deadline = milliseconds(400);
  const auto id = idOf("2026-12-07T10:00:00Z");
  const auto t0 = steady_clock::now();
  ASSERT_TRUE(r.start("shop/cache", id, work));
  auto p = waitDone(r, "shop/cache", id);
  ASSERT_TRUE(p && p->done);
  EXPECT_LT(steady_clock::now() - t0, seconds(3));
  EXPECT_EQ(p->status.code(), absl::StatusCode::kDeadlineExceeded) << p->status;
  EXPECT_TRUE(absl::StartsWith(p->status.message(), "copy from cache-0: ")) << p->status;
  const WarmCopyProgress& c = p->copies.at("cache-0");
  EXPECT_FALSE(c.done);
  EXPECT_GT(c.counts.processed, 0u);
  EXPECT_EQ(keysOn(2).size(), c.counts.copied);
  EXPECT_FALSE(p->copies.count("cache-1"));  // the work stopped at its first failure
  EXPECT_GE(p->elapsed, milliseconds(400));
}

// The deadline reaches a sweep in progress through its control (a fake clock here).
TEST_F(TransitionRunnerRulesTest, TheOverallDeadlineEndsASweep) {
  TransitionRunner r(fake_, fake_clock_);
  TransitionWork work = sweepOnly("shop/a", {0, 1});
  work.deadline = seconds(30);
  const auto id = idOf("t0");
  ASSERT_TRUE(r.start("shop/a", id, work));
  ASSERT_TRUE(fake_->waitFor(1));
  fake_clock_.advance(seconds(31));
  auto p = waitDone(r, "shop/a", id);
  ASSERT_TRUE(p && p->done);
  EXPECT_EQ(p->status.code(), absl::StatusCode::kDeadlineExceeded) << p->status;
  EXPECT_TRUE(absl::StartsWith(p->status.message(), "sweep of x-0: ")) << p->status;
  EXPECT_EQ(fake_->calls().size(), 1u);  // x-1 never swept
  EXPECT_EQ(p->elapsed, seconds(31));
}

// The clean sweeps connect as the work's copy options say (the cluster's TLS, authentication).
TEST_F(TransitionRunnerRulesTest, TheClustersSecurityReachesTheSweeps) {
  TransitionRunner r(fake_, clock_);
  fake_->open();
  TransitionWork work = sweepOnly("shop/a", {0, 1});
  auto security = std::make_shared<MemberSecurity>();
  security->credentials = clientconfig::Credentials{"operator", "pw"};
  work.copy.security = security;
  const auto id = idOf("t0");
  ASSERT_TRUE(r.start("shop/a", id, work));
  auto p = waitDone(r, "shop/a", id);
  ASSERT_TRUE(p && p->done);
  EXPECT_EQ(fake_->securities(),
            (std::vector<const MemberSecurity*>{security.get(), security.get()}));
}

// The same id again changes nothing (running or finished); another id cancels and replaces it.
TEST_F(TransitionRunnerRulesTest, SameIdIsANoOpAnotherIdReplaces) {
  TransitionRunner r(fake_, clock_);
  const auto first = idOf("t0");
  ASSERT_TRUE(r.start("shop/a", first, sweepOnly("shop/a", {0})));
  ASSERT_TRUE(fake_->waitFor(1));
  ASSERT_TRUE(r.start("shop/a", first, sweepOnly("shop/a", {0, 1, 2})));
  EXPECT_EQ(r.held("shop/a"), first);
  EXPECT_TRUE(fake_->stops().empty());

  const auto second = idOf("t0", kPhaseFinalize);
  ASSERT_TRUE(r.start("shop/a", second, sweepOnly("shop/a", {1, 2})));
  ASSERT_TRUE(fake_->waitFor(2, 1));
  ASSERT_EQ(fake_->stops().size(), 1u);
  EXPECT_EQ(fake_->stops()[0].code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(fake_->stops()[0].message(),
            "transition work cancelled: superseded by another transition work");
  EXPECT_EQ(r.held("shop/a"), second);
  EXPECT_FALSE(r.progress("shop/a", first).has_value());

  fake_->open();
  auto p = waitDone(r, "shop/a", second);
  ASSERT_TRUE(p && p->done);
  ASSERT_TRUE(p->status.ok()) << p->status;
  EXPECT_EQ(p->swept.scanned, 20u);
  EXPECT_EQ(p->swept.removed, 2u + 3u);
  EXPECT_EQ(fake_->calls(), (std::vector<std::string>{"shop/a/x-0", "shop/a/x-1", "shop/a/x-2"}));
  ASSERT_TRUE(r.start("shop/a", second, sweepOnly("shop/a", {1, 2})));  // finished: kept
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(fake_->calls().size(), 3u);
  EXPECT_TRUE(r.progress("shop/a", second)->done);
}

// The first failure ends the work, prefixed with the step that failed; nothing after it runs.
TEST_F(TransitionRunnerRulesTest, TheFirstFailureEndsTheWork) {
  fake_->fail("shop/a/x-1");
  fake_->open();
  TransitionRunner r(fake_, clock_);
  TransitionWork work = sweepOnly("shop/a", {0, 1, 2});
  const auto id = idOf("t0");
  ASSERT_TRUE(r.start("shop/a", id, work));
  auto p = waitDone(r, "shop/a", id);
  ASSERT_TRUE(p && p->done);
  EXPECT_EQ(p->status, absl::UnavailableError("sweep of x-1: connect refused"));
  EXPECT_EQ(p->swept.removed, 1u);
  EXPECT_EQ(fake_->calls(), (std::vector<std::string>{"shop/a/x-0", "shop/a/x-1"}));
}

// With every thread busy, works wait in the order they were started; one dropped while it
// waits never runs.
TEST_F(TransitionRunnerRulesTest, WaitingWorksRunInOrder) {
  TransitionRunner r(fake_, clock_, 1);
  for (const std::string c : {"shop/a", "shop/b", "shop/c", "shop/d"}) {
    ASSERT_TRUE(r.start(c, idOf("t0"), sweepOnly(c, {0})));
  }
  ASSERT_TRUE(fake_->waitFor(1));
  r.drop("shop/c", "deleted");
  fake_->open();
  auto p = waitDone(r, "shop/d", idOf("t0"));
  ASSERT_TRUE(p && p->done);
  EXPECT_EQ(fake_->calls(),
            (std::vector<std::string>{"shop/a/x-0", "shop/b/x-0", "shop/d/x-0"}));
}

// A replaced work still returning from its cancellation keeps its cluster: the new work of the
// cluster waits for it even with a thread free, while another cluster's work goes ahead.
TEST_F(TransitionRunnerRulesTest, ANewWorkWaitsForTheReplacedOneOfItsCluster) {
  fake_->stubborn();
  TransitionRunner r(fake_, clock_, 2);
  ASSERT_TRUE(r.start("shop/a", idOf("t0"), sweepOnly("shop/a", {0})));
  ASSERT_TRUE(fake_->waitFor(1));
  ASSERT_TRUE(r.start("shop/a", idOf("t1"), sweepOnly("shop/a", {1})));
  ASSERT_TRUE(r.start("shop/b", idOf("t0"), sweepOnly("shop/b", {0})));
  ASSERT_TRUE(fake_->waitFor(2));
  std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(fake_->calls(), (std::vector<std::string>{"shop/a/x-0", "shop/b/x-0"}));
  fake_->open();
  auto p = waitDone(r, "shop/a", idOf("t1"));
  ASSERT_TRUE(p && p->done);
  EXPECT_TRUE(p->status.ok()) << p->status;
  EXPECT_EQ(fake_->calls(),
            (std::vector<std::string>{"shop/a/x-0", "shop/b/x-0", "shop/a/x-1"}));
  EXPECT_EQ(fake_->maxInFlight(), 2);
}

// stop() cancels the running work, joins the threads and refuses new works; idempotent.
TEST_F(TransitionRunnerRulesTest, StopCancelsJoinsAndRefuses) {
  TransitionRunner r(fake_, clock_);
  ASSERT_TRUE(r.start("shop/a", idOf("t0"), sweepOnly("shop/a", {0})));
  ASSERT_TRUE(fake_->waitFor(1));
  r.stop();  // returns only once the threads are joined
  ASSERT_EQ(fake_->stops().size(), 1u);
  EXPECT_EQ(fake_->stops()[0].message(), "transition work cancelled: the operator is stopping");
  EXPECT_FALSE(r.start("shop/b", idOf("t0"), sweepOnly("shop/b", {0})));
  EXPECT_FALSE(r.held("shop/a").has_value());
  r.stop();
  EXPECT_EQ(fake_->calls().size(), 1u);
}

// No sweep and no source: done at once, OK.
TEST_F(TransitionRunnerRulesTest, NothingToDoIsDone) {
  TransitionRunner r(fake_, clock_);
  ASSERT_TRUE(r.start("shop/a", idOf("t0"), TransitionWork{}));
  auto p = waitDone(r, "shop/a", idOf("t0"));
  ASSERT_TRUE(p && p->done);
  EXPECT_TRUE(p->status.ok());
  EXPECT_TRUE(p->copies.empty());
}

}  // namespace
}  // namespace mcop::memcached
