// Controller: wires informers to a WorkQueue and runs N workers that call a Reconciler.
// The primary type enqueues its own key; owned children enqueue the owner named by their
// controller ownerReference; other types (Pods) enqueue through a mapping function (e.g. a
// label naming the cluster). Workers start only after every watched informer has synced.
// Per pass: a reconcile id (for logs, see currentReconcileId()), the duration (metrics);
// an error requeues with per-key backoff, Result.requeue_after requeues after that delay,
// success forgets the key's backoff.
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

  void watchPrimary(kube::Informer& informer);
  void watchOwned(kube::Informer& informer, const std::string& owner_kind,
                  const std::string& owner_group = "");
  void watchMapped(kube::Informer& informer, MapFunc map);

  // Waits for the watched informers to sync (Unavailable on timeout or stop), then starts the
  // workers.
  absl::Status start(std::chrono::milliseconds sync_timeout);
  // Stops handing out work and waits for running reconciles to finish.
  void stop();
  void enqueue(const Request& request);

  WorkQueue& queue() { return queue_; }
  const std::string& name() const { return name_; }
  bool started() const { return started_.load(); }

 private:
  void addSource(kube::Informer& informer, MapFunc map);
  void worker();
  void process(const std::string& key);

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

  // Metrics (null when disabled).
  util::CounterFamily* reconciles_ = nullptr;  // {cluster, result}
  util::CounterFamily* errors_ = nullptr;      // {cluster}
  util::HistogramFamily* duration_ = nullptr;  // {controller}
};

}  // namespace mcop::controller
