// memcached-operator: flags, logging, signals, and the wiring of the runtime (API client,
// informers, workqueue controller, leader election, metrics and probes) to the domain's
// ClusterReconciler. Everything with behaviour lives in kube/, controller/, util/ and
// memcached/; this file only connects them.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <absl/strings/str_cat.h>
#include <cxxopts.hpp>
#include <spdlog/spdlog.h>

#include "controller/controller.h"
#include "controller/leader_election.h"
#include "kube/event_recorder.h"
#include "kube/fenced_api_client.h"
#include "kube/informer.h"
#include "kube/kubeconfig.h"
#include "kube/object_meta.h"
#include "kube/rest_api_client.h"
#include "memcached/cluster_reconciler.h"
#include "memcached/connection_counter.h"
#include "util/clock.h"
#include "util/http_server.h"
#include "util/logging.h"
#include "util/metrics.h"
#include "util/time.h"

namespace {

using namespace mcop;
using std::chrono::milliseconds;

constexpr char kVersion[] = "0.1.0";
// Labels shared with the domain (memcached/labels.h): children carry managed-by, pods the app
// name, and both name their cluster.
constexpr char kManagedBySelector[] = "app.kubernetes.io/managed-by=memcached-operator";
constexpr char kPodSelector[] = "app.kubernetes.io/name=memcached";
constexpr char kClusterLabel[] = "memcached.operator.io/cluster";

// Unusable configuration: one line on stderr that says what to fix, then exit.
[[noreturn]] void fail(const std::string& msg, int code = 1) {
  std::fprintf(stderr, "memcached-operator: %s\n", msg.c_str());
  std::fflush(stderr);
  std::exit(code);
}

struct Flags {
  std::string kubeconfig;
  std::string context;
  std::string ns;
  int workers = 4;
  std::string log_format = "text";
  std::string log_level = "info";
  std::string metrics_bind = ":8080";
  std::string health_bind = ":8081";
  bool leader_elect = false;
  std::string le_namespace;
  std::string le_id = "memcached-operator-leader";
  milliseconds lease_duration{15000}, renew_deadline{10000}, retry_period{2000};
  milliseconds watch_idle_timeout{180000};
  std::string cluster_domain = "cluster.local";
  milliseconds sweep_timeout{120000};
};

Flags parseFlags(int argc, char** argv) {
  cxxopts::Options options("memcached-operator",
                           "Runs memcached clusters on Kubernetes and publishes their ordered "
                           "endpoint list to clients.");
  // clang-format off
  options.add_options()
    ("kubeconfig", "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)", cxxopts::value<std::string>()->default_value(""))
    ("context", "kubeconfig context (default: current-context)", cxxopts::value<std::string>()->default_value(""))
    ("namespace", "watch only this namespace (default: all namespaces)", cxxopts::value<std::string>()->default_value(""))
    ("workers", "concurrent reconciles", cxxopts::value<int>()->default_value("4"))
    ("log-format", "json or text", cxxopts::value<std::string>()->default_value("text"))
    ("log-level", "trace, debug, info, warn, error", cxxopts::value<std::string>()->default_value("info"))
    ("metrics-bind-address", "address of /metrics (\"0\" disables)", cxxopts::value<std::string>()->default_value(":8080"))
    ("health-probe-bind-address", "address of /healthz and /readyz (\"0\" disables)", cxxopts::value<std::string>()->default_value(":8081"))
    ("leader-elect", "elect a leader on a Lease; only the leader reconciles", cxxopts::value<bool>()->default_value("false"))
    ("leader-election-namespace", "namespace of the Lease (default: --namespace, then the pod's or context's namespace)", cxxopts::value<std::string>()->default_value(""))
    ("leader-election-id", "name of the Lease", cxxopts::value<std::string>()->default_value("memcached-operator-leader"))
    ("lease-duration", "how long a standby waits before taking a silent leader's Lease", cxxopts::value<std::string>()->default_value("15s"))
    ("renew-deadline", "how long a leader keeps acting without a successful renewal", cxxopts::value<std::string>()->default_value("10s"))
    ("retry-period", "interval between acquire/renew attempts", cxxopts::value<std::string>()->default_value("2s"))
    ("watch-idle-timeout", "restart a watch that received nothing, not even a bookmark (sent about every minute), for this long", cxxopts::value<std::string>()->default_value("3m"))
    ("cluster-domain", "cluster DNS domain used in published host names", cxxopts::value<std::string>()->default_value("cluster.local"))
    ("stale-copy-sweep-timeout", "overall time for a scale-down's sweep of stale copies (members not done by then are reported and the drain goes on)", cxxopts::value<std::string>()->default_value("120s"))
    ("version", "print the version and exit")
    ("h,help", "print this help and exit");
  // clang-format on
  Flags f;
  try {
    auto r = options.parse(argc, argv);
    if (r.count("help")) {
      std::printf("%s\n", options.help().c_str());
      std::exit(0);
    }
    if (r.count("version")) {
      std::printf("memcached-operator %s\n", kVersion);
      std::exit(0);
    }
    if (!r.unmatched().empty()) fail("unexpected argument \"" + r.unmatched()[0] + "\" (see --help)", 2);
    f.kubeconfig = r["kubeconfig"].as<std::string>();
    f.context = r["context"].as<std::string>();
    f.ns = r["namespace"].as<std::string>();
    f.workers = r["workers"].as<int>();
    f.log_format = r["log-format"].as<std::string>();
    f.log_level = r["log-level"].as<std::string>();
    f.metrics_bind = r["metrics-bind-address"].as<std::string>();
    f.health_bind = r["health-probe-bind-address"].as<std::string>();
    f.leader_elect = r["leader-elect"].as<bool>();
    f.le_namespace = r["leader-election-namespace"].as<std::string>();
    f.le_id = r["leader-election-id"].as<std::string>();
    f.cluster_domain = r["cluster-domain"].as<std::string>();
    auto dur = [&](const char* name) {
      auto d = util::parseDuration(r[name].as<std::string>());
      if (!d || d->count() <= 0) fail(absl::StrCat("--", name, ": want a duration like 15s, got \"", r[name].as<std::string>(), "\""), 2);
      return *d;
    };
    f.lease_duration = dur("lease-duration");
    f.renew_deadline = dur("renew-deadline");
    f.retry_period = dur("retry-period");
    f.sweep_timeout = dur("stale-copy-sweep-timeout");
    f.watch_idle_timeout = dur("watch-idle-timeout");
  } catch (const std::exception& e) {
    fail(absl::StrCat(e.what(), " (see --help)"), 2);
  }
  if (f.workers < 1 || f.workers > 64) fail("--workers: want 1..64", 2);
  return f;
}

// Shutdown requests from signals or from losing the Lease.
class Shutdown {
 public:
  void request(int exit_code, const std::string& why) {
    std::lock_guard<std::mutex> lock(mu_);
    if (requested_) return;
    requested_ = true;
    exit_code_ = exit_code;
    why_ = why;
    cv_.notify_all();
  }
  // Returns the exit code once a shutdown is requested.
  int wait(std::string* why) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return requested_; });
    *why = why_;
    return exit_code_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
  int exit_code_ = 0;
  std::string why_;
};

