// ServiceMonitor: see service_monitor.h.
#include "memcached/service_monitor.h"

#include <absl/strings/str_cat.h>

#include "memcached/labels.h"

namespace mcop::memcached {

Json buildServiceMonitor(const ClusterRef& ref, const std::string& manager) {
  // The port by name: a changed spec.monitoring.port changes the Service, not this.
  Json sm = jsonObject({{"apiVersion", jsonString(kube::resources::kServiceMonitor.apiVersion())},
                        {"kind", jsonString(kube::resources::kServiceMonitor.kind)},
                        {"metadata", childMetadata(ref, ref.name, manager)}});
  sm["spec"] = jsonObject(
      {{"selector", jsonObject({{"matchLabels", jsonStringMap(selectorLabels(ref.name))}})},
       {"namespaceSelector", jsonObject({{"matchNames", jsonStringArray({ref.ns})}})},
       {"endpoints", jsonArray({jsonObject({{"port", jsonString(kMetricsPortName)},
                                            {"path", jsonString("/metrics")}})})}});
  return withSpecHash(sm);
}

absl::StatusOr<bool> serviceMonitorsServed(kube::ApiClient& api, const std::string& ns) {
  kube::ListOptions one;
  one.limit = 1;
  auto probe = api.list(kube::resources::kServiceMonitor, ns, one);
  if (probe.ok()) return true;
  if (kube::IsNotFound(probe.status())) return false;
  return absl::Status(probe.status().code(),
                      absl::StrCat("cannot tell whether ServiceMonitors are served: ",
                                   probe.status().message()));
}

}  // namespace mcop::memcached
