// The ServiceMonitor of a MemcachedCluster (spec.monitoring.enabled and serviceMonitor): the
// Prometheus Operator scrapes every member's exporter through the headless Service's metrics
// port. The API (monitoring.coreos.com/v1) exists only where the Prometheus Operator's CRDs are
// installed; serviceMonitorsServed() asks the API server.
// Thread-safety: pure functions (serviceMonitorsServed only reads through the ApiClient).
#pragma once

#include <string>

#include <absl/status/statusor.h>

#include "kube/api_client.h"
#include "memcached/cluster_spec.h"
#include "memcached/desired_objects.h"
#include "memcached/json_util.h"

namespace mcop::memcached {

// ServiceMonitor <name>: the cluster's Services by their selector labels (only the headless one
// has the metrics port), port "metrics", path /metrics (plain HTTP: the exporter serves no TLS).
Json buildServiceMonitor(const ClusterRef& ref, const std::string& manager);

// Whether monitoring.coreos.com/v1 servicemonitors are served: a list of at most one item in
// `ns` ("" all namespaces) answers 404 when the resource is not. Other errors are returned.
// Asked once, at start (cluster_controller.cc): installing the Prometheus Operator later needs
// an operator restart.
absl::StatusOr<bool> serviceMonitorsServed(kube::ApiClient& api, const std::string& ns);

}  // namespace mcop::memcached
