// ClusterReconciler: see cluster_reconciler.h. One reconcile is one Pass, a straight line:
//   observe  observeCluster: the cluster, its spec, its recorded status, its pods and children.
//   plan     the drain step (planDrain, with the sweep's progress and the outgoing members'
//            connection counts read in between), the replicas (decideReplicas), the members
//            (planMembers, after probing the members about to join), the endpoints
//            (decideEndpoints), the lowering guard and the conditions.
//   record   the status write: the decision is in status before anything acts on it.
//   act      the Services, the PodDisruptionBudget, the endpoints ConfigMap, then the StatefulSet.
// Only children this cluster controls are ever written: an object of the same name that it does
// not control (another cluster's ConfigMap, an application's Service, an orphaned StatefulSet)
// is a conflict, reported in status, and nothing is written. The order is what makes a restart
// at any point safe: status (drain progress, member baselines, the version about to be
// published) is written before the ConfigMap; a member coming back from a drain is emptied before
// it is recorded as published; and the StatefulSet is only lowered once status says the drain is
// decided and the live ConfigMap no longer lists an outgoing pod.
#include "memcached/cluster_reconciler.h"

#include <algorithm>
#include <utility>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <spdlog/spdlog.h>

#include "memcached/cluster_spec.h"
#include "memcached/cluster_status.h"
#include "memcached/conditions.h"
#include "memcached/desired_objects.h"
#include "memcached/drain.h"
#include "memcached/drift.h"
#include "memcached/endpoints_config.h"
#include "memcached/labels.h"
#include "memcached/membership.h"
#include "memcached/network_policy.h"
#include "memcached/planned_event.h"
#include "memcached/rollout.h"
#include "memcached/service_monitor.h"
#include "memcached/transition.h"
#include "util/failpoint.h"
#include "util/logging.h"
#include "memcached/metrics.h"
#include "util/time.h"

namespace mcop::memcached {

namespace {

using std::chrono::milliseconds;

constexpr int kApplyAttempts = 3;
// A cluster whose children collide with objects it does not control looks again this often:
// others' objects are cached only as stubs with neither our owner nor our labels, so their
// removal maps to no cluster and wakes nobody.
constexpr milliseconds kChildConflictRecheck{30000};

// A status write lost to a concurrent writer (or to our own stale cache): the workqueue retries
// with its per-key exponential backoff, so a conflict storm cannot become a hot loop.
absl::Status statusConflict(const std::string& key) {
  return absl::AbortedError(absl::StrCat("status of ", key, " changed meanwhile; deciding again"));
}

// A new version of the endpoints was applied: the failpoints of that publish, the transition
// phase's own (when a Warm transition's phase is what changed) after the general one.
void publishedFailpoints(const std::string& phase) {
  util::failpoint(util::Failpoint::kEndpointsPublished);
  if (phase == kPhasePrepare) util::failpoint(util::Failpoint::kTransitionPreparePublished);
  if (phase == kPhaseCopy) util::failpoint(util::Failpoint::kTransitionCopyPublished);
  if (phase == kPhaseSwitch) util::failpoint(util::Failpoint::kTransitionSwitchPublished);
  if (phase == kPhaseFinalize) util::failpoint(util::Failpoint::kTransitionFinalizePublished);
}

// The ConfigMap a version is decided against. Status is written before the ConfigMap, so the
// version just before the recorded one in the ConfigMap means "recorded, not published yet",
// and decideEndpoints publishes the recorded version next. But the cache can lag behind the
// ConfigMap's last write (its event not in yet, or its watch backing off after an API outage)
// while status already has that write's version: deciding on the cache would then publish
// other content under a version clients already have. So in that case only, the ConfigMap
// itself is read. Likewise when the cache has no ConfigMap at all while status records a
// version: the child caches hold every ConfigMap, so that is a deletion or a creation whose
// event is not in yet, and deciding on nothing would publish the next version over the one
// just created.
absl::StatusOr<std::optional<Json>> configMapForVersion(kube::ApiClient& api,
                                                        const ClusterSnapshot& snap) {
  const auto& cached = snap.children.config_map;
  const int64_t recorded = snap.recorded.config_version;
  const bool may_lag = cached ? recorded > 1 && publishedVersion(*cached) == recorded - 1
                              : recorded >= 1;
  if (!may_lag) return cached;
  auto live = api.get(kube::resources::kConfigMap, snap.ref.ns, snap.parsed.spec.config_map_name);
  if (kube::IsNotFound(live.status())) return std::optional<Json>();
  if (!live.ok()) return live.status();
  return std::optional<Json>(std::move(*live));
}

// Status fields that only mirror what was observed.
ClusterStatus observedStatus(const ClusterSnapshot& snap) {
  ClusterStatus status = snap.recorded;
  int64_t replicas = 0;
  int64_t ready = 0;
  for (const auto& [ordinal, pod] : snap.pods) {
    if (pod.terminating) continue;
    ++replicas;
    if (pod.ready) ++ready;
  }
  status.observed_generation = snap.ref.generation;
  status.replicas = replicas;
  status.ready_replicas = ready;
  status.selector = selectorString(selectorLabels(snap.ref.name));
  return status;
}

}  // namespace

// What one pass decided: what status records, what the acts write, and what is reported.
struct ClusterReconciler::PassPlan {
  ClusterStatus status;
  int64_t current = 0;   // the StatefulSet's replicas as observed
  int64_t replicas = 0;  // the StatefulSet's replicas after this pass
  EndpointsContent content;
  EndpointsDecision endpoints;
  ConditionsInput conditions;  // kept to clear a reported write failure once the acts succeed
  std::vector<PlannedEvent> events;
  std::optional<milliseconds> requeue;
  std::string delete_pod;  // a Warm rolling update restarts this member's pod ("" none)
  // A referenced Secret is invalid: the StatefulSet is not written and no pod is deleted, since
  // a memcached started now would load the bad files (the replicas stay where they are).
  bool hold_pods = false;
};

// One reconcile pass. It holds only what is fixed for the pass (the reconciler, the context and
// the time it started); data moves between the steps as parameters and return values.
class ClusterReconciler::Pass {
 public:
  Pass(ClusterReconciler& r, const controller::Context& ctx)
      : r_(r),
        ctx_(ctx),
        now_(r.clock_.now()),
        now_text_(util::formatRfc3339(now_)),
        now_precise_(util::formatRfc3339Micro(now_)) {}

  // `reported`: the error returned is already reported in status and events.
  absl::StatusOr<controller::Result> run(Json cluster, bool& reported);

