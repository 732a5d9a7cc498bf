// SweepRunner with a fake sweeper that blocks on a latch: start and progress, a finished result
// kept until dropped, idempotent starts, replacement, cancellation, the overall deadline (on a
// FakeClock), the thread bound, round robin between sweeps, the result TTL and stop().
#include "memcached/sweep_runner.h"

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include <gtest/gtest.h>

#include "testing/fake_clock.h"

namespace mcop::memcached {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Each sweep blocks until its member is released (or all are), or until its control stops it.
class LatchSweeper : public StaleCopySweeper {
 public:
  absl::StatusOr<SweepCounts> sweep(const clientconfig::Snapshot& ring, size_t member,
                                    const SweepControl& control,
                                    const MemberSecurity* security) override {
    const std::string name = ring.servers()[member].name;
    std::unique_lock<std::mutex> lock(mu_);
    order_.push_back(name);
    securities_.push_back(security);
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    cv_.notify_all();
    while (!open_ && !released_.count(name)) {
      // The control's deadline follows a FakeClock, which notifies nobody: poll it.
      if (auto s = control.check(); !s.ok()) {
        --in_flight_;
        stops_[name] = s;
        cv_.notify_all();
        return s;
      }
      cv_.wait_for(lock, milliseconds(2));
    }
    --in_flight_;
    cv_.notify_all();
    if (failing_.count(name)) return absl::UnavailableError("connect refused");
    return SweepCounts{100, member + 1, 0};
  }

  void open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void release(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    released_.insert(name);
    cv_.notify_all();
  }
  void fail(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    failing_.insert(name);
  }
  // Waits (bounded) until `started` sweeps have begun and `stopped` were stopped by control.
  bool waitFor(size_t started, size_t stopped = 0) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(10), [&] {
      return order_.size() >= started && stops_.size() >= stopped;
    });
  }
  bool waitIdle() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(10), [&] { return in_flight_ == 0; });
  }
  // The security each sweep was given, in the order they began.
  std::vector<const MemberSecurity*> securities() const {
    std::lock_guard<std::mutex> lock(mu_);
    return securities_;
  }
  std::vector<std::string> order() const {
    std::lock_guard<std::mutex> lock(mu_);
    return order_;
  }
  std::map<std::string, absl::Status> stops() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stops_;
  }
  int inFlight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_;
  }
  int maxInFlight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return max_in_flight_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  std::set<std::string> released_;
  std::set<std::string> failing_;
  std::vector<std::string> order_;
  std::vector<const MemberSecurity*> securities_;
  std::map<std::string, absl::Status> stops_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
};

clientconfig::SnapshotPtr ring(const std::string& prefix, int n, uint64_t version = 7) {
  std::vector<clientconfig::Server> servers;
  for (int i = 0; i < n; ++i) {
    const std::string name = prefix + "-" + std::to_string(i);
    servers.push_back({name, name + ".svc", "127.0.0.1", static_cast<uint16_t>(20000 + i), 1,
                       "active"});
  }
  auto s = clientconfig::makeSnapshot("shop/" + prefix, version,
                                      clientconfig::Hashing::KetamaLibmemcached, servers);
  EXPECT_TRUE(s.ok()) << s.error().toString();
  return *s;
}

SweepId idOf(const std::string& uid, int64_t target, uint64_t version = 7) {
  return SweepId{uid, target, {"x-" + std::to_string(target)}, version};
}

class SweepRunnerTest : public testing::Test {
 protected:
  std::unique_ptr<SweepRunner> runner(size_t threads, milliseconds deadline = seconds(120),
                                      milliseconds ttl = seconds(600)) {
    return std::make_unique<SweepRunner>(sweeper_, clock_,
                                         SweepRunnerOptions{threads, deadline, ttl});
  }
  util::FakeClock clock_;
  std::shared_ptr<LatchSweeper> sweeper_ = std::make_shared<LatchSweeper>();
};

