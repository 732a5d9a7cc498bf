#include "testing/recording_event_recorder.h"

#include "kube/object_meta.h"

namespace mcop::kube {

void RecordingEventRecorder::record(const Object& involved, EventSeverity severity,
                                    const std::string& reason, const std::string& message) {
  std::string kind = involved.has_field("kind") && involved.at("kind").is_string()
                         ? involved.at("kind").as_string()
                         : "";
  std::lock_guard<std::mutex> lock(mu_);
  events_.push_back({keyOf(involved), kind, severity, reason, message});
}

std::vector<RecordingEventRecorder::Recorded> RecordingEventRecorder::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

std::vector<RecordingEventRecorder::Recorded> RecordingEventRecorder::withReason(
    const std::string& reason) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Recorded> out;
  for (const auto& e : events_) {
    if (e.reason == reason) out.push_back(e);
  }
  return out;
}

void RecordingEventRecorder::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  events_.clear();
}

}  // namespace mcop::kube
