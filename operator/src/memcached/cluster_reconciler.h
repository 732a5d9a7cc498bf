// ClusterReconciler: the level-triggered reconcile of one MemcachedCluster, as a straight line:
// observe (observe.h: one snapshot of the cluster, its pods and children), plan (drain.h,
// membership.h, endpoints_config.h, conditions.h: pure decisions, with the memcached reads they
// ask for as named steps in between), record (status, through the status subresource, when it
// changed) and act (desired_objects.h: the children, applied only where they drift).
// Thread-safety: reconcile() may run on several workers at once for different clusters (the
// workqueue never runs one key twice at once); everything that must survive a restart lives in
// the cluster's status. The things held in memory are the last good material of the Secrets a
// cluster references (SecretTracker), the stale-copy sweep of a drain (a
// SweepRunner) and the copy and clean work of a Warm transition (a TransitionRunner), both run
// off the workers: a restart loses them and the next pass starts them again (a copy resumes
// from the cursors recorded in status.transition).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "controller/reconciler.h"
#include "kube/api_client.h"
#include "kube/event_recorder.h"
#include "memcached/certificate_rotation.h"
#include "memcached/cluster_security.h"
#include "memcached/connection_counter.h"
#include "memcached/member_flusher.h"
#include "memcached/network_policy.h"
#include "memcached/observe.h"
#include "memcached/stale_copy_sweeper.h"
#include "memcached/sweep_runner.h"
#include "memcached/transition_runner.h"
#include "util/clock.h"

namespace mcop::memcached {

struct ClusterReconcilerOptions {
  // Server-side apply field manager; also the managed-by label value.
  std::string field_manager = "memcached-operator";
  // Cluster DNS domain used in published host names: <pod>.<name>.<ns>.svc.<domain>.
  std::string cluster_domain = "cluster.local";
  // The operator's own pods, admitted by every cluster's NetworkPolicy (its memcached
  // connections); an empty namespace when it runs outside the cluster.
  OperatorPeer operator_peer;
  // Longest wait between two looks at a drain or a pod that is not Ready yet.
  std::chrono::milliseconds max_poll_interval{2000};
  // The stale-copy sweeps of scale-downs: threads, overall deadline, unrecorded result TTL.
  SweepRunnerOptions sweeps;
  // How long a pass waits for an unfinished sweep before requeueing (within the pass's
  // Context). 0 never holds a reconcile worker; tests use it to record a fake's instant sweep
  // in the pass that started it.
  std::chrono::milliseconds sweep_wait{0};
  // A cluster with spec.tls or spec.auth is looked at again this often: Secrets are read by
  // name, never watched (the operator may only `get` them), so a rotated or fixed Secret is
  // seen within this interval (--secret-recheck-interval).
  std::chrono::milliseconds secret_recheck{30000};
  // A member that does not serve a rotated certificate yet is looked at again this often.
  std::chrono::milliseconds certificate_recheck{10000};
};

class ClusterReconciler : public controller::Reconciler {
 public:
  ClusterReconciler(kube::ApiClientPtr api, ClusterStores stores, kube::EventRecorder& events,
                    const util::Clock& clock, ConnectionCounterPtr connections,
                    StaleCopySweeperPtr sweeper, MemberFlusherPtr flusher,
                    CertificateReloaderPtr certificates, ClusterReconcilerOptions options = {});
  ~ClusterReconciler() override;

  absl::StatusOr<controller::Result> reconcile(const controller::Request& request,
                                               const controller::Context& ctx) override;
  // Cancels the sweeps and transition work in flight and joins their threads; for shutdown, once
  // the workers have stopped. The destructor does it too.
  void stopSweeps();

 private:
  class Pass;       // one reconcile pass: its steps (cluster_reconciler.cc)
  struct PassPlan;  // what one pass decided

  kube::ApiClientPtr api_;
  ClusterStores stores_;
  kube::EventRecorder& events_;
  const util::Clock& clock_;
  ConnectionCounterPtr connections_;
  MemberFlusherPtr flusher_;
  CertificateReloaderPtr certificates_;
  ClusterReconcilerOptions options_;
  SweepRunnerPtr sweeps_;
  TransitionRunnerPtr transitions_;
  SecretTracker secrets_;  // each cluster's last good TLS and auth material
};

}  // namespace mcop::memcached
