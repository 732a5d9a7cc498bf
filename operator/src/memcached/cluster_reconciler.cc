// ClusterReconciler: see cluster_reconciler.h. One reconcile is one Pass: read the world from the
// caches, decide (spec, drain step, membership, endpoints, conditions), record the decision in
// status, then make the children match. Only children this cluster controls are ever written:
// an object of the same name that it does not control (another cluster's ConfigMap, an
// application's Service, an orphaned StatefulSet) is a conflict, reported in status, and
// nothing is written. The order is what makes a restart at any point safe:
// status (drain progress, member baselines, the version about to be published) is written
// before the ConfigMap, and the StatefulSet is only lowered once status says the drain is
// decided and the live ConfigMap no longer lists an outgoing pod.
#include "memcached/cluster_reconciler.h"

#include <algorithm>
#include <set>
#include <utility>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <spdlog/spdlog.h>

#include "memcached/children.h"
#include "memcached/cluster_spec.h"
#include "util/logging.h"
#include "memcached/cluster_status.h"
#include "memcached/endpoints_config.h"
#include "memcached/labels.h"
#include "memcached/member_flusher.h"
#include "memcached/membership.h"
#include "memcached/stale_copy_sweeper.h"
#include "memcached/subset.h"
#include "memcached/metrics.h"
#include "util/time.h"

namespace mcop::memcached {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kApplyAttempts = 3;
// A sweep in progress is looked at again after as long as it has run so far, within these
// bounds: a small cache's sweep is recorded within moments, a big one's costs a pass a second.
constexpr milliseconds kSweepPollMin{50};
constexpr milliseconds kSweepPollMax{1000};
// A cluster whose children collide with objects it does not control looks again this often:
// objects without our labels are not in the caches, so their removal wakes nobody.
constexpr milliseconds kChildConflictRecheck{30000};

constexpr char kReasonApplyFailed[] = "ApplyFailed";

// A status write lost to a concurrent writer (or to our own stale cache): the workqueue retries
// with its per-key exponential backoff, so a conflict storm cannot become a hot loop.
absl::Status statusConflict(const std::string& key) {
  return absl::AbortedError(absl::StrCat("status of ", key, " changed meanwhile; deciding again"));
}

struct PendingEvent {
  kube::EventSeverity severity;
  std::string reason;
  std::string message;
};

// The controller ownerReference of `obj`, if any.
const Json* controllerOf(const Json& obj) {
  const Json* refs = findPath(obj, {"metadata", "ownerReferences"});
  if (!refs || !refs->is_array()) return nullptr;
  for (const auto& r : refs->as_array()) {
    if (boolAt(r, {"controller"}).value_or(false)) return &r;
  }
  return nullptr;
}

bool controlledBy(const Json& obj, const std::string& uid) {
  const Json* ref = controllerOf(obj);
  return ref && stringAt(*ref, {"uid"}) == uid;
}

// The existing objects that share a name with this cluster's children.
struct Children {
  std::optional<Json> headless;
  std::optional<Json> client;
  std::optional<Json> pdb;
  std::optional<Json> config_map;
  std::optional<Json> stateful_set;
  // Children whose name is taken by an object this cluster does not control.
  std::vector<std::string> conflicts;
  std::string conflict_reason;  // "ConfigMapConflict", ... (the first one)
};

void keepShorter(std::optional<milliseconds>& requeue, milliseconds after) {
  if (after < milliseconds(1)) after = milliseconds(1);
  if (!requeue || after < *requeue) requeue = after;
}

}  // namespace

class ClusterReconciler::Pass {
 public:
  Pass(ClusterReconciler& r, Json cluster)
      : r_(r),
        cluster_(std::move(cluster)),
        ref_(clusterRefOf(cluster_)),
        key_(absl::StrCat(ref_.ns, "/", ref_.name)),
        now_(r.clock_.now()),
        now_text_(util::formatRfc3339(now_)),
        now_precise_(util::formatRfc3339Micro(now_)) {}

  absl::StatusOr<controller::Result> run();
  // True when the error run() returned is already reported in status and events.
  bool reported() const { return reported_; }

 private:
  // Reads.
  void observePods();
  absl::StatusOr<Children> observeChildren();
  absl::Status observeChild(const kube::ResourceType& type, const kube::ObjectStore& store,
                            const std::string& name, const std::string& fix,
                            std::optional<Json>& out, Children& children);
  void observeLoweringGuard(const std::optional<Json>& cached_config_map);
  // Writes.
  absl::Status apply(const kube::ResourceType& type, const Json& desired, const Json* live);
  absl::StatusOr<bool> writeStatus();  // false: lost a conflict, requeue
  absl::Status act(const Children& children, const EndpointsContent& content);
  // Degraded=True with this reason and message (and the phase); the Warning event only when
  // status did not already say exactly that, so a retried failure is one event, not many.
  void setDegraded(const std::string& reason, const std::string& message);
  // Reports a conflict or a failed child write in status and (once per distinct failure) in
  // events, and returns what run() returns.
  absl::StatusOr<controller::Result> reportConflicts(const Children& children);
  absl::Status reportWriteFailure(absl::Status failure);
  // Decisions.
  void planDrain();
  void evaluateDrain();
  void sweepStaleCopies();
  void settleSweep();
  int64_t ringSize() const;
  void planMembership();
  // carry_write_failure: keep an ApplyFailed condition of this generation until the acts of
  // this pass succeed (so a failing write does not flip Degraded on every retry).
  void planConditions(bool carry_write_failure);
  absl::Status ensureStatefulSet();
  absl::Status ensurePodDisruptionBudget(const std::optional<Json>& live);
  void event(kube::EventSeverity severity, std::string reason, std::string message) {
    events_.push_back({severity, std::move(reason), std::move(message)});
  }
  void flushEvents() {
    for (const auto& e : events_) r_.events_.record(cluster_, e.severity, e.reason, e.message);
    events_.clear();
  }
  // Paused and invalid clusters: status is the only write.
  absl::StatusOr<controller::Result> statusOnly(bool plan_conditions);

  ClusterReconciler& r_;
  Json cluster_;
  ClusterRef ref_;
  std::string key_;
  std::chrono::system_clock::time_point now_;
  std::string now_text_;     // conditions: metav1.Time, whole seconds
  std::string now_precise_;  // drain clock: microseconds, so a 4 s timeout is never 3.1 s

