// Controller: wires informers to a WorkQueue and runs N workers that call a Reconciler.
// The primary type enqueues its own key; owned children enqueue the owner named by their
// controller ownerReference; other types (Pods) enqueue through a mapping function (e.g. a
// label naming the cluster). Each source may filter its update events with a predicate
// (predicates.h), so that, e.g., a status write does not wake its own object again. Workers
// start only after every watched informer has synced.
// Per pass: a reconcile id (for logs, see currentReconcileId()); an error requeues with
// per-key backoff, Result.requeue_after requeues after that delay, success forgets the key's
// backoff. Metrics, labelled by controller name as controller-runtime's are (never by object,
// so series do not pile up as objects come and go): reconcile_total{controller,result},
// reconcile_errors_total{controller}, reconcile_duration_seconds{controller} and the
// workqueue's depth, adds, retries and waiting keys {name}.
// Thread-safety: watch*() before start(); start() and stop() may be called from different
// threads (stop() makes a pending start() return); enqueue() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "controller/predicates.h"
#include "controller/reconciler.h"
#include "controller/workqueue.h"
#include "kube/informer.h"
#include "util/clock.h"
#include "util/metrics.h"

namespace mcop::controller {

struct ControllerOptions {
  int workers = 4;
  WorkQueueOptions queue;
  util::MetricsRegistry* metrics = &util::defaultRegistry();  // nullptr = no metrics
};

// Maps an object of a watched type to the requests it should trigger.
using MapFunc = std::function<std::vector<Request>(const kube::Object&)>;

// Requests for the owner named by the object's controller ownerReference, if it has kind
// `owner_kind` (and apiVersion group `owner_group`, when not empty).
MapFunc ownerMapper(std::string owner_kind, std::string owner_group = "");
// Requests for {object's namespace, value of label `key`} when the label is present.
MapFunc labelMapper(std::string key);

// The id of the reconcile pass running on this thread ("" outside a pass), for log lines.
const std::string& currentReconcileId();

class Controller {
 public:
  Controller(std::string name, Reconciler& reconciler, const util::Clock& clock,
             ControllerOptions options = {});
  ~Controller();  // stops

  // Each source enqueues on creation and deletion, and on updates that `update` lets through
  // (every update when it is empty).
  void watchPrimary(kube::Informer& informer, UpdatePredicate update = {});
  void watchOwned(kube::Informer& informer, const std::string& owner_kind,
                  const std::string& owner_group = "", UpdatePredicate update = {});
  void watchMapped(kube::Informer& informer, MapFunc map, UpdatePredicate update = {});

  // Waits for the watched informers to sync (Unavailable on timeout or stop), then starts the
  // workers.
  absl::Status start(std::chrono::milliseconds sync_timeout);
  // Stops handing out work and waits for running reconciles to finish.
  void stop();
  void enqueue(const Request& request);

  WorkQueue& queue() { return queue_; }
  const std::string& name() const { return name_; }
  bool started() const { return started_.load(); }
  // Update events dropped by a predicate, for tests and logs.
  uint64_t filteredUpdates() const { return filtered_updates_.load(); }

 private:
  void addSource(kube::Informer& informer, MapFunc map, UpdatePredicate update);
  void worker();
  void process(const std::string& key);
  void recordResult(const std::string& key, const absl::StatusOr<Result>& result, double secs);
  void registerMetrics(util::MetricsRegistry& m);

  const std::string name_;
  Reconciler& reconciler_;
  const util::Clock& clock_;
  ControllerOptions options_;
  WorkQueue queue_;
  std::vector<kube::Informer*> sources_;  // set before start()
  // start() (from a starter thread) and stop() (from main) may race at shutdown.
  std::mutex lifecycle_mu_;
  std::vector<std::thread> workers_;  // guarded by lifecycle_mu_
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> pass_counter_{0};
  std::atomic<uint64_t> filtered_updates_{0};

  // Metrics (null when disabled), all {controller} (+ result).
  util::CounterFamily* reconciles_ = nullptr;  // {controller, result}
  util::CounterFamily* errors_ = nullptr;      // {controller}
  util::HistogramFamily* duration_ = nullptr;  // {controller}
};

}  // namespace mcop::controller
