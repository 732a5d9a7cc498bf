// Manager: see manager.h.
#include "manager/manager.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>

#include <absl/strings/str_cat.h>
#include <pplx/threadpool.h>
#include <spdlog/spdlog.h>

#include "kube/rest_api_client.h"
#include "util/logging.h"
#include "util/memory.h"

namespace mcop::manager {

struct Manager::ShutdownState {
  std::mutex mu;
  std::condition_variable cv;
  bool requested = false;  // guarded by mu
  int exit_code = 0;       // guarded by mu
  std::string why;         // guarded by mu
  // Set by shutdownOnSignals(): wait() takes the signals itself, in sigwait(), and a request
  // from another thread wakes it there with kWakeSignal.
  bool signals = false;      // guarded by mu
  bool sigwaiting = false;   // wait()'s thread is in sigwait(); guarded by mu
  pthread_t waiter{};        // that thread; guarded by mu

  void request(int code, const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu);
    if (requested) return;
    requested = true;
    exit_code = code;
    why = reason;
    cv.notify_all();
    if (sigwaiting) pthread_kill(waiter, kWakeSignal);
  }
};

namespace {

sigset_t shutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, kWakeSignal);
  return signals;
}

// While stopping, SIGTERM and SIGINT are delivered to wait()'s thread, here: the one that
// completes `exit_after` (2 when the stop did not come from a signal) exits at once.
volatile sig_atomic_t signals_while_stopping = 0;
volatile sig_atomic_t exit_after = 1;

void onSignalWhileStopping(int) {
  if (++signals_while_stopping < exit_after) return;
  static const char msg[] = "memcached-operator: second signal, exiting immediately\n";
  (void)!::write(STDERR_FILENO, msg, sizeof(msg) - 1);
  std::_Exit(1);
}

util::HttpResponse text(int code, const std::string& body) {
  return util::HttpResponse{code, "text/plain; charset=utf-8", body};
}

}  // namespace

void blockShutdownSignals() {
  sigset_t signals = shutdownSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}

size_t ioThreads(int workers, int informers) {
  const int streams = std::max(0, workers) + std::max(0, informers);
  return static_cast<size_t>(std::clamp((streams + 7) / 8, 2, 8));
}

