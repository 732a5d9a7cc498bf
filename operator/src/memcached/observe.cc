// Observe: see observe.h.
#include "memcached/observe.h"

#include <set>
#include <utility>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "memcached/drift.h"
#include "memcached/endpoints_config.h"
#include "memcached/labels.h"
#include "memcached/metrics.h"

namespace mcop::memcached {
namespace {

// One child name to check: where it is cached, what a conflict asks the user to do, and where
// the result goes.
struct ChildName {
  const kube::ResourceType& type;
  const kube::ObjectStore& store;
  std::string name;
  std::string fix;
  std::optional<Json>& out;
};

// The cache decides alone: the child informers hold every object of their kind (ours whole,
// others as stubs, child_cache.h), so a name it does not hold is free. An object created by
// someone else after the cache synced arrives by watch; one created at the very instant we
// apply races with our apply exactly as it did with a GET followed by an apply.
void observeChild(const ClusterRef& ref, const ChildName& child, ObservedChildren& children) {
  auto& out = child.out;
  out = child.store.get(ref.ns, child.name);
  if (!out || controlledBy(*out, ref.uid)) return;
  std::string holder = "no controller";
  if (const Json* owner = controllerOf(*out)) {
    holder = absl::StrCat("controlled by ", stringAt(*owner, {"kind"}), " ",
                          stringAt(*owner, {"name"}), " uid ", stringAt(*owner, {"uid"}));
  }
  children.conflicts.push_back(absl::StrCat(child.type.kind, " ", ref.ns, "/", child.name,
                                            " already exists and is not controlled by this "
                                            "MemcachedCluster (", holder, "): ", child.fix));
  if (children.conflict_reason.empty()) children.conflict_reason = child.type.kind + "Conflict";
  out.reset();
}

// A child the spec does not want, read only so that ours can be deleted: anything this cluster
// does not control (a stub of someone else's object included) is left out.
std::optional<Json> controlledChild(const kube::ObjectStore& store, const ClusterRef& ref) {
  auto obj = store.get(ref.ns, ref.name);
  if (!obj || !controlledBy(*obj, ref.uid)) return std::nullopt;
  return obj;
}

// The NetworkPolicy and the ServiceMonitor, like the PDB: checked for a conflict when the spec
// wants them, otherwise read from the cache only to delete the one this cluster controls.
void addOptionalChildren(const ClusterStores& stores, const ClusterRef& ref,
                         const ClusterSpec& spec, const std::string& rename,
                         std::vector<ChildName>& names, ObservedChildren& c) {
  if (spec.network_policy.enabled) {
    names.push_back({kube::resources::kNetworkPolicy, *stores.network_policies, ref.name,
                     rename + " (or set spec.networkPolicy.enabled: false)", c.network_policy});
  } else {
    c.network_policy = controlledChild(*stores.network_policies, ref);
  }
  if (!stores.service_monitors) return;  // the API is not served
  if (spec.monitoring.enabled && spec.monitoring.service_monitor) {
    names.push_back({kube::resources::kServiceMonitor, *stores.service_monitors, ref.name,
                     rename + " (or set spec.monitoring.serviceMonitor: false)",
                     c.service_monitor});
  } else {
    c.service_monitor = controlledChild(*stores.service_monitors, ref);
  }
}

// Every child name this cluster would write, checked against what exists, from the caches alone
// (see observeChild): no API reads, at creation or in steady state.
ObservedChildren observeChildren(const ClusterStores& stores, const ClusterRef& ref,
                                 const ClusterSpec& spec) {
  ObservedChildren c;
  const std::string rename =
      "delete or rename that object, or give this MemcachedCluster another name";
  std::vector<ChildName> names = {
      {kube::resources::kService, *stores.services, ref.name, rename, c.headless},
      {kube::resources::kService, *stores.services, clientServiceName(ref.name), rename,
       c.client},
      {kube::resources::kConfigMap, *stores.config_maps, spec.config_map_name,
       "delete or rename that object, or recreate this MemcachedCluster with another "
       "spec.clientConfig.configMapName",
       c.config_map},
      {kube::resources::kStatefulSet, *stores.stateful_sets, ref.name, rename, c.stateful_set},
  };
  if (spec.pdb_enabled) {
    names.push_back({kube::resources::kPodDisruptionBudget, *stores.pod_disruption_budgets,
                     ref.name, rename + " (or set spec.podDisruptionBudget.enabled: false)",
                     c.pdb});
  } else {
    // Only ever deleted, and only when controlled.
    c.pdb = controlledChild(*stores.pod_disruption_budgets, ref);
  }
  addOptionalChildren(stores, ref, spec, rename, names, c);
  for (const auto& child : names) observeChild(ref, child, c);
  // Cached like every child now; never a stub or another's object (observeChild left those out).
  c.cached_config_map = c.config_map;
  return c;
}

}  // namespace

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

ClusterSnapshot observeCluster(const ClusterStores& stores, Json cluster) {
  ClusterSnapshot snap;
  snap.cluster = std::move(cluster);
  snap.ref = clusterRefOf(snap.cluster);
  snap.key = absl::StrCat(snap.ref.ns, "/", snap.ref.name);
  snap.parsed = parseClusterSpec(snap.cluster);
  snap.recorded = parseClusterStatus(snap.cluster);
  snap.pods = podsByOrdinal(snap.ref.name,
                            stores.pods->list(snap.ref.ns, selectorLabels(snap.ref.name)));
  if (!snap.parsed.errors.empty() || snap.parsed.spec.paused) return snap;
  snap.children = observeChildren(stores, snap.ref, snap.parsed.spec);
  if (const auto& sts = snap.children.stateful_set) {
    snap.current_replicas = intAt(*sts, {"spec", "replicas"}).value_or(1);
  }
  return snap;
}

ClusterSecrets observeSecrets(kube::ApiClient& api, SecretTracker& tracker, ClusterSnapshot& snap,
                              std::chrono::system_clock::time_point now) {
  ClusterSpec& spec = snap.parsed.spec;
  ClusterSecrets secrets =
      tracker.resolve(snap.key, snap.ref.uid, readClusterSecrets(api, snap.ref.ns, spec, now));
  if (secrets.auth) spec.auth.file_hash = secrets.auth->file_hash;
  return secrets;
}

SweepObservation observeSweep(const controller::Context& ctx, kube::ApiClient& api,
                              const ClusterStores& stores, SweepRunner& sweeps,
                              const ClusterSnapshot& snap, const DrainStatus& drain,
                              std::chrono::milliseconds wait, MemberSecurityPtr security) {
  using Kind = SweepObservation::Kind;
  SweepObservation out;
  const std::string& cm_name = snap.parsed.spec.config_map_name;
  // The live object, not the cache: a list published moments ago (a scale-up just before this
  // scale-down) may not have reached the informer yet, and its keys are the ones that move back.
  std::optional<Json> live;
  if (auto got = api.get(kube::resources::kConfigMap, snap.ref.ns, cm_name); got.ok()) {
    live = std::move(*got);
  } else if (!kube::IsNotFound(got.status())) {
    // The cache holds others' objects too (as stubs): only ours is a ring to sweep by.
    live = stores.config_maps->get(snap.ref.ns, cm_name);
    if (live && !controlledBy(*live, snap.ref.uid)) live.reset();
  }
  if (!live) return out;  // nothing published: no client routes by any ring yet
  auto ring = clientconfig::parseSnapshot(stringAt(*live, {"data", kEndpointsJsonKey}));
  if (!ring.ok()) {
    staleCopySweepFailures().inc({snap.key});
    out.kind = Kind::kUnreadable;
    out.error = absl::StrCat("cannot read the published endpoints: ", ring.error().toString());
    return out;
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
  if (!moves || staying.empty()) return out;

  // Keyed by the ring read just now: if the published list changed since the sweep started, it
  // routed by a ring clients no longer use, and start() replaces it.
  const SweepId id{snap.ref.uid, drain.target_replicas, drain.members, (*ring)->version()};
  auto progress = sweeps.progress(snap.key, id, ctx.bound(wait));
  if (!progress && sweeps.start(snap.key, id, *ring, staying, std::move(security))) {
    progress = sweeps.progress(snap.key, id, ctx.bound(wait));
  }
  out.ring_version = (*ring)->version();
  if (progress && progress->done) {
    out.kind = Kind::kDone;
    out.results = progress->finished;
    out.elapsed = progress->elapsed;
    return out;
  }
  out.kind = Kind::kRunning;
  out.total = progress ? progress->total() : staying.size();
  out.finished = progress ? progress->finished.size() : 0;
  if (progress) {
    out.pending = progress->pending;
    out.elapsed = progress->elapsed;
  } else {
    for (size_t index : staying) out.pending.push_back(servers[index].name);
  }
  return out;
}

absl::StatusOr<ConnectionCounts> measureConnections(const controller::Context& ctx,
                                                    ConnectionCounter& counter,
                                                    const std::vector<ConnectionProbe>& probes,
                                                    const MemberAccess& access) {
  ConnectionCounts counts;
  for (const auto& probe : probes) {
    if (ctx.isCancelled()) return ctx.doneStatus("measuring the outgoing members' connections");
    if (ctx.done()) break;  // the rest count as unmeasured: the drain waits for them
    counts.emplace(probe.name,
                   counter.currentConnections(access.endpoint(probe.name, probe.address)));
  }
  return counts;
}

absl::StatusOr<JoinProbeResults> probeJoiners(const controller::Context& ctx,
                                              ConnectionCounter& counter, MemberFlusher& flusher,
                                              const std::vector<JoinProbe>& probes,
                                              const MemberAccess& access, const std::string& key) {
  JoinProbeResults results;
  for (const auto& probe : probes) {
    if (ctx.isCancelled()) return ctx.doneStatus("probing the members about to join");
    if (ctx.done()) break;  // the rest stay joining until a later pass probes them
    JoinProbeResult& result = results[probe.name];
    const MemberEndpoint member = access.endpoint(probe.name, probe.address);
    if (probe.flush) {
      result.flushed = flusher.flushAll(member);
      if (!result.flushed->ok()) continue;
      spdlog::info("emptied returning member cluster={} pod={}", key, probe.name);
    }
    if (probe.measure) result.connections = counter.currentConnections(member);
  }
  return results;
}

absl::StatusOr<CertificateChecks> checkCertificates(const controller::Context& ctx,
                                                    CertificateReloader& reloader,
                                                    const std::vector<MemberEndpoint>& members,
                                                    const std::string& want) {
  CertificateChecks checks;
  for (const auto& m : members) {
    if (ctx.isCancelled()) return ctx.doneStatus("checking the members' certificates");
    if (ctx.done()) break;  // the rest stay pending until a later pass
    CertificateCheck& c = checks[m.name];
    c.before = reloader.servedCertificate(m);
    if (!c.before->ok() || **c.before == want) continue;
    c.reload = reloader.reloadCertificates(m);
    if (!c.reload->ok()) continue;
    c.after = reloader.servedCertificate(m);
  }
  return checks;
}

absl::StatusOr<Json> endpointsAfterPublish(kube::ApiClient& api, const ClusterSnapshot& snap,
                                           const std::string& config_map_name,
                                           const Json& decided) {
  const auto& cached = snap.children.config_map;
  if (!cached || !isSubset(decided, *cached)) return decided;
  return api.get(kube::resources::kConfigMap, snap.ref.ns, config_map_name);
}

}  // namespace mcop::memcached
