#include "memcached/concurrent.h"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

using namespace std::chrono_literals;

// Each task waits (up to 5 s) until every task has started: run one after another, the first
// would time out and report it.
TEST(RunConcurrently, TheTasksRunAtTheSameTime) {
  constexpr int kTasks = 4;
  std::atomic<int> started{0};
  std::vector<Task> tasks;
  for (int i = 0; i < kTasks; ++i) {
    tasks.push_back([&] {
      ++started;
      const auto deadline = std::chrono::steady_clock::now() + 5s;
      while (started.load() < kTasks) {
        if (std::chrono::steady_clock::now() > deadline) {
          return absl::DeadlineExceededError("ran alone");
        }
        std::this_thread::sleep_for(1ms);
      }
      return absl::OkStatus();
    });
  }
  EXPECT_TRUE(runConcurrently(tasks).ok());
  EXPECT_EQ(started.load(), kTasks);
}

TEST(RunConcurrently, ReturnsTheFirstFailureInTheTasksOrderOnceAllHaveFinished) {
  std::atomic<int> finished{0};
  auto s = runConcurrently({
      [&] { ++finished; return absl::OkStatus(); },
      [&] {
        std::this_thread::sleep_for(20ms);
        ++finished;
        return absl::InvalidArgumentError("second");
      },
      [&] { ++finished; return absl::UnavailableError("third"); },
  });
  EXPECT_EQ(s.message(), "second");
  EXPECT_EQ(finished.load(), 3);
}

TEST(RunConcurrently, AThrowingTaskIsRethrownAfterTheOthersAreJoined) {
  std::atomic<bool> slow_done{false};
  EXPECT_THROW(runConcurrently({
                   [] () -> absl::Status { throw std::runtime_error("boom"); },
                   [&] {
                     std::this_thread::sleep_for(20ms);
                     slow_done = true;
                     return absl::OkStatus();
                   },
               }),
               std::runtime_error);
  EXPECT_TRUE(slow_done.load());
}

TEST(RunConcurrently, NoTasksIsOk) { EXPECT_TRUE(runConcurrently({}).ok()); }

}  // namespace
}  // namespace mcop::memcached
