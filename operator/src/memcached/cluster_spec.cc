// Spec parsing, defaults and validation: see cluster_spec.h. Keep the rules and their wording in
// step with crds/memcached.operator.io_memcachedclusters.yaml.
#include "memcached/cluster_spec.h"

#include <cctype>
#include <regex>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include "memcached/memcached_options.h"
#include "memcached/network_policy.h"

namespace mcop::memcached {
namespace {

class SpecReader {
 public:
  SpecReader(const Json& spec, std::vector<std::string>& errors) : spec_(spec), errors_(errors) {}

  void readInt(std::initializer_list<std::string_view> path, int64_t& out) {
    if (auto value = intField(path)) out = *value;
  }
  // A field whose default depends on another one: stays nullopt when the spec leaves it out.
  void readInt(std::initializer_list<std::string_view> path, std::optional<int64_t>& out) {
    if (auto value = intField(path)) out = value;
  }
  void readString(std::initializer_list<std::string_view> path, std::string& out) {
    const Json* f = findPath(spec_, path);
    if (!f || f->is_null()) return;
    if (!f->is_string()) {
      errors_.push_back(absl::StrCat(pathName(path), " must be a string"));
      return;
    }
    out = f->as_string();
  }
  void readBool(std::initializer_list<std::string_view> path, bool& out) {
    const Json* f = findPath(spec_, path);
    if (!f || f->is_null()) return;
    if (!f->is_boolean()) {
      errors_.push_back(absl::StrCat(pathName(path), " must be true or false"));
      return;
    }
    out = f->as_bool();
  }
  void readStringMap(std::initializer_list<std::string_view> path,
                     std::map<std::string, std::string>& out) {
    const Json* f = findPath(spec_, path);
    if (!f || f->is_null()) return;
    if (!f->is_object()) {
      errors_.push_back(absl::StrCat(pathName(path), " must be a map of strings"));
      return;
    }
    for (const auto& [k, v] : f->as_object()) {
      if (!v.is_string()) {
        errors_.push_back(absl::StrCat(pathName(path), ".", k, " must be a string"));
        continue;
      }
      out[k] = v.as_string();
    }
  }
  void readStringList(std::initializer_list<std::string_view> path, std::vector<std::string>& out) {
    const Json* f = findPath(spec_, path);
    if (!f || f->is_null()) return;
    if (!f->is_array()) {
      errors_.push_back(absl::StrCat(pathName(path), " must be a list of strings"));
      return;
    }
    for (const auto& v : f->as_array()) {
      if (!v.is_string()) {
        errors_.push_back(absl::StrCat(pathName(path), " must be a list of strings"));
        return;
      }
      out.push_back(v.as_string());
    }
  }
  // Objects and lists passed through to the pod template as given.
  void readRaw(std::initializer_list<std::string_view> path, std::optional<Json>& out,
               bool want_array) {
    const Json* f = findPath(spec_, path);
    if (!f || f->is_null()) return;
    if (want_array ? !f->is_array() : !f->is_object()) {
      errors_.push_back(
          absl::StrCat(pathName(path), want_array ? " must be a list" : " must be an object"));
      return;
    }
    out = *f;
  }

  static std::string pathName(std::initializer_list<std::string_view> path) {
    std::string out = "spec";
    for (std::string_view p : path) out.append(".").append(p);
    return out;
  }

 private:
  // The integer at path; nullopt when absent, null or (reported) not an integer.
  std::optional<int64_t> intField(std::initializer_list<std::string_view> path) {
    const Json* f = findPath(spec_, path);
    if (!f || f->is_null()) return std::nullopt;
    if (!f->is_number() || !f->is_integer()) {
      errors_.push_back(absl::StrCat(pathName(path), " must be an integer"));
      return std::nullopt;
    }
    return f->as_number().to_int64();
  }

