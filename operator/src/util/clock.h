// Time as a dependency: production code asks a Clock (RealClock in the operator), so tests can
// substitute one they advance by hand (FakeClock, in operator/testing/) and test a drain timeout
// or a lease expiry without sleeping.
// Thread-safety: implementations must be safe to use from many threads; RealClock is.
#pragma once

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

}  // namespace mcop::util
