// FakeApiClient: an in-memory Kubernetes API for unit tests, in the spirit of LevelDB's
// NewMemEnv(). It keeps objects by type/namespace/name with the server's bookkeeping
// (resourceVersion from one counter, uid, generation bumped on spec changes, creationTimestamp,
// status subresource semantics, finalizers), applies merge/JSON/apply patches, filters by label
// selector, feeds watch streams from every write (with bookmarks and an injectable 410), and
// injects errors (409, 410, 5xx, timeouts) by verb and type or through a predicate. It can also
// make requests hang (stall) until released or until their RequestDeadline, and make open
// watches go silent (freezeWatches), like a server or connection that stopped answering.
// It also counts requests per verb so tests can assert "no writes in steady state".
// Approximations: strategic merge patch and server-side apply behave as a JSON merge patch
// (lists replace; apply has no field ownership and never conflicts); a label-selector watch
// sends DELETED when an object stops matching. Thread-safety: all methods are thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kube/api_client.h"
#include "util/clock.h"

namespace mcop::kube {

enum class Verb { kGet, kList, kCreate, kUpdate, kPatch, kDelete, kWatch };
const char* verbName(Verb verb);
inline bool isWrite(Verb v) {
  return v == Verb::kCreate || v == Verb::kUpdate || v == Verb::kPatch || v == Verb::kDelete;
}

class FakeApiClient : public ApiClient {
 public:
  // One request as the fake saw it (recorded for every call, failed or not).
  struct Action {
    Verb verb;
    std::string resource;  // "group/plural", e.g. "apps/statefulsets", "/pods"
    std::string ns;
    std::string name;
    std::string subresource;  // "status" for status writes
    absl::Status result;  // the injected failure; OK when the request reached the store
    // Time left until the caller's RequestDeadline when the request arrived (none: no deadline).
    std::optional<std::chrono::milliseconds> timeout = std::nullopt;
  };
  // Returns a non-OK status to fail the request, OK to let it through.
  using FailureHook = std::function<absl::Status(const Action&)>;

  explicit FakeApiClient(const util::Clock* clock = nullptr);
  ~FakeApiClient() override;

  // --- ApiClient ---
  absl::StatusOr<Object> get(const ResourceType& type, const std::string& ns,
                             const std::string& name) override;
  absl::StatusOr<ObjectList> list(const ResourceType& type, const std::string& ns,
                                  const ListOptions& options) override;
  absl::StatusOr<Object> create(const ResourceType& type, const std::string& ns,
                                const Object& object) override;
  absl::StatusOr<Object> update(const ResourceType& type, const Object& object,
                                const std::string& subresource) override;
  absl::StatusOr<Object> patch(const ResourceType& type, const std::string& ns,
                               const std::string& name, PatchType patch_type, const Object& body,
                               const PatchOptions& options) override;
  absl::Status remove(const ResourceType& type, const std::string& ns, const std::string& name,
                      const DeleteOptions& options) override;
  absl::StatusOr<WatchStreamPtr> watch(const ResourceType& type, const std::string& ns,
                                       const ListOptions& options) override;

  // --- test control ---
  // Stores an object as given (status included, no error injection, not counted), filling in
  // the server-set metadata that is missing. Emits a watch event like any write.
  Object seed(const ResourceType& type, const Object& object);
  // Current object, bypassing counters and error injection.
  std::optional<Object> peek(const ResourceType& type, const std::string& ns,
                             const std::string& name) const;
  // The next `count` requests of `verb` on `type` fail with `status` (e.g. 409 Conflict is
  // absl::AbortedError, 410 absl::OutOfRangeError, 500 absl::UnavailableError, a timeout
  // absl::DeadlineExceededError). For kWatch the failure is returned by watch() itself.
  void failNext(Verb verb, const ResourceType& type, absl::Status status, int count = 1);
  // Consulted on every request after failNext; replaces the previous hook (nullptr clears).
  void setFailureHook(FailureHook hook);
  // Whether writes to the main resource ignore .status (true by default for the types that
  // have a status subresource on a real server: CRs, StatefulSets, Pods, Services, PDBs...).
  void setStatusSubresource(const ResourceType& type, bool enabled);
  // Deleting an object also deletes the objects whose ownerReferences name its uid (what the
  // garbage collector would do shortly after). Off by default.
  void setCascadeDelete(bool enabled);
  // Page size used by list() when the caller sets no limit (0 = unlimited).
  void setDefaultPageSize(int64_t n);

