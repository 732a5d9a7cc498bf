#include "util/on_demand_threads.h"

#include <algorithm>

namespace mcop::util {

OnDemandThreads::OnDemandThreads(size_t max, std::chrono::milliseconds linger)
    : max_(std::max<size_t>(1, max)), linger_(linger) {}

OnDemandThreads::~OnDemandThreads() { joinAll(); }

void OnDemandThreads::wakeLocked(size_t ready, const std::function<void()>& loop) {
  reapLocked();
  for (size_t waiting = idle_; live_ < max_ && waiting < ready; ++waiting) {
    ++live_;
    threads_.emplace_back(loop);
  }
}

void OnDemandThreads::reapLocked() {
  // An ended thread has left waitLocked() and only returns from its loop: joining is quick and
  // needs no lock it could be holding.
  for (const std::thread::id& id : ended_) {
    auto it = std::find_if(threads_.begin(), threads_.end(),
                           [&](const std::thread& t) { return t.get_id() == id; });
    if (it == threads_.end()) continue;
    it->join();
    threads_.erase(it);
  }
  ended_.clear();
}

void OnDemandThreads::joinAll() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace mcop::util
