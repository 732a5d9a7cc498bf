// Waiting on a non-blocking socket until a deadline: shared by the TCP and TLS transports.
// Thread-safety: stateless functions.
#pragma once

#include <chrono>

#include "clientconfig/result.h"

namespace clientconfig::detail {

// Milliseconds left until `deadline`, for poll(); 0 when already past.
int remainingMs(std::chrono::steady_clock::time_point deadline);

// Waits for `events` (POLLIN/POLLOUT) on fd until deadline, retrying EINTR. DeadlineExceeded
// "<what>: timed out" when it passes.
Result<void> waitFor(int fd, short events, std::chrono::steady_clock::time_point deadline, const char* what);

} // namespace clientconfig::detail
