// Records Kubernetes Events (core/v1 Event) about an object, e.g. "ScaledUp" on a
// MemcachedCluster. Thread-safety: implementations are safe to call from many threads; a
// failure to record is logged, never returned: events are best-effort.
#pragma once

#include <string>

#include "kube/api_client.h"

namespace mcop::kube {

enum class EventSeverity { kNormal, kWarning };

class EventRecorder {
 public:
  virtual ~EventRecorder() = default;
  // `involved` is the object the event is about (its apiVersion, kind, metadata are used).
  virtual void record(const Object& involved, EventSeverity severity, const std::string& reason,
                      const std::string& message) = 0;
};

}  // namespace mcop::kube
