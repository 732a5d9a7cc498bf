// OnDemandThreads with a small queue of its own: no thread before work, up to `max` at once
// for a burst, none again once they waited `linger` without work, and a clean stop.
#include "util/on_demand_threads.h"

#include <deque>
#include <filesystem>

#include <gtest/gtest.h>

namespace mcop::util {
namespace {

using namespace std::chrono_literals;

size_t threadsOfThisProcess() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 3000 && !pred(); ++i) std::this_thread::sleep_for(1ms);
  return pred();
}

// A queue of jobs, each blocking until released, run by on-demand threads.
struct Pool {
  std::mutex mu;
  std::condition_variable cv;
  std::condition_variable release_cv;
  std::deque<int> queue;
  int running = 0;
  int done = 0;
  bool released = false;
  bool stopping = false;
  OnDemandThreads threads;

  Pool(size_t max, std::chrono::milliseconds linger) : threads(max, linger) {}
  ~Pool() { stop(); }

  void loop() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      if (!threads.waitLocked(lock, cv, [&] { return stopping || !queue.empty(); })) return;
      if (stopping) return;
      queue.pop_front();
      ++running;
      release_cv.wait(lock, [&] { return released || stopping; });
      --running;
      ++done;
    }
  }
  void add(int n) {
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < n; ++i) queue.push_back(i);
    cv.notify_all();
    threads.wakeLocked(queue.size(), [this] { loop(); });
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    release_cv.notify_all();
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
      cv.notify_all();
      release_cv.notify_all();
    }
    threads.joinAll();
  }
  int get(int Pool::*field) {
    std::lock_guard<std::mutex> lock(mu);
    return this->*field;
  }
};

TEST(OnDemandThreads, StartForWorkUpToMaxAndEndAfterLinger) {
  const size_t base = threadsOfThisProcess();
  Pool pool(3, 100ms);
  EXPECT_EQ(threadsOfThisProcess(), base) << "no thread before there is work";
  pool.add(5);
  ASSERT_TRUE(eventually([&] { return pool.get(&Pool::running) == 3; }));
  EXPECT_EQ(threadsOfThisProcess(), base + 3) << "a burst of 5 gets max=3 threads";
  pool.release();
  ASSERT_TRUE(eventually([&] { return pool.get(&Pool::done) == 5; }));
  ASSERT_TRUE(eventually([&] { return threadsOfThisProcess() == base; }))
      << "threads end after lingering without work";
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    EXPECT_EQ(pool.threads.liveLocked(), 0u);
  }
  // Work after they ended starts threads again (and joins the ended ones).
  pool.add(1);
  ASSERT_TRUE(eventually([&] { return pool.get(&Pool::done) == 6; }));
  pool.stop();
  EXPECT_EQ(threadsOfThisProcess(), base);
}

TEST(OnDemandThreads, AnIdleThreadTakesNewWorkInsteadOfANewThread) {
  const size_t base = threadsOfThisProcess();
  Pool pool(4, 10s);
  pool.release();
  pool.add(1);
  ASSERT_TRUE(eventually([&] { return pool.get(&Pool::done) == 1; }));
  EXPECT_EQ(threadsOfThisProcess(), base + 1);
  pool.add(1);
  ASSERT_TRUE(eventually([&] { return pool.get(&Pool::done) == 2; }));
  EXPECT_EQ(threadsOfThisProcess(), base + 1) << "the waiting thread took it";
  pool.stop();  // a lingering thread is told to stop, not waited out
  EXPECT_EQ(threadsOfThisProcess(), base);
}

}  // namespace
}  // namespace mcop::util
