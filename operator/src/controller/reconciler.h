// The contract between the controller machinery (informers, workqueue, workers) and the logic
// that closes the gap between desired and observed state for one object.
// Thread-safety: reconcile() is called from several workers at once, never twice at once for
// the same Request.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <absl/status/statusor.h>

namespace mcop::controller {

struct Request {
  std::string ns;
  std::string name;

  std::string key() const { return ns + "/" + name; }
  friend bool operator==(const Request&, const Request&) = default;
  friend auto operator<=>(const Request&, const Request&) = default;
};

struct Result {
  // Reconcile again after this delay even if nothing changes (a drain waiting on a clock).
  std::optional<std::chrono::milliseconds> requeue_after;
};

// How long one reconcile may take before the steps that wait (memcached probes, waiting for a
// sweep) give up and leave the rest to the next pass.
inline constexpr std::chrono::seconds kDefaultReconcileTimeout{30};

// What one reconcile may spend: a deadline, and a flag the controller raises on shutdown. Steps
// that wait check it between waits and bound their waits by it: a cancelled pass returns
// Cancelled before it records anything (see doneStatus()); a pass past its deadline skips what
// is left to wait for, records what it has and requeues.
// Thread-safety: read-only; `cancelled` may be set by another thread at any time.
// The deadline is on std::chrono::steady_clock (real time, also under a FakeClock in tests): it
// bounds how long a worker is held.
struct Context {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  const std::atomic<bool>* cancelled = nullptr;  // null: never cancelled

  bool isCancelled() const { return cancelled != nullptr && cancelled->load(); }
  bool done() const { return isCancelled() || std::chrono::steady_clock::now() >= deadline; }
  // `wait`, shortened to the time left (zero once done).
  std::chrono::milliseconds bound(std::chrono::milliseconds wait) const {
    if (isCancelled()) return std::chrono::milliseconds(0);
    if (deadline == std::chrono::steady_clock::time_point::max()) return wait;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return std::clamp(left, std::chrono::milliseconds(0), wait);
  }
  // Why a pass stops early: Cancelled on shutdown, DeadlineExceeded past the deadline.
  absl::Status doneStatus(std::string_view step) const {
    std::string what(step);
    if (isCancelled()) return absl::CancelledError(what + ": the controller is stopping");
    return absl::DeadlineExceededError(what + ": the reconcile ran out of time");
  }
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  // An error requeues the request with per-key exponential backoff; success forgets it.
  virtual absl::StatusOr<Result> reconcile(const Request& request, const Context& ctx) = 0;
};

}  // namespace mcop::controller
