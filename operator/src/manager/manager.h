// Manager: runs controllers the way controller-runtime's manager does, and owns everything
// they share: the API clients (a fenced one for writes), the informers, the event recorder,
// leader election, the HTTP endpoints (/metrics; /healthz and /readyz for the kubelet) and the
// order in which all of it stops. It knows nothing of memcached: the domain registers its
// controller (memcached/cluster_controller.h) and main() only parses flags and runs it.
//
// Start: bind the HTTP endpoints (a failure is returned: fail fast), then campaign for the
// Lease (or, without leader election, start at once), then start the informers. Controllers
// start once leading and once their caches have synced. /readyz answers 200 once every cache
// has synced, standbys included: they are ready to take over.
//
// Stop, after requestShutdown() (a signal, the Lease lost, a controller that cannot start):
//   1. controllers: no new work; running reconciles finish;
//   2. stop hooks (e.g. background work that reconciles started), after the workers, so none
//      starts more;
//   3. leader election: the Lease is released (graceful stop only) after 1 and 2, so the next
//      leader never overlaps with this one;
//   4. informers;
//   5. the HTTP endpoints, last, so probes and scrapes answer until the end.
// With a non-zero exit code (Lease lost), every write is already refused by the fence; if the
// stop takes longer than `lost_lease_grace`, the process exits at once (non-zero either way,
// so the pod restarts as a clean candidate, client-go's convention).
//
// Thread-safety: add*() before start(); start() and wait() from one thread; requestShutdown()
// from any thread, any number of times (the first wins).
#pragma once

#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <absl/status/statusor.h>

#include "controller/controller.h"
#include "controller/leader_election.h"
#include "kube/event_recorder.h"
#include "kube/fenced_api_client.h"
#include "kube/informer.h"
#include "kube/kubeconfig.h"
#include "util/clock.h"
#include "util/http_server.h"
#include "util/metrics.h"

namespace mcop::manager {

struct ManagerOptions {
  std::string metrics_bind = ":8080";  // "0" disables
  std::string health_bind = ":8081";   // "0" disables; may equal metrics_bind
  // Set: only the holder of this Lease runs the controllers.
  std::optional<controller::LeaderElectionConfig> leader_election;
  kube::InformerOptions informers;
  std::string user_agent = "memcached-operator";
  std::string component = "memcached-operator";  // events' source.component
  // After the Lease is lost: how long the stop may take before the process exits anyway.
  std::chrono::milliseconds lost_lease_grace{2000};
  // What "exits anyway" does: std::_Exit(1) unless a test replaces it.
  std::function<void()> force_exit;
  util::MetricsRegistry* metrics = &util::defaultRegistry();
};

class Manager {
 public:
  // The clients of a real cluster: one for reads, watches and the controllers' writes (with
  // the API request metrics), and one for the Lease with a request timeout of one retry period,
  // so that one hung renewal is retried on a fresh connection within the renew deadline.
  static absl::StatusOr<std::unique_ptr<Manager>> create(const kube::RestConfig& config,
                                                         ManagerOptions options);
  // lease_api may be `api`; it is used only with leader election.
  Manager(kube::ApiClientPtr api, kube::ApiClientPtr lease_api, const util::Clock& clock,
          ManagerOptions options);
  ~Manager();  // stops, if wait() did not
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // Unfenced: reads, and checks before start (e.g. that a CRD is installed).
  kube::ApiClientPtr api() const { return api_; }
  // Fenced: every write of the controllers goes through it. With leader election it refuses
  // writes from the instant this process stops being the leader, including those of reconciles
  // already running.
  kube::ApiClientPtr writer() const { return writer_; }
  kube::InformerFactory& informers() { return informers_; }
  kube::EventRecorder& events() { return *events_; }
  const util::Clock& clock() const { return clock_; }

  // The manager owns the reconciler and the controller; the controller's sources are added by
  // the caller on the returned controller.
  controller::Controller& addController(std::string name,
                                        std::unique_ptr<controller::Reconciler> reconciler,
                                        controller::ControllerOptions options);
  // Runs at step 2 of the stop (see above).
  void addStopHook(std::function<void()> hook);

  absl::Status start();
  void requestShutdown(int exit_code, const std::string& why);
  // Blocks until requestShutdown(), stops in order, returns the exit code.
  int wait();
  // start(), then wait().
  absl::StatusOr<int> run();

  // Every cache synced (/readyz).
  bool ready() const { return informers_.allSynced(); }

  // Makes wait() turn the first SIGTERM/SIGINT into requestShutdown(0), and exit the process
  // at once on a second one while stopping. wait()'s thread takes the signals itself (no
  // thread of its own); while it waits, it also returns the heap's free pages to the system
  // once a minute (util/memory.h). Needs blockShutdownSignals() first; call before wait().
  void shutdownOnSignals();

 private:
  struct ShutdownState;
  absl::Status startServers();
  void startLeaderElection();
  void startControllers();
  void stopAll(int exit_code);
  void releaseLease(int exit_code);
  void waitForSignalOrRequest();

  kube::ApiClientPtr api_;
  kube::ApiClientPtr lease_api_;
  const util::Clock& clock_;
  ManagerOptions options_;
  util::GaugeFamily& leader_gauge_;
  std::shared_ptr<ShutdownState> shutdown_;  // shared with the signal thread

  util::HttpServer metrics_server_;
  util::HttpServer health_server_;
  kube::InformerFactory informers_;
  std::unique_ptr<controller::LeaderElector> elector_;
  std::shared_ptr<kube::FencedApiClient> writer_;
  std::unique_ptr<kube::ApiEventRecorder> events_;
  std::vector<std::unique_ptr<controller::Reconciler>> reconcilers_;
  std::vector<std::unique_ptr<controller::Controller>> controllers_;  // after their reconcilers
  std::vector<std::function<void()>> stop_hooks_;
  // The elector's thread starts the controllers while the main thread may be stopping them.
  std::mutex starter_mu_;
  bool stopping_ = false;  // guarded by starter_mu_
  std::thread starter_;    // starts the controllers once caches sync; guarded by starter_mu_
  bool stopped_ = false;   // wait()'s thread only
};

// cpprestsdk's shared thread pool (Boost.Asio) runs every HTTP completion handler of the API
// clients and the /metrics and probe endpoints: TLS records, HTTP framing, copying bodies. None
// of our code waits on it (requests and watch reads block our own threads, a worker's or an
// informer's, on a future), so a watch pins no pool thread and the pool needs threads only for
// handlers running at the same moment, not one per connection. Its default, 40 threads on
// Linux, is mostly idle stacks; ioThreads() sizes it from what can be in flight at once: one
// thread per 8 concurrent streams (each reconcile worker's request, each informer's watch), at
// least 2 so one slow TLS handshake never stalls every other stream, at most 8.
size_t ioThreads(int workers, int informers);
// Sizes that pool. Must run before the first HTTP request or listener (cpprestsdk creates the
// pool on first use and refuses a size afterwards: FailedPrecondition then). Call once, from
// main(), before any client exists.
absl::Status initIoThreads(size_t threads);

// What wakes wait()'s thread from sigwait() when another thread requests the shutdown.
inline constexpr int kWakeSignal = SIGUSR1;

// SIGTERM and SIGINT (and kWakeSignal) are taken by wait()'s thread with sigwait(), so they
// must be blocked before any thread exists (every thread, cpprestsdk's pool included, inherits
// the mask): call first thing in main(). Also ignores SIGPIPE.
void blockShutdownSignals();

}  // namespace mcop::manager