  ClusterSpec spec_;
  ClusterStatus old_status_;
  ClusterStatus status_;
  std::optional<Json> sts_;
  int64_t current_ = 0;  // StatefulSet replicas: "current", whatever the spec says
  int64_t decided_ = 0;  // StatefulSet replicas this pass applies
  std::map<int64_t, PodView> pods_;

  // Drain evaluation results (for messages and conditions).
  std::string drain_message_;
  std::vector<std::string> measure_failures_;
  std::vector<std::string> joined_;
  // Lowering the StatefulSet waits: the live ConfigMap still lists an outgoing pod.
  bool lowering_blocked_ = false;
  bool reported_ = false;

  EndpointsDecision endpoints_;
  std::vector<PendingEvent> events_;
  std::optional<milliseconds> requeue_;
};

ClusterReconciler::ClusterReconciler(kube::ApiClientPtr api, ClusterStores stores,
                                     kube::EventRecorder& events, const util::Clock& clock,
                                     ConnectionCounterPtr connections,
                                     StaleCopySweeperPtr sweeper, MemberFlusherPtr flusher,
                                     ClusterReconcilerOptions options)
    : api_(std::move(api)),
      stores_(stores),
      events_(events),
      clock_(clock),
      connections_(std::move(connections)),
      flusher_(std::move(flusher)),
      options_(std::move(options)),
      sweeps_(std::make_unique<SweepRunner>(std::move(sweeper), clock, options_.sweeps)) {}

ClusterReconciler::~ClusterReconciler() = default;

void ClusterReconciler::stopSweeps() { sweeps_->stop(); }

absl::StatusOr<controller::Result> ClusterReconciler::reconcile(
    const controller::Request& request) {
  auto cluster = stores_.clusters->get(request.ns, request.name);
  if (!cluster) {
    // Deleted: the children carry ownerReferences, so the garbage collector removes them.
    spdlog::debug("cluster gone cluster={}", request.key());
    forgetCluster(request.key());
    sweeps_->drop(request.key(), "the cluster is deleted");
    return controller::Result{};
  }
  if (const Json* ts = findPath(*cluster, {"metadata", "deletionTimestamp"});
      ts && !ts->is_null()) {
    sweeps_->drop(request.key(), "the cluster is being deleted");
    return controller::Result{};
  }
  const Json involved = *cluster;
  Pass pass(*this, std::move(*cluster));
  auto result = pass.run();
  if (!result.ok()) {
    if (!kube::IsConflict(result.status()) && !pass.reported()) {
      events_.record(involved, kube::EventSeverity::kWarning, "ReconcileError",
                     std::string(result.status().message()));
    }
  }
  return result;
}

absl::StatusOr<controller::Result> ClusterReconciler::Pass::run() {
  old_status_ = parseClusterStatus(cluster_);
  status_ = old_status_;
  ParsedSpec parsed = parseClusterSpec(cluster_);
  spec_ = parsed.spec;
  observePods();

  if (!parsed.errors.empty()) {
    const std::string message = absl::StrJoin(parsed.errors, "; ");
    setDegraded("InvalidSpec", message);
    setCondition(status_.conditions,
                 {kConditionProgressing, "False", "InvalidSpec",
                  "fix the spec; nothing changes until then", ref_.generation, ""},
                 now_text_);
    spdlog::warn("invalid spec cluster={} errors={}", key_, util::quoted(message));
    // No requeue: the next spec change wakes us; retrying an invalid spec cannot help.
    return statusOnly(false);
  }
  status_.config_map_name = spec_.config_map_name;

  if (spec_.paused) {
    setCondition(status_.conditions,
                 {kConditionProgressing, "False", "Paused",
                  "spec.paused is true: observing only, no changes are made", ref_.generation,
                  ""},
                 now_text_);
    status_.phase = "Paused";
    return statusOnly(true);
  }

  // Observe.
  auto children = observeChildren();
  if (!children.ok()) return children.status();
  if (!children->conflicts.empty()) return reportConflicts(*children);
  sts_ = children->stateful_set;
  current_ = sts_ ? intAt(*sts_, {"spec", "replicas"}).value_or(1) : 0;
  decided_ = current_;

  // Plan.
  planDrain();
  settleSweep();
  planMembership();
  EndpointsContent content;
  content.cluster = key_;
  content.hashing = spec_.hashing;
  content.servers = publishedServers(status_.members, spec_.port);
  endpoints_ = decideEndpoints(content, children->config_map ? &*children->config_map : nullptr,
                               old_status_.config_version);
  status_.config_version = endpoints_.version;
  observeLoweringGuard(children->config_map);
  planConditions(true);

  // Record the decision before acting on it.
  auto written = writeStatus();
  if (!written.ok()) return written.status();
  if (!*written) return statusConflict(key_);

  // Act.
  if (auto s = act(*children, content); !s.ok()) return reportWriteFailure(s);
  flushEvents();
  const Condition* degraded = findCondition(status_.conditions, kConditionDegraded);
  if (degraded && degraded->reason == kReasonApplyFailed) {
    // Every write of this pass went through: the failure reported earlier is over.
    planConditions(false);
    auto cleared = writeStatus();
    if (!cleared.ok()) return cleared.status();
    if (!*cleared) return statusConflict(key_);
  }

  if (!measure_failures_.empty()) keepShorter(requeue_, r_.options_.max_poll_interval);
  controller::Result result;
  result.requeue_after = requeue_;
  spdlog::debug("reconciled cluster={} replicas={} version={} requeue_ms={}", key_, decided_,
                status_.config_version, requeue_ ? requeue_->count() : -1);
  return result;
}

