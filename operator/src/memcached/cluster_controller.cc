// The MemcachedCluster controller's wiring: see cluster_controller.h.
#include "memcached/cluster_controller.h"

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "controller/predicates.h"
#include "memcached/child_cache.h"
#include "memcached/connection_counter.h"
#include "memcached/labels.h"
#include "memcached/member_flusher.h"
#include "memcached/service_monitor.h"
#include "memcached/stale_copy_sweeper.h"

namespace mcop::memcached {

namespace {

namespace res = kube::resources;

// Children map to their owner by the controller ownerReference, or by the cluster label. A
// stub (an object that is not ours, child_cache.h) has neither, so it wakes no cluster.
controller::MapFunc childMapper() {
  auto by_owner = controller::ownerMapper("MemcachedCluster", "memcached.operator.io");
  auto by_label = controller::labelMapper(kClusterLabel);
  return [by_owner, by_label](const kube::Object& obj) {
    auto r = by_owner(obj);
    return r.empty() ? by_label(obj) : r;
  };
}

// The ServiceMonitors' informer, when their API is served: asked once per process, and said
// once in the log when it is not (spec.monitoring.serviceMonitor then creates nothing).
kube::Informer* serviceMonitorInformer(manager::Manager& manager, const std::string& ns) {
  auto served = serviceMonitorsServed(*manager.api(), ns);
  if (!served.ok()) {
    spdlog::warn("ServiceMonitors will not be created: {}",
                 std::string(served.status().message()));
    return nullptr;
  }
  if (!*served) {
    spdlog::info("the monitoring.coreos.com/v1 ServiceMonitor API is not served: clusters with "
                 "spec.monitoring get their exporter but no ServiceMonitor (restart the operator "
                 "after installing the Prometheus Operator's CRDs)");
    return nullptr;
  }
  return &manager.informers().informer(res::kServiceMonitor, ns, "", cacheChildOrStub);
}

}  // namespace

absl::Status checkClusterApi(kube::ApiClient& api, const std::string& ns, const std::string& server) {
  kube::ListOptions one;
  one.limit = 1;
  auto probe = api.list(res::kMemcachedCluster, ns, one);
  if (probe.ok()) return absl::OkStatus();
  const absl::Status& s = probe.status();
  if (absl::IsNotFound(s)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the MemcachedCluster CRD is not installed on ", server, " (kubectl apply -f crds/)"));
  }
  if (absl::IsPermissionDenied(s) || absl::IsUnauthenticated(s)) {
    return absl::PermissionDeniedError(
        absl::StrCat("not allowed to list memcachedclusters on ", server, ": ", s.message()));
  }
  return absl::UnavailableError(absl::StrCat("cannot reach the API server ", server, ": ", s.message()));
}

void addClusterController(manager::Manager& manager, const ClusterControllerOptions& options) {
  kube::InformerFactory& informers = manager.informers();
  const std::string pods_of_clusters = selectorString({{kNameLabel, kAppName}});
  kube::Informer& clusters = informers.informer(res::kMemcachedCluster, options.ns);
  // Every object of the child kinds, ours whole and others as stubs (child_cache.h): a name
  // absent from these caches is free, so a new cluster's children need no API reads.
  auto children = [&](const kube::ResourceType& type) -> kube::Informer& {
    return informers.informer(type, options.ns, "", cacheChildOrStub);
  };
  kube::Informer& stateful_sets = children(res::kStatefulSet);
  kube::Informer& services = children(res::kService);
  kube::Informer& config_maps = children(res::kConfigMap);
  kube::Informer& pdbs = children(res::kPodDisruptionBudget);
  // Pods stay selected: our StatefulSets make them, and no child name is checked against them.
  kube::Informer& pods = informers.informer(res::kPod, options.ns, pods_of_clusters);
  kube::Informer& network_policies = children(res::kNetworkPolicy);
  kube::Informer* service_monitors = serviceMonitorInformer(manager, options.ns);

  ClusterStores stores{&clusters.store(),    &stateful_sets.store(), &services.store(),
                       &config_maps.store(), &pdbs.store(),          &pods.store(),
                       &network_policies.store(),
                       service_monitors ? &service_monitors->store() : nullptr};
  auto reconciler = std::make_unique<ClusterReconciler>(
      manager.writer(), stores, manager.events(), manager.clock(),
      makeMemcachedConnectionCounter(), makeMemcachedStaleCopySweeper(),
      makeMemcachedMemberFlusher(), makeMemcachedCertificateReloader(), options.reconciler);
  ClusterReconciler* sweeps = reconciler.get();

  controller::ControllerOptions controller_options;
  controller_options.workers = options.workers;
  controller::Controller& c =
      manager.addController("memcachedcluster", std::move(reconciler), controller_options);
  // A cluster wakes for what its owner changed, not for its own status writes; children and
  // pods wake it for any change but the API server's bookkeeping (a StatefulSet's
  // readyReplicas and a pod's readiness are what the reconcile acts on).
  c.watchPrimary(clusters, controller::ownerIntentChanged);
  for (kube::Informer* child : {&stateful_sets, &services, &config_maps, &pdbs, &network_policies,
                                service_monitors}) {
    if (child) c.watchMapped(*child, childMapper(), controller::changedBeyondBookkeeping);
  }
  c.watchMapped(pods, controller::labelMapper(kClusterLabel), controller::changedBeyondBookkeeping);
  // A sweep in flight stops between two items; after the workers, so none starts another.
  manager.addStopHook([sweeps] { sweeps->stopSweeps(); });
}

}  // namespace mcop::memcached
