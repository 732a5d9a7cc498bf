// LeaderElector against FakeApiClient with a FakeClock: acquire, renew, takeover after
// expiry, losing leadership before the lease can expire, release for a fast hand-over.
#include "controller/leader_election.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "kube/fake_api_client.h"
#include "kube/object_meta.h"

namespace mcop::controller {
namespace {

using namespace std::chrono_literals;
using kube::FakeApiClient;
using kube::Verb;
namespace resources = kube::resources;

struct Candidate {
  Candidate(std::shared_ptr<FakeApiClient> api, const util::Clock& clock, const std::string& id)
      : elector(api, clock, config(id),
                {[this] { ++started; }, [this] { ++stopped; }, nullptr}) {}
  static LeaderElectionConfig config(const std::string& id) {
    LeaderElectionConfig c;
    c.lease_namespace = "ops";
    c.identity = id;
    return c;
  }
  int started = 0;
  int stopped = 0;
  LeaderElector elector;
};

kube::Object lease(FakeApiClient& api) {
  return *api.peek(resources::kLease, "ops", "memcached-operator-leader");
}

TEST(LeaderElection, AcquiresRenewsAndBlocksOthers) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a"), b(api, clock, "b");
  EXPECT_EQ(a.elector.step(), 2000ms);
  EXPECT_TRUE(a.elector.isLeader());
  EXPECT_EQ(a.started, 1);
  auto l = lease(*api);
  EXPECT_EQ(kube::stringField(l, {"spec", "holderIdentity"}), "a");
  EXPECT_EQ(l.at("spec").at("leaseDurationSeconds").as_integer(), 15);
  EXPECT_FALSE(kube::stringField(l, {"spec", "renewTime"}).empty());

  for (int i = 0; i < 20; ++i) {
    b.elector.step();
    clock.advance(2s);
    a.elector.step();
  }
  EXPECT_TRUE(a.elector.isLeader());
  EXPECT_FALSE(b.elector.isLeader());
  EXPECT_EQ(b.elector.leader(), "a");
  EXPECT_EQ(b.started, 0);
}

TEST(LeaderElection, TakesOverOnlyAfterTheLeaseExpiresOnItsOwnClock) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a"), b(api, clock, "b");
  a.elector.step();
  b.elector.step();  // b first sees a's record now
  clock.advance(14s);  // a is silent (e.g. killed)
  b.elector.step();
  EXPECT_FALSE(b.elector.isLeader()) << "14 s < 15 s lease";
  clock.advance(1s);
  b.elector.step();
  EXPECT_TRUE(b.elector.isLeader());
  EXPECT_EQ(lease(*api).at("spec").at("leaseTransitions").as_integer(), 1);
}

TEST(LeaderElection, LeaderThatCannotRenewStopsBeforeExpiry) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a");
  a.elector.step();
  ASSERT_TRUE(a.elector.isLeader());
  api->failNext(Verb::kGet, resources::kLease, absl::UnavailableError("apiserver down"), 100);
  int steps = 0;
  while (a.elector.isLeader()) {
    clock.advance(2s);
    a.elector.step();
    ++steps;
  }
  EXPECT_EQ(a.stopped, 1);
  EXPECT_EQ(steps, 5) << "stops at the 10 s renew deadline, 5 s before the 15 s lease expires";
}

TEST(LeaderElection, ReleaseLetsAStandbyTakeOverAtOnce) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a"), b(api, clock, "b");
  a.elector.step();
  b.elector.step();
  ASSERT_TRUE(a.elector.release().ok());
  EXPECT_FALSE(a.elector.isLeader());
  auto l = lease(*api);
  EXPECT_EQ(kube::stringField(l, {"spec", "holderIdentity"}), "");
  EXPECT_EQ(l.at("spec").at("leaseDurationSeconds").as_integer(), 1);
  b.elector.step();  // no clock advance needed
  EXPECT_TRUE(b.elector.isLeader());
}

TEST(LeaderElection, ConflictingUpdateLoses) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a");
  a.elector.step();
  ASSERT_TRUE(a.elector.release().ok());
  api->failNext(Verb::kUpdate, resources::kLease, absl::AbortedError("the object has been modified"));
  Candidate b(api, clock, "b");
  b.elector.step();
  EXPECT_FALSE(b.elector.isLeader());
  b.elector.step();
  EXPECT_TRUE(b.elector.isLeader());
}

TEST(LeaderElection, ValidatesDurations) {
  auto c = Candidate::config("a");
  EXPECT_TRUE(LeaderElector::validate(c).ok());
  c.renew_deadline = 20s;
  EXPECT_FALSE(LeaderElector::validate(c).ok());
  c = Candidate::config("a");
  c.retry_period = 10s;
  EXPECT_FALSE(LeaderElector::validate(c).ok());
  c = Candidate::config("a");
  c.lease_namespace = "";
  EXPECT_FALSE(LeaderElector::validate(c).ok());
}

}  // namespace
}  // namespace mcop::controller

namespace mcop::controller {
namespace {

// The background loop with a real clock: a graceful stop + release hands over within about
// one retry period of the standby.
TEST(LeaderElection, BackgroundLoopHandsOverOnRelease) {
  util::RealClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  auto config = [](const std::string& id) {
    LeaderElectionConfig c;
    c.lease_namespace = "ops";
    c.identity = id;
    c.lease_duration = 3s;
    c.renew_deadline = 2s;
    c.retry_period = 50ms;
    return c;
  };
  std::atomic<int> a_started{0}, b_started{0};
  LeaderElector a(api, clock, config("a"), {[&] { ++a_started; }, nullptr, nullptr});
  LeaderElector b(api, clock, config("b"), {[&] { ++b_started; }, nullptr, nullptr});
  a.start();
  for (int i = 0; i < 200 && !a.isLeader(); ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(a.isLeader());
  b.start();
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(b.isLeader());
  auto t0 = std::chrono::steady_clock::now();
  a.stop();
  ASSERT_TRUE(a.release().ok());
  for (int i = 0; i < 500 && !b.isLeader(); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(b.isLeader());
  // Before the 3 s lease could have expired: the release, not the expiry, handed it over.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
  EXPECT_EQ(b_started, 1);
  b.stop();
}

}  // namespace
}  // namespace mcop::controller

namespace mcop::controller {
namespace {

TEST(LeaderElection, CandidateWakesWhenTheObservedLeaseExpires) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a"), b(api, clock, "b");
  a.elector.step();
  b.elector.step();
  clock.advance(14s);
  auto wait = b.elector.step();
  EXPECT_LE(wait, 1010ms) << "wakes at expiry, not a full jittered retry later";
  clock.advance(wait);
  b.elector.step();
  EXPECT_TRUE(b.elector.isLeader());
}

}  // namespace
}  // namespace mcop::controller