 private:
  // Plan (with the reads its decisions ask for).
  absl::StatusOr<PassPlan> plan(const ClusterSnapshot& snap);
  // What the Secrets' state adds to the plan: the hold, its events and the recheck.
  void planSecrets(const ClusterSnapshot& snap, PassPlan& plan);
  // status.tls: the members are asked to reload a rotated certificate until all serve it.
  absl::Status planCertificateStep(const ClusterSnapshot& snap, PassPlan& plan);
  MemberAccess access(const ClusterSnapshot& snap) const {
    return MemberAccess{snap.ref.name, snap.ref.ns, r_.options_.cluster_domain,
                        static_cast<int>(snap.parsed.spec.port), security_};
  }
  absl::StatusOr<DrainStep> planDrainStep(const ClusterSnapshot& snap);
  absl::Status evaluateDrainStep(const ClusterSnapshot& snap, DrainStep& step);
  void settleSweep(const ClusterSnapshot& snap, const std::optional<DrainStatus>& drain);
  TransitionStep planTransitionStep(const ClusterSnapshot& snap,
                                    const std::vector<PublishedServer>& desired);
  void observeTransitionWork(const ClusterSnapshot& snap, const TransitionInput& in,
                             TransitionStep& step);
  RolloutStep planRolloutStep(const ClusterSnapshot& snap,
                              const std::optional<DrainStatus>& drain);
  absl::StatusOr<MembershipResult> planMembership(const ClusterSnapshot& snap,
                                                  const std::optional<DrainStatus>& drain,
                                                  int64_t replicas,
                                                  const std::set<std::string>& excluded);
  bool guardLowering(const ClusterSnapshot& snap, const PassPlan& plan);
  ConditionsInput conditionsInput(const ClusterSnapshot& snap, const PassPlan& plan,
                                  const DrainStep& drain, const MembershipResult& members,
                                  bool lowering_blocked) const;
  // Record.
  void decisionFailpoints(const ClusterSnapshot& snap, const PassPlan& plan,
                          const Json& written) const;
  absl::StatusOr<Json> record(const Json& cluster, const ClusterStatus& recorded,
                              const ClusterStatus& status) const;
  absl::StatusOr<controller::Result> recordOnly(const ClusterSnapshot& snap);
  absl::StatusOr<controller::Result> recordStatusOnly(const ClusterSnapshot& snap,
                                                      const ClusterStatus& status,
                                                      const std::vector<PlannedEvent>& events);
  absl::StatusOr<controller::Result> recordConflicts(const ClusterSnapshot& snap);
  absl::StatusOr<controller::Result> finish(const Json& cluster, PassPlan& plan);
  absl::Status reportWriteFailure(const Json& cluster, const PassPlan& plan,
                                  std::vector<PlannedEvent> events, absl::Status failure,
                                  bool& reported);
  // Degraded=True with this reason and message (and the phase); the Warning event only when
  // `previous` did not already say exactly that, so a retried failure is one event, not many.
  void setDegraded(ClusterStatus& status, const std::vector<Condition>& previous,
                   const std::string& reason, const std::string& message, int64_t generation,
                   std::vector<PlannedEvent>& events) const;
  void sendEvents(const Json& cluster, const std::vector<PlannedEvent>& events) const;
  // Act.
  absl::Status act(const ClusterSnapshot& snap, const PassPlan& plan,
                   std::vector<PlannedEvent>& events, std::optional<milliseconds>& requeue);
  absl::Status publish(const ClusterSnapshot& snap, const PassPlan& plan,
                       std::vector<PlannedEvent>& events);
  absl::Status ensureStatefulSet(const ClusterSnapshot& snap, const PassPlan& plan,
                                 std::vector<PlannedEvent>& events,
                                 std::optional<milliseconds>& requeue);
  absl::Status ensurePodDisruptionBudget(const ClusterSnapshot& snap);
  absl::Status ensureNetworkPolicyAndServiceMonitor(const ClusterSnapshot& snap);
  absl::Status ensureOptional(const ClusterRef& ref, const kube::ResourceType& type,
                              const std::optional<Json>& desired, const std::optional<Json>& live);
  absl::Status restartMember(const ClusterSnapshot& snap, const PassPlan& plan,
                             std::vector<PlannedEvent>& events);
  absl::Status apply(const ClusterRef& ref, const kube::ResourceType& type, const Json& desired,
                     const Json* live);

