#include "kube/event_recorder.h"

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "kube/object_meta.h"
#include "util/time.h"

namespace mcop::kube {

namespace {
constexpr size_t kMaxSeen = 4096;
constexpr size_t kMaxMessage = 1024;  // the API server rejects longer event messages
}  // namespace

ApiEventRecorder::ApiEventRecorder(ApiClientPtr api, const util::Clock& clock,
                                   std::string component, std::string host)
    : api_(std::move(api)), clock_(clock), component_(std::move(component)), host_(std::move(host)) {
  if (host_.empty()) {
    char buf[256] = {0};
    if (gethostname(buf, sizeof(buf) - 1) == 0) host_ = buf;
  }
}

void ApiEventRecorder::record(const Object& involved, EventSeverity severity,
                              const std::string& reason, const std::string& message) {
  std::string type = severity == EventSeverity::kWarning ? "Warning" : "Normal";
  std::string obj_ns = namespaceOf(involved);
  std::string ns = obj_ns.empty() ? "default" : obj_ns;
  std::string msg = message.size() > kMaxMessage ? message.substr(0, kMaxMessage) : message;
  std::string now = util::formatRfc3339(clock_.now());
  std::string agg_key = absl::StrCat(uidOf(involved), "/", keyOf(involved), "/", type, "/", reason, "/", msg);

  std::optional<Seen> seen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = seen_.find(agg_key);
    if (it != seen_.end()) seen = it->second;
  }
  if (seen) {
    Object body = Object::object();
    body["count"] = Object::number(seen->count + 1);
    body["lastTimestamp"] = Object::string(now);
    auto r = api_->patch(resources::kEvent, seen->ns, seen->name, PatchType::kMerge, body, {});
    if (r.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      seen_[agg_key].count = seen->count + 1;
      return;
    }
    if (!absl::IsNotFound(r.status())) {
      spdlog::debug("event not recorded reason={} object={} error={}", reason, keyOf(involved),
                    r.status().ToString());
      return;
    }
    // The event expired on the server (1 h TTL): start a new one.
  }

  auto t = clock_.now();
  std::string name = absl::StrCat(
      nameOf(involved), ".",
      absl::Hex(std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count()));
  Object ev = Object::object();
  ev["apiVersion"] = Object::string("v1");
  ev["kind"] = Object::string("Event");
  ev["metadata"]["name"] = Object::string(name);
  ev["metadata"]["namespace"] = Object::string(ns);
  Object ref = Object::object();
  for (const char* f : {"apiVersion", "kind"}) {
    if (involved.has_field(f)) ref[f] = involved.at(f);
  }
  ref["name"] = Object::string(nameOf(involved));
  if (!obj_ns.empty()) ref["namespace"] = Object::string(obj_ns);
  if (!uidOf(involved).empty()) ref["uid"] = Object::string(uidOf(involved));
  if (!resourceVersionOf(involved).empty()) {
    ref["resourceVersion"] = Object::string(resourceVersionOf(involved));
  }
  ev["involvedObject"] = ref;
  ev["reason"] = Object::string(reason);
  ev["message"] = Object::string(msg);
  ev["type"] = Object::string(type);
  ev["source"]["component"] = Object::string(component_);
  if (!host_.empty()) ev["source"]["host"] = Object::string(host_);
  ev["firstTimestamp"] = Object::string(now);
  ev["lastTimestamp"] = Object::string(now);
  ev["count"] = Object::number(int64_t{1});
  auto r = api_->create(resources::kEvent, ns, ev);
  if (!r.ok()) {
    spdlog::debug("event not recorded reason={} object={} error={}", reason, keyOf(involved),
                  r.status().ToString());
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (seen_.find(agg_key) == seen_.end()) order_.push_back(agg_key);
  seen_[agg_key] = Seen{ns, name, 1, now};
  while (seen_.size() > kMaxSeen && !order_.empty()) {
    seen_.erase(order_.front());
    order_.pop_front();
  }
}

}  // namespace mcop::kube
