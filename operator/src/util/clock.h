// Time as a dependency: production code asks a Clock, tests advance a FakeClock, so a drain
// timeout or a lease expiry is tested without sleeping.
// Thread-safety: both clocks are safe to use from many threads.
#pragma once

#include <atomic>
#include <chrono>

namespace mcop::util {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time, for timestamps written to the API (status, events, leases).
  virtual std::chrono::system_clock::time_point now() const = 0;
  // Monotonic time, for timeouts and backoff.
  virtual std::chrono::steady_clock::time_point steadyNow() const = 0;
};

class RealClock : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::now();
  }
};

class FakeClock : public Clock {
 public:
  FakeClock() : offset_ns_(0) {}
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(std::chrono::nanoseconds(kEpochStart + offset_ns_.load()));
  }
  std::chrono::steady_clock::time_point steadyNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(offset_ns_.load()));
  }
  void advance(std::chrono::nanoseconds d) { offset_ns_ += d.count(); }

 private:
  // 2026-01-01T00:00:00Z, so fake timestamps look like real ones.
  static constexpr int64_t kEpochStart = 1767225600LL * 1000000000LL;
  std::atomic<int64_t> offset_ns_;
};

}  // namespace mcop::util
