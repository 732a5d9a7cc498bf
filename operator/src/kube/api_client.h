// The one seam between the operator and the Kubernetes API server. Reconcilers, informers and
// leader election reach the API only through ApiClient; RestApiClient speaks HTTP through
// cpprestsdk; FakeApiClient (operator/testing/, linked only by tests) keeps objects in memory
// and can inject errors for unit tests.
// Thread-safety: every implementation must be safe to call from many threads at once.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/status.h>
#include <absl/status/statusor.h>
// cpprestsdk's U() macro breaks fmt (spdlog) templates that call format_as(U()); we never use it.
#ifndef _TURN_OFF_PLATFORM_STRING
#define _TURN_OFF_PLATFORM_STRING
#endif
#include <cpprest/json.h>

namespace mcop::kube {

// A Kubernetes object as the API returns it.
using Object = web::json::value;

// A resource collection, e.g. {"apps", "v1", "statefulsets", "StatefulSet", true}.
struct ResourceType {
  std::string group;  // "" for the core group
  std::string version;
  std::string plural;
  std::string kind;
  bool namespaced = true;

  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
};

namespace resources {
inline const ResourceType kMemcachedCluster{"memcached.operator.io", "v1alpha1", "memcachedclusters",
                                            "MemcachedCluster", true};
inline const ResourceType kStatefulSet{"apps", "v1", "statefulsets", "StatefulSet", true};
inline const ResourceType kService{"", "v1", "services", "Service", true};
inline const ResourceType kConfigMap{"", "v1", "configmaps", "ConfigMap", true};
inline const ResourceType kPod{"", "v1", "pods", "Pod", true};
inline const ResourceType kEvent{"", "v1", "events", "Event", true};
inline const ResourceType kNamespace{"", "v1", "namespaces", "Namespace", false};
inline const ResourceType kPodDisruptionBudget{"policy", "v1", "poddisruptionbudgets",
                                               "PodDisruptionBudget", true};
inline const ResourceType kNetworkPolicy{"networking.k8s.io", "v1", "networkpolicies",
                                         "NetworkPolicy", true};
// Served only where the Prometheus Operator's CRDs are installed.
inline const ResourceType kServiceMonitor{"monitoring.coreos.com", "v1", "servicemonitors",
                                          "ServiceMonitor", true};
inline const ResourceType kLease{"coordination.k8s.io", "v1", "leases", "Lease", true};
inline const ResourceType kCustomResourceDefinition{
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false};
}  // namespace resources

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;          // "" asks for the most recent state
  std::optional<int> timeout_seconds;    // watch: the server ends the stream after this
  bool allow_watch_bookmarks = true;     // watch only
  // Watch only: next() fails with DeadlineExceeded when nothing (no event, no bookmark) has
  // arrived for this long, and the stream is closed. A connection that died without a FIN or
  // RST (a NAT or load balancer dropped it, the peer froze) otherwise looks like a quiet watch
  // for as long as TCP keeps it; with bookmarks on, a live server sends something about once
  // a minute. Also bounds the wait for the watch's response headers. Unset: the client's own
  // inactivity timeout.
  std::optional<std::chrono::milliseconds> idle_timeout;
  std::optional<int64_t> limit;          // list paging
  std::string continue_token;            // list paging
};

struct ObjectList {
  std::vector<Object> items;
  std::string resource_version;  // opaque: never compared, only handed back to watch
  std::string continue_token;
};

enum class EventType { kAdded, kModified, kDeleted, kBookmark };

struct WatchEvent {
  EventType type;
  Object object;
};

// One watch connection. next() blocks until an event arrives.
class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // An event; std::nullopt when the server ended the stream cleanly (reconnect from the last
  // resourceVersion). Errors: OutOfRange for 410 Gone / an ERROR event with code 410 (relist),
  // Unavailable or DeadlineExceeded for a broken or silent connection (reconnect with backoff),
  // Cancelled after cancel().
  virtual absl::StatusOr<std::optional<WatchEvent>> next() = 0;
  // Makes a blocked next() return Cancelled; callable from any thread.
  virtual void cancel() = 0;
};
using WatchStreamPtr = std::unique_ptr<WatchStream>;

enum class PatchType { kMerge, kStrategicMerge, kJson, kApply };

