// libclientconfig's errors (memcached admin connections) as absl::Status, for the parts of the
// operator that talk to memcached: a timeout stays DeadlineExceeded and an unreachable server
// Unavailable, so callers can tell "try again" from "broken". Thread-safety: a pure function.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "clientconfig/result.h"

namespace mcop::memcached {

// `what` names the step ("lru_crawler metadump", "delete"); empty leaves the message as is.
inline absl::Status adminStatus(const clientconfig::Error& e, const std::string& what = "") {
  const std::string prefix = what.empty() ? std::string() : absl::StrCat(what, ": ");
  switch (e.code) {
    case clientconfig::ErrorCode::DeadlineExceeded:
      return absl::DeadlineExceededError(absl::StrCat(prefix, e.message));
    case clientconfig::ErrorCode::Unavailable:
      return absl::UnavailableError(absl::StrCat(prefix, e.message));
    case clientconfig::ErrorCode::PermissionDenied:
      return absl::PermissionDeniedError(absl::StrCat(prefix, e.message));
    default:
      return absl::UnknownError(absl::StrCat(prefix, e.toString()));
  }
}

}  // namespace mcop::memcached