// Children map to their owner by the controller ownerReference, or by the cluster label.
controller::MapFunc childMapper() {
  auto by_owner = controller::ownerMapper("MemcachedCluster", "memcached.operator.io");
  auto by_label = controller::labelMapper(kClusterLabel);
  return [by_owner, by_label](const kube::Object& obj) {
    auto r = by_owner(obj);
    return r.empty() ? by_label(obj) : r;
  };
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken by one thread with sigwait; block them before any thread exists so that
  // every thread (cpprestsdk's pool included) inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Flags flags = parseFlags(argc, argv);
  if (auto s = util::setupLogging(flags.log_format, flags.log_level); !s.ok()) fail(std::string(s.message()), 2);

  auto config = kube::loadConfig({flags.kubeconfig, flags.context, false});
  if (!config.ok()) fail(std::string(config.status().message()));

  util::MetricsRegistry& metrics = util::defaultRegistry();
  auto& api_requests = metrics.counter("memcached_operator_api_requests_total",
                                       "Kubernetes API requests by verb, resource and HTTP code (0: no response).",
                                       {"verb", "resource", "code"});
  auto& leader_gauge = metrics.gauge("memcached_operator_leader", "1 while this process is the acting leader.");
  leader_gauge.set(0);

  kube::RestClientOptions client_options;
  client_options.user_agent = absl::StrCat("memcached-operator/", kVersion);
  client_options.observer = [&api_requests](const std::string& verb, const std::string& resource, int code,
                                            std::chrono::nanoseconds) {
    api_requests.inc({verb, resource, std::to_string(code)});
  };
  auto api_or = kube::RestApiClient::create(*config, client_options);
  if (!api_or.ok()) fail(std::string(api_or.status().message()));
  kube::ApiClientPtr api = *api_or;

  // Pre-flight: a missing CRD, missing RBAC or an unreachable server is a configuration
  // problem to report in one line, not something to retry forever in the informers.
  {
    kube::ListOptions one;
    one.limit = 1;
    auto probe = api->list(kube::resources::kMemcachedCluster, flags.ns, one);
    if (!probe.ok()) {
      const absl::Status& s = probe.status();
      if (absl::IsNotFound(s)) {
        fail("the MemcachedCluster CRD is not installed on " + config->server + " (kubectl apply -f crds/)");
      }
      if (absl::IsPermissionDenied(s) || absl::IsUnauthenticated(s)) {
        fail("not allowed to list memcachedclusters on " + config->server + ": " + std::string(s.message()));
      }
      fail("cannot reach the API server " + config->server + " (" + config->description + "): " + std::string(s.message()));
    }
  }

  spdlog::info("starting memcached-operator version={} config={} namespace={} workers={} leader_elect={}",
               kVersion, util::quoted(config->description), flags.ns.empty() ? "all" : flags.ns, flags.workers,
               flags.leader_elect);

  util::RealClock clock;
  kube::InformerOptions informer_options;
  informer_options.watch_idle_timeout = flags.watch_idle_timeout;
  kube::InformerFactory informers(api, informer_options);
  namespace res = kube::resources;
  kube::Informer& clusters = informers.informer(res::kMemcachedCluster, flags.ns);
  kube::Informer& stateful_sets = informers.informer(res::kStatefulSet, flags.ns, kManagedBySelector);
  kube::Informer& services = informers.informer(res::kService, flags.ns, kManagedBySelector);
  kube::Informer& config_maps = informers.informer(res::kConfigMap, flags.ns, kManagedBySelector);
  kube::Informer& pdbs = informers.informer(res::kPodDisruptionBudget, flags.ns, kManagedBySelector);
  kube::Informer& pods = informers.informer(res::kPod, flags.ns, kPodSelector);

  // Every write of the controllers (children, status, events) goes through the fence: with
  // leader election it refuses writes from the instant this process stops being the leader,
  // including those of reconciles already running. Informers and the elector read and write
  // through `api` directly.
  std::unique_ptr<controller::LeaderElector> elector;
  std::atomic<controller::LeaderElector*> acting_elector{nullptr};  // set once it runs
  auto fenced = std::make_shared<kube::FencedApiClient>(api, [&acting_elector, &flags] {
    if (!flags.leader_elect) return true;
    controller::LeaderElector* e = acting_elector.load();
    return e != nullptr && e->isLeader();
  });
  metrics.callback("memcached_operator_writes_refused_total",
                   "Writes refused because this process was no longer the leader.", "counter",
                   [weak = std::weak_ptr<kube::FencedApiClient>(fenced)] {
                     // Weak: the registry outlives main(), the client must not.
                     auto f = weak.lock();
                     return f ? static_cast<double>(f->refused()) : 0.0;
                   });
  kube::ApiEventRecorder events(fenced, clock);
  memcached::ClusterStores stores{&clusters.store(), &stateful_sets.store(), &services.store(),
                                  &config_maps.store(), &pdbs.store(), &pods.store()};
  memcached::ClusterReconcilerOptions reconciler_options;
  reconciler_options.cluster_domain = flags.cluster_domain;
  reconciler_options.sweeps.deadline = flags.sweep_timeout;
  memcached::ClusterReconciler reconciler(fenced, stores, events, clock,
                                          memcached::makeMemcachedConnectionCounter(),
                                          memcached::makeMemcachedStaleCopySweeper(),
                                          memcached::makeMemcachedMemberFlusher(),
                                          reconciler_options);

  controller::ControllerOptions controller_options;
  controller_options.workers = flags.workers;
  controller::Controller controller("memcachedcluster", reconciler, clock, controller_options);
  controller.watchPrimary(clusters);
  for (kube::Informer* child : {&stateful_sets, &services, &config_maps, &pdbs}) {
    controller.watchMapped(*child, childMapper());
  }
  controller.watchMapped(pods, controller::labelMapper(kClusterLabel));

  // Metrics and probes. Ready once every cache has synced (standbys included: they are ready
  // to take over).
  util::HttpServer metrics_server(flags.metrics_bind);
  util::HttpServer health_server(flags.health_bind);
  bool same = flags.metrics_bind == flags.health_bind;
  util::HttpServer& probe_server = same ? metrics_server : health_server;
  metrics_server.handle("/metrics", [&metrics] {
    return util::HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", metrics.render()};
  });
  probe_server.handle("/healthz", [] { return util::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}; });
  probe_server.handle("/readyz", [&informers] {
    return informers.allSynced()
               ? util::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"}
               : util::HttpResponse{503, "text/plain; charset=utf-8", "caches not synced\n"};
  });
  if (auto s = metrics_server.start(); !s.ok()) fail("--metrics-bind-address: " + std::string(s.message()));
  if (!same) {
    if (auto s = health_server.start(); !s.ok()) fail("--health-probe-bind-address: " + std::string(s.message()));
  }

  Shutdown shutdown;
  std::thread signal_thread([&shutdown, signals] {
    int sig = 0;
    sigwait(&signals, &sig);
    shutdown.request(0, sig == SIGTERM ? "SIGTERM" : "SIGINT");
    // A second signal while stopping: stop now.
    sigwait(&signals, &sig);
    std::fprintf(stderr, "memcached-operator: second signal, exiting immediately\n");
    std::_Exit(1);
  });
  signal_thread.detach();

  // Workers start on a thread of their own: start() waits for the caches, and the elector's
  // thread must keep renewing meanwhile.
  std::thread starter;
  auto start_workers = [&] {
    starter = std::thread([&] {
      absl::Status s = controller.start(std::chrono::hours(24 * 365));
      if (!s.ok()) {
        spdlog::error("controller did not start error={}", util::quoted(s.ToString()));
        shutdown.request(1, "controller did not start");
        return;
      }
      leader_gauge.set(1);
    });
  };

  if (flags.leader_elect) {
    controller::LeaderElectionConfig le;
    le.lease_namespace = !flags.le_namespace.empty() ? flags.le_namespace
                         : !flags.ns.empty()         ? flags.ns
                         : !config->default_namespace.empty() ? config->default_namespace
                                                              : "default";
    le.lease_name = flags.le_id;
    le.identity = controller::defaultIdentity();
    le.lease_duration = flags.lease_duration;
    le.renew_deadline = flags.renew_deadline;
    le.retry_period = flags.retry_period;
    if (auto s = controller::LeaderElector::validate(le); !s.ok()) fail(std::string(s.message()), 2);
    // The fence closes at the renew deadline by itself (isLeader() reads the clock); the
    // callback then stops the workers and exits non-zero, as client-go's OnStoppedLeading
    // convention has it, so the pod restarts as a clean candidate.
    // Lease requests have a client of their own with a short timeout, so one hung request is
    // retried on a fresh connection within the renew deadline; the elector also bounds each
    // request by the time left until that deadline.
    kube::RestClientOptions lease_options = client_options;
    lease_options.request_timeout = std::chrono::seconds(
        std::max<int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(le.retry_period).count()));
    auto lease_api = kube::RestApiClient::create(*config, lease_options);
    if (!lease_api.ok()) fail(std::string(lease_api.status().message()));
    spdlog::info("waiting for leadership lease={}/{} identity={}", le.lease_namespace, le.lease_name, le.identity);
    elector = std::make_unique<controller::LeaderElector>(
        *lease_api, clock, le,
        controller::LeaderCallbacks{start_workers,
                                    [&] {
                                      leader_gauge.set(0);
                                      shutdown.request(1, "leader election lost");
                                    },
                                    nullptr});
    acting_elector = elector.get();
    elector->start();
  } else {
    start_workers();
  }

  informers.startAll();

  std::string why;
  int exit_code = shutdown.wait(&why);
  spdlog::info("shutting down reason={}", util::quoted(why));
  if (exit_code != 0) {
    // Lost the Lease (or could not start): stop acting at once. The fence already refuses
    // every write; in-flight reconciles get a moment to notice and return, and the process
    // exits non-zero either way so the pod restarts, as controller-runtime does.
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::seconds(2));
      spdlog::error("exiting without waiting for workers");
      spdlog::default_logger()->flush();
      std::_Exit(1);
    }).detach();
  }
  controller.stop();  // no new work; running reconciles finish
  if (starter.joinable()) starter.join();
  reconciler.stopSweeps();  // a sweep in flight stops between two items
  leader_gauge.set(0);
  if (elector) {
    elector->stop();
    if (exit_code == 0 && elector->isLeader()) {
      // After the workers stopped, so the next leader never overlaps with us.
      if (auto s = elector->release(); !s.ok()) {
        spdlog::warn("lease not released error={}", util::quoted(s.ToString()));
      }
    }
  }
  informers.stopAll();
  metrics_server.stop();
  health_server.stop();
  spdlog::info("stopped exit_code={}", exit_code);
  spdlog::default_logger()->flush();
  return exit_code;
}
