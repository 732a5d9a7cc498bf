// The contract between the controller machinery (informers, workqueue, workers) and the logic
// that closes the gap between desired and observed state for one object.
// Thread-safety: reconcile() is called from several workers at once, never twice at once for
// the same Request.
#pragma once

#include <chrono>
#include <optional>
#include <string>

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

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  // An error requeues the request with per-key exponential backoff; success forgets it.
  virtual absl::StatusOr<Result> reconcile(const Request& request) = 0;
};

}  // namespace mcop::controller
