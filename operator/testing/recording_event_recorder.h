// RecordingEventRecorder: an EventRecorder that keeps every event in memory instead of writing
// core/v1 Events, so tests assert what code reported ("ScaledUp" recorded once, a Warning with
// this message). Test-only: lives in mcop_testing, never in the operator.
// Thread-safety: all methods are thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "kube/event_recorder.h"

namespace mcop::kube {

class RecordingEventRecorder : public EventRecorder {
 public:
  struct Recorded {
    std::string object_key;  // ns/name of the involved object
    std::string kind;
    EventSeverity severity;
    std::string reason;
    std::string message;
  };
  void record(const Object& involved, EventSeverity severity, const std::string& reason,
              const std::string& message) override;
  std::vector<Recorded> events() const;
  // Events with this reason.
  std::vector<Recorded> withReason(const std::string& reason) const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::vector<Recorded> events_;  // guarded by mu_
};

}  // namespace mcop::kube
