// WorkQueue: client-go's rate-limited delaying workqueue, ported. Keys ("ns/name") are
// deduplicated: a key is queued at most once (the dirty set); a key handed to a worker is in the
// processing set until done(), and if it is added meanwhile it is queued again only on done(),
// so no two workers ever hold the same key. addAfter() parks a key until a point on the
// injected clock; addRateLimited() parks it for max(per-key exponential backoff, an overall
// token bucket); forget() resets the key's backoff.
// Thread-safety: all methods are thread-safe. get() blocks; shutDown() wakes every waiter.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "util/clock.h"

namespace mcop::controller {

// max(per-key exponential backoff, overall token bucket): client-go's
// DefaultControllerRateLimiter. Not thread-safe on its own; WorkQueue serializes calls.
struct RateLimiterOptions {
  std::chrono::nanoseconds base_delay = std::chrono::milliseconds(5);
  std::chrono::nanoseconds max_delay = std::chrono::seconds(1000);
  double qps = 10;  // overall retry rate once the burst is spent
  int burst = 100;
};

class RateLimiter {
 public:
  using Options = RateLimiterOptions;
  RateLimiter(const util::Clock& clock, Options options);
  // The delay before the key's next retry; counts a requeue.
  std::chrono::nanoseconds when(const std::string& key);
  void forget(const std::string& key);
  int numRequeues(const std::string& key) const;

 private:
  const util::Clock& clock_;
  Options options_;
  std::map<std::string, int> failures_;
  double tokens_;
  std::chrono::steady_clock::time_point last_refill_;
};

struct WorkQueueOptions {
  RateLimiterOptions rate_limiter;
  // Longest real-time sleep of the delay thread between looks at the clock. Only matters
  // with a clock that jumps without notice (the tests' FakeClock, operator/testing/).
  std::chrono::milliseconds delay_poll{1000};
};

class WorkQueue {
 public:
  using Options = WorkQueueOptions;

  explicit WorkQueue(const util::Clock& clock, Options options = {});
  ~WorkQueue();  // shuts down and joins the delay thread
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  void add(const std::string& key);
  void addAfter(const std::string& key, std::chrono::nanoseconds delay);
  void addRateLimited(const std::string& key);
  void forget(const std::string& key);
  int numRequeues(const std::string& key) const;

  // The next key, blocking until there is one; nullopt once shutDown() was called (queued keys
  // are dropped: the caller is stopping). The caller must call done(key) when finished.
  std::optional<std::string> get();
  void done(const std::string& key);
  void shutDown();
  bool shuttingDown() const;

  // For metrics and tests.
  size_t len() const;          // keys ready to be handed out
  size_t waitingLen() const;   // keys parked by addAfter / addRateLimited
  size_t processingLen() const;
  uint64_t addsTotal() const;     // add() calls that queued a key (or re-marked it dirty)
  uint64_t retriesTotal() const;  // addRateLimited() calls

 private:
  void addLocked(const std::string& key);  // mu_ held
  void addAfterLocked(const std::string& key, std::chrono::nanoseconds delay);  // mu_ held
  void delayLoop();

  const util::Clock& clock_;
  Options options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;        // get() waiters
  std::condition_variable delay_cv_;  // the delay thread
  std::deque<std::string> queue_;     // guarded by mu_
  std::set<std::string> dirty_;       // guarded by mu_
  std::set<std::string> processing_;  // guarded by mu_
  // Parked keys: ready time -> key, and key -> its ready time (the earliest wins).
  std::multimap<std::chrono::steady_clock::time_point, std::string> waiting_;  // guarded by mu_
  std::map<std::string, std::chrono::steady_clock::time_point> waiting_at_;  // guarded by mu_
  RateLimiter limiter_;               // guarded by mu_
  bool shutting_down_ = false;        // guarded by mu_
  uint64_t adds_ = 0;                 // guarded by mu_
  uint64_t retries_ = 0;              // guarded by mu_
  std::thread delay_thread_;
};

}  // namespace mcop::controller