// Every child name this cluster would write, checked against what exists. The caches hold only
// objects carrying our labels, so a name missing from them is looked up on the API server: an
// unlabelled object of that name (kube-root-ca.crt, an application's Service) must be found
// before anything is applied over it. In steady state every child is cached: no extra reads.
absl::StatusOr<Children> ClusterReconciler::Pass::observeChildren() {
  Children c;
  const std::string rename =
      "delete or rename that object, or give this MemcachedCluster another name";
  const auto& stores = r_.stores_;
  struct Child {
    const kube::ResourceType& type;
    const kube::ObjectStore& store;
    std::string name;
    std::string fix;
    std::optional<Json>& out;
  };
  std::vector<Child> children = {
      {kube::resources::kService, *stores.services, ref_.name, rename, c.headless},
      {kube::resources::kService, *stores.services, clientServiceName(ref_.name), rename,
       c.client},
      {kube::resources::kConfigMap, *stores.config_maps, spec_.config_map_name,
       "delete or rename that object, or recreate this MemcachedCluster with another "
       "spec.clientConfig.configMapName",
       c.config_map},
      {kube::resources::kStatefulSet, *stores.stateful_sets, ref_.name, rename, c.stateful_set},
  };
  if (spec_.pdb_enabled) {
    children.push_back({kube::resources::kPodDisruptionBudget, *stores.pod_disruption_budgets,
                        ref_.name, rename + " (or set spec.podDisruptionBudget.enabled: false)",
                        c.pdb});
  } else {
    // Only ever deleted, and only when controlled: the cache (our labels) is enough.
    c.pdb = stores.pod_disruption_budgets->get(ref_.ns, ref_.name);
  }
  for (const auto& child : children) {
    if (auto s = observeChild(child.type, child.store, child.name, child.fix, child.out, c);
        !s.ok()) {
      return s;
    }
  }
  return c;
}

absl::Status ClusterReconciler::Pass::observeChild(const kube::ResourceType& type,
                                                   const kube::ObjectStore& store,
                                                   const std::string& name,
                                                   const std::string& fix,
                                                   std::optional<Json>& out, Children& children) {
  out = store.get(ref_.ns, name);
  if (!out) {
    auto live = r_.api_->get(type, ref_.ns, name);
    if (live.ok()) {
      out = std::move(*live);
    } else if (!kube::IsNotFound(live.status())) {
      return absl::Status(live.status().code(), absl::StrCat("get ", type.kind, " ", ref_.ns,
                                                             "/", name, ": ",
                                                             live.status().message()));
    }
  }
  if (!out || controlledBy(*out, ref_.uid)) return absl::OkStatus();
  std::string holder = "no controller";
  if (const Json* ref = controllerOf(*out)) {
    holder = absl::StrCat("controlled by ", stringAt(*ref, {"kind"}), " ",
                          stringAt(*ref, {"name"}), " uid ", stringAt(*ref, {"uid"}));
  }
  children.conflicts.push_back(absl::StrCat(type.kind, " ", ref_.ns, "/", name,
                                            " already exists and is not controlled by this "
                                            "MemcachedCluster (", holder, "): ", fix));
  if (children.conflict_reason.empty()) children.conflict_reason = type.kind + "Conflict";
  out.reset();
  return absl::OkStatus();
}

absl::StatusOr<controller::Result> ClusterReconciler::Pass::reportConflicts(
    const Children& children) {
  const std::string message = absl::StrCat(
      absl::StrJoin(children.conflicts, "; "),
      ". Nothing is written until this is resolved; the operator never takes over or deletes "
      "an object it did not create");
  const Condition* prev = findCondition(old_status_.conditions, kConditionDegraded);
  if (!prev || prev->reason != children.conflict_reason || prev->message != message) {
    spdlog::warn("child name conflict cluster={} detail={}", key_, util::quoted(message));
  }
  setDegraded(children.conflict_reason, message);
  setCondition(status_.conditions,
               {kConditionProgressing, "False", children.conflict_reason,
                "blocked by an object this MemcachedCluster does not control", ref_.generation,
                ""},
               now_text_);
  auto result = statusOnly(false);
  if (!result.ok()) return result;
  return controller::Result{kChildConflictRecheck};
}

absl::Status ClusterReconciler::Pass::reportWriteFailure(absl::Status failure) {
  const std::string message(failure.message());
  setDegraded(kReasonApplyFailed, message);
  spdlog::warn("child write failed cluster={} error={}", key_, util::quoted(message));
  auto written = writeStatus();
  // Reported where users look (events only with the status that records them); the workqueue
  // retries with its exponential backoff.
  reported_ = written.ok() && *written;
  if (reported_) flushEvents();
  return failure;
}

void ClusterReconciler::Pass::setDegraded(const std::string& reason,
                                          const std::string& message) {
  const Condition* prev = findCondition(old_status_.conditions, kConditionDegraded);
  if (!prev || prev->status != "True" || prev->reason != reason || prev->message != message) {
    event(kube::EventSeverity::kWarning, reason, message);
  }
  setCondition(status_.conditions,
               {kConditionDegraded, "True", reason, message, ref_.generation, ""}, now_text_);
  status_.phase = "Degraded";
}

absl::Status ClusterReconciler::Pass::act(const Children& children,
                                          const EndpointsContent& content) {
  const Json headless = buildHeadlessService(ref_, spec_, r_.options_.field_manager);
  if (auto s = apply(kube::resources::kService, headless,
                     children.headless ? &*children.headless : nullptr);
      !s.ok()) {
    return s;
  }
  const Json client = buildClientService(ref_, spec_, r_.options_.field_manager);
  if (auto s = apply(kube::resources::kService, client,
                     children.client ? &*children.client : nullptr);
      !s.ok()) {
    return s;
  }
  if (auto s = ensurePodDisruptionBudget(children.pdb); !s.ok()) return s;

  const Json cm = buildEndpointsConfigMap(ref_, spec_.config_map_name, endpoints_.data,
                                          r_.options_.field_manager);
  const auto& live_cm = children.config_map;
  if (!live_cm || !isSubset(cm, *live_cm)) {
    if (auto s = apply(kube::resources::kConfigMap, cm, nullptr); !s.ok()) return s;
    if (endpoints_.changed) {
      spdlog::info("published endpoints cluster={} version={} servers={}", key_,
                   endpoints_.version, content.servers.size());
      std::vector<std::string> names;
      for (const auto& s : content.servers) names.push_back(s.name);
      event(kube::EventSeverity::kNormal, "EndpointsPublished",
            absl::StrCat("published version ", endpoints_.version, " of ",
                         spec_.config_map_name, ": [", absl::StrJoin(names, ", "), "]"));
    }
  }
  publishedConfigVersion().set({key_}, static_cast<double>(endpoints_.version));
  return ensureStatefulSet();
}

