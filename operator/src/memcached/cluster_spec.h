// ClusterSpec: a MemcachedCluster's spec as typed values, with the same defaults as the CRD
// schema (so a cluster created before a default existed, or a unit test's bare object, behaves
// the same), and validate-in-C++ of every rule the CRD also enforces with CEL: a cluster created
// before a rule existed is reported InvalidSpec in status instead of hot-looping on 422s.
// Thread-safety: pure functions and value types.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "memcached/json_util.h"

namespace mcop::memcached {

enum class AntiAffinity { kSoft, kHard };

struct MemcachedSettings {
  int64_t memory_mb = 64;
  int64_t max_connections = 1024;
  int64_t threads = 4;
  std::string max_item_size = "1m";  // memcached -I syntax: bytes, or a k/m suffix
  std::vector<std::string> extra_args;
};

struct DrainSettings {
  int64_t min_seconds = 60;
  int64_t timeout_seconds = 600;
  int64_t connection_threshold = 0;
};

// How a change of the ring (a scale, later a rolling update) reaches the clients
// (docs/transitions.md). Cold publishes the new ring at once: the keys that move start cold on
// their new owners, and every client that reads `servers` stays correct. Warm walks the
// published phases prepare -> copy -> switch -> finalize: the operator copies the moving items
// to their new owners and transition-aware clients (libclientconfig's Client) read through to
// the previous owner, so the hit ratio holds; a client that reads only `servers` does no dual
// invalidation and may read a stale copy during a Warm transition.
enum class TransitionMode { kCold, kWarm };

struct TransitionSettings {
  TransitionMode mode = TransitionMode::kCold;
  // How long a published version takes to reach every client: prepare waits this long before
  // the copy starts, finalize before the old owners are cleaned. Unset in the spec: the drain's
  // minSeconds (the same bound the drain trusts).
  int64_t propagation_seconds = 60;
  // How long the switch phase publishes `previous` (clients read through to the old owners).
  int64_t window_seconds = 60;
  // The copy: items per second per source member (0 = unlimited), items at most per source
  // (0 = all), and the overall time before it gives up and the move goes on cold.
  int64_t copy_items_per_second = 20000;
  int64_t copy_max_items = 0;
  int64_t copy_timeout_seconds = 600;
};

// How a change of the pod template (image, memory, args) reaches the pods.
//   Warm:          with spec.transition.mode Warm, the operator restarts one member at a time: a
//                  transition to the ring without it (its keys copied to the members that take
//                  them), the pod deleted and recreated from the new template, emptied, then a
//                  transition back (its keys copied back). The StatefulSet is OnDelete, so it
//                  never restarts a pod on its own. With transition.mode Cold it acts as
//                  RollingUpdate (two cold moves would lose more than one restart).
//   RollingUpdate: the StatefulSet restarts the pods itself, each one cold.
enum class UpdateStrategy { kWarm, kRollingUpdate };

// spec.tls: memcached serves TLS only (-Z) with the Secret's tls.crt/tls.key, and with
// clientAuth Require verifies client certificates against its ca.crt (ssl_verify_mode=2).
enum class ClientAuth { kNone, kRequire };

struct TlsSettings {
  bool enabled = false;      // spec.tls present
  std::string secret_name;   // keys tls.crt, tls.key, ca.crt (a cert-manager Certificate's Secret)
  ClientAuth client_auth = ClientAuth::kNone;
  // The certificate the operator (and the exporter) present under Require: a Secret with
  // tls.crt/tls.key (and ca.crt). Empty: secret_name (its certificate must then allow client
  // authentication).
  std::string client_secret_name;
};

// spec.auth: memcached ASCII authentication (-Y) with the auth file (user:password lines) in
// a key of a Secret. The operator authenticates with the first entry.
struct AuthSettings {
  bool enabled = false;  // spec.auth present
  std::string secret_name;
  std::string secret_key = "authfile";
  // Resolved by the reconciler, not parsed: SHA-256 hex of the auth file it validated ("" until
  // then). The pod template carries it as an annotation: memcached re-reads its auth file only
  // on SIGHUP, which the operator cannot send into a pod, so a changed file reaches the members
  // by a (warm) rolling restart.
  std::string file_hash;
};

// spec.networkPolicy: a NetworkPolicy that admits ingress to memcached only from the listed
// peers, the operator's pods and (with monitoring) the scraper.
struct NetworkPolicySettings {
  bool enabled = false;
  std::vector<Json> allowed_clients;  // NetworkPolicyPeer objects as given (podSelector,
                                      // namespaceSelector, both)
  std::vector<Json> allowed_scrapers; // peers allowed to the exporter port
};

// spec.monitoring: a memcached exporter sidecar, and a ServiceMonitor when that CRD exists.
struct MonitoringSettings {
  bool enabled = false;
  std::string image = "quay.io/prometheus/memcached-exporter:v0.15.0";
  int64_t port = 9150;
  std::optional<Json> resources;
  bool service_monitor = true;  // create one when monitoring.coreos.com/v1 is served
};

struct ClusterSpec {
  int64_t replicas = 3;
  std::string image = "memcached:1.6.18";
  std::string image_pull_policy;  // "" leaves the API server's default
  int64_t port = 11211;
  std::optional<Json> resources;  // spec.resources as given; nullopt = derived from memoryMB
  MemcachedSettings memcached;

  std::map<std::string, std::string> node_selector;
  std::optional<Json> tolerations;
  std::optional<Json> affinity;
  AntiAffinity anti_affinity = AntiAffinity::kSoft;
  std::optional<Json> topology_spread_constraints;
  std::string priority_class_name;
  std::map<std::string, std::string> pod_labels;
  std::map<std::string, std::string> pod_annotations;

  bool pdb_enabled = true;
  int64_t pdb_max_unavailable = 1;

  std::string config_map_name;  // resolved: "<name>-endpoints" when unset
  std::string hashing = "ketama-libmemcached";
  DrainSettings drain;
  TransitionSettings transition;
  UpdateStrategy update_strategy = UpdateStrategy::kWarm;
  TlsSettings tls;
  AuthSettings auth;
  NetworkPolicySettings network_policy;
  MonitoringSettings monitoring;
  bool paused = false;
};

// Whether template changes roll out warm (see UpdateStrategy).
inline bool warmRollout(const ClusterSpec& spec) {
  return spec.update_strategy == UpdateStrategy::kWarm &&
         spec.transition.mode == TransitionMode::kWarm;
}

struct ParsedSpec {
  ClusterSpec spec;
  // Human-readable problems ("spec.drain.timeoutSeconds (30) must be >= spec.drain.minSeconds
  // (60)"); empty when the spec is valid.
  std::vector<std::string> errors;
};

// Parses and validates the spec of a MemcachedCluster object (the whole object: the name is
// needed for defaults and for name-length rules).
ParsedSpec parseClusterSpec(const Json& cluster);

// memcached -I value in bytes ("1m" -> 1048576); nullopt when malformed.
std::optional<int64_t> itemSizeBytes(const std::string& value);

}  // namespace mcop::memcached
