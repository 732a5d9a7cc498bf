// WorkQueue: dedup, one worker per key, backoff, add-after on a fake clock, shutdown.
#include "controller/workqueue.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "testing/fake_clock.h"

namespace mcop::controller {
namespace {

using namespace std::chrono_literals;

WorkQueue::Options fastPoll() {
  WorkQueue::Options o;
  o.delay_poll = std::chrono::milliseconds(1);
  return o;
}

// Waits (real time) until pred holds, for at most 2 s.
template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

TEST(WorkQueue, DeduplicatesDirtyKeys) {
  util::FakeClock clock;
  WorkQueue q(clock);
  q.add("a");
  q.add("b");
  q.add("a");
  EXPECT_EQ(q.len(), 2u);
  EXPECT_EQ(*q.get(), "a");
  EXPECT_EQ(*q.get(), "b");
  EXPECT_EQ(q.len(), 0u);
}

TEST(WorkQueue, KeyAddedWhileProcessingIsRequeuedOnDone) {
  util::FakeClock clock;
  WorkQueue q(clock);
  q.add("a");
  auto k = q.get();
  ASSERT_EQ(*k, "a");
  q.add("a");
  q.add("a");
  EXPECT_EQ(q.len(), 0u) << "a key in processing must not be handed to a second worker";
  q.done("a");
  EXPECT_EQ(q.len(), 1u);
  EXPECT_EQ(*q.get(), "a");
  q.done("a");
  EXPECT_EQ(q.len(), 0u);
}

TEST(WorkQueue, RateLimitedBackoffDoublesAndForgetResets) {
  util::FakeClock clock;
  RateLimiter::Options o;
  o.burst = 1000;
  RateLimiter rl(clock, o);
  EXPECT_EQ(rl.when("k"), 5ms);
  EXPECT_EQ(rl.when("k"), 10ms);
  EXPECT_EQ(rl.when("k"), 20ms);
  EXPECT_EQ(rl.when("other"), 5ms);
  EXPECT_EQ(rl.numRequeues("k"), 3);
  rl.forget("k");
  EXPECT_EQ(rl.numRequeues("k"), 0);
  EXPECT_EQ(rl.when("k"), 5ms);
  for (int i = 0; i < 40; ++i) rl.when("k");
  EXPECT_EQ(rl.when("k"), std::chrono::seconds(1000)) << "capped at max_delay";
}

TEST(WorkQueue, TokenBucketLimitsOverallRetries) {
  util::FakeClock clock;
  RateLimiter::Options o;
  o.qps = 10;
  o.burst = 2;
  RateLimiter rl(clock, o);
  EXPECT_EQ(rl.when("a"), 5ms);
  EXPECT_EQ(rl.when("b"), 5ms);
  EXPECT_EQ(rl.when("c"), 100ms) << "burst spent: one token every 100 ms";
  EXPECT_EQ(rl.when("d"), 200ms);
  clock.advance(1s);
  EXPECT_EQ(rl.when("e"), 5ms);
}

TEST(WorkQueue, AddAfterWaitsForTheClock) {
  util::FakeClock clock;
  WorkQueue q(clock, fastPoll());
  q.addAfter("a", 10s);
  q.addAfter("b", 5s);
  q.addAfter("a", 20s);  // a later time does not postpone an earlier one
  EXPECT_EQ(q.waitingLen(), 2u);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(q.len(), 0u);
  clock.advance(6s);
  ASSERT_TRUE(eventually([&] { return q.len() == 1; }));
  EXPECT_EQ(*q.get(), "b");
  q.done("b");
  clock.advance(4s);
  ASSERT_TRUE(eventually([&] { return q.len() == 1; }));
  EXPECT_EQ(*q.get(), "a");
  EXPECT_EQ(q.waitingLen(), 0u);
}

TEST(WorkQueue, AddAfterWithRealClock) {
  util::RealClock clock;
  WorkQueue q(clock);
  auto start = std::chrono::steady_clock::now();
  q.addAfter("a", 50ms);
  auto k = q.get();
  ASSERT_TRUE(k);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 5s);  // bounded; how soon after 50 ms is not for a shared machine to judge
}

TEST(WorkQueue, AddRateLimitedParksTheKey) {
  util::FakeClock clock;
  WorkQueue q(clock, fastPoll());
  q.addRateLimited("a");
  EXPECT_EQ(q.numRequeues("a"), 1);
  EXPECT_EQ(q.retriesTotal(), 1u);
  std::this_thread::sleep_for(10ms);
  EXPECT_EQ(q.len(), 0u);
  clock.advance(5ms);
  ASSERT_TRUE(eventually([&] { return q.len() == 1; }));
  q.forget("a");
  EXPECT_EQ(q.numRequeues("a"), 0);
}

TEST(WorkQueue, ShutDownWakesWaitingWorkers) {
  util::FakeClock clock;
  WorkQueue q(clock);
  std::atomic<int> stopped{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < 3; ++i) {
    workers.emplace_back([&] {
      if (!q.get()) ++stopped;
    });
  }
  std::this_thread::sleep_for(20ms);
  q.shutDown();
  for (auto& t : workers) t.join();
  EXPECT_EQ(stopped, 3);
  q.add("x");
  EXPECT_EQ(q.len(), 0u) << "adds after shutdown are dropped";
}

TEST(WorkQueue, ConcurrentWorkersNeverShareAKey) {
  util::RealClock clock;
  WorkQueue q(clock);
  std::mutex mu;
  std::set<std::string> in_flight;
  std::atomic<bool> overlap{false};
  std::atomic<int> processed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto key = q.get()) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!in_flight.insert(*key).second) overlap = true;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        {
          std::lock_guard<std::mutex> lock(mu);
          in_flight.erase(*key);
        }
        ++processed;
        q.done(*key);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < 500; ++i) q.add("k" + std::to_string((i * 7 + p) % 10));
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(eventually([&] { return q.len() == 0 && q.processingLen() == 0; }));
  q.shutDown();
  for (auto& t : workers) t.join();
  EXPECT_FALSE(overlap);
  EXPECT_GE(processed, 10);
  EXPECT_LE(processed, 2000);
}

}  // namespace
}  // namespace mcop::controller