void ClusterReconciler::Pass::observePods() {
  pods_ = podsByOrdinal(ref_.name, r_.stores_.pods->list(ref_.ns, selectorLabels(ref_.name)));
  int64_t replicas = 0;
  int64_t ready = 0;
  for (const auto& [ordinal, pod] : pods_) {
    if (pod.terminating) continue;
    ++replicas;
    if (pod.ready) ++ready;
  }
  status_.observed_generation = ref_.generation;
  status_.replicas = replicas;
  status_.ready_replicas = ready;
  status_.selector = selectorString(selectorLabels(ref_.name));
}

absl::StatusOr<controller::Result> ClusterReconciler::Pass::statusOnly(bool plan_conditions) {
  // Members, drain and version stay as recorded (they describe the published ConfigMap, which
  // is not touched); Available still follows the pods, since a paused cluster is observed.
  if (plan_conditions) {
    planConditions(true);
    status_.phase = "Paused";
  }
  auto written = writeStatus();
  if (!written.ok()) return written.status();
  if (!*written) return statusConflict(key_);
  // Events describe what status now records: a decision lost to a conflict is made (and
  // reported) again by the next pass.
  flushEvents();
  return controller::Result{};
}

absl::Status ClusterReconciler::Pass::apply(const kube::ResourceType& type, const Json& desired,
                                            const Json* live) {
  if (live && isSubset(desired, *live)) return absl::OkStatus();
  const std::string name = stringAt(desired, {"metadata", "name"});
  kube::PatchOptions options;
  options.field_manager = r_.options_.field_manager;
  options.force = true;
  absl::Status last;
  for (int attempt = 0; attempt < kApplyAttempts; ++attempt) {
    auto result = r_.api_->patch(type, ref_.ns, name, kube::PatchType::kApply, desired, options);
    if (result.ok()) {
      spdlog::info("applied object cluster={} kind={} name={}", key_, type.kind, name);
      return absl::OkStatus();
    }
    last = result.status();
    // Apply carries no resourceVersion, so a 409 is a transient race (e.g. with the
    // garbage collector or a concurrent create): simply apply again.
    if (!kube::IsConflict(last)) break;
    spdlog::debug("apply conflict, retrying cluster={} kind={} name={} attempt={}", key_,
                  type.kind, name, attempt + 1);
  }
  return absl::Status(last.code(),
                      absl::StrCat("apply ", type.kind, " ", ref_.ns, "/", name, ": ",
                                   last.message()));
}

absl::StatusOr<bool> ClusterReconciler::Pass::writeStatus() {
  const Json desired = clusterStatusToJson(status_);
  if (jsonEqual(desired, clusterStatusToJson(old_status_))) return true;
  Json body = cluster_;
  body["status"] = desired;
  auto result = r_.api_->update(kube::resources::kMemcachedCluster, body, "status");
  if (!result.ok()) {
    if (kube::IsConflict(result.status())) {
      // Our cache is behind the server: decide again from fresh state rather than act on a
      // decision made from stale status.
      spdlog::debug("status conflict, requeue cluster={}", key_);
      return false;
    }
    if (kube::IsNotFound(result.status())) return false;
    return absl::Status(result.status().code(),
                        absl::StrCat("update status: ", result.status().message()));
  }
  spdlog::debug("wrote status cluster={} phase={} version={}", key_, status_.phase,
                status_.config_version);
  cluster_ = *result;
  old_status_ = status_;
  return true;
}

absl::Status ClusterReconciler::Pass::ensurePodDisruptionBudget(const std::optional<Json>& live) {
  if (spec_.pdb_enabled) {
    return apply(kube::resources::kPodDisruptionBudget,
                 buildPodDisruptionBudget(ref_, spec_, r_.options_.field_manager),
                 live ? &*live : nullptr);
  }
  if (!live || !controlledBy(*live, ref_.uid)) return absl::OkStatus();
  auto s = r_.api_->remove(kube::resources::kPodDisruptionBudget, ref_.ns, ref_.name, {});
  if (!s.ok() && !kube::IsNotFound(s)) return s;
  spdlog::info("deleted pod disruption budget cluster={}", key_);
  return absl::OkStatus();
}

