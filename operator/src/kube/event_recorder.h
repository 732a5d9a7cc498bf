// Records Kubernetes Events (core/v1 Event) about an object, e.g. "ScaledUp" on a
// MemcachedCluster. Thread-safety: implementations are safe to call from many threads; a
// failure to record is logged, never returned: events are best-effort. The operator records
// through ApiEventRecorder; tests through RecordingEventRecorder (operator/testing/).
#pragma once

#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "kube/api_client.h"
#include "util/clock.h"

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

// ApiEventRecorder: writes core/v1 Events through an ApiClient the
// way client-go's recorder does (involvedObject, source.component, count, first/last
// timestamps). A repeat of the same (object, type, reason, message) bumps count and
// lastTimestamp on the existing Event instead of creating a new one.
// Writes are synchronous and best-effort: failures are logged at debug level and dropped.
namespace mcop::kube {

class ApiEventRecorder : public EventRecorder {
 public:
  ApiEventRecorder(ApiClientPtr api, const util::Clock& clock,
                   std::string component = "memcached-operator", std::string host = "");
  void record(const Object& involved, EventSeverity severity, const std::string& reason,
              const std::string& message) override;

 private:
  struct Seen {
    std::string ns;
    std::string name;
    int64_t count;
    std::string first_timestamp;
  };
  ApiClientPtr api_;
  const util::Clock& clock_;
  std::string component_;
  std::string host_;
  std::mutex mu_;
  std::map<std::string, Seen> seen_;  // aggregation key -> event; guarded by mu_
  std::deque<std::string> order_;     // insertion order, to bound seen_; guarded by mu_
};

}  // namespace mcop::kube
