// FakeClock: a Clock for tests that moves only when told (advance()), so a drain timeout, a
// lease expiry or a backoff is tested without sleeping. It starts at 2026-01-01T00:00:00Z so
// the timestamps it produces look like real ones. Nothing is notified when it advances: code
// waiting on it must poll. Test-only: lives in mcop_testing, never in the operator.
// Thread-safety: safe to read and advance from many threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "util/clock.h"

namespace mcop::util {

class FakeClock : public Clock {
 public:
  FakeClock() : offset_ns_(0) {}
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::nanoseconds(kEpochStart + offset_ns_.load()));
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
