// Registers the MemcachedCluster controller with a Manager: the informers it reads (clusters;
// their children and pods by label; ServiceMonitors only when their API is served, asked once
// here), how each maps to a cluster, which update events wake a
// cluster (predicates), the ClusterReconciler with its memcached clients, and the stop hook for
// its stale-copy sweeps.
// Thread-safety: call before Manager::start(), from one thread.
#pragma once

#include <string>

#include <absl/status/status.h>

#include "manager/manager.h"
#include "memcached/cluster_reconciler.h"

namespace mcop::memcached {

struct ClusterControllerOptions {
  std::string ns;  // "" = all namespaces
  int workers = 4;
  ClusterReconcilerOptions reconciler;
};

// Before start: can this process list MemcachedClusters? A missing CRD, missing RBAC or an
// unreachable server is a configuration problem, reported in one line (naming `server`) rather
// than retried forever by the informers.
absl::Status checkClusterApi(kube::ApiClient& api, const std::string& ns, const std::string& server);

void addClusterController(manager::Manager& manager, const ClusterControllerOptions& options);

}  // namespace mcop::memcached