  // From now on requests of `verb` on `type` hang, as on a server that stopped answering: each
  // blocks until unstall(), or until its RequestDeadline passes and it fails with
  // DeadlineExceeded without reaching the store (without a deadline it waits for unstall()).
  void stall(Verb verb, const ResourceType& type);
  // Ends every stall; blocked requests proceed.
  void unstall();
  // The requests blocked in a stall right now (their timeout is the time left at arrival).
  std::vector<Action> stalledRequests() const;

  // Watch control. Events apply to the open watches of `type` (all types when nullptr).
  void sendBookmarks(const ResourceType* type = nullptr);
  // Ends open streams with an error (OutOfRange = a 410 ERROR event; Unavailable = a dropped
  // connection). The stream's next() returns it after any events already queued.
  void breakWatches(const ResourceType* type, absl::Status status);
  // Ends open streams cleanly, as the server does after timeoutSeconds.
  void endWatches(const ResourceType* type = nullptr);
  // Open streams go silent for good, as when a connection dies without a FIN or RST: nothing
  // more (events, bookmarks, errors, end) is delivered on them, and they stay open until
  // cancelled or their ListOptions.idle_timeout passes. New watches are not affected.
  void freezeWatches(const ResourceType* type = nullptr);
  // Forgets the event history: a watch from an older resourceVersion then gets 410 Gone.
  void compact();
  int openWatches(const ResourceType* type = nullptr) const;

  // Counters (every request, successful or not, is counted).
  int count(Verb verb) const;
  int count(Verb verb, const ResourceType& type) const;
  int writeCount() const;  // create + update + patch + delete
  std::vector<Action> actions() const;
  void resetCounters();
  std::string currentResourceVersion() const;

 private:
  struct Stream;
  class StreamHandle;
  struct StoredEvent {
    int64_t rv;
    std::string type_key;
    EventType type;
    Object object;
  };

  static std::string typeKey(const ResourceType& type);
  absl::Status admit(Action action);  // records and applies error injection; mu_ held
  // Blocks while `verb` on `type` is stalled (mu_ not held); DeadlineExceeded when the caller's
  // RequestDeadline passes first (the request is then recorded as failed).
  absl::Status waitIfStalled(Verb verb, const ResourceType& type, const std::string& ns,
                             const std::string& name);
  std::string nextResourceVersion();  // mu_ held
  Object* find(const ResourceType& type, const std::string& ns, const std::string& name);
  void prepareNew(const ResourceType& type, Object& obj);                     // mu_ held
  void emit(const ResourceType& type, EventType event, const Object& obj,
            const Object* old = nullptr);  // mu_ held
  absl::StatusOr<Object> storeUpdate(const ResourceType& type, Object* current, Object updated,
                                     const std::string& subresource);  // mu_ held
  void deleteNow(const ResourceType& type, const std::string& ns, const std::string& name);
  bool hasStatusSubresource(const ResourceType& type) const;

  const util::Clock* clock_;
  std::unique_ptr<util::Clock> owned_clock_;

  mutable std::mutex mu_;
  // type key -> "ns/name" -> object; guarded by mu_
  std::map<std::string, std::map<std::string, Object>> objects_;
  std::map<std::string, ResourceType> types_;          // guarded by mu_
  int64_t resource_version_ = 1000;                    // guarded by mu_
  int64_t uid_counter_ = 0;                            // guarded by mu_
  std::deque<StoredEvent> history_;                    // guarded by mu_
  int64_t compacted_rv_ = 0;                           // guarded by mu_
  std::vector<std::weak_ptr<Stream>> streams_;         // guarded by mu_
  struct Failure {
    Verb verb;
    std::string type_key;
    absl::Status status;
    int remaining;
  };
  std::vector<Failure> failures_;                      // guarded by mu_
  FailureHook hook_;                                   // guarded by mu_
  std::map<std::string, bool> status_subresource_;     // guarded by mu_
  bool cascade_delete_ = false;                        // guarded by mu_
  int64_t default_page_size_ = 0;                      // guarded by mu_
  std::vector<Action> actions_;                        // guarded by mu_

  // Stalls have their own lock: a blocked request must not hold mu_.
  mutable std::mutex stall_mu_;
  std::condition_variable stall_cv_;
  std::set<std::pair<Verb, std::string>> stalls_;  // (verb, type key); guarded by stall_mu_
  std::vector<Action> stalled_;                    // blocked right now; guarded by stall_mu_
  uint64_t stall_epoch_ = 0;  // bumped by unstall(); guarded by stall_mu_
};

}  // namespace mcop::kube