TEST_F(SweepRunnerTest, ProgressThenAResultKeptUntilDropped) {
  auto r = runner(4);
  const SweepId id = idOf("uid-1", 3);
  EXPECT_FALSE(r->progress("shop/a", id).has_value());  // nothing started
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 4), {0, 1, 2}));
  ASSERT_TRUE(sweeper_->waitFor(3));  // all three at once: four threads

  auto p = r->progress("shop/a", id);
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->done);
  EXPECT_EQ(p->pending, (std::vector<std::string>{"a-0", "a-1", "a-2"}));
  EXPECT_TRUE(p->finished.empty());
  EXPECT_EQ(p->total(), 3u);

  sweeper_->release("a-1");
  for (int i = 0; i < 1000; ++i) {
    p = r->progress("shop/a", id);
    if (p->finished.size() == 1) break;
    std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_EQ(p->finished.size(), 1u);
  EXPECT_EQ(p->finished[0].name, "a-1");
  EXPECT_EQ(p->pending, (std::vector<std::string>{"a-0", "a-2"}));

  sweeper_->open();
  p = r->progress("shop/a", id, seconds(10));
  ASSERT_TRUE(p.has_value());
  ASSERT_TRUE(p->done);
  ASSERT_EQ(p->finished.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {  // ring order, whatever order they finished in
    EXPECT_EQ(p->finished[i].name, "a-" + std::to_string(i));
    ASSERT_TRUE(p->finished[i].counts.ok());
    EXPECT_EQ(p->finished[i].counts->removed, i + 1);
  }

  // Kept, unchanged, however often it is read, until dropped.
  for (int i = 0; i < 3; ++i) {
    auto again = r->progress("shop/a", id);
    ASSERT_TRUE(again.has_value() && again->done);
    EXPECT_EQ(again->finished.size(), 3u);
  }
  EXPECT_EQ(r->held("shop/a"), id);
  EXPECT_EQ(r->size(), 1u);
  r->drop("shop/a", "recorded");
  EXPECT_FALSE(r->progress("shop/a", id).has_value());
  EXPECT_FALSE(r->held("shop/a").has_value());
  EXPECT_EQ(r->size(), 0u);
  EXPECT_EQ(sweeper_->order().size(), 3u);
}

// Every member's sweep connects as the cluster's security says (TLS, authentication).
TEST_F(SweepRunnerTest, TheClustersSecurityReachesEverySweep) {
  auto r = runner(2);
  sweeper_->open();
  auto security = std::make_shared<MemberSecurity>();
  security->credentials = clientconfig::Credentials{"operator", "pw"};
  ASSERT_TRUE(r->start("shop/a", idOf("uid-1", 3), ring("a", 4), {0, 1, 2}, security));
  ASSERT_TRUE(r->progress("shop/a", idOf("uid-1", 3), seconds(10))->done);
  ASSERT_TRUE(r->start("shop/b", idOf("uid-2", 1), ring("b", 2), {0}));
  ASSERT_TRUE(r->progress("shop/b", idOf("uid-2", 1), seconds(10))->done);
  const auto given = sweeper_->securities();
  ASSERT_EQ(given.size(), 4u);
  const auto order = sweeper_->order();
  for (size_t i = 0; i < given.size(); ++i) {
    EXPECT_EQ(given[i], order[i].rfind("a-", 0) == 0 ? security.get() : nullptr) << order[i];
  }
}

TEST_F(SweepRunnerTest, StartingTheSameSweepAgainChangesNothing) {
  auto r = runner(4);
  sweeper_->open();
  const SweepId id = idOf("uid-1", 2);
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 3), {0, 1}));
  ASSERT_TRUE(r->progress("shop/a", id, seconds(10))->done);
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 3), {0, 1}));  // a pass after a lost write
  auto p = r->progress("shop/a", id, seconds(10));
  ASSERT_TRUE(p.has_value() && p->done);
  EXPECT_EQ(sweeper_->order().size(), 2u);  // swept once
  // Another cluster with the same drain shape is another sweep.
  ASSERT_TRUE(r->start("shop/b", id, ring("b", 3), {0, 1}));
  ASSERT_TRUE(r->progress("shop/b", id, seconds(10))->done);
  EXPECT_EQ(sweeper_->order().size(), 4u);
  EXPECT_EQ(r->size(), 2u);
}

