// StatusFromHttp: the one place HTTP status codes become absl::Status codes; and the
// per-thread request deadline (RequestDeadline).
#include "kube/api_client.h"

#include <absl/strings/str_cat.h>

namespace mcop::kube {

namespace {
// Per thread: a deadline belongs to the code path that set it, never to other threads.
thread_local std::optional<std::chrono::steady_clock::time_point> g_request_deadline;
}  // namespace

RequestDeadline::RequestDeadline(std::chrono::steady_clock::duration timeout)
    : previous_(g_request_deadline) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (previous_ && *previous_ < deadline) deadline = *previous_;
  g_request_deadline = deadline;
}

RequestDeadline::~RequestDeadline() { g_request_deadline = previous_; }

std::optional<std::chrono::steady_clock::time_point> RequestDeadline::current() {
  return g_request_deadline;
}

absl::Status StatusFromHttp(int http_code, const std::string& reason, const std::string& message) {
  if (http_code >= 200 && http_code < 300) return absl::OkStatus();
  std::string msg = message.empty() ? absl::StrCat("HTTP ", http_code, reason.empty() ? "" : " ", reason)
                                    : message;
  switch (http_code) {
    case 400: return absl::InvalidArgumentError(msg);
    case 401: return absl::UnauthenticatedError(msg);
    case 403: return absl::PermissionDeniedError(msg);
    case 404: return absl::NotFoundError(msg);
    case 405: return absl::UnimplementedError(msg);
    case 409:
      if (reason == "AlreadyExists") return absl::AlreadyExistsError(msg);
      return absl::AbortedError(msg);
    case 410: return absl::OutOfRangeError(msg);
    case 415: return absl::InvalidArgumentError(msg);
    case 422: return absl::InvalidArgumentError(msg);
    case 429: return absl::ResourceExhaustedError(msg);
    case 504: return absl::DeadlineExceededError(msg);
    default: break;
  }
  if (http_code >= 500) return absl::UnavailableError(msg);
  if (reason == "Timeout") return absl::DeadlineExceededError(msg);
  return absl::UnknownError(msg);
}

}  // namespace mcop::kube