absl::Status initIoThreads(size_t threads) {
  try {
    crossplat::threadpool::initialize_with_threads(threads);
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(
        absl::StrCat("the HTTP thread pool is already running: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Manager>> Manager::create(const kube::RestConfig& config,
                                                         ManagerOptions options) {
  auto& api_requests = options.metrics->counter(
      "memcached_operator_api_requests_total",
      "Kubernetes API requests by verb, resource and HTTP code (0: no response).",
      {"verb", "resource", "code"});
  kube::RestClientOptions client_options;
  client_options.user_agent = options.user_agent;
  client_options.observer = [&api_requests](const std::string& verb, const std::string& resource,
                                            int code, std::chrono::nanoseconds) {
    api_requests.inc({verb, resource, std::to_string(code)});
  };
  auto api = kube::RestApiClient::create(config, client_options);
  if (!api.ok()) return api.status();
  kube::ApiClientPtr lease_api = *api;
  if (options.leader_election) {
    kube::RestClientOptions lease_options = client_options;
    lease_options.request_timeout = std::max(
        std::chrono::seconds(1),
        std::chrono::duration_cast<std::chrono::seconds>(options.leader_election->retry_period));
    auto lease = kube::RestApiClient::create(config, lease_options);
    if (!lease.ok()) return lease.status();
    lease_api = *lease;
  }
  static util::RealClock clock;
  return std::make_unique<Manager>(*api, lease_api, clock, std::move(options));
}

Manager::Manager(kube::ApiClientPtr api, kube::ApiClientPtr lease_api, const util::Clock& clock,
                 ManagerOptions options)
    : api_(std::move(api)),
      lease_api_(std::move(lease_api)),
      clock_(clock),
      options_(std::move(options)),
      leader_gauge_(options_.metrics->gauge("memcached_operator_leader",
                                            "1 while this process is the acting leader.")),
      shutdown_(std::make_shared<ShutdownState>()),
      metrics_server_(options_.metrics_bind),
      health_server_(options_.health_bind),
      informers_(api_, options_.informers) {
  leader_gauge_.set(0);
  if (options_.leader_election) {
    elector_ = std::make_unique<controller::LeaderElector>(
        lease_api_, clock_, *options_.leader_election,
        controller::LeaderCallbacks{[this] { startControllers(); },
                                    [this] {
                                      leader_gauge_.set(0);
                                      requestShutdown(1, "leader election lost");
                                    },
                                    nullptr});
  }
  // The fence asks the elector on every write: it turns false at the renew deadline by itself.
  controller::LeaderElector* elector = elector_.get();
  writer_ = std::make_shared<kube::FencedApiClient>(
      api_, [elector] { return elector == nullptr || elector->isLeader(); });
  options_.metrics->callback("memcached_operator_writes_refused_total",
                             "Writes refused because this process was no longer the leader.",
                             "counter", [weak = std::weak_ptr<kube::FencedApiClient>(writer_)] {
                               // Weak: the registry outlives the manager.
                               auto f = weak.lock();
                               return f ? static_cast<double>(f->refused()) : 0.0;
                             });
  events_ = std::make_unique<kube::ApiEventRecorder>(writer_, clock_, options_.component);
}

Manager::~Manager() {
  if (!stopped_) {
    requestShutdown(0, "manager destroyed");
    wait();
  }
}

controller::Controller& Manager::addController(std::string name,
                                               std::unique_ptr<controller::Reconciler> reconciler,
                                               controller::ControllerOptions options) {
  options.metrics = options_.metrics;
  reconcilers_.push_back(std::move(reconciler));
  controllers_.push_back(std::make_unique<controller::Controller>(
      std::move(name), *reconcilers_.back(), clock_, options));
  return *controllers_.back();
}

void Manager::addStopHook(std::function<void()> hook) { stop_hooks_.push_back(std::move(hook)); }

absl::Status Manager::startServers() {
  const bool same = options_.metrics_bind == options_.health_bind;
  util::HttpServer& probes = same ? metrics_server_ : health_server_;
  util::MetricsRegistry* metrics = options_.metrics;
  metrics_server_.handle("/metrics", [metrics] {
    return util::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics->render()};
  });
  probes.handle("/healthz", [] { return text(200, "ok\n"); });
  probes.handle("/readyz", [this] {
    return ready() ? text(200, "ok\n") : text(503, "caches not synced\n");
  });
  if (auto s = metrics_server_.start(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("--metrics-bind-address: ", s.message()));
  }
  if (!same) {
    if (auto s = health_server_.start(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("--health-probe-bind-address: ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status Manager::start() {
  if (auto s = startServers(); !s.ok()) return s;
  if (elector_) {
    const auto& le = *options_.leader_election;
    spdlog::info("waiting for leadership lease={}/{} identity={}", le.lease_namespace, le.lease_name,
                 le.identity);
    elector_->start();
  } else {
    startControllers();
  }
  informers_.startAll();
  return absl::OkStatus();
}

// On a thread of its own: a controller's start() waits for its caches, and the elector's
// thread (which calls this when it starts leading) must keep renewing meanwhile.
void Manager::startControllers() {
  std::lock_guard<std::mutex> lock(starter_mu_);
  if (stopping_) return;
  starter_ = std::thread([this] {
    for (auto& c : controllers_) {
      absl::Status s = c->start(std::chrono::hours(24 * 365));
      if (!s.ok()) {
        spdlog::error("controller did not start controller={} error={}", c->name(),
                      util::quoted(s.ToString()));
        requestShutdown(1, "controller did not start");
        return;
      }
    }
    leader_gauge_.set(1);
  });
}

void Manager::requestShutdown(int exit_code, const std::string& why) {
  shutdown_->request(exit_code, why);
}

void Manager::shutdownOnSignals() {
  std::lock_guard<std::mutex> lock(shutdown_->mu);
  shutdown_->signals = true;
}

// With shutdownOnSignals(): waits for a shutdown signal or a request from another thread
// (kWakeSignal), then hands later signals to onSignalWhileStopping. No thread of its own.
void Manager::waitForSignalOrRequest() {
  const sigset_t signals = shutdownSignals();
  bool by_signal = false;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(shutdown_->mu);
      shutdown_->sigwaiting = !shutdown_->requested;
      shutdown_->waiter = pthread_self();
      if (shutdown_->requested) break;
    }
    // Once a minute without a signal, hand the heap's free pages back (the garbage of the
    // reconciles since): a wake-up a minute is all this thread costs at rest.
    const timespec minute{60, 0};
    const int sig = sigtimedwait(&signals, nullptr, &minute);
    if (sig < 0) util::releaseFreeMemory();
    {
      std::lock_guard<std::mutex> lock(shutdown_->mu);
      shutdown_->sigwaiting = false;
    }
    if (sig == SIGTERM || sig == SIGINT) {
      by_signal = true;
      shutdown_->request(0, sig == SIGTERM ? "SIGTERM" : "SIGINT");
    }
  }
  exit_after = by_signal ? 1 : 2;
  struct sigaction act {};
  act.sa_handler = onSignalWhileStopping;
  sigemptyset(&act.sa_mask);
  sigaction(SIGTERM, &act, nullptr);
  sigaction(SIGINT, &act, nullptr);
  sigset_t deliver;
  sigemptyset(&deliver);
  sigaddset(&deliver, SIGTERM);
  sigaddset(&deliver, SIGINT);
  pthread_sigmask(SIG_UNBLOCK, &deliver, nullptr);
}

int Manager::wait() {
  bool signals;
  {
    std::lock_guard<std::mutex> lock(shutdown_->mu);
    signals = shutdown_->signals && !stopped_;
  }
  if (signals) waitForSignalOrRequest();
  int exit_code;
  std::string why;
  {
    std::unique_lock<std::mutex> lock(shutdown_->mu);
    shutdown_->cv.wait(lock, [&] { return shutdown_->requested; });
    exit_code = shutdown_->exit_code;
    why = shutdown_->why;
  }
  if (stopped_) return exit_code;
  spdlog::info("shutting down reason={}", util::quoted(why));
  stopAll(exit_code);
  spdlog::info("stopped exit_code={}", exit_code);
  spdlog::default_logger()->flush();
  return exit_code;
}

absl::StatusOr<int> Manager::run() {
  if (auto s = start(); !s.ok()) {
    requestShutdown(1, "start failed");
    wait();
    return s;
  }
  return wait();
}

void Manager::stopAll(int exit_code) {
  stopped_ = true;
  std::mutex watchdog_mu;
  std::condition_variable watchdog_cv;
  bool done = false;
  std::thread watchdog;
  if (exit_code != 0) {
    // Lost the Lease (or could not start): stop acting at once. The fence already refuses
    // every write; in-flight reconciles get a moment to notice and return.
    watchdog = std::thread([&, grace = options_.lost_lease_grace, exit = options_.force_exit] {
      std::unique_lock<std::mutex> lock(watchdog_mu);
      if (watchdog_cv.wait_for(lock, grace, [&] { return done; })) return;
      spdlog::error("exiting without waiting for workers");
      spdlog::default_logger()->flush();
      if (exit) return exit();
      std::_Exit(1);
    });
  }
  std::thread starter;
  {
    std::lock_guard<std::mutex> lock(starter_mu_);
    stopping_ = true;
    starter = std::move(starter_);
  }
  for (auto& c : controllers_) c->stop();  // no new work; running reconciles finish
  if (starter.joinable()) starter.join();
  for (auto& hook : stop_hooks_) hook();
  leader_gauge_.set(0);
  releaseLease(exit_code);
  informers_.stopAll();
  metrics_server_.stop();
  health_server_.stop();
  if (watchdog.joinable()) {
    {
      std::lock_guard<std::mutex> lock(watchdog_mu);
      done = true;
    }
    watchdog_cv.notify_all();
    watchdog.join();
  }
}

void Manager::releaseLease(int exit_code) {
  if (!elector_) return;
  elector_->stop();
  if (exit_code != 0 || !elector_->isLeader()) return;
  // After the workers and hooks stopped, so the next leader never overlaps with us.
  if (auto s = elector_->release(); !s.ok()) {
    spdlog::warn("lease not released error={}", util::quoted(s.ToString()));
  }
}

}  // namespace mcop::manager