// The drain state machine. Inputs: status.drain (persisted), the StatefulSet's replicas
// (current), spec.replicas (wanted), the pods. Steps:
//   none    -> start:   wanted < current; record {target, members, startedAt,
//                       staleCopiesSwept: false} in status; the published ring is left as it is.
//   start   -> swept:   (next passes) sweep the members that stay of copies they do not own under
//                       that still-published ring (sweepStaleCopies: run by the SweepRunner,
//                       looked at by each pass until done), record
//                       staleCopiesSwept: true, then publish the endpoints without the outgoing
//                       pods. A sweep that fails is reported and the drain goes on.
//   swept   -> waiting: the cached ConfigMap shows them gone; record publishedAt.
//   waiting -> decided: minSeconds after publishedAt, every outgoing pod's connections are at most
//                       threshold above its baseline (Drained), or timeoutSeconds passed
//                       (TimedOut); recorded in status.
//   decided -> lowered: StatefulSet replicas set to target (only if the live ConfigMap no
//                       longer lists an outgoing pod).
//   lowered -> none:    the outgoing pods are gone.
// While current > target, wanted >= current cancels the drain (the pods are still there with
// their data) and another wanted < current retargets it (a deeper target sweeps again, against
// the ring published at that time).
void ClusterReconciler::Pass::planDrain() {
  const int64_t wanted = spec_.replicas;
  auto& drain = status_.drain;
  if (!sts_) {
    drain.reset();
    decided_ = wanted;
    return;
  }
  auto outgoing = [&](int64_t from, int64_t to) {
    std::vector<std::string> names;
    for (int64_t i = from; i < to; ++i) names.push_back(podName(ref_.name, i));
    return names;
  };

  if (drain && current_ > drain->target_replicas) {
    if (wanted >= current_) {
      event(kube::EventSeverity::kNormal, "DrainCancelled",
            absl::StrCat("spec.replicas is ", wanted, " again: ",
                         absl::StrJoin(drain->members, ", "), " rejoin the endpoints"));
      spdlog::info("drain cancelled cluster={} replicas={}", key_, wanted);
      drain.reset();
    } else if (wanted != drain->target_replicas) {
      if (wanted < drain->target_replicas) {
        // More pods leave: the newly unpublished ones need the full minimum again, and the
        // members that stay need sweeping against the ring that still lists them.
        drain->published_at.clear();
        drain->stale_copies_swept = false;
      }
      drain->target_replicas = wanted;
      drain->members = outgoing(wanted, current_);
      drain->outcome.clear();
      event(kube::EventSeverity::kNormal, "DrainStarted",
            absl::StrCat("draining ", absl::StrJoin(drain->members, ", "),
                         " before scaling down to ", wanted));
      spdlog::info("drain retargeted cluster={} target={} members={}", key_, wanted,
                   absl::StrJoin(drain->members, ","));
      keepShorter(requeue_, r_.options_.max_poll_interval);
    } else {
      if (!drain->stale_copies_swept) sweepStaleCopies();
      if (drain->stale_copies_swept) evaluateDrain();  // else the sweep is still running
      if (!drain->outcome.empty()) decided_ = drain->target_replicas;
    }
  } else if (drain) {
    // The StatefulSet is already at (or below) the target: wait for the outgoing pods to go.
    bool gone = true;
    for (const auto& [ordinal, pod] : pods_) {
      if (ordinal >= drain->target_replicas) gone = false;
    }
    if (gone) {
      spdlog::info("drain finished cluster={} replicas={}", key_, current_);
      drain.reset();
    } else {
      keepShorter(requeue_, r_.options_.max_poll_interval);
    }
  }

  if (!drain) {
    if (wanted < current_) {
      drain = DrainStatus{wanted, outgoing(wanted, current_), now_precise_, "", "", false};
      event(kube::EventSeverity::kNormal, "ScalingDown",
            absl::StrCat("scaling down from ", current_, " to ", wanted,
                         " replicas: draining first"));
      event(kube::EventSeverity::kNormal, "DrainStarted",
            absl::StrCat("removing ", absl::StrJoin(drain->members, ", "),
                         " from the endpoints once the members that stay are swept of stale "
                         "copies; then waiting at least ", spec_.drain.min_seconds,
                         "s and for their client connections to close"));
      spdlog::info("drain started cluster={} target={} members={}", key_, wanted,
                   absl::StrJoin(drain->members, ","));
      drain_message_ = absl::StrCat("sweeping stale copies before publishing the endpoints "
                                    "without ", absl::StrJoin(drain->members, ", "));
      // The sweep runs in the next pass, once this record of it is in status.
      keepShorter(requeue_, milliseconds(1));
    } else if (wanted > current_) {
      decided_ = wanted;  // the ScalingUp event follows the StatefulSet write
    }
  }
}

void ClusterReconciler::Pass::evaluateDrain() {
  auto& drain = *status_.drain;
  if (!drain.outcome.empty()) return;  // decided earlier: only the lowering is left
  if (drain.published_at.empty()) {
    // The clock starts once the list without the outgoing pods is visibly published.
    auto live = r_.stores_.config_maps->get(ref_.ns, spec_.config_map_name);
    auto names = live ? publishedServerNames(*live) : std::nullopt;
    bool excluded = names.has_value();
    for (const auto& m : drain.members) {
      if (names && std::find(names->begin(), names->end(), m) != names->end()) excluded = false;
    }
    if (!excluded) {
      drain_message_ = absl::StrCat("publishing the endpoints without ",
                                    absl::StrJoin(drain.members, ", "));
      keepShorter(requeue_, r_.options_.max_poll_interval);
      return;
    }
    drain.published_at = now_precise_;
  }
  auto started = util::parseRfc3339(drain.published_at);
  if (!started) {
    // Unreadable time (hand-edited status): restart the clock rather than cut it short.
    drain.published_at = now_precise_;
    started = now_;
  }
  const auto elapsed = std::chrono::duration_cast<milliseconds>(now_ - *started);
  const milliseconds min_wait = seconds(spec_.drain.min_seconds);
  const milliseconds timeout = seconds(spec_.drain.timeout_seconds);
  // Messages name absolute times, never a countdown: a message that changes on every poll
  // would rewrite status on every poll.
  if (elapsed < min_wait) {
    drain_message_ = absl::StrCat("waiting until ", util::formatRfc3339(*started + min_wait),
                                  " for clients to load the new endpoints before removing ",
                                  absl::StrJoin(drain.members, ", "));
    keepShorter(requeue_, std::min(min_wait - elapsed, r_.options_.max_poll_interval));
    return;
  }
  std::map<std::string, const Member*> members;
  for (const auto& m : old_status_.members) members[m.name] = &m;
  std::vector<std::string> busy;        // with counts, for the log and the timeout event
  std::vector<std::string> busy_names;  // for the status message, which must stay stable
  for (const auto& name : drain.members) {
    auto ordinal = ordinalOf(ref_.name, name);
    auto pod = ordinal ? pods_.find(*ordinal) : pods_.end();
    // A pod that is gone, not Ready or has no address serves no clients.
    if (pod == pods_.end() || !pod->second.ready || pod->second.ip.empty()) continue;
    auto member = members.find(name);
    // Never published (no baseline): no client ever had it in its ring.
    if (member == members.end() || !member->second->baseline_connections) continue;
    auto conns = r_.connections_->currentConnections(pod->second.ip, spec_.port);
    if (!conns.ok()) {
      busy.push_back(absl::StrCat(name, " (stats unavailable: ", conns.status().message(), ")"));
      busy_names.push_back(name);
      continue;
    }
    const int64_t clients = *conns - *member->second->baseline_connections;
    spdlog::debug("drain connections cluster={} pod={} clients={} threshold={}", key_, name,
                  clients, spec_.drain.connection_threshold);
    if (clients > spec_.drain.connection_threshold) {
      busy.push_back(absl::StrCat(name, " (", clients, " client connections)"));
      busy_names.push_back(name);
    }
  }
  const int64_t took = elapsed.count() / 1000;
  const double took_seconds = static_cast<double>(elapsed.count()) / 1000.0;
  if (busy.empty()) {
    drainDuration().observe({key_}, took_seconds);
    drain.outcome = kDrainOutcomeDrained;
    event(kube::EventSeverity::kNormal, "DrainCompleted",
          absl::StrCat(absl::StrJoin(drain.members, ", "), " drained after ", took,
                       "s; scaling down to ", drain.target_replicas));
    spdlog::info("drain completed cluster={} members={} took_s={}", key_,
                 absl::StrJoin(drain.members, ","), took);
    return;
  }
  if (elapsed >= timeout) {
    drain.outcome = kDrainOutcomeTimedOut;
    drainDuration().observe({key_}, took_seconds);
    drainTimeouts().inc({key_});
    event(kube::EventSeverity::kWarning, "DrainTimeout",
          absl::StrCat("drain timed out after ", spec_.drain.timeout_seconds,
                       "s with clients still connected to ", absl::StrJoin(busy, ", "),
                       "; scaling down to ", drain.target_replicas, " anyway"));
    spdlog::warn("drain timed out cluster={} busy={}", key_, util::quoted(absl::StrJoin(busy, ", ")));
    return;
  }
  drain_message_ = absl::StrCat("waiting for clients to leave ", absl::StrJoin(busy_names, ", "),
                                " (at most ", spec_.drain.connection_threshold,
                                " client connections each; scaling down anyway at ",
                                util::formatRfc3339(*started + timeout), ")");
  spdlog::debug("drain waiting cluster={} busy={}", key_, util::quoted(absl::StrJoin(busy, ", ")));
  keepShorter(requeue_, std::min(timeout - elapsed, r_.options_.max_poll_interval));
}

