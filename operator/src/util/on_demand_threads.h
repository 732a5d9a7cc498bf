// OnDemandThreads: the threads of a worker pool that exist only while it has work. Up to `max`
// threads run the owner's loop; one is started when work is queued and no started thread is
// waiting for work, and a thread that waits `linger` without getting any ends. An idle operator
// then keeps none of these threads, and a burst still gets its full concurrency at once.
// The owner keeps its mutex, its queue and its condition variable; this class adds counters
// guarded by that mutex and the std::thread objects. Its loop waits through waitLocked() and
// returns when it says false (or when the owner stops).
// Thread-safety: *Locked() with the owner's mutex held; joinAll() without it, once the owner's
// loops were told to stop and no wakeLocked() can follow.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace mcop::util {

class OnDemandThreads {
 public:
  OnDemandThreads(size_t max, std::chrono::milliseconds linger);
  ~OnDemandThreads();  // joins what joinAll() did not
  OnDemandThreads(const OnDemandThreads&) = delete;
  OnDemandThreads& operator=(const OnDemandThreads&) = delete;

  // Work for `ready` threads was queued (and the owner notified its condition variable):
  // starts threads running `loop` until `ready` are waiting or running for it, at most `max`.
  void wakeLocked(size_t ready, const std::function<void()>& loop);

  // For the owner's loop, in place of cv.wait(lock, pred): true once pred() holds; false when
  // `linger` passed without it, and then the thread must return from its loop at once.
  template <typename Pred>
  bool waitLocked(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, Pred pred) {
    ++idle_;
    const bool got = cv.wait_for(lock, linger_, pred);
    --idle_;
    if (!got) {
      --live_;
      ended_.push_back(std::this_thread::get_id());
    }
    return got;
  }

  size_t liveLocked() const { return live_; }
  void joinAll();

 private:
  void reapLocked();  // joins the threads that ended

  const size_t max_;
  const std::chrono::milliseconds linger_;
  size_t live_ = 0;  // started and not ended
  size_t idle_ = 0;  // in waitLocked()
  std::vector<std::thread::id> ended_;
  std::list<std::thread> threads_;
};

}  // namespace mcop::util
