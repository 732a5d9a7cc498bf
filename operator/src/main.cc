// memcached-operator: parses flags, sets up logging, and runs a Manager (manager/manager.h:
// informers, leader election, probes, metrics, the shutdown order) with the MemcachedCluster
// controller (memcached/cluster_controller.h). Everything with behaviour lives elsewhere.
#include <cstdio>
#include <cstdlib>

#include <map>
#include <optional>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>
#include <cxxopts.hpp>
#include <spdlog/spdlog.h>

#include "controller/leader_election.h"
#include "kube/kubeconfig.h"
#include "kube/rest_api_client.h"
#include "manager/manager.h"
#include "memcached/cluster_controller.h"
#include "util/failpoint.h"
#include "util/logging.h"
#include "util/memory.h"
#include "util/time.h"

namespace {

using namespace mcop;
using std::chrono::milliseconds;

constexpr char kVersion[] = "0.1.0";
// Informers the cluster controller runs (memcached/cluster_controller.cc: the cluster, its five
// kinds of children, pods, ServiceMonitors when served), for sizing the HTTP thread pool, which
// must happen before the controller exists.
constexpr int kInformers = 8;

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
  std::string operator_namespace;  // default $POD_NAMESPACE (the chart sets it)
  std::map<std::string, std::string> operator_pod_labels;
  milliseconds secret_recheck{30000};
};

// "k1=v1,k2=v2" into a map; nullopt when an item has no '=' or an empty key.
std::optional<std::map<std::string, std::string>> parseLabels(const std::string& text) {
  std::map<std::string, std::string> out;
  if (text.empty()) return out;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos || eq == 0) return std::nullopt;
    out[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
  return out;
}

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
    ("operator-namespace", "namespace of the operator's pods, admitted by every cluster's NetworkPolicy (default: $POD_NAMESPACE; empty: none is admitted, e.g. outside the cluster)", cxxopts::value<std::string>()->default_value(""))
    ("operator-pod-labels", "labels of the operator's pods (k=v,k=v), admitted by every cluster's NetworkPolicy (empty: every pod of --operator-namespace)", cxxopts::value<std::string>()->default_value(""))
    ("stale-copy-sweep-timeout", "overall time for a scale-down's sweep of stale copies (members not done by then are reported and the drain goes on)", cxxopts::value<std::string>()->default_value("120s"))
    ("secret-recheck-interval", "how often a cluster with spec.tls or spec.auth reads its Secrets again (they are read by name, never watched: the operator may only get Secrets)", cxxopts::value<std::string>()->default_value("30s"))
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
    f.operator_namespace = r["operator-namespace"].as<std::string>();
    if (f.operator_namespace.empty()) {
      if (const char* env = std::getenv("POD_NAMESPACE")) f.operator_namespace = env;
    }
    auto labels = parseLabels(r["operator-pod-labels"].as<std::string>());
    if (!labels) fail("--operator-pod-labels: want k=v,k=v", 2);
    f.operator_pod_labels = *labels;
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
    f.secret_recheck = dur("secret-recheck-interval");
  } catch (const std::exception& e) {
    fail(absl::StrCat(e.what(), " (see --help)"), 2);
  }
  if (f.workers < 1 || f.workers > 64) fail("--workers: want 1..64", 2);
  return f;
}

// The Lease: --leader-election-namespace, else --namespace, else the pod's or context's.
controller::LeaderElectionConfig leaderElection(const Flags& flags, const kube::RestConfig& config) {
  controller::LeaderElectionConfig le;
  le.lease_namespace = !flags.le_namespace.empty()         ? flags.le_namespace
                       : !flags.ns.empty()                 ? flags.ns
                       : !config.default_namespace.empty() ? config.default_namespace
                                                           : "default";
  le.lease_name = flags.le_id;
  le.identity = controller::defaultIdentity();
  le.lease_duration = flags.lease_duration;
  le.renew_deadline = flags.renew_deadline;
  le.retry_period = flags.retry_period;
  if (auto s = controller::LeaderElector::validate(le); !s.ok()) fail(std::string(s.message()), 2);
  return le;
}

manager::ManagerOptions managerOptions(const Flags& flags, const kube::RestConfig& config) {
  manager::ManagerOptions o;
  o.metrics_bind = flags.metrics_bind;
  o.health_bind = flags.health_bind;
  if (flags.leader_elect) o.leader_election = leaderElection(flags, config);
  o.informers.watch_idle_timeout = flags.watch_idle_timeout;
  o.user_agent = absl::StrCat("memcached-operator/", kVersion);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  manager::blockShutdownSignals();  // before any thread exists
  util::limitMallocArenas();         // likewise
  Flags flags = parseFlags(argc, argv);
  if (auto s = util::setupLogging(flags.log_format, flags.log_level); !s.ok()) fail(std::string(s.message()), 2);
  // Failpoints (util/failpoint.h), for the reliability tests only: armed before any thread runs.
  if (const char* env = std::getenv("MCOP_FAILPOINTS"); env && *env) {
    auto plan = util::parseFailpoints(env);
    if (!plan.ok()) fail(std::string(plan.status().message()), 2);
    util::armFailpoints(*plan);
    spdlog::warn("failpoints armed (the process exits at them): {}", util::quoted(env));
  }

  auto config = kube::loadConfig({flags.kubeconfig, flags.context, false});
  if (!config.ok()) fail(std::string(config.status().message()));
  // Both before any thread, HTTP client or listener exists.
  kube::skipUnusedSystemTrust(*config);
  if (auto s = manager::initIoThreads(manager::ioThreads(flags.workers, kInformers)); !s.ok()) {
    fail(std::string(s.message()));
  }
  auto mgr = manager::Manager::create(*config, managerOptions(flags, *config));
  if (!mgr.ok()) fail(std::string(mgr.status().message()));
  const std::string server = absl::StrCat(config->server, " (", config->description, ")");
  if (auto s = memcached::checkClusterApi(*(*mgr)->api(), flags.ns, server); !s.ok()) {
    fail(std::string(s.message()));
  }
  spdlog::info("starting memcached-operator version={} config={} namespace={} workers={} leader_elect={}",
               kVersion, util::quoted(config->description), flags.ns.empty() ? "all" : flags.ns, flags.workers,
               flags.leader_elect);
  // What every cluster's NetworkPolicy admits as the operator (none without a namespace).
  std::string peer_labels;
  for (const auto& [k, v] : flags.operator_pod_labels) {
    absl::StrAppend(&peer_labels, peer_labels.empty() ? "" : ",", k, "=", v);
  }
  spdlog::info("network policy operator peer namespace={} pod_labels={}",
               flags.operator_namespace.empty() ? "none" : flags.operator_namespace,
               util::quoted(peer_labels));

  memcached::ClusterControllerOptions cluster;
  cluster.ns = flags.ns;
  cluster.workers = flags.workers;
  cluster.reconciler.cluster_domain = flags.cluster_domain;
  cluster.reconciler.operator_peer = {flags.operator_namespace, flags.operator_pod_labels};
  cluster.reconciler.sweeps.deadline = flags.sweep_timeout;
  cluster.reconciler.secret_recheck = flags.secret_recheck;
  memcached::addClusterController(**mgr, cluster);

  (*mgr)->shutdownOnSignals();
  auto exit_code = (*mgr)->run();
  if (!exit_code.ok()) fail(std::string(exit_code.status().message()));
  return *exit_code;
}