// Members [0, ringSize()) are in the ring this pass publishes. Until a drain's sweep is done the
// ring stays as last published (the outgoing members with it): the sweep routes by that ring,
// and the clients must keep using it until the members that stay hold no stale copies.
int64_t ClusterReconciler::Pass::ringSize() const {
  if (!status_.drain) return decided_;
  int64_t size = std::min(decided_, status_.drain->target_replicas);
  if (!status_.drain->stale_copies_swept) {
    int64_t published = 0;
    for (const auto& m : old_status_.members) {
      if (isPublished(m.state)) published = std::max(published, m.ordinal + 1);
    }
    size = std::max(size, std::min(published, decided_));
  }
  return size;
}

// The sweep of one scale-down: on every member that stays in the list, delete the items whose
// key the currently published ring (the live ConfigMap's endpoints.json, parsed by
// libclientconfig, so the hashing and host strings are exactly the clients') routes to another
// server. No up-to-date client can reach those items, so deleting them costs no hits; left in
// place, the ones whose keys move back when the outgoing members leave would be served as
// stale hits. The sweep runs in the SweepRunner, off this worker: the first pass starts it, the
// next ones look at its progress (requeueing soon while it runs), and the pass that finds it
// done records staleCopiesSwept with the events. A result whose record is lost (a 409 on the
// status write) stays in the runner for the next pass; settleSweep() drops it once recorded.
// Failures are reported and the drain goes on: memcached is a cache, and a wedged scale-down is
// worse than a stale value.
void ClusterReconciler::Pass::sweepStaleCopies() {
  auto& drain = *status_.drain;
  // The live object, not the cache: a list published moments ago (a scale-up just before this
  // scale-down) may not have reached the informer yet, and its keys are the ones that move back.
  std::optional<Json> live;
  if (auto got = r_.api_->get(kube::resources::kConfigMap, ref_.ns, spec_.config_map_name);
      got.ok()) {
    live = std::move(*got);
  } else if (!kube::IsNotFound(got.status())) {
    live = r_.stores_.config_maps->get(ref_.ns, spec_.config_map_name);
  }
  if (!live) {  // nothing published: no client routes by any ring yet
    drain.stale_copies_swept = true;
    return;
  }
  auto ring = clientconfig::parseSnapshot(stringAt(*live, {"data", kEndpointsJsonKey}));
  if (!ring.ok()) {
    const std::string reason =
        absl::StrCat("cannot read the published endpoints: ", ring.error().toString());
    staleCopySweepFailures().inc({key_});
    event(kube::EventSeverity::kWarning, "StaleCopySweepFailed",
          absl::StrCat(reason, "; continuing the drain of ", absl::StrJoin(drain.members, ", ")));
    spdlog::warn("stale copy sweep failed cluster={} error={}", key_, util::quoted(reason));
    drain.stale_copies_swept = true;
    return;
  }
  const auto& servers = (*ring)->servers();
  const std::set<std::string> leaving(drain.members.begin(), drain.members.end());
  std::vector<size_t> staying;
  bool moves = false;
  for (size_t i = 0; i < servers.size(); ++i) {
    if (leaving.count(servers[i].name)) {
      moves = true;
    } else {
      staying.push_back(i);
    }
  }
  // No outgoing member in the published ring (never published, or already unpublished): no key
  // moves back, so there is nothing that could turn stale.
  if (!moves || staying.empty()) {
    drain.stale_copies_swept = true;
    return;
  }

  // Keyed by the ring read just now: if the published list changed since the sweep started, it
  // routed by a ring clients no longer use, and start() replaces it.
  const SweepId id{ref_.uid, drain.target_replicas, drain.members, (*ring)->version()};
  auto progress = r_.sweeps_->progress(key_, id, r_.options_.sweep_wait);
  if (!progress && r_.sweeps_->start(key_, id, *ring, staying)) {
    progress = r_.sweeps_->progress(key_, id, r_.options_.sweep_wait);
  }
  if (!progress || !progress->done) {
    const size_t total = progress ? progress->total() : staying.size();
    const size_t finished = progress ? progress->finished.size() : 0;
    std::vector<std::string> pending;
    if (progress) {
      pending = progress->pending;
    } else {
      for (size_t index : staying) pending.push_back(servers[index].name);
    }
    drain_message_ = absl::StrCat("sweeping stale copies from ", absl::StrJoin(pending, ", "),
                                  " (", finished, " of ", total,
                                  " done) before publishing the endpoints without ",
                                  absl::StrJoin(drain.members, ", "));
    const milliseconds elapsed = progress ? progress->elapsed : milliseconds(0);
    const milliseconds longest =
        std::max(kSweepPollMin, std::min(kSweepPollMax, r_.options_.max_poll_interval));
    keepShorter(requeue_, std::clamp(elapsed, kSweepPollMin, longest));
    return;
  }

  drain.stale_copies_swept = true;
  SweepCounts total;
  std::vector<std::string> swept;
  std::vector<std::string> failed;
  for (const auto& member : progress->finished) {
    if (!member.counts.ok()) {
      failed.push_back(absl::StrCat(member.name, " (", member.counts.status().message(), ")"));
      continue;
    }
    total.scanned += member.counts->scanned;
    total.removed += member.counts->removed;
    swept.push_back(member.name);
  }
  if (!swept.empty()) {
    event(kube::EventSeverity::kNormal, "StaleCopiesRemoved",
          absl::StrCat("removed ", total.removed, " of ", total.scanned, " items from ",
                       absl::StrJoin(swept, ", "), " (keys that version ", (*ring)->version(),
                       " of the endpoints routes elsewhere) before publishing the endpoints "
                       "without ", absl::StrJoin(drain.members, ", ")));
  }
  if (!failed.empty()) {
    event(kube::EventSeverity::kWarning, "StaleCopySweepFailed",
          absl::StrCat("could not sweep ", absl::StrJoin(failed, ", "),
                       ": keys moving back to it may be served stale; continuing the drain of ",
                       absl::StrJoin(drain.members, ", ")));
  }
  spdlog::info("stale copy sweep done cluster={} swept={} failed={} scanned={} removed={} took_ms={}",
               key_, swept.size(), failed.size(), total.scanned, total.removed,
               progress->elapsed.count());
}

