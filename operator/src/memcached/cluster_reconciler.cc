// ClusterReconciler: see cluster_reconciler.h.
#include "memcached/cluster_reconciler.h"

#include <utility>

namespace mcop::memcached {

ClusterReconciler::ClusterReconciler(kube::ApiClientPtr api, ClusterStores stores,
                                     kube::EventRecorder& events, const util::Clock& clock,
                                     ConnectionCounterPtr connections,
                                     ClusterReconcilerOptions options)
    : api_(std::move(api)),
      stores_(stores),
      events_(events),
      clock_(clock),
      connections_(std::move(connections)),
      options_(std::move(options)) {}

ClusterReconciler::~ClusterReconciler() = default;

absl::StatusOr<controller::Result> ClusterReconciler::reconcile(
    const controller::Request& request) {
  return absl::UnimplementedError("ClusterReconciler: not implemented yet");
}

}  // namespace mcop::memcached