struct PatchOptions {
  std::string field_manager;  // required for kApply
  bool force = false;         // kApply: take ownership of conflicting fields
  std::string subresource;    // "", "status" or "scale"
};

struct DeleteOptions {
  std::optional<std::string> precondition_uid;
  std::optional<std::string> precondition_resource_version;
  std::string propagation_policy;  // "", "Foreground", "Background", "Orphan"
  std::optional<int64_t> grace_period_seconds;
};

// A deadline for the requests (not watch streams) this thread makes while the scope lives: a
// request still unanswered at the deadline is abandoned (the connection is closed) and fails
// with DeadlineExceeded. Scopes nest, and an inner one never extends an outer one. Leader
// election uses it so that a renewal attempt never outlives the renew deadline, whatever the
// client's own request timeout is. Deadlines are on std::chrono::steady_clock.
class RequestDeadline {
 public:
  explicit RequestDeadline(std::chrono::steady_clock::duration timeout);
  ~RequestDeadline();
  RequestDeadline(const RequestDeadline&) = delete;
  RequestDeadline& operator=(const RequestDeadline&) = delete;

  // The innermost deadline in force on this thread, if any.
  static std::optional<std::chrono::steady_clock::time_point> current();

 private:
  std::optional<std::chrono::steady_clock::time_point> previous_;
};

// HTTP status to meaning (Abseil's vocabulary):
//   400 InvalidArgument, 401 Unauthenticated, 403 PermissionDenied, 404 NotFound,
//   409 AlreadyExists (reason AlreadyExists) or Aborted (reason Conflict: re-read and retry),
//   410 OutOfRange (resourceVersion expired: relist), 422 InvalidArgument (bad spec: report, do
//   not hot-loop), 429 ResourceExhausted, 5xx and connection errors Unavailable, timeouts
//   DeadlineExceeded. The message carries the API server's own message.
absl::Status StatusFromHttp(int http_code, const std::string& reason, const std::string& message);
// IsNotFound and IsAlreadyExists are templates so that an unqualified call inside mcop::kube is
// not ambiguous with absl's functions of the same name (found by argument-dependent lookup):
// overload resolution then prefers absl's non-template, which means the same.
template <typename S>
  requires std::same_as<S, absl::Status>
inline bool IsNotFound(const S& s) { return absl::IsNotFound(s); }
inline bool IsConflict(const absl::Status& s) { return absl::IsAborted(s); }
template <typename S>
  requires std::same_as<S, absl::Status>
inline bool IsAlreadyExists(const S& s) { return absl::IsAlreadyExists(s); }
inline bool IsGone(const absl::Status& s) { return absl::IsOutOfRange(s); }
inline bool IsInvalid(const absl::Status& s) { return absl::IsInvalidArgument(s); }
// Errors worth retrying with backoff.
inline bool IsRetryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s) ||
         absl::IsAborted(s) || absl::IsInternal(s);
}

class ApiClient {
 public:
  virtual ~ApiClient() = default;

  // ns is ignored for cluster-scoped types; for list and watch, "" means all namespaces.
  virtual absl::StatusOr<Object> get(const ResourceType& type, const std::string& ns,
                                     const std::string& name) = 0;
  virtual absl::StatusOr<ObjectList> list(const ResourceType& type, const std::string& ns,
                                          const ListOptions& options) = 0;
  virtual absl::StatusOr<Object> create(const ResourceType& type, const std::string& ns,
                                        const Object& object) = 0;
  // PUT of the whole object (or of a subresource: "status", "scale"). The object's
  // metadata.resourceVersion makes it conditional: a stale one gives Aborted.
  virtual absl::StatusOr<Object> update(const ResourceType& type, const Object& object,
                                        const std::string& subresource) = 0;
  virtual absl::StatusOr<Object> patch(const ResourceType& type, const std::string& ns,
                                       const std::string& name, PatchType patch_type,
                                       const Object& body, const PatchOptions& options) = 0;
  virtual absl::Status remove(const ResourceType& type, const std::string& ns,
                              const std::string& name, const DeleteOptions& options) = 0;
  virtual absl::StatusOr<WatchStreamPtr> watch(const ResourceType& type, const std::string& ns,
                                               const ListOptions& options) = 0;
};
using ApiClientPtr = std::shared_ptr<ApiClient>;

}  // namespace mcop::kube