  const Json& spec_;
  std::vector<std::string>& errors_;
};

bool isDnsSubdomain(const std::string& s) {
  static const std::regex re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  return !s.empty() && s.size() <= 253 && std::regex_match(s, re);
}

// The fields readFields cannot put into ClusterSpec yet: enums as written (typed by their
// check), and values whose default is another field's resolved value.
struct RawFields {
  std::string anti_affinity = "soft";
  std::string transition_mode = "Cold";
  std::string update_strategy = "Warm";
  std::optional<int64_t> propagation_seconds;  // nullopt: drain.minSeconds
  std::string client_auth = "None";
  std::optional<Json> allowed_clients;   // lists of NetworkPolicyPeer, checked item by item
  std::optional<Json> allowed_scrapers;
};

// The sections whose presence switches a feature on (spec.tls, spec.auth): present means an
// object, even an empty one (its missing secretName is then reported).
bool present(const Json& spec, std::string_view field) {
  const Json* f = findPath(spec, {field});
  return f && !f->is_null();
}

// spec.tls, spec.auth, spec.networkPolicy and spec.monitoring.
void readSecurityFields(const Json& spec, SpecReader& r, ClusterSpec& s, RawFields& raw) {
  s.tls.enabled = present(spec, "tls");
  r.readString({"tls", "secretName"}, s.tls.secret_name);
  r.readString({"tls", "clientAuth"}, raw.client_auth);
  r.readString({"tls", "clientSecretName"}, s.tls.client_secret_name);
  s.auth.enabled = present(spec, "auth");
  r.readString({"auth", "secretName"}, s.auth.secret_name);
  r.readString({"auth", "key"}, s.auth.secret_key);
  r.readBool({"networkPolicy", "enabled"}, s.network_policy.enabled);
  r.readRaw({"networkPolicy", "allowedClients"}, raw.allowed_clients, true);
  r.readRaw({"networkPolicy", "allowedScrapers"}, raw.allowed_scrapers, true);
  r.readBool({"monitoring", "enabled"}, s.monitoring.enabled);
  r.readString({"monitoring", "image"}, s.monitoring.image);
  r.readInt({"monitoring", "port"}, s.monitoring.port);
  r.readRaw({"monitoring", "resources"}, s.monitoring.resources, false);
  r.readBool({"monitoring", "serviceMonitor"}, s.monitoring.service_monitor);
}

// Reads every field the spec sets over the defaults, in the CRD's order, reporting type errors
// ("must be an integer").
RawFields readFields(SpecReader& r, ClusterSpec& s) {
  RawFields raw;
  // The pod and its container.
  r.readInt({"replicas"}, s.replicas);
  r.readString({"image"}, s.image);
  r.readString({"imagePullPolicy"}, s.image_pull_policy);
  r.readInt({"port"}, s.port);
  r.readRaw({"resources"}, s.resources, false);
  // memcached's own flags.
  r.readInt({"memcached", "memoryMB"}, s.memcached.memory_mb);
  r.readInt({"memcached", "maxConnections"}, s.memcached.max_connections);
  r.readInt({"memcached", "threads"}, s.memcached.threads);
  r.readString({"memcached", "maxItemSize"}, s.memcached.max_item_size);
  r.readStringList({"memcached", "extraArgs"}, s.memcached.extra_args);
  // Scheduling and pod metadata.
  r.readStringMap({"nodeSelector"}, s.node_selector);
  r.readRaw({"tolerations"}, s.tolerations, true);
  r.readRaw({"affinity"}, s.affinity, false);
  r.readString({"antiAffinity"}, raw.anti_affinity);
  r.readRaw({"topologySpreadConstraints"}, s.topology_spread_constraints, true);
  r.readString({"priorityClassName"}, s.priority_class_name);
  r.readStringMap({"podLabels"}, s.pod_labels);
  r.readStringMap({"podAnnotations"}, s.pod_annotations);
  // Disruptions, the published client configuration, the scale-down drain.
  r.readBool({"podDisruptionBudget", "enabled"}, s.pdb_enabled);
  r.readInt({"podDisruptionBudget", "maxUnavailable"}, s.pdb_max_unavailable);
  r.readString({"clientConfig", "configMapName"}, s.config_map_name);
  r.readString({"clientConfig", "hashing"}, s.hashing);
  r.readInt({"drain", "minSeconds"}, s.drain.min_seconds);
  r.readInt({"drain", "timeoutSeconds"}, s.drain.timeout_seconds);
  r.readInt({"drain", "connectionThreshold"}, s.drain.connection_threshold);
  // How a ring change reaches the clients.
  r.readString({"transition", "mode"}, raw.transition_mode);
  r.readString({"updateStrategy", "type"}, raw.update_strategy);
  r.readInt({"transition", "propagationSeconds"}, raw.propagation_seconds);
  r.readInt({"transition", "windowSeconds"}, s.transition.window_seconds);
  r.readInt({"transition", "copy", "itemsPerSecond"}, s.transition.copy_items_per_second);
  r.readInt({"transition", "copy", "maxItems"}, s.transition.copy_max_items);
  r.readInt({"transition", "copy", "timeoutSeconds"}, s.transition.copy_timeout_seconds);
  r.readBool({"paused"}, s.paused);
  return raw;
}

// The checks below run after every field is read, one spec section each; their messages say
// what to change and follow the CRD's CEL messages.

void checkName(const std::string& name, std::vector<std::string>& errors) {
  static const std::regex name_re("^[a-z]([-a-z0-9]*[a-z0-9])?$");
  if (name.size() > 52 || !std::regex_match(name, name_re)) {
    errors.push_back(absl::StrCat("metadata.name \"", name,
                                  "\" must be at most 52 characters, start with a letter and "
                                  "contain only lowercase letters, digits and '-' (it names the "
                                  "StatefulSet and its Services)"));
  }
}

// The CRD's maxLength/maxItems bounds, so that an object stored before they existed (or through
// a CRD without them) is refused with the field named, not handed to the pod template.
constexpr size_t kMaxImageLength = 512;
constexpr size_t kMaxExtraArgs = 64;
constexpr size_t kMaxExtraArgLength = 256;

void checkMaxLength(const std::string& field, const std::string& value, size_t max,
                    std::vector<std::string>& errors) {
  if (value.size() > max) {
    errors.push_back(absl::StrCat(field, " is ", value.size(), " characters: it must be at most ",
                                  max, " characters"));
  }
}

void checkPod(const ClusterSpec& s, std::vector<std::string>& errors) {
  if (s.replicas < 0 || s.replicas > 1000) {
    errors.push_back(absl::StrCat("spec.replicas (", s.replicas, ") must be between 0 and 1000"));
  }
  if (s.image.empty()) errors.push_back("spec.image must not be empty");
  checkMaxLength("spec.image", s.image, kMaxImageLength, errors);
  if (!s.image_pull_policy.empty() && s.image_pull_policy != "Always" &&
      s.image_pull_policy != "IfNotPresent" && s.image_pull_policy != "Never") {
    errors.push_back("spec.imagePullPolicy must be Always, IfNotPresent or Never");
  }
  if (s.port < 1 || s.port > 65535) {
    errors.push_back(absl::StrCat("spec.port (", s.port, ") must be between 1 and 65535"));
  }
}

void checkItemSize(const MemcachedSettings& m, std::vector<std::string>& errors) {
  auto item = itemSizeBytes(m.max_item_size);
  if (!item) {
    errors.push_back(absl::StrCat("spec.memcached.maxItemSize \"", m.max_item_size,
                                  "\" must be a byte count with an optional k or m suffix, "
                                  "e.g. 1m or 512k"));
  } else if (*item < 1024 || *item > 1024LL * 1024 * 1024) {
    errors.push_back("spec.memcached.maxItemSize must be between 1k and 1024m");
  } else if (*item * 2 > m.memory_mb * 1024 * 1024) {
    errors.push_back(absl::StrCat(
        "spec.memcached.maxItemSize (", m.max_item_size,
        ") must be at most half of spec.memcached.memoryMB (memcached refuses to start otherwise)"));
  }
}

void checkMemcached(const MemcachedSettings& m, std::vector<std::string>& errors) {
  if (m.memory_mb < 1 || m.memory_mb > 1048576) {
    errors.push_back(absl::StrCat("spec.memcached.memoryMB (", m.memory_mb,
                                  ") must be between 1 and 1048576"));
  }
  if (m.max_connections < 15 || m.max_connections > 1048576) {
    errors.push_back(absl::StrCat("spec.memcached.maxConnections (", m.max_connections,
                                  ") must be between 15 and 1048576"));
  }
  if (m.threads < 1 || m.threads > 256) {
    errors.push_back(
        absl::StrCat("spec.memcached.threads (", m.threads, ") must be between 1 and 256"));
  } else if (m.max_connections < 5 * m.threads + 10) {
    // memcached 1.6.18 needs descriptors for each worker thread and exits at start below about
    // 5 × threads + 4 ("Too many open files"); the margin covers the two listeners we add.
    errors.push_back(absl::StrCat("spec.memcached.maxConnections (", m.max_connections,
                                  ") must be at least 5 × memcached.threads + 10 (",
                                  5 * m.threads + 10, " for ", m.threads,
                                  " threads): memcached refuses to start with fewer"));
  }
  checkItemSize(m, errors);
  if (m.extra_args.size() > kMaxExtraArgs) {
    errors.push_back(absl::StrCat("spec.memcached.extraArgs has ", m.extra_args.size(),
                                  " items: it must have at most ", kMaxExtraArgs, " items"));
  }
  for (size_t i = 0; i < m.extra_args.size(); ++i) {
    checkMaxLength(absl::StrCat("spec.memcached.extraArgs[", i, "]"), m.extra_args[i],
                   kMaxExtraArgLength, errors);
  }
  // Parsed the way memcached's getopt_long reads them: see memcached_options.h.
  for (auto& problem : checkExtraArgs(m.extra_args)) errors.push_back(std::move(problem));
}

// Also sets the typed spec.antiAffinity from its text.
void checkScheduling(const std::string& anti_affinity, ClusterSpec& s,
                     std::vector<std::string>& errors) {
  if (anti_affinity == "soft") {
    s.anti_affinity = AntiAffinity::kSoft;
  } else if (anti_affinity == "hard") {
    s.anti_affinity = AntiAffinity::kHard;
  } else {
    errors.push_back(
        absl::StrCat("spec.antiAffinity \"", anti_affinity, "\" must be soft or hard"));
  }
}

void checkDisruptionBudget(const ClusterSpec& s, std::vector<std::string>& errors) {
  if (s.pdb_max_unavailable < 1) {
    errors.push_back("spec.podDisruptionBudget.maxUnavailable must be at least 1");
  }
}

void checkClientConfig(const ClusterSpec& s, std::vector<std::string>& errors) {
  if (!isDnsSubdomain(s.config_map_name)) {
    errors.push_back(absl::StrCat("spec.clientConfig.configMapName \"", s.config_map_name,
                                  "\" must be a DNS subdomain name (lowercase letters, digits, "
                                  "'-' and '.', at most 253 characters)"));
  } else if (s.config_map_name == "kube-root-ca.crt") {
    // Published by Kubernetes in every namespace; the operator would only ever report a
    // conflict on it, so say so at once.
    errors.push_back("spec.clientConfig.configMapName kube-root-ca.crt is Kubernetes' own CA "
                     "bundle in every namespace: choose another name");
  }
  if (s.hashing != "ketama-libmemcached" && s.hashing != "ketama-libketama") {
    errors.push_back(absl::StrCat("spec.clientConfig.hashing \"", s.hashing,
                                  "\" must be ketama-libmemcached or ketama-libketama"));
  }
}

void checkDrain(const DrainSettings& d, std::vector<std::string>& errors) {
  if (d.min_seconds < 0 || d.min_seconds > 86400) {
    errors.push_back("spec.drain.minSeconds must be between 0 and 86400");
  }
  if (d.timeout_seconds < 0 || d.timeout_seconds > 604800) {
    errors.push_back("spec.drain.timeoutSeconds must be between 0 and 604800");
  }
  if (d.timeout_seconds < d.min_seconds) {
    errors.push_back(absl::StrCat("spec.drain.timeoutSeconds (", d.timeout_seconds,
                                  ") must be >= spec.drain.minSeconds (", d.min_seconds, ")"));
  }
  if (d.connection_threshold < 0) {
    errors.push_back("spec.drain.connectionThreshold must be >= 0");
  }
}

// Also sets the typed mode from its text, and propagationSeconds from drain.minSeconds when the
// spec leaves it out: both bound how long a published list takes to reach every client.
void checkTransition(const RawFields& raw, ClusterSpec& s, std::vector<std::string>& errors) {
  TransitionSettings& t = s.transition;
  if (raw.transition_mode == "Cold") {
    t.mode = TransitionMode::kCold;
  } else if (raw.transition_mode == "Warm") {
    t.mode = TransitionMode::kWarm;
  } else {
    errors.push_back(absl::StrCat("spec.transition.mode \"", raw.transition_mode,
                                  "\" must be Cold or Warm"));
  }
  if (raw.update_strategy == "Warm") {
    s.update_strategy = UpdateStrategy::kWarm;
  } else if (raw.update_strategy == "RollingUpdate") {
    s.update_strategy = UpdateStrategy::kRollingUpdate;
  } else {
    errors.push_back(absl::StrCat("spec.updateStrategy.type \"", raw.update_strategy,
                                  "\" must be Warm or RollingUpdate"));
  }
  t.propagation_seconds = raw.propagation_seconds.value_or(s.drain.min_seconds);
  if (raw.propagation_seconds && (t.propagation_seconds < 0 || t.propagation_seconds > 86400)) {
    errors.push_back(absl::StrCat("spec.transition.propagationSeconds (", t.propagation_seconds,
                                  ") must be between 0 and 86400"));
  }
  if (t.window_seconds < 0 || t.window_seconds > 86400) {
    errors.push_back(absl::StrCat("spec.transition.windowSeconds (", t.window_seconds,
                                  ") must be between 0 and 86400"));
  }
  if (t.copy_items_per_second < 0) {
    errors.push_back(absl::StrCat("spec.transition.copy.itemsPerSecond (",
                                  t.copy_items_per_second, ") must be >= 0 (0 = unlimited)"));
  }
  if (t.copy_max_items < 0) {
    errors.push_back(absl::StrCat("spec.transition.copy.maxItems (", t.copy_max_items,
                                  ") must be >= 0 (0 = all)"));
  }
  if (t.copy_timeout_seconds < 1 || t.copy_timeout_seconds > 86400) {
    errors.push_back(absl::StrCat("spec.transition.copy.timeoutSeconds (",
                                  t.copy_timeout_seconds, ") must be between 1 and 86400"));
  }
}

// A Secret name: a DNS subdomain, as the API server requires.
void checkSecretName(const std::string& field, const std::string& value, bool required,
                     std::vector<std::string>& errors) {
  if (value.empty()) {
    if (required) errors.push_back(absl::StrCat(field, " is required"));
    return;
  }
  if (!isDnsSubdomain(value)) {
    errors.push_back(absl::StrCat(field, " \"", value,
                                  "\" must be a Secret name (a DNS subdomain: lowercase letters, "
                                  "digits, '-' and '.', at most 253 characters)"));
  }
}

// Also sets the typed clientAuth from its text.
void checkTls(const RawFields& raw, TlsSettings& t, std::vector<std::string>& errors) {
  if (raw.client_auth == "None") {
    t.client_auth = ClientAuth::kNone;
  } else if (raw.client_auth == "Require") {
    t.client_auth = ClientAuth::kRequire;
  } else {
    errors.push_back(absl::StrCat("spec.tls.clientAuth \"", raw.client_auth,
                                  "\" must be None or Require"));
  }
  if (!t.enabled) return;
  checkSecretName("spec.tls.secretName", t.secret_name, true, errors);
  checkSecretName("spec.tls.clientSecretName", t.client_secret_name, false, errors);
  if (!t.client_secret_name.empty() && raw.client_auth != "Require") {
    errors.push_back("spec.tls.clientSecretName is only used with clientAuth Require (the "
                     "certificate the operator and the exporter present): remove it or set "
                     "clientAuth: Require");
  }
}

// A Secret key as the API server allows it (and a safe file name in the mounted volume).
bool isSecretKey(const std::string& key) {
  static const std::regex re("^[-._a-zA-Z0-9]+$");
  return !key.empty() && key.size() <= 253 && std::regex_match(key, re) && key != "." &&
         key.rfind("..", 0) != 0;
}

void checkAuth(const AuthSettings& a, std::vector<std::string>& errors) {
  if (!a.enabled) return;
  checkSecretName("spec.auth.secretName", a.secret_name, true, errors);
  if (!isSecretKey(a.secret_key)) {
    errors.push_back(absl::StrCat("spec.auth.key \"", a.secret_key,
                                  "\" must be a Secret key (letters, digits, '-', '_' and '.', "
                                  "not starting with '..')"));
  }
}

void checkNetworkPolicy(const RawFields& raw, NetworkPolicySettings& n,
                        std::vector<std::string>& errors) {
  if (raw.allowed_clients) {
    n.allowed_clients = checkNetworkPolicyPeers("spec.networkPolicy.allowedClients",
                                                *raw.allowed_clients, errors);
  }
  if (raw.allowed_scrapers) {
    n.allowed_scrapers = checkNetworkPolicyPeers("spec.networkPolicy.allowedScrapers",
                                                 *raw.allowed_scrapers, errors);
  }
}

void checkMonitoring(const ClusterSpec& s, std::vector<std::string>& errors) {
  const MonitoringSettings& m = s.monitoring;
  if (m.image.empty()) errors.push_back("spec.monitoring.image must not be empty");
  checkMaxLength("spec.monitoring.image", m.image, kMaxImageLength, errors);
  if (m.port < 1 || m.port > 65535) {
    errors.push_back(
        absl::StrCat("spec.monitoring.port (", m.port, ") must be between 1 and 65535"));
  } else if (m.enabled && m.port == s.port) {
    errors.push_back(absl::StrCat("spec.monitoring.port (", m.port,
                                  ") must differ from spec.port: the exporter listens beside "
                                  "memcached in the same pod"));
  }
  if (m.enabled && s.auth.enabled) {
    errors.push_back("spec.monitoring.enabled cannot be true together with spec.auth: the "
                     "memcached exporter (v0.15.0) cannot authenticate to memcached (it has no "
                     "ASCII authentication), so it could read no statistics");
  }
}

}  // namespace

std::optional<int64_t> itemSizeBytes(const std::string& value) {
  if (value.empty() || value.size() > 12) return std::nullopt;
  int64_t mult = 1;
  std::string digits = value;
  char last = value.back();
  if (last == 'k' || last == 'K') {
    mult = 1024;
    digits.pop_back();
  } else if (last == 'm' || last == 'M') {
    mult = 1024 * 1024;
    digits.pop_back();
  }
  if (digits.empty()) return std::nullopt;
  int64_t n = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n * mult;
}

// Two phases, so the errors (joined into the InvalidSpec status message) list type errors first
// in field order, then rule violations section by section.
ParsedSpec parseClusterSpec(const Json& cluster) {
  ParsedSpec out;
  ClusterSpec& s = out.spec;
  const std::string name = stringAt(cluster, {"metadata", "name"});
  static const Json kEmpty = Json::object();
  const Json* spec_ptr = findPath(cluster, {"spec"});
  const Json& spec = spec_ptr && spec_ptr->is_object() ? *spec_ptr : kEmpty;
  SpecReader reader(spec, out.errors);
  RawFields raw = readFields(reader, s);
  readSecurityFields(spec, reader, s, raw);
  if (s.config_map_name.empty()) s.config_map_name = name + "-endpoints";

  checkName(name, out.errors);
  checkPod(s, out.errors);
  checkMemcached(s.memcached, out.errors);
  checkScheduling(raw.anti_affinity, s, out.errors);
  checkDisruptionBudget(s, out.errors);
  checkClientConfig(s, out.errors);
  checkDrain(s.drain, out.errors);
  checkTransition(raw, s, out.errors);
  checkTls(raw, s.tls, out.errors);
  checkAuth(s.auth, out.errors);
  checkNetworkPolicy(raw, s.network_policy, out.errors);
  checkMonitoring(s, out.errors);
  return out;
}

}  // namespace mcop::memcached