// The runner holds at most one sweep per cluster. Once no pass will record it, it is dropped
// (and stopped if still running): the drain it served was cancelled, retargeted or is over, the
// cluster was re-created, or its result is already recorded in the status read back from the
// API server (not only in this pass's copy, whose write may yet lose a conflict).
void ClusterReconciler::Pass::settleSweep() {
  const auto held = r_.sweeps_->held(key_);
  if (!held) return;
  const auto& drain = status_.drain;
  const bool current = drain && held->uid == ref_.uid &&
                       held->target_replicas == drain->target_replicas &&
                       held->leaving == drain->members;
  const auto& recorded = old_status_.drain;
  const bool done = current && recorded && recorded->stale_copies_swept &&
                    recorded->target_replicas == drain->target_replicas &&
                    recorded->members == drain->members;
  if (current && !done) return;
  r_.sweeps_->drop(key_, !drain     ? "the drain is over or was cancelled"
                         : !current ? "the drain changed"
                                    : "its result is recorded in status");
}

void ClusterReconciler::Pass::planMembership() {
  MembershipInput in;
  in.cluster = ref_.name;
  in.ns = ref_.ns;
  in.domain = r_.options_.cluster_domain;
  in.ring_size = ringSize();
  if (status_.drain) {
    for (const auto& name : status_.drain->members) {
      auto ordinal = ordinalOf(ref_.name, name);
      if (ordinal && *ordinal >= in.ring_size) in.draining.push_back(name);
    }
  }
  in.previous = old_status_.members;
  in.pods = pods_;
  MemberProbes probes;
  probes.measure = [&](const PodView& pod) {
    return r_.connections_->currentConnections(pod.ip, spec_.port);
  };
  probes.flush = [&](const PodView& pod) {
    auto flushed = r_.flusher_->flushAll(pod.ip, spec_.port);
    if (flushed.ok()) {
      spdlog::info("emptied returning member cluster={} pod={}", key_, pod.name);
      event(kube::EventSeverity::kNormal, "MemberFlushed",
            absl::StrCat(pod.name, " left the endpoints and is coming back: emptied it "
                                   "(flush_all) so it cannot serve values changed meanwhile"));
    }
    return flushed;
  };
  auto result = planMembers(in, probes);
  status_.members = std::move(result.members);
  joined_ = std::move(result.joined);
  measure_failures_ = std::move(result.measure_failures);
  for (const auto& name : joined_) spdlog::info("member joined cluster={} pod={}", key_, name);
  for (const auto& f : measure_failures_) {
    spdlog::warn("baseline measurement failed cluster={} detail={}", key_, util::quoted(f));
  }
}