TEST_F(SweepRunnerTest, AnotherIdReplacesTheSweepAndCancelsIt) {
  auto r = runner(4);
  const SweepId first = idOf("uid-1", 3);
  ASSERT_TRUE(r->start("shop/a", first, ring("a", 4), {0, 1, 2}));
  ASSERT_TRUE(sweeper_->waitFor(3));
  // The ring changed (a new version was published) while it ran.
  const SweepId second = idOf("uid-1", 3, 8);
  ASSERT_TRUE(r->start("shop/a", second, ring("a", 4, 8), {0, 1, 2}));
  ASSERT_TRUE(sweeper_->waitFor(3, 3));
  for (const auto& [name, status] : sweeper_->stops()) {
    EXPECT_TRUE(absl::IsCancelled(status)) << name << ": " << status;
    EXPECT_NE(status.message().find("superseded"), std::string::npos) << status;
  }
  EXPECT_FALSE(r->progress("shop/a", first).has_value());
  ASSERT_TRUE(sweeper_->waitFor(6));  // the new one runs
  sweeper_->open();
  auto p = r->progress("shop/a", second, seconds(10));
  ASSERT_TRUE(p.has_value() && p->done);
  EXPECT_EQ(p->finished.size(), 3u);
}

TEST_F(SweepRunnerTest, DropCancelsARunningSweepPromptly) {
  auto r = runner(4);
  const SweepId id = idOf("uid-1", 1);
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 3), {0, 1}));
  ASSERT_TRUE(sweeper_->waitFor(2));
  r->drop("shop/a", "the drain was cancelled");
  ASSERT_TRUE(sweeper_->waitFor(2, 2));
  for (const auto& [name, status] : sweeper_->stops()) {
    EXPECT_TRUE(absl::IsCancelled(status)) << status;
    EXPECT_EQ(status.message(), "sweep cancelled: the drain was cancelled");
  }
  EXPECT_FALSE(r->progress("shop/a", id).has_value());
  EXPECT_EQ(r->size(), 0u);
  EXPECT_TRUE(sweeper_->waitIdle());
  r->drop("shop/a", "again");  // nothing held: nothing happens
}

TEST_F(SweepRunnerTest, TheOverallDeadlineStopsRunningAndWaitingMembers) {
  auto r = runner(1, seconds(120));  // one thread: a-0 runs, a-1 and a-2 wait their turn
  const SweepId id = idOf("uid-1", 3);
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 4), {0, 1, 2}));
  ASSERT_TRUE(sweeper_->waitFor(1));
  clock_.advance(seconds(119));
  EXPECT_FALSE(r->progress("shop/a", id)->done);
  EXPECT_TRUE(sweeper_->stops().empty());
  clock_.advance(seconds(2));
  auto p = r->progress("shop/a", id, seconds(10));
  ASSERT_TRUE(p.has_value());
  ASSERT_TRUE(p->done);
  ASSERT_EQ(p->finished.size(), 3u);
  EXPECT_TRUE(absl::IsDeadlineExceeded(p->finished[0].counts.status()));
  EXPECT_EQ(p->finished[0].counts.status().message(),
            "the sweep's overall deadline of 120s passed");
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_TRUE(absl::IsDeadlineExceeded(p->finished[i].counts.status()));
    EXPECT_NE(p->finished[i].counts.status().message().find("before its turn"), std::string::npos)
        << p->finished[i].counts.status();
  }
  EXPECT_EQ(sweeper_->order(), std::vector<std::string>{"a-0"});  // the others never started
}

