// runConcurrently: see concurrent.h.
#include "memcached/concurrent.h"

#include <exception>
#include <future>

namespace mcop::memcached {

absl::Status runConcurrently(const std::vector<Task>& tasks) {
  if (tasks.empty()) return absl::OkStatus();
  if (tasks.size() == 1) return tasks.front()();
  // Threads of their own rather than a pool: a pass issues at most a handful of requests at
  // once, a thread costs tens of microseconds against a round trip's milliseconds, and no thread
  // stays behind when the operator is idle.
  std::vector<std::future<absl::Status>> others;
  others.reserve(tasks.size() - 1);
  for (size_t i = 1; i < tasks.size(); ++i) {
    others.push_back(std::async(std::launch::async, tasks[i]));
  }
  std::vector<absl::Status> results(tasks.size());
  std::exception_ptr thrown;
  try {
    results[0] = tasks[0]();
  } catch (...) {
    thrown = std::current_exception();
  }
  for (size_t i = 0; i < others.size(); ++i) {
    try {
      results[i + 1] = others[i].get();
    } catch (...) {
      if (!thrown) thrown = std::current_exception();
    }
  }
  if (thrown) std::rethrow_exception(thrown);
  for (const auto& s : results) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace mcop::memcached