  ClusterReconciler& r_;
  const controller::Context& ctx_;
  const std::chrono::system_clock::time_point now_;
  const std::string now_text_;     // conditions: metav1.Time, whole seconds
  const std::string now_precise_;  // drain clock: microseconds, so a 4 s timeout is never 3.1 s
  ClusterSecrets secrets_;         // the material this pass uses, and what is wrong (run())
  MemberSecurityPtr security_;     // the connections to the members, built from secrets_
};

ClusterReconciler::ClusterReconciler(kube::ApiClientPtr api, ClusterStores stores,
                                     kube::EventRecorder& events, const util::Clock& clock,
                                     ConnectionCounterPtr connections,
                                     StaleCopySweeperPtr sweeper, MemberFlusherPtr flusher,
                                     CertificateReloaderPtr certificates,
                                     ClusterReconcilerOptions options)
    : api_(std::move(api)),
      stores_(stores),
      events_(events),
      clock_(clock),
      connections_(std::move(connections)),
      flusher_(std::move(flusher)),
      certificates_(std::move(certificates)),
      options_(std::move(options)),
      sweeps_(std::make_unique<SweepRunner>(sweeper, clock, options_.sweeps)),
      transitions_(std::make_unique<TransitionRunner>(std::move(sweeper), clock)) {}

ClusterReconciler::~ClusterReconciler() = default;

void ClusterReconciler::stopSweeps() {
  sweeps_->stop();
  transitions_->stop();
}

absl::StatusOr<controller::Result> ClusterReconciler::reconcile(
    const controller::Request& request, const controller::Context& ctx) {
  auto cluster = stores_.clusters->get(request.ns, request.name);
  if (!cluster) {
    // Deleted: the children carry ownerReferences, so the garbage collector removes them.
    spdlog::debug("cluster gone cluster={}", request.key());
    forgetCluster(request.key());
    secrets_.forget(request.key());
    sweeps_->drop(request.key(), "the cluster is deleted");
    transitions_->drop(request.key(), "the cluster is deleted");
    return controller::Result{};
  }
  if (const Json* ts = findPath(*cluster, {"metadata", "deletionTimestamp"});
      ts && !ts->is_null()) {
    sweeps_->drop(request.key(), "the cluster is being deleted");
    transitions_->drop(request.key(), "the cluster is being deleted");
    return controller::Result{};
  }
  const Json involved = *cluster;
  bool reported = false;
  auto result = Pass(*this, ctx).run(std::move(*cluster), reported);
  // A pass cut short by shutdown is no error: the next leader decides again.
  if (!result.ok() && !kube::IsConflict(result.status()) && !absl::IsCancelled(result.status()) &&
      !reported) {
    events_.record(involved, kube::EventSeverity::kWarning, "ReconcileError",
                   std::string(result.status().message()));
  }
  return result;
}

// The whole pass: observe, plan, record, act.
absl::StatusOr<controller::Result> ClusterReconciler::Pass::run(Json cluster, bool& reported) {
  // Observe.
  ClusterSnapshot snap = observeCluster(r_.stores_, std::move(cluster));
  // An invalid or paused spec, or a child name taken by another object: status is the only write.
  if (!snap.parsed.errors.empty() || snap.parsed.spec.paused) return recordOnly(snap);
  if (!snap.children.conflicts.empty()) return recordConflicts(snap);
  // The Secrets the spec references, before anything is built from them (the pod template
  // carries the auth file's hash).
  secrets_ = observeSecrets(*r_.api_, r_.secrets_, snap, now_);
  auto security = buildMemberSecurity(secrets_);
  if (!security.ok()) return security.status();
  security_ = std::move(*security);

  // Plan.
  auto plan = this->plan(snap);
  if (!plan.ok()) return plan.status();

  // Record the decision before acting on it.
  auto written = record(snap.cluster, snap.recorded, plan->status);
  if (!written.ok()) return written.status();
  decisionFailpoints(snap, *plan, *written);

  // Act, then report: events describe what status records.
  std::vector<PlannedEvent> events = plan->events;
  if (auto s = act(snap, *plan, events, plan->requeue); !s.ok()) {
    return reportWriteFailure(*written, *plan, std::move(events), s, reported);
  }
  sendEvents(*written, events);
  return finish(*written, *plan);
}

// The failpoints of a decision just recorded (only when status was written: a pass that
// changed nothing recorded no decision).
void ClusterReconciler::Pass::decisionFailpoints(const ClusterSnapshot& snap, const PassPlan& plan,
                                                 const Json& written) const {
  if (!util::failpointsArmed()) return;
  if (stringAt(written, {"metadata", "resourceVersion"}) ==
      stringAt(snap.cluster, {"metadata", "resourceVersion"})) {
    return;
  }
  const auto& before = snap.recorded.drain;
  const auto& after = plan.status.drain;
  if (after && (!before || before->target_replicas != after->target_replicas)) {
    util::failpoint(util::Failpoint::kDrainStarted);
  }
  util::failpoint(util::Failpoint::kDecisionRecorded);
}

// The decisions, in the order they depend on each other, with the reads they ask for as steps of
// their own: the drain (the sweep's progress, the outgoing members' connections), the replicas,
// the members (the probes of the members about to join), the endpoints, the lowering guard (the
// live endpoints) and the conditions.
absl::StatusOr<ClusterReconciler::PassPlan> ClusterReconciler::Pass::plan(
    const ClusterSnapshot& snap) {
  const ClusterSpec& spec = snap.parsed.spec;
  auto drain = planDrainStep(snap);
  if (!drain.ok()) return drain.status();
  settleSweep(snap, drain->drain);

  PassPlan plan;
  plan.status = observedStatus(snap);
  plan.status.config_map_name = spec.config_map_name;
  plan.status.drain = drain->drain;
  plan.current = snap.current_replicas;
  plan.replicas = decideReplicas(snap.children.stateful_set.has_value(), spec.replicas,
                                 plan.current, drain->drain);
  plan.hold_pods = secrets_.hold();
  if (plan.hold_pods && snap.children.stateful_set) plan.replicas = plan.current;
  const int64_t decided = plan.replicas;

  // While held, no rolling update starts; one under way goes on but deletes no pod.
  RolloutStep rollout;
  if (!plan.hold_pods || snap.recorded.rollout) rollout = planRolloutStep(snap, drain->drain);
  plan.status.rollout = rollout.rollout;
  if (!plan.hold_pods) plan.delete_pod = rollout.delete_pod;
  auto members = planMembership(snap, drain->drain, decided, rollout.excluded);
  if (!members.ok()) return members.status();
  plan.status.members = members->members;
  TransitionStep transition =
      planTransitionStep(snap, publishedServers(plan.status.members, spec.port));
  plan.status.transition = transition.transition;
  plan.status.ring_established =
      snap.recorded.ring_established ||
      static_cast<int64_t>(transition.servers.size()) >= spec.replicas;
  plan.content = EndpointsContent{snap.key,           spec.hashing,    transition.servers,
                                  transition.phase,   transition.next, transition.previous,
                                  serverSecurity(spec)};
  auto live_cm = configMapForVersion(*r_.api_, snap);
  if (!live_cm.ok()) return live_cm.status();
  plan.endpoints = decideEndpoints(plan.content, *live_cm ? &**live_cm : nullptr,
                                   snap.recorded.config_version);
  plan.status.config_version = plan.endpoints.version;

  const bool blocked = guardLowering(snap, plan);
  if (blocked) plan.replicas = plan.current;

  plan.events = drain->events;
  plan.events.insert(plan.events.end(), members->events.begin(), members->events.end());
  plan.events.insert(plan.events.end(), transition.events.begin(), transition.events.end());
  plan.events.insert(plan.events.end(), rollout.events.begin(), rollout.events.end());
  plan.requeue = drain->requeue;
  if (transition.requeue) keepShorter(plan.requeue, *transition.requeue);
  if (rollout.requeue) keepShorter(plan.requeue, *rollout.requeue);
  if (blocked || !members->measure_failures.empty()) {
    keepShorter(plan.requeue, r_.options_.max_poll_interval);
  }
  plan.conditions = conditionsInput(snap, plan, *drain, *members, blocked);
  plan.conditions.transition_message = transition.message;
  plan.conditions.rollout_message = rollout.message;
  plan.conditions.scaling_up = decided > plan.current;
  planSecrets(snap, plan);
  if (auto s = planCertificateStep(snap, plan); !s.ok()) return s;
  const ConditionsDecision conditions = decideConditions(plan.conditions);
  applyConditions(conditions, now_text_, plan.status.conditions);
  plan.status.phase = conditions.phase;
  return plan;
}

// One Warning event per distinct problem, not per pass: a problem already in the recorded
// Degraded message was reported. A cluster referencing Secrets is looked at again every
// secret_recheck, since nothing wakes it when a Secret changes.
void ClusterReconciler::Pass::planSecrets(const ClusterSnapshot& snap, PassPlan& plan) {
  const ClusterSpec& spec = snap.parsed.spec;
  if (spec.tls.enabled || spec.auth.enabled) {
    keepShorter(plan.requeue, r_.options_.secret_recheck);
  }
  plan.conditions.secret_problems = secrets_.problems;
  const Condition* prev = findCondition(snap.recorded.conditions, kConditionDegraded);
  for (const auto& p : secrets_.problems) {
    if (prev && prev->status == "True" && prev->message.find(p.message) != std::string::npos) {
      continue;
    }
    spdlog::warn("invalid secret cluster={} reason={} detail={}", snap.key, p.reason,
                 util::quoted(p.message));
    plan.events.push_back({kube::EventSeverity::kWarning, p.reason,
                           absl::StrCat(p.message, "; holding pod starts, restarts and "
                                                   "deletions until it is fixed")});
  }
}

// status.tls and the reloads of a rotated certificate. Never while the TLS Secret is invalid:
// refresh_certs would load its bad files (status keeps what was recorded).
absl::Status ClusterReconciler::Pass::planCertificateStep(const ClusterSnapshot& snap,
                                                          PassPlan& plan) {
  const ClusterSpec& spec = snap.parsed.spec;
  if (!spec.tls.enabled) {
    plan.status.tls.reset();
    return absl::OkStatus();
  }
  const bool invalid = std::any_of(secrets_.problems.begin(), secrets_.problems.end(),
                                   [](const SecretProblem& p) {
                                     return p.reason == kReasonTlsSecretInvalid;
                                   });
  if (invalid || !secrets_.tls) return absl::OkStatus();  // status.tls as recorded
  CertificateInput in;
  in.key = snap.key;
  in.tls = &*secrets_.tls;
  in.recorded = snap.recorded.tls;
  in.now = now_;
  in.recheck = r_.options_.certificate_recheck;
  std::vector<MemberEndpoint> members;
  for (const auto& m : plan.status.members) {
    if (m.state != MemberState::kActive || m.address.empty()) continue;
    in.members.push_back(m.name);
    members.push_back(
        MemberEndpoint{m.name, m.address, static_cast<int>(spec.port), m.host, security_});
  }
  CertificateChecks checks;
  if (certificatesNeedCheck(in)) {
    auto checked = checkCertificates(ctx_, *r_.certificates_, members, in.tls->server.sha256);
    if (!checked.ok()) return checked.status();
    checks = std::move(*checked);
  }
  CertificateStep step = planCertificates(in, checks);
  plan.status.tls = step.tls;
  plan.events.insert(plan.events.end(), step.events.begin(), step.events.end());
  if (step.requeue) keepShorter(plan.requeue, *step.requeue);
  plan.conditions.certificate_failures = step.failures;
  const Condition* prev = findCondition(snap.recorded.conditions, kConditionDegraded);
  for (const auto& f : step.failures) {
    if (prev && prev->status == "True" && prev->message.find(f) != std::string::npos) continue;
    spdlog::warn("certificate reload failed cluster={} detail={}", snap.key, util::quoted(f));
    plan.events.push_back({kube::EventSeverity::kWarning, kReasonCertificateReloadFailed,
                           absl::StrCat("refresh_certs failed on ", f,
                                        "; the member keeps serving its previous certificate")});
  }
  return absl::OkStatus();
}

// The drain step, with what it needs to see in between: the sweep's progress, then (once swept
// and past the minimum) the outgoing members' connection counts.
absl::StatusOr<DrainStep> ClusterReconciler::Pass::planDrainStep(const ClusterSnapshot& snap) {
  const ClusterSpec& spec = snap.parsed.spec;
  DrainInput in{snap.key, snap.ref.name, snap.children.stateful_set.has_value(),
                snap.current_replicas, spec.replicas, snap.recorded.drain, snap.pods,
                spec.drain.min_seconds, spec.transition.mode == TransitionMode::kCold,
                now_precise_, r_.options_.max_poll_interval};
  DrainStep step = planDrain(in);
  if (step.next == DrainNext::kSweep) {
    const SweepObservation sweep = observeSweep(ctx_, *r_.api_, r_.stores_, *r_.sweeps_, snap,
                                                *step.drain, r_.options_.sweep_wait, security_);
    applySweep(step, sweep, snap.key, r_.options_.max_poll_interval);
  }
  if (step.next == DrainNext::kEvaluate) {
    if (auto s = evaluateDrainStep(snap, step); !s.ok()) return s;
  }
  return step;
}

absl::Status ClusterReconciler::Pass::evaluateDrainStep(const ClusterSnapshot& snap,
                                                        DrainStep& step) {
  const ClusterSpec& spec = snap.parsed.spec;
  const auto& cached = snap.children.cached_config_map;
  DrainEvaluation eval;
  eval.key = snap.key;
  eval.clock = drainClock(*step.drain, cached ? publishedServerNames(*cached) : std::nullopt,
                          now_, now_precise_, spec.drain.min_seconds);
  if (eval.clock.measuring) {
    eval.probes = drainConnectionProbes(*step.drain, snap.ref.name, snap.recorded.members,
                                        snap.pods);
    auto counts = measureConnections(ctx_, *r_.connections_, eval.probes, access(snap));
    if (!counts.ok()) return counts.status();
    eval.counts = std::move(*counts);
  }
  eval.settings = spec.drain;
  eval.now = now_;
  eval.max_poll_interval = r_.options_.max_poll_interval;
  evaluateDrain(step, eval);
  if (step.decided_after_seconds) {
    drainDuration().observe({snap.key}, *step.decided_after_seconds);
    if (step.drain->outcome == kDrainOutcomeTimedOut) drainTimeouts().inc({snap.key});
  }
  return absl::OkStatus();
}

// The runner holds at most one sweep per cluster. Once no pass will record it, it is dropped
// (and stopped if still running): the drain it served was cancelled, retargeted or is over, the
// cluster was re-created, or its result is already recorded in the status read back from the
// API server (not only in this pass's plan, whose write may yet lose a conflict).
void ClusterReconciler::Pass::settleSweep(const ClusterSnapshot& snap,
                                          const std::optional<DrainStatus>& drain) {
  const auto held = r_.sweeps_->held(snap.key);
  if (!held) return;
  const bool current = drain && held->uid == snap.ref.uid &&
                       held->target_replicas == drain->target_replicas &&
                       held->leaving == drain->members;
  const auto& recorded = snap.recorded.drain;
  const bool done = current && recorded && recorded->stale_copies_swept &&
                    recorded->target_replicas == drain->target_replicas &&
                    recorded->members == drain->members;
  if (current && !done) return;
  r_.sweeps_->drop(snap.key, !drain     ? "the drain is over or was cancelled"
                             : !current ? "the drain changed"
                                        : "its result is recorded in status");
}

// The Warm transition: started, moved on or finished from status.transition, with the work of
// its phase (copy, clean) observed in the TransitionRunner in between.
TransitionStep ClusterReconciler::Pass::planTransitionStep(
    const ClusterSnapshot& snap, const std::vector<PublishedServer>& desired) {
  const ClusterSpec& spec = snap.parsed.spec;
  TransitionInput in;
  in.key = snap.key;
  in.settings = spec.transition;
  in.recorded = snap.recorded.transition;
  in.published = publishedServers(snap.recorded.members, spec.port);
  in.desired = desired;
  in.established = snap.recorded.ring_established;
  if (const auto& cached = snap.children.cached_config_map) {
    in.cached_version = publishedVersion(*cached);
    in.cached_phase = publishedPhase(*cached);
  }
  in.recorded_version = snap.recorded.config_version;
  in.now = now_;
  in.now_precise = now_precise_;
  in.max_poll_interval = r_.options_.max_poll_interval;
  TransitionStep step = planTransition(in);
  observeTransitionWork(snap, in, step);
  for (const auto& [phase, took] : step.finished_phases) {
    transitionPhaseDuration().observe({phase}, took);
  }
  return step;
}

// Starts or looks at the work of the step's phase, and drops work no pass will record any more.
void ClusterReconciler::Pass::observeTransitionWork(const ClusterSnapshot& snap,
                                                    const TransitionInput& in,
                                                    TransitionStep& step) {
  auto& runner = *r_.transitions_;
  std::optional<TransitionWorkId> id;
  if (step.work != TransitionWorkKind::kNone) id = transitionWorkId(snap.ref.uid, *step.transition);
  if (auto held = runner.held(snap.key); held && (!id || *held != *id)) {
    runner.drop(snap.key, "the transition moved on");
  }
  if (!id) return;
  auto progress = runner.progress(snap.key, *id);
  if (!progress && step.work == TransitionWorkKind::kCopy && step.transition->copy.empty()) {
    // The members that join may hold old values (a member back from a drain, one restarted
    // with data from before): emptied before anything is copied to them. Clients never read
    // them before the switch, so only copies (each re-checked) land there afterwards.
    for (const auto& s : step.transition->to) {
      if (std::any_of(step.transition->from.begin(), step.transition->from.end(),
                      [&](const PublishedServer& f) { return f.name == s.name; })) {
        continue;
      }
      if (auto flushed = r_.flusher_->flushAll(
              MemberEndpoint{s.name, s.address, static_cast<int>(s.port), s.host, security_});
          !flushed.ok()) {
        spdlog::warn("transition: cannot empty a joining member cluster={} pod={} error={}",
                     snap.key, s.name, util::quoted(std::string(flushed.message())));
        step.message = absl::StrCat("warm transition: cannot empty ", s.name,
                                    " before copying to it: ", flushed.message());
        keepShorter(step.requeue, r_.options_.max_poll_interval);
        return;
      }
    }
  }
  if (!progress) {
    auto work = transitionWork(step, snap.key, snap.parsed.spec.hashing, in.settings);
    if (work.ok()) work->copy.security = security_;  // the copy's and the clean's connections
    if (!work.ok()) {
      progress = TransitionWorkProgress{true, work.status(), {}, {}, {}};
    } else if (runner.start(snap.key, *id, std::move(*work))) {
      progress = runner.progress(snap.key, *id);
    }
  }
  if (!progress) return;  // stopping: the next leader starts it again
  const bool copy = step.work == TransitionWorkKind::kCopy ||
                    step.work == TransitionWorkKind::kBackfill;
  applyTransitionWork(step, in, *progress);
  if (copy && progress->done) {
    uint64_t copied = 0, bytes = 0;
    for (const auto& [name, p] : progress->copies) {
      copied += p.counts.copied;
      bytes += p.counts.bytes;
    }
    transitionItemsCopied().inc({snap.key}, static_cast<double>(copied));
    transitionBytesCopied().inc({snap.key}, static_cast<double>(bytes));
  }
}

// The members, after probing the Ready ones about to join: a member coming back from a drain is
// emptied here, before any status or ConfigMap can list it as published again.
// A Warm rolling update: which member is out of the ring, and whether its pod goes now.
RolloutStep ClusterReconciler::Pass::planRolloutStep(const ClusterSnapshot& snap,
                                                     const std::optional<DrainStatus>& drain) {
  RolloutInput in;
  in.key = snap.key;
  in.warm = warmRollout(snap.parsed.spec);
  if (const auto& sts = snap.children.stateful_set) {
    in.update_revision = stringAt(*sts, {"status", "updateRevision"});
  }
  in.replicas = snap.current_replicas;
  in.pods = snap.pods;
  in.recorded = snap.recorded.rollout;
  in.recorded_members = snap.recorded.members;
  in.drain = drain.has_value();
  in.transition = snap.recorded.transition.has_value();
  if (const auto& cached = snap.children.cached_config_map) {
    in.listed = publishedServerNames(*cached);
  }
  in.now_precise = now_precise_;
  in.max_poll_interval = r_.options_.max_poll_interval;
  return planRollout(in);
}

absl::StatusOr<MembershipResult> ClusterReconciler::Pass::planMembership(
    const ClusterSnapshot& snap, const std::optional<DrainStatus>& drain, int64_t replicas,
    const std::set<std::string>& excluded) {
  MembershipInput in;
  in.excluded = excluded;
  in.cluster = snap.ref.name;
  in.ns = snap.ref.ns;
  in.domain = r_.options_.cluster_domain;
  in.ring_size = ringSize(replicas, drain, snap.recorded.members);
  if (drain) {
    for (const auto& name : drain->members) {
      auto ordinal = ordinalOf(snap.ref.name, name);
      if (ordinal && *ordinal >= in.ring_size) in.draining.push_back(name);
    }
  }
  in.previous = snap.recorded.members;
  in.pods = snap.pods;
  auto probed =
      probeJoiners(ctx_, *r_.connections_, *r_.flusher_, joinProbes(in), access(snap), snap.key);
  if (!probed.ok()) return probed.status();
  MembershipResult result = planMembers(in, *probed);
  for (const auto& name : result.joined) {
    spdlog::info("member joined cluster={} pod={}", snap.key, name);
  }
  for (const auto& f : result.measure_failures) {
    spdlog::warn("baseline measurement failed cluster={} detail={}", snap.key, util::quoted(f));
  }
  return result;
}

// Last line of defence before lowering replicas: never delete a pod that the ConfigMap still
// lists once this pass has published. Decided before the conditions, so Progressing says why the
// StatefulSet is not lowered yet.
bool ClusterReconciler::Pass::guardLowering(const ClusterSnapshot& snap, const PassPlan& plan) {
  if (plan.replicas >= plan.current) return false;
  const std::string& name = snap.parsed.spec.config_map_name;
  const Json decided =
      buildEndpointsConfigMap(snap.ref, name, plan.endpoints.data, r_.options_.field_manager);
  const bool blocked = loweringBlocked(endpointsAfterPublish(*r_.api_, snap, name, decided),
                                       snap.ref.name, plan.replicas, plan.current);
  if (blocked) {
    spdlog::warn("not scaling down yet: the live endpoints may still list outgoing pods "
                 "cluster={} target={}", snap.key, plan.replicas);
  }
  return blocked;
}

ConditionsInput ClusterReconciler::Pass::conditionsInput(const ClusterSnapshot& snap,
                                                         const PassPlan& plan,
                                                         const DrainStep& drain,
                                                         const MembershipResult& members,
                                                         bool lowering_blocked) const {
  const ClusterSpec& spec = snap.parsed.spec;
  ConditionsInput in;
  in.generation = snap.ref.generation;
  in.spec_replicas = spec.replicas;
  in.pdb_max_unavailable = spec.pdb_max_unavailable;
  in.drain_timeout_seconds = spec.drain.timeout_seconds;
  in.paused = spec.paused;
  in.members = plan.status.members;
  in.pods = snap.pods;
  in.drain = plan.status.drain;
  in.drain_message = drain.message;
  in.lowering_blocked = lowering_blocked;
  if (const auto& sts = snap.children.stateful_set) {
    // An OnDelete StatefulSet (Warm rolling updates) never moves currentRevision forward, so
    // the rollout is over once every replica runs the update revision.
    in.rolling_update = stringAt(*sts, {"status", "updateRevision"}) !=
                            stringAt(*sts, {"status", "currentRevision"}) &&
                        intAt(*sts, {"status", "updatedReplicas"}).value_or(0) <
                            intAt(*sts, {"status", "replicas"}).value_or(0);
  }
  in.measure_failures = members.measure_failures;
  in.config_version = plan.status.config_version;
  if (const Condition* prev = findCondition(snap.recorded.conditions, kConditionDegraded)) {
    in.previous_degraded = *prev;
  }
  return in;
}

// Writes `status` through the status subresource unless it equals `recorded`. Returns the
// cluster as the API server now has it (`cluster` itself when nothing was written).
absl::StatusOr<Json> ClusterReconciler::Pass::record(const Json& cluster,
                                                     const ClusterStatus& recorded,
                                                     const ClusterStatus& status) const {
  const std::string key = absl::StrCat(stringAt(cluster, {"metadata", "namespace"}), "/",
                                       stringAt(cluster, {"metadata", "name"}));
  const Json desired = clusterStatusToJson(status);
  if (jsonEqual(desired, clusterStatusToJson(recorded))) return cluster;
  Json body = cluster;
  body["status"] = desired;
  util::failpoint(util::Failpoint::kStatusWriteBefore);
  auto result = r_.api_->update(kube::resources::kMemcachedCluster, body, "status");
  util::failpoint(util::Failpoint::kStatusWriteAfter);
  if (!result.ok()) {
    // A conflict: our cache is behind the server. Decide again from fresh state rather than act
    // on a decision made from stale status.
    if (kube::IsConflict(result.status()) || kube::IsNotFound(result.status())) {
      spdlog::debug("status conflict, requeue cluster={}", key);
      return statusConflict(key);
    }
    return absl::Status(result.status().code(),
                        absl::StrCat("update status: ", result.status().message()));
  }
  spdlog::debug("wrote status cluster={} phase={} version={}", key, status.phase,
                status.config_version);
  return *result;
}

// Invalid and paused specs: members, drain and version stay as recorded (they describe the
// published ConfigMap, which is not touched); a paused cluster's Available still follows the
// pods, since it is observed.
absl::StatusOr<controller::Result> ClusterReconciler::Pass::recordOnly(
    const ClusterSnapshot& snap) {
  ClusterStatus status = observedStatus(snap);
  std::vector<PlannedEvent> events;
  const int64_t gen = snap.ref.generation;
  if (!snap.parsed.errors.empty()) {
    const std::string message = absl::StrJoin(snap.parsed.errors, "; ");
    setDegraded(status, snap.recorded.conditions, "InvalidSpec", message, gen, events);
    setCondition(status.conditions,
                 {kConditionProgressing, "False", "InvalidSpec",
                  "fix the spec; nothing changes until then", gen, ""},
                 now_text_);
    spdlog::warn("invalid spec cluster={} errors={}", snap.key, util::quoted(message));
    // No requeue: the next spec change wakes us; retrying an invalid spec cannot help.
    return recordStatusOnly(snap, status, events);
  }
  const ClusterSpec& spec = snap.parsed.spec;
  status.config_map_name = spec.config_map_name;
  setCondition(status.conditions,
               {kConditionProgressing, "False", "Paused",
                "spec.paused is true: observing only, no changes are made", gen, ""},
               now_text_);
  ConditionsInput in;
  in.generation = gen;
  in.spec_replicas = spec.replicas;
  in.pdb_max_unavailable = spec.pdb_max_unavailable;
  in.paused = true;
  in.members = status.members;
  applyConditions(decideConditions(in), now_text_, status.conditions);
  status.phase = "Paused";
  return recordStatusOnly(snap, status, events);
}

absl::StatusOr<controller::Result> ClusterReconciler::Pass::recordStatusOnly(
    const ClusterSnapshot& snap, const ClusterStatus& status,
    const std::vector<PlannedEvent>& events) {
  auto written = record(snap.cluster, snap.recorded, status);
  if (!written.ok()) return written.status();
  // Events describe what status now records: a decision lost to a conflict is made (and
  // reported) again by the next pass.
  sendEvents(*written, events);
  return controller::Result{};
}

absl::StatusOr<controller::Result> ClusterReconciler::Pass::recordConflicts(
    const ClusterSnapshot& snap) {
  const auto& children = snap.children;
  const std::string message = absl::StrCat(
      absl::StrJoin(children.conflicts, "; "),
      ". Nothing is written until this is resolved; the operator never takes over or deletes "
      "an object it did not create");
  const Condition* prev = findCondition(snap.recorded.conditions, kConditionDegraded);
  if (!prev || prev->reason != children.conflict_reason || prev->message != message) {
    spdlog::warn("child name conflict cluster={} detail={}", snap.key, util::quoted(message));
  }
  ClusterStatus status = observedStatus(snap);
  status.config_map_name = snap.parsed.spec.config_map_name;
  std::vector<PlannedEvent> events;
  setDegraded(status, snap.recorded.conditions, children.conflict_reason, message,
              snap.ref.generation, events);
  setCondition(status.conditions,
               {kConditionProgressing, "False", children.conflict_reason,
                "blocked by an object this MemcachedCluster does not control",
                snap.ref.generation, ""},
               now_text_);
  auto result = recordStatusOnly(snap, status, events);
  if (!result.ok()) return result;
  return controller::Result{kChildConflictRecheck};
}

// After the acts: a write failure reported by an earlier pass is over (every write of this pass
// went through), so Degraded is decided again without it and recorded.
absl::StatusOr<controller::Result> ClusterReconciler::Pass::finish(const Json& cluster,
                                                                   PassPlan& plan) {
  const Condition* degraded = findCondition(plan.status.conditions, kConditionDegraded);
  if (degraded && degraded->reason == kReasonApplyFailed) {
    const ClusterStatus written = plan.status;
    plan.conditions.previous_degraded = *degraded;
    plan.conditions.carry_write_failure = false;
    const ConditionsDecision conditions = decideConditions(plan.conditions);
    applyConditions(conditions, now_text_, plan.status.conditions);
    plan.status.phase = conditions.phase;
    auto cleared = record(cluster, written, plan.status);
    if (!cleared.ok()) return cleared.status();
  }
  spdlog::debug("reconciled cluster={}/{} replicas={} version={} requeue_ms={}",
                stringAt(cluster, {"metadata", "namespace"}),
                stringAt(cluster, {"metadata", "name"}), plan.replicas,
                plan.status.config_version, plan.requeue ? plan.requeue->count() : -1);
  return controller::Result{plan.requeue};
}

absl::Status ClusterReconciler::Pass::reportWriteFailure(const Json& cluster,
                                                         const PassPlan& plan,
                                                         std::vector<PlannedEvent> events,
                                                         absl::Status failure, bool& reported) {
  const std::string message(failure.message());
  ClusterStatus status = plan.status;
  setDegraded(status, plan.status.conditions, kReasonApplyFailed, message,
              plan.conditions.generation, events);
  ConditionsInput blocked = plan.conditions;
  blocked.previous_degraded = *findCondition(status.conditions, kConditionDegraded);
  setCondition(status.conditions, progressingCondition(blocked), now_text_);
  spdlog::warn("child write failed cluster={}/{} error={}",
               stringAt(cluster, {"metadata", "namespace"}),
               stringAt(cluster, {"metadata", "name"}), util::quoted(message));
  auto written = record(cluster, plan.status, status);
  // Lost to a conflict (our cache was behind): the failure is not in status, so it is not
  // reported as an error either; the next pass, from fresh state, meets and records it.
  if (!written.ok() && kube::IsConflict(written.status())) return written.status();
  // Reported where users look (events only with the status that records them); the workqueue
  // retries with its exponential backoff.
  reported = written.ok();
  if (reported) sendEvents(*written, events);
  return failure;
}

void ClusterReconciler::Pass::setDegraded(ClusterStatus& status,
                                          const std::vector<Condition>& previous,
                                          const std::string& reason, const std::string& message,
                                          int64_t generation,
                                          std::vector<PlannedEvent>& events) const {
  const Condition* prev = findCondition(previous, kConditionDegraded);
  if (!prev || prev->status != "True" || prev->reason != reason || prev->message != message) {
    events.push_back({kube::EventSeverity::kWarning, reason, message});
  }
  setCondition(status.conditions, {kConditionDegraded, "True", reason, message, generation, ""},
               now_text_);
  status.phase = "Degraded";
}

void ClusterReconciler::Pass::sendEvents(const Json& cluster,
                                         const std::vector<PlannedEvent>& events) const {
  for (const auto& e : events) r_.events_.record(cluster, e.severity, e.reason, e.message);
}

// The children, in the order that keeps a restart safe: Services and the disruption budget, the
// endpoints ConfigMap, then the StatefulSet (scaled down only after the publish).
absl::Status ClusterReconciler::Pass::act(const ClusterSnapshot& snap, const PassPlan& plan,
                                          std::vector<PlannedEvent>& events,
                                          std::optional<milliseconds>& requeue) {
  const auto& children = snap.children;
  const ClusterSpec& spec = snap.parsed.spec;
  const std::string& manager = r_.options_.field_manager;
  if (auto s = apply(snap.ref, kube::resources::kService,
                     buildHeadlessService(snap.ref, spec, manager),
                     children.headless ? &*children.headless : nullptr);
      !s.ok()) {
    return s;
  }
  if (auto s = apply(snap.ref, kube::resources::kService,
                     buildClientService(snap.ref, spec, manager),
                     children.client ? &*children.client : nullptr);
      !s.ok()) {
    return s;
  }
  if (auto s = ensurePodDisruptionBudget(snap); !s.ok()) return s;
  if (auto s = ensureNetworkPolicyAndServiceMonitor(snap); !s.ok()) return s;
  if (auto s = publish(snap, plan, events); !s.ok()) return s;
  if (plan.hold_pods) return absl::OkStatus();  // see PassPlan::hold_pods
  if (auto s = ensureStatefulSet(snap, plan, events, requeue); !s.ok()) return s;
  return restartMember(snap, plan, events);
}

// A Warm rolling update's restart: the pod goes only while the endpoints clients may read once
// this pass has published list it nowhere (the same guard as lowering replicas).
absl::Status ClusterReconciler::Pass::restartMember(const ClusterSnapshot& snap,
                                                   const PassPlan& plan,
                                                   std::vector<PlannedEvent>& events) {
  if (plan.delete_pod.empty()) return absl::OkStatus();
  const std::string& name = snap.parsed.spec.config_map_name;
  const Json decided =
      buildEndpointsConfigMap(snap.ref, name, plan.endpoints.data, r_.options_.field_manager);
  const auto live = endpointsAfterPublish(*r_.api_, snap, name, decided);
  std::optional<std::vector<std::string>> listed;
  if (live.ok()) listed = publishedServerNames(*live);
  if (!live.ok() || !listed ||
      std::find(listed->begin(), listed->end(), plan.delete_pod) != listed->end()) {
    spdlog::warn("not restarting yet: the live endpoints may still list it cluster={} pod={}",
                 snap.key, plan.delete_pod);
    return absl::OkStatus();  // status says restarting; the next pass deletes it
  }
  util::failpoint(util::Failpoint::kRolloutDeleteBefore);
  auto s = r_.api_->remove(kube::resources::kPod, snap.ref.ns, plan.delete_pod, {});
  util::failpoint(util::Failpoint::kRolloutDeleteAfter);
  if (!s.ok() && !kube::IsNotFound(s)) {
    return absl::Status(s.code(), absl::StrCat("delete pod ", plan.delete_pod, ": ", s.message()));
  }
  spdlog::info("warm rollout: deleted pod cluster={} pod={}", snap.key, plan.delete_pod);
  events.push_back({kube::EventSeverity::kNormal, "MemberRestarted",
                    absl::StrCat("deleted ", plan.delete_pod,
                                 " to restart it with the new pod template (no client lists it)")});
  return absl::OkStatus();
}

absl::Status ClusterReconciler::Pass::publish(const ClusterSnapshot& snap, const PassPlan& plan,
                                              std::vector<PlannedEvent>& events) {
  const ClusterSpec& spec = snap.parsed.spec;
  const Json cm = buildEndpointsConfigMap(snap.ref, spec.config_map_name, plan.endpoints.data,
                                          r_.options_.field_manager);
  const auto& live = snap.children.config_map;
  if (!live || !isSubset(cm, *live)) {
    if (auto s = apply(snap.ref, kube::resources::kConfigMap, cm, nullptr); !s.ok()) return s;
    if (plan.endpoints.changed) publishedFailpoints(plan.content.phase);
    if (plan.endpoints.changed) {
      spdlog::info("published endpoints cluster={} version={} servers={}", snap.key,
                   plan.endpoints.version, plan.content.servers.size());
      std::vector<std::string> names;
      for (const auto& s : plan.content.servers) names.push_back(s.name);
      events.push_back({kube::EventSeverity::kNormal, "EndpointsPublished",
                        absl::StrCat("published version ", plan.endpoints.version, " of ",
                                     spec.config_map_name, ": [", absl::StrJoin(names, ", "),
                                     "]")});
    }
  }
  publishedConfigVersion().set({snap.key}, static_cast<double>(plan.endpoints.version));
  return absl::OkStatus();
}

absl::Status ClusterReconciler::Pass::ensureStatefulSet(const ClusterSnapshot& snap,
                                                        const PassPlan& plan,
                                                        std::vector<PlannedEvent>& events,
                                                        std::optional<milliseconds>& requeue) {
  const auto& sts = snap.children.stateful_set;
  const auto& ref = snap.ref;
  const int64_t replicas = plan.replicas;
  const int64_t current = plan.current;
  const Json desired =
      buildStatefulSet(ref, snap.parsed.spec, replicas, r_.options_.field_manager,
                       r_.options_.cluster_domain);
  if (sts && isSubset(desired, *sts)) return absl::OkStatus();
  const bool lowering = sts && replicas < current;
  if (lowering) util::failpoint(util::Failpoint::kReplicasLowerBefore);
  if (auto s = apply(ref, kube::resources::kStatefulSet, desired, nullptr); !s.ok()) return s;
  if (lowering) util::failpoint(util::Failpoint::kReplicasLowerAfter);
  const auto scaled = [&](const char* reason) {
    events.push_back({kube::EventSeverity::kNormal, reason,
                      absl::StrCat("StatefulSet ", ref.name, " scaled from ", current, " to ",
                                   replicas, " replicas")});
  };
  if (!sts && replicas > 0) {
    events.push_back({kube::EventSeverity::kNormal, "ScalingUp",
                      absl::StrCat("created StatefulSet ", ref.name, " with ", replicas,
                                   " replicas")});
  } else if (sts && replicas > current) {
    scaled("ScalingUp");
    spdlog::info("scaled up cluster={} from={} to={}", snap.key, current, replicas);
  } else if (sts && replicas < current) {
    scaled("ScalingDown");
    spdlog::info("scaled down cluster={} from={} to={}", snap.key, current, replicas);
    keepShorter(requeue, r_.options_.max_poll_interval);
  }
  return absl::OkStatus();
}

absl::Status ClusterReconciler::Pass::ensurePodDisruptionBudget(const ClusterSnapshot& snap) {
  const auto& live = snap.children.pdb;
  const auto& ref = snap.ref;
  if (snap.parsed.spec.pdb_enabled) {
    return apply(ref, kube::resources::kPodDisruptionBudget,
                 buildPodDisruptionBudget(ref, snap.parsed.spec, r_.options_.field_manager),
                 live ? &*live : nullptr);
  }
  if (!live || !controlledBy(*live, ref.uid)) return absl::OkStatus();
  auto s = r_.api_->remove(kube::resources::kPodDisruptionBudget, ref.ns, ref.name, {});
  if (!s.ok() && !kube::IsNotFound(s)) return s;
  spdlog::info("deleted pod disruption budget cluster={}", snap.key);
  return absl::OkStatus();
}

// Before the StatefulSet, so that new pods start isolated. The ServiceMonitor only where its API
// is served (stores.service_monitors).
absl::Status ClusterReconciler::Pass::ensureNetworkPolicyAndServiceMonitor(
    const ClusterSnapshot& snap) {
  const ClusterSpec& spec = snap.parsed.spec;
  const std::string& manager = r_.options_.field_manager;
  std::optional<Json> policy;
  if (spec.network_policy.enabled) {
    policy = buildNetworkPolicy(snap.ref, spec, r_.options_.operator_peer, manager);
  }
  if (auto s = ensureOptional(snap.ref, kube::resources::kNetworkPolicy, policy,
                              snap.children.network_policy);
      !s.ok()) {
    return s;
  }
  if (!r_.stores_.service_monitors) return absl::OkStatus();
  std::optional<Json> monitor;
  if (spec.monitoring.enabled && spec.monitoring.service_monitor) {
    monitor = buildServiceMonitor(snap.ref, manager);
  }
  return ensureOptional(snap.ref, kube::resources::kServiceMonitor, monitor,
                        snap.children.service_monitor);
}

// A child the spec can switch off: applied while wanted, deleted once not, and only when this
// cluster controls it (observe.cc leaves a conflicting object out of `live`).
absl::Status ClusterReconciler::Pass::ensureOptional(const ClusterRef& ref,
                                                     const kube::ResourceType& type,
                                                     const std::optional<Json>& desired,
                                                     const std::optional<Json>& live) {
  if (desired) return apply(ref, type, *desired, live ? &*live : nullptr);
  if (!live || !controlledBy(*live, ref.uid)) return absl::OkStatus();
  const std::string name = stringAt(*live, {"metadata", "name"});
  auto s = r_.api_->remove(type, ref.ns, name, {});
  if (!s.ok() && !kube::IsNotFound(s)) {
    return absl::Status(s.code(), absl::StrCat("delete ", type.kind, " ", ref.ns, "/", name, ": ",
                                               s.message()));
  }
  spdlog::info("deleted object cluster={}/{} kind={} name={}", ref.ns, ref.name, type.kind, name);
  return absl::OkStatus();
}

absl::Status ClusterReconciler::Pass::apply(const ClusterRef& ref, const kube::ResourceType& type,
                                            const Json& desired, const Json* live) {
  if (live && isSubset(desired, *live)) return absl::OkStatus();
  const std::string name = stringAt(desired, {"metadata", "name"});
  kube::PatchOptions options;
  options.field_manager = r_.options_.field_manager;
  options.force = true;
  absl::Status last;
  for (int attempt = 0; attempt < kApplyAttempts; ++attempt) {
    auto result = r_.api_->patch(type, ref.ns, name, kube::PatchType::kApply, desired, options);
    if (result.ok()) {
      spdlog::info("applied object cluster={}/{} kind={} name={}", ref.ns, ref.name, type.kind,
                   name);
      return absl::OkStatus();
    }
    last = result.status();
    // Apply carries no resourceVersion, so a 409 is a transient race (e.g. with the
    // garbage collector or a concurrent create): simply apply again.
    if (!kube::IsConflict(last)) break;
    spdlog::debug("apply conflict, retrying cluster={}/{} kind={} name={} attempt={}", ref.ns,
                  ref.name, type.kind, name, attempt + 1);
  }
  return absl::Status(last.code(), absl::StrCat("apply ", type.kind, " ", ref.ns, "/", name,
                                                ": ", last.message()));
}

}  // namespace mcop::memcached
