#include "controller/workqueue.h"

#include <algorithm>
#include <cmath>

namespace mcop::controller {

using std::chrono::nanoseconds;

RateLimiter::RateLimiter(const util::Clock& clock, Options options)
    : clock_(clock), options_(options), tokens_(options.burst), last_refill_(clock.steadyNow()) {}

nanoseconds RateLimiter::when(const std::string& key) {
  int exp = failures_[key]++;
  // base * 2^exp, capped; computed in double so a long failure streak cannot overflow.
  double backoff = static_cast<double>(options_.base_delay.count()) * std::pow(2.0, std::min(exp, 62));
  nanoseconds item = backoff > static_cast<double>(options_.max_delay.count())
                         ? options_.max_delay
                         : nanoseconds(static_cast<int64_t>(backoff));

  auto now = clock_.steadyNow();
  double elapsed = std::chrono::duration<double>(now - last_refill_).count();
  last_refill_ = now;
  tokens_ = std::min<double>(options_.burst, tokens_ + elapsed * options_.qps);
  tokens_ -= 1;  // reserve a token, possibly in the future
  nanoseconds bucket(0);
  if (tokens_ < 0 && options_.qps > 0) {
    bucket = nanoseconds(static_cast<int64_t>(-tokens_ / options_.qps * 1e9));
  }
  return std::max(item, bucket);
}

void RateLimiter::forget(const std::string& key) { failures_.erase(key); }

int RateLimiter::numRequeues(const std::string& key) const {
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

WorkQueue::WorkQueue(const util::Clock& clock, Options options)
    : clock_(clock), options_(options), limiter_(clock, options.rate_limiter) {
  delay_thread_ = std::thread([this] { delayLoop(); });
}

WorkQueue::~WorkQueue() {
  shutDown();
  if (delay_thread_.joinable()) delay_thread_.join();
}

void WorkQueue::addLocked(const std::string& key) {
  if (shutting_down_ || dirty_.count(key)) return;
  ++adds_;
  dirty_.insert(key);
  // A key being processed is queued again by done().
  if (processing_.count(key)) return;
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::add(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  addLocked(key);
}

void WorkQueue::addAfter(const std::string& key, nanoseconds delay) {
  std::lock_guard<std::mutex> lock(mu_);
  addAfterLocked(key, delay);
}

void WorkQueue::addAfterLocked(const std::string& key, nanoseconds delay) {
  if (shutting_down_) return;
  if (delay <= nanoseconds(0)) {
    addLocked(key);
    return;
  }
  auto at = clock_.steadyNow() + delay;
  auto it = waiting_at_.find(key);
  if (it != waiting_at_.end()) {
    if (it->second <= at) return;  // already due earlier
    auto range = waiting_.equal_range(it->second);
    for (auto w = range.first; w != range.second; ++w) {
      if (w->second == key) {
        waiting_.erase(w);
        break;
      }
    }
  }
  waiting_at_[key] = at;
  waiting_.emplace(at, key);
  delay_cv_.notify_one();
}

void WorkQueue::addRateLimited(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutting_down_) return;
  ++retries_;
  addAfterLocked(key, limiter_.when(key));
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  limiter_.forget(key);
}

int WorkQueue::numRequeues(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return limiter_.numRequeues(key);
}

std::optional<std::string> WorkQueue::get() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return shutting_down_ || !queue_.empty(); });
  if (shutting_down_) return std::nullopt;
  std::string key = std::move(queue_.front());
  queue_.pop_front();
  processing_.insert(key);
  dirty_.erase(key);
  return key;
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) && !shutting_down_) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::shutDown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutting_down_ = true;
  cv_.notify_all();
  delay_cv_.notify_all();
}

bool WorkQueue::shuttingDown() const {
  std::lock_guard<std::mutex> lock(mu_);
  return shutting_down_;
}

void WorkQueue::delayLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutting_down_) {
    auto now = clock_.steadyNow();
    while (!waiting_.empty() && waiting_.begin()->first <= now) {
      std::string key = waiting_.begin()->second;
      waiting_.erase(waiting_.begin());
      waiting_at_.erase(key);
      addLocked(key);
    }
    auto wait = options_.delay_poll;
    if (!waiting_.empty()) {
      auto until = std::chrono::ceil<std::chrono::milliseconds>(waiting_.begin()->first - now);
      wait = std::min(wait, std::max(until, std::chrono::milliseconds(1)));
    }
    delay_cv_.wait_for(lock, wait);
  }
}

size_t WorkQueue::len() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

size_t WorkQueue::waitingLen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_.size();
}

size_t WorkQueue::processingLen() const {
  std::lock_guard<std::mutex> lock(mu_);
  return processing_.size();
}

uint64_t WorkQueue::addsTotal() const {
  std::lock_guard<std::mutex> lock(mu_);
  return adds_;
}

uint64_t WorkQueue::retriesTotal() const {
  std::lock_guard<std::mutex> lock(mu_);
  return retries_;
}

}  // namespace mcop::controller
