// LeaderElector against FakeApiClient with a FakeClock: acquire, renew, takeover after
// expiry, losing leadership before the lease can expire, release for a fast hand-over.
#include "controller/leader_election.h"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "testing/fake_api_client.h"
#include "testing/fake_clock.h"
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
  // isLeader() turns true just before on_started_leading runs (as client-go's IsLeader does).
  for (int i = 0; i < 200 && b_started == 0; ++i) std::this_thread::sleep_for(5ms);
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

namespace mcop::controller {
namespace {

// The background loop with a real clock and an API server that stops answering the leader: its
// Lease GET and PUT hang. The leader must stop leading by its renew deadline (1 s here), not
// when the hung request eventually returns.
TEST(LeaderElection, HungRenewalLosesLeadershipByTheRenewDeadline) {
  util::RealClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  LeaderElectionConfig c;
  c.lease_namespace = "ops";
  c.identity = "a";
  c.lease_duration = 3s;
  c.renew_deadline = 1s;
  c.retry_period = 100ms;
  std::atomic<int> stopped{0};
  std::atomic<int64_t> stopped_at{0};
  LeaderElector a(api, clock, c,
                  {nullptr,
                   [&] {
                     stopped_at = clock.steadyNow().time_since_epoch().count();
                     ++stopped;
                   },
                   nullptr});
  a.start();
  for (int i = 0; i < 400 && !a.isLeader(); ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(a.isLeader());
  api->stall(Verb::kGet, resources::kLease);
  api->stall(Verb::kUpdate, resources::kLease);
  // The last successful renewal happened before this instant.
  auto stalled_at = clock.steadyNow();
  for (int i = 0; i < 600 && stopped == 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(stopped, 1) << "still leading 3 s after its Lease requests started to hang";
  EXPECT_FALSE(a.isLeader());
  auto lost_after = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(stopped_at.load())) - stalled_at;
  // Scheduling slack on a busy machine; unbounded requests make it never (or, with a client
  // timeout, the deadline plus that timeout for the GET and again for the PUT).
  if (stopped == 1) {
    EXPECT_LT(lost_after, 1s + 900ms)
        << "lost " << std::chrono::duration_cast<std::chrono::milliseconds>(lost_after).count()
        << " ms after the last renewal could have happened";
  }
  api->unstall();
  a.stop();
  EXPECT_EQ(stopped, 1);
}

}  // namespace
}  // namespace mcop::controller

#include "kube/fenced_api_client.h"

namespace mcop::controller {
namespace {

// A renewal whose PUT hangs: every request of the attempt carries the time left until the
// renew deadline (not a fixed timeout), and the deadline is declared by the timer path
// (checkDeadline) at the deadline itself while the request is still hanging. isLeader() turns
// false at that instant, before anyone calls anything. Losing is final.
TEST(LeaderElection, LossIsDeclaredAtTheDeadlineWhileARenewalHangs) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a");
  a.elector.step();
  clock.advance(2s);
  a.elector.step();  // renewed at t=2 s: leads until t=12 s
  ASSERT_TRUE(a.elector.isLeader());
  clock.advance(7s);  // t=9 s: 3 s left
  api->stall(Verb::kUpdate, resources::kLease);
  std::thread renewal([&] { a.elector.step(); });
  for (int i = 0; i < 2000 && api->stalledRequests().empty(); ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(api->stalledRequests().size(), 1u);
  auto put = api->stalledRequests()[0];
  ASSERT_TRUE(put.timeout);
  EXPECT_LE(*put.timeout, 3000ms) << "the PUT may not outlive the renew deadline";
  EXPECT_GT(*put.timeout, 2500ms) << "bounded by the time left, not a fixed 2 s";
  auto gets = api->actions();
  auto get = std::find_if(gets.rbegin(), gets.rend(), [](const auto& x) { return x.verb == Verb::kGet; });
  ASSERT_NE(get, gets.rend());
  ASSERT_TRUE(get->timeout);
  EXPECT_LE(*get->timeout, 3000ms);

  clock.advance(2999ms);  // t=11.999 s
  EXPECT_FALSE(a.elector.checkDeadline());
  EXPECT_TRUE(a.elector.isLeader());
  clock.advance(1ms);  // t=12 s: the renew deadline
  EXPECT_FALSE(a.elector.isLeader()) << "false at the deadline itself, before any callback";
  EXPECT_EQ(a.stopped, 0);
  EXPECT_TRUE(a.elector.checkDeadline());
  EXPECT_EQ(a.stopped, 1);

  // The hung PUT completes after all: too late, the loss stands.
  api->unstall();
  renewal.join();
  EXPECT_FALSE(a.elector.isLeader());
  int requests = static_cast<int>(api->actions().size());
  clock.advance(2s);
  a.elector.step();
  EXPECT_FALSE(a.elector.isLeader());
  EXPECT_EQ(a.started, 1) << "never leads again";
  EXPECT_EQ(a.stopped, 1);
  EXPECT_EQ(static_cast<int>(api->actions().size()), requests) << "a lost elector makes no requests";
}

// Another holder in the Lease ends leadership at once, long before the renew deadline.
TEST(LeaderElection, AnotherHolderInTheLeaseEndsLeadershipAtOnce) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a");
  a.elector.step();
  ASSERT_TRUE(a.elector.isLeader());
  // b took it (say a was paused for longer than the lease).
  auto l = lease(*api);
  l["spec"]["holderIdentity"] = kube::Object::string("b");
  ASSERT_TRUE(api->update(resources::kLease, l, "").ok());
  clock.advance(2s);
  a.elector.step();
  EXPECT_FALSE(a.elector.isLeader());
  EXPECT_EQ(a.stopped, 1);
  EXPECT_EQ(a.elector.leader(), "b");
}

// The fence: a write through FencedApiClient gated on isLeader() passes just before the renew
// deadline and is refused at it, before the elector's threads have noticed anything.
TEST(LeaderElection, FencedWritesAreRefusedFromTheRenewDeadlineOn) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a");
  a.elector.step();  // leads until t=10 s
  kube::FencedApiClient fenced(api, [&] { return a.elector.isLeader(); });
  auto cm = [](const std::string& name) {
    return kube::Object::parse(R"({"metadata":{"name":")" + name + R"(","namespace":"shop"}})");
  };
  clock.advance(9999ms);
  EXPECT_TRUE(fenced.create(resources::kConfigMap, "shop", cm("before")).ok());
  int writes = api->writeCount();
  clock.advance(1ms);
  auto refused = fenced.create(resources::kConfigMap, "shop", cm("after"));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_EQ(api->writeCount(), writes) << "the refused write never reached the API";
  EXPECT_FALSE(api->peek(resources::kConfigMap, "shop", "after"));
  EXPECT_TRUE(fenced.get(resources::kConfigMap, "shop", "before").ok()) << "reads pass";
  EXPECT_EQ(a.stopped, 0) << "refused before anything reported the loss";
  EXPECT_EQ(fenced.refused(), 1u);
}

}  // namespace
}  // namespace mcop::controller

namespace mcop::controller {
namespace {

// An acquisition that took most of the renew deadline (a slow first connection) is followed by
// a renewal well before that deadline, not a full retry period later.
TEST(LeaderElection, RenewsSoonerWhenTheDeadlineIsNear) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  Candidate a(api, clock, "a");
  api->setFailureHook([&](const FakeApiClient::Action& action) {
    if (action.verb == Verb::kGet) clock.advance(9s);  // the GET of the first attempt is slow
    return absl::OkStatus();
  });
  auto wait = a.elector.step();
  api->setFailureHook(nullptr);
  ASSERT_TRUE(a.elector.isLeader());
  EXPECT_LE(wait, 500ms) << "1 s of the 10 s renew deadline is left";
  clock.advance(wait);
  a.elector.step();
  EXPECT_TRUE(a.elector.isLeader());
  EXPECT_EQ(a.elector.step(), 2000ms) << "renewed: a full retry period again";
}

}  // namespace
}  // namespace mcop::controller
