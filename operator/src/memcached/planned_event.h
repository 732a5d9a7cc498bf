// PlannedEvent: an event a plan step decided to emit. Plans return them instead of recording
// them, because an event describes what status records: the reconciler sends them only once the
// status write that carries the decision went through.
// Thread-safety: a value type.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "kube/event_recorder.h"

namespace mcop::memcached {

struct PlannedEvent {
  kube::EventSeverity severity = kube::EventSeverity::kNormal;
  std::string reason;
  std::string message;

  friend bool operator==(const PlannedEvent&, const PlannedEvent&) = default;
};

// Keeps the shorter of two requeue delays (at least 1 ms).
inline void keepShorter(std::optional<std::chrono::milliseconds>& requeue,
                        std::chrono::milliseconds after) {
  if (after < std::chrono::milliseconds(1)) after = std::chrono::milliseconds(1);
  if (!requeue || after < *requeue) requeue = after;
}

}  // namespace mcop::memcached
