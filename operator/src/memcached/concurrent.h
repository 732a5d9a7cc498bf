// runConcurrently: independent API requests of one reconcile pass (the lookups of child names,
// the writes of children that do not depend on each other) issued at once instead of one after
// another, so that a pass waits for about one round trip per step rather than one per object.
// Thread-safety: the tasks run on different threads at the same time; each must only touch what
// no other task of the same call touches (its own output), and the ApiClient they share is
// thread-safe by contract.
#pragma once

#include <functional>
#include <vector>

#include <absl/status/status.h>

namespace mcop::memcached {

using Task = std::function<absl::Status()>;

// Runs every task, the first on the calling thread and each other one on a thread of its own,
// and returns once all of them have finished: the first failure in the tasks' order, else OK.
// Nothing is left running when it returns, even when a task throws (the exception is rethrown
// after the others are joined).
absl::Status runConcurrently(const std::vector<Task>& tasks);

}  // namespace mcop::memcached