TEST_F(SweepRunnerTest, FailuresAreResultsLikeAnyOther) {
  auto r = runner(2);
  sweeper_->fail("a-1");
  sweeper_->open();
  const SweepId id = idOf("uid-1", 2);
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 3), {0, 1}));
  auto p = r->progress("shop/a", id, seconds(10));
  ASSERT_TRUE(p.has_value() && p->done);
  EXPECT_TRUE(p->finished[0].counts.ok());
  EXPECT_EQ(p->finished[1].counts.status(), absl::UnavailableError("connect refused"));
}

TEST_F(SweepRunnerTest, AtMostThreadsMembersAtOnce) {
  auto r = runner(2);
  const SweepId id = idOf("uid-1", 5);
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 6), {0, 1, 2, 3, 4}));
  ASSERT_TRUE(sweeper_->waitFor(2));
  std::this_thread::sleep_for(milliseconds(50));  // would a third start?
  EXPECT_EQ(sweeper_->inFlight(), 2);
  EXPECT_EQ(sweeper_->order().size(), 2u);
  sweeper_->open();
  auto p = r->progress("shop/a", id, seconds(10));
  ASSERT_TRUE(p.has_value() && p->done);
  EXPECT_EQ(p->finished.size(), 5u);
  EXPECT_EQ(sweeper_->maxInFlight(), 2);
}

TEST_F(SweepRunnerTest, SweepsOfSeveralClustersTakeTurns) {
  auto r = runner(1);
  ASSERT_TRUE(r->start("shop/a", idOf("uid-a", 3), ring("a", 4), {0, 1, 2}));
  ASSERT_TRUE(sweeper_->waitFor(1));  // a-0 holds the only thread
  ASSERT_TRUE(r->start("shop/b", idOf("uid-b", 1), ring("b", 2), {0}));
  sweeper_->open();
  ASSERT_TRUE(r->progress("shop/a", idOf("uid-a", 3), seconds(10))->done);
  ASSERT_TRUE(r->progress("shop/b", idOf("uid-b", 1), seconds(10))->done);
  // b did not wait for all of a.
  EXPECT_EQ(sweeper_->order(), (std::vector<std::string>{"a-0", "b-0", "a-1", "a-2"}));
}

TEST_F(SweepRunnerTest, AnUncollectedResultExpires) {
  auto r = runner(1, seconds(120), seconds(600));
  sweeper_->open();
  const SweepId id = idOf("uid-1", 1);
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 2), {0}));
  ASSERT_TRUE(r->progress("shop/a", id, seconds(10))->done);
  clock_.advance(seconds(599));
  EXPECT_TRUE(r->progress("shop/a", id).has_value());
  clock_.advance(seconds(2));
  EXPECT_FALSE(r->progress("shop/a", id).has_value());
  EXPECT_EQ(r->size(), 0u);
}

TEST_F(SweepRunnerTest, StopCancelsEverythingAndJoins) {
  auto r = runner(4);
  ASSERT_TRUE(r->start("shop/a", idOf("uid-a", 2), ring("a", 3), {0, 1}));
  ASSERT_TRUE(r->start("shop/b", idOf("uid-b", 1), ring("b", 2), {0}));
  ASSERT_TRUE(sweeper_->waitFor(3));
  r->stop();  // returns only once the threads are joined
  EXPECT_EQ(sweeper_->inFlight(), 0);
  ASSERT_EQ(sweeper_->stops().size(), 3u);
  for (const auto& [name, status] : sweeper_->stops()) {
    EXPECT_EQ(status.message(), "sweep cancelled: the operator is stopping") << name;
  }
  EXPECT_FALSE(r->start("shop/c", idOf("uid-c", 1), ring("c", 2), {0}));
  EXPECT_EQ(r->size(), 0u);
  r->stop();  // idempotent
}

TEST_F(SweepRunnerTest, NoMembersIsDoneAtOnce) {
  auto r = runner(1);
  const SweepId id = idOf("uid-1", 1);
  ASSERT_TRUE(r->start("shop/a", id, ring("a", 2), {}));
  auto p = r->progress("shop/a", id);
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(p->done);
  EXPECT_EQ(p->total(), 0u);
}

}  // namespace
}  // namespace mcop::memcached