void ClusterReconciler::Pass::planConditions(bool carry_write_failure) {
  const int64_t gen = ref_.generation;
  std::vector<std::string> unready, joining, failing;
  size_t published = 0;
  for (const auto& m : status_.members) {
    if (isPublished(m.state)) ++published;
    if (m.state == MemberState::kUnready) unready.push_back(m.name);
    if (m.state == MemberState::kJoining) joining.push_back(m.name);
  }
  for (const auto& [ordinal, pod] : pods_) {
    if (!pod.failure.empty()) failing.push_back(absl::StrCat(pod.name, " (", pod.failure, ")"));
  }

  // Available: minimum availability, as a Deployment reports it. As many published members may
  // be unready as the disruption budget allows (a node drain or one restarting pod is routine,
  // and must not flip GitOps health), as long as at least one answers.
  Condition available{kConditionAvailable, "False", "", "", gen, ""};
  const size_t allowed_unready = static_cast<size_t>(std::max<int64_t>(0, spec_.pdb_max_unavailable));
  if (published == 0 && spec_.replicas == 0) {
    available.status = "True";
    available.reason = "ScaledToZero";
    available.message = "spec.replicas is 0";
  } else if (published == 0) {
    available.reason = "NoMembers";
    available.message = "no member is Ready yet";
  } else if (unready.size() >= published || unready.size() > allowed_unready) {
    available.reason = "MembersUnready";
    available.message = absl::StrCat("published but not Ready: ", absl::StrJoin(unready, ", "),
                                     " (at most ", allowed_unready,
                                     " may be, spec.podDisruptionBudget.maxUnavailable)");
  } else if (!unready.empty()) {
    available.status = "True";
    available.reason = "MinimumMembersReady";
    available.message = absl::StrCat(published - unready.size(), " of ", published,
                                     " published members Ready; not Ready: ",
                                     absl::StrJoin(unready, ", "));
  } else {
    available.status = "True";
    available.reason = "MembersReady";
    available.message = absl::StrCat(published, " of ", published, " published members Ready");
  }
  setCondition(status_.conditions, available, now_text_);

  if (spec_.paused) return;

  Condition progressing{kConditionProgressing, "True", "", "", gen, ""};
  const auto& drain = status_.drain;
  if (drain && drain->outcome.empty()) {
    progressing.reason = "Draining";
    progressing.message = drain_message_.empty()
                              ? absl::StrCat("draining ", absl::StrJoin(drain->members, ", "))
                              : drain_message_;
  } else if (drain) {
    progressing.reason = "ScalingDown";
    progressing.message =
        lowering_blocked_
            ? "waiting for the published endpoints to drop the outgoing pods"
            : absl::StrCat("waiting for ", absl::StrJoin(drain->members, ", "), " to terminate");
  } else if (!joining.empty()) {
    progressing.reason = decided_ > current_ ? "ScalingUp" : "WaitingForPods";
    progressing.message = absl::StrCat("waiting for ", absl::StrJoin(joining, ", "),
                                       " to become Ready and join the endpoints");
  } else if (sts_ && stringAt(*sts_, {"status", "updateRevision"}) !=
                         stringAt(*sts_, {"status", "currentRevision"})) {
    progressing.reason = "RollingUpdate";
    progressing.message = "the StatefulSet is rolling out a new pod template";
  } else {
    progressing.status = "False";
    progressing.reason = "Stable";
    progressing.message = absl::StrCat(status_.members.size(), " members, endpoints version ",
                                       status_.config_version);
  }
  setCondition(status_.conditions, progressing, now_text_);

  Condition degraded{kConditionDegraded, "False", "AsExpected", "", gen, ""};
  const Condition* prev = findCondition(old_status_.conditions, kConditionDegraded);
  if (!failing.empty()) {
    degraded.status = "True";
    degraded.reason = "PodsFailing";
    degraded.message = absl::StrCat("pods cannot run: ", absl::StrJoin(failing, ", "));
  } else if (drain && drain->outcome == kDrainOutcomeTimedOut) {
    degraded.status = "True";
    degraded.reason = "DrainTimeout";
    degraded.message = absl::StrCat("scaled down after spec.drain.timeoutSeconds (",
                                    spec_.drain.timeout_seconds,
                                    "s) with clients still connected to ",
                                    absl::StrJoin(drain->members, ", "));
  } else if (prev && prev->status == "True" && prev->reason == "DrainTimeout" &&
             prev->observed_generation == gen) {
    // Keep reporting the forced scale-down until the spec changes again.
    degraded = *prev;
  } else if (carry_write_failure && prev && prev->status == "True" &&
             prev->reason == kReasonApplyFailed && prev->observed_generation == gen) {
    degraded = *prev;
  } else if (!measure_failures_.empty()) {
    degraded.status = "True";
    degraded.reason = "StatsUnavailable";
    degraded.message = absl::StrCat("cannot read memcached stats: ",
                                    absl::StrJoin(measure_failures_, "; "));
  }
  setCondition(status_.conditions, degraded, now_text_);

  if (degraded.status == "True") {
    status_.phase = "Degraded";
  } else if (progressing.status == "True") {
    status_.phase = "Progressing";
  } else if (available.status == "True") {
    status_.phase = "Available";
  } else {
    status_.phase = "Unavailable";
  }
}

// Last line of defence before lowering replicas: never delete a pod that the ConfigMap still
// lists once this pass has published. When this pass publishes (the cache differs from the
// decided content) that is the decided content, written before the StatefulSet (a failed
// publish stops the pass); otherwise it is the live object, read from the API server, not the
// cache. Decided before the conditions are planned, so Progressing says why the StatefulSet is
// not lowered yet.
void ClusterReconciler::Pass::observeLoweringGuard(const std::optional<Json>& cached_config_map) {
  if (decided_ >= current_) return;
  const Json decided = buildEndpointsConfigMap(ref_, spec_.config_map_name, endpoints_.data,
                                               r_.options_.field_manager);
  absl::StatusOr<Json> cm = decided;
  if (cached_config_map && isSubset(decided, *cached_config_map)) {
    cm = r_.api_->get(kube::resources::kConfigMap, ref_.ns, spec_.config_map_name);
  }
  if (!cm.ok()) {
    // Nothing published means no client lists anything; any other failure blocks.
    lowering_blocked_ = !kube::IsNotFound(cm.status());
  } else if (auto listed = publishedServerNames(*cm); !listed) {
    lowering_blocked_ = true;
  } else {
    for (int64_t i = decided_; i < current_; ++i) {
      const std::string name = podName(ref_.name, i);
      if (std::find(listed->begin(), listed->end(), name) != listed->end()) {
        lowering_blocked_ = true;
      }
    }
  }
  if (lowering_blocked_) {
    spdlog::warn("not scaling down yet: the live endpoints may still list outgoing pods "
                 "cluster={} target={}", key_, decided_);
    keepShorter(requeue_, r_.options_.max_poll_interval);
  }
}

absl::Status ClusterReconciler::Pass::ensureStatefulSet() {
  const int64_t replicas = lowering_blocked_ ? current_ : decided_;
  const Json desired = buildStatefulSet(ref_, spec_, replicas, r_.options_.field_manager);
  if (sts_ && isSubset(desired, *sts_)) return absl::OkStatus();
  if (auto s = apply(kube::resources::kStatefulSet, desired, nullptr); !s.ok()) return s;
  if (!sts_ && replicas > 0) {
    event(kube::EventSeverity::kNormal, "ScalingUp",
          absl::StrCat("created StatefulSet ", ref_.name, " with ", replicas, " replicas"));
  } else if (sts_ && replicas > current_) {
    event(kube::EventSeverity::kNormal, "ScalingUp",
          absl::StrCat("StatefulSet ", ref_.name, " scaled from ", current_, " to ", replicas,
                       " replicas"));
    spdlog::info("scaled up cluster={} from={} to={}", key_, current_, replicas);
  } else if (sts_ && replicas < current_) {
    event(kube::EventSeverity::kNormal, "ScalingDown",
          absl::StrCat("StatefulSet ", ref_.name, " scaled from ", current_, " to ", replicas,
                       " replicas"));
    spdlog::info("scaled down cluster={} from={} to={}", key_, current_, replicas);
    keepShorter(requeue_, r_.options_.max_poll_interval);
  }
  return absl::OkStatus();
}

}  // namespace mcop::memcached
