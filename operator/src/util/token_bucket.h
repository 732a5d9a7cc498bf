// TokenBucket: paces work to a rate (units a second, e.g. items or bytes) with a burst
// allowance, on an injected Clock so a test can check the pace without sleeping. A caller asks
// how long to wait before spending some units and then waits that long itself: the bucket never
// sleeps, so the caller chooses how to wait (a pause that cancellation cuts short).
// Spending more than the bucket holds is allowed and leaves a debt that later reserve() calls
// wait off, so work in batches larger than the burst still averages out to the rate.
// Thread-safety: not thread-safe; one pacer per copy.
#pragma once

#include <algorithm>
#include <chrono>

#include "util/clock.h"

namespace mcop::util {

class TokenBucket {
 public:
  // `rate` units a second (<= 0: unlimited, reserve() never waits); `burst` units may be spent
  // at once after an idle period. The bucket starts full.
  TokenBucket(const Clock& clock, double rate, double burst)
      : clock_(clock), rate_(rate), burst_(std::max(burst, 0.0)), tokens_(burst_), last_(clock.steadyNow()) {}

  bool unlimited() const { return rate_ <= 0; }

  // Spends `units` and returns how long the caller must wait before doing the work they pay for
  // (zero when the bucket held enough).
  std::chrono::nanoseconds reserve(double units) {
    if (unlimited()) return std::chrono::nanoseconds(0);
    const auto now = clock_.steadyNow();
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    tokens_ -= units;
    if (tokens_ >= 0) return std::chrono::nanoseconds(0);
    return std::chrono::nanoseconds(static_cast<int64_t>(-tokens_ / rate_ * 1e9));
  }

 private:
  const Clock& clock_;
  const double rate_;
  const double burst_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace mcop::util
