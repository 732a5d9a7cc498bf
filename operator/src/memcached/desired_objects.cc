// Desired-object builders: see desired_objects.h.
#include "memcached/desired_objects.h"

#include <optional>

#include <absl/strings/str_cat.h>

#include "memcached/labels.h"

namespace mcop::memcached {
namespace {

// memcached's uid/gid in the Debian and official images; any non-root id works since memcached
// writes nothing to disk.
constexpr int64_t kMemcachedUid = 11211;

// Readiness: a member that stops answering is unready after at most period * failureThreshold
// + the probe's own wait (at most 14 s); one slow answer is not enough to flap it.
constexpr int64_t kReadinessPeriodSeconds = 5;
constexpr int64_t kReadinessReplySeconds = 2;  // the probe's own wait for memcached's answer
constexpr int64_t kReadinessTimeoutSeconds = 3;  // the kubelet's, above the probe's own
constexpr int64_t kReadinessFailureThreshold = 2;

// Secret files: readable by their owner (root) and group (the fsGroup), not by others.
constexpr int64_t kSecretFileMode = 0440;
constexpr char kTlsVolume[] = "tls";
constexpr char kAuthVolume[] = "auth";
constexpr char kClientTlsVolume[] = "client-tls";

// The exporter's resources when spec.monitoring.resources is unset: it holds one scrape's
// statistics at a time.
Json defaultExporterResources() {
  return jsonObject(
      {{"requests", jsonObject({{"cpu", jsonString("10m")}, {"memory", jsonString("32Mi")}})},
       {"limits", jsonObject({{"memory", jsonString("64Mi")}})}});
}

Json labelSelector(const std::string& cluster) {
  return jsonObject({{"matchLabels", jsonStringMap(selectorLabels(cluster))}});
}

Json servicePort(const char* name, int64_t port) {
  return jsonObject({{"name", jsonString(name)},
                     {"port", Json::number(port)},
                     {"targetPort", Json::number(port)},
                     {"protocol", jsonString("TCP")}});
}

Json servicePorts(const ClusterSpec& spec) {
  return jsonArray({servicePort("memcached", spec.port)});
}

// Binary quantity in the API server's canonical spelling (1024Mi reads back as 1Gi).
std::string mebibytes(int64_t mi) {
  if (mi % 1024 == 0) return absl::StrCat(mi / 1024, "Gi");
  return absl::StrCat(mi, "Mi");
}

Json antiAffinityTerm(const ClusterRef& ref, AntiAffinity mode) {
  Json term = jsonObject({{"labelSelector", labelSelector(ref.name)},
                          {"topologyKey", jsonString("kubernetes.io/hostname")}});
  if (mode == AntiAffinity::kHard) {
    return jsonObject({{"requiredDuringSchedulingIgnoredDuringExecution", jsonArray({term})}});
  }
  return jsonObject({{"preferredDuringSchedulingIgnoredDuringExecution",
                      jsonArray({jsonObject({{"weight", Json::number(100)},
                                             {"podAffinityTerm", term}})})}});
}

// The restricted securityContext both containers run with: uid/gid 11211, nothing added.
Json containerSecurityContext() {
  return jsonObject(
      {{"allowPrivilegeEscalation", Json::boolean(false)},
       {"capabilities", jsonObject({{"drop", jsonStringArray({"ALL"})}})},
       {"readOnlyRootFilesystem", Json::boolean(true)},
       {"runAsNonRoot", Json::boolean(true)},
       {"runAsUser", Json::number(kMemcachedUid)},
       {"runAsGroup", Json::number(kMemcachedUid)},
       {"seccompProfile", jsonObject({{"type", jsonString("RuntimeDefault")}})}});
}

Json fieldEnv(const char* name, const char* field_path) {
  return jsonObject(
      {{"name", jsonString(name)},
       {"valueFrom",
        jsonObject({{"fieldRef", jsonObject({{"apiVersion", jsonString("v1")},
                                              {"fieldPath", jsonString(field_path)}})}})}});
}

Json mount(const char* volume, const char* path) {
  return jsonObject({{"name", jsonString(volume)},
                     {"mountPath", jsonString(path)},
                     {"readOnly", Json::boolean(true)}});
}

// A Secret volume the containers' group (the pod's fsGroup, 11211) may read and nobody else:
// 0440. Optional false: a missing Secret or key keeps the pod from starting rather than
// starting memcached without TLS or authentication.
Json secretVolume(const char* volume, const std::string& secret,
                  const std::optional<std::string>& only_key) {
  Json source = jsonObject({{"secretName", jsonString(secret)},
                            {"defaultMode", Json::number(kSecretFileMode)},
                            {"optional", Json::boolean(false)}});
  if (only_key) {
    source["items"] = jsonArray(
        {jsonObject({{"key", jsonString(*only_key)}, {"path", jsonString(*only_key)}})});
  }
  return jsonObject({{"name", jsonString(volume)}, {"secret", source}});
}

// The client certificate the exporter presents under clientAuth Require.
bool exporterClientCertificate(const ClusterSpec& spec) {
  return spec.tls.enabled && spec.tls.client_auth == ClientAuth::kRequire;
}
bool separateClientSecret(const ClusterSpec& spec) {
  return exporterClientCertificate(spec) && !spec.tls.client_secret_name.empty();
}

std::vector<Json> podVolumes(const ClusterSpec& spec) {
  std::vector<Json> volumes;
  if (spec.tls.enabled) {
    volumes.push_back(secretVolume(kTlsVolume, spec.tls.secret_name, std::nullopt));
  }
  if (spec.auth.enabled) {
    volumes.push_back(secretVolume(kAuthVolume, spec.auth.secret_name, spec.auth.secret_key));
  }
  if (spec.monitoring.enabled && separateClientSecret(spec)) {
    volumes.push_back(secretVolume(kClientTlsVolume, spec.tls.client_secret_name, std::nullopt));
  }
  return volumes;
}

Json memcachedContainer(const ClusterSpec& spec) {
  Json container = Json::object();
  container["name"] = jsonString("memcached");
  container["image"] = jsonString(spec.image);
  if (!spec.image_pull_policy.empty()) {
    container["imagePullPolicy"] = jsonString(spec.image_pull_policy);
  }
  container["command"] = jsonStringArray({"memcached"});
  container["args"] = jsonStringArray(memcachedArgs(spec));
  container["ports"] = jsonArray({jsonObject({{"name", jsonString("memcached")},
                                              {"containerPort", Json::number(spec.port)},
                                              {"protocol", jsonString("TCP")}})});
  // The pod IP, for the listen address (-l $(POD_IP),...) and the readiness probe.
  container["env"] = jsonArray({fieldEnv(kPodIpEnv, "status.podIP")});
  // Readiness only: a liveness probe that restarts a busy memcached (e.g. at maxConnections)
  // would throw its whole cache away; a crashed memcached exits and is restarted anyway.
  container["readinessProbe"] =
      jsonObject({{"exec", jsonObject({{"command", jsonStringArray(readinessCommand(spec))}})},
                  {"periodSeconds", Json::number(kReadinessPeriodSeconds)},
                  {"timeoutSeconds", Json::number(kReadinessTimeoutSeconds)},
                  {"successThreshold", Json::number(1)},
                  {"failureThreshold", Json::number(kReadinessFailureThreshold)}});
  container["resources"] = spec.resources ? *spec.resources : defaultResources(spec);
  container["securityContext"] = containerSecurityContext();
  std::vector<Json> mounts;
  if (spec.tls.enabled) mounts.push_back(mount(kTlsVolume, kTlsMountPath));
  if (spec.auth.enabled) mounts.push_back(mount(kAuthVolume, kAuthMountPath));
  if (!mounts.empty()) container["volumeMounts"] = jsonArray(mounts);
  return container;
}

// The exporter sidecar. No probes: the pod's readiness is memcached's membership in the ring,
// and an exporter that is slow or failing must not take a healthy member out of it.
Json exporterContainer(const ClusterRef& ref, const ClusterSpec& spec,
                       const std::string& cluster_domain) {
  const MonitoringSettings& m = spec.monitoring;
  Json container = Json::object();
  container["name"] = jsonString(kExporterContainer);
  container["image"] = jsonString(m.image);
  container["args"] = jsonStringArray(exporterArgs(ref, spec, cluster_domain));
  container["ports"] = jsonArray({jsonObject({{"name", jsonString(kMetricsPortName)},
                                              {"containerPort", Json::number(m.port)},
                                              {"protocol", jsonString("TCP")}})});
  std::vector<Json> env = {fieldEnv(kPodIpEnv, "status.podIP")};
  if (spec.tls.enabled) env.push_back(fieldEnv(kPodNameEnv, "metadata.name"));
  container["env"] = jsonArray(env);
  container["resources"] = m.resources ? *m.resources : defaultExporterResources();
  container["securityContext"] = containerSecurityContext();
  std::vector<Json> mounts;
  if (spec.tls.enabled) mounts.push_back(mount(kTlsVolume, kTlsMountPath));
  if (separateClientSecret(spec)) mounts.push_back(mount(kClientTlsVolume, kClientTlsMountPath));
  if (!mounts.empty()) container["volumeMounts"] = jsonArray(mounts);
  return container;
}

Json podSecurityContext(bool secrets) {
  Json sc = jsonObject({{"runAsNonRoot", Json::boolean(true)},
                        {"runAsUser", Json::number(kMemcachedUid)},
                        {"runAsGroup", Json::number(kMemcachedUid)},
                        {"seccompProfile", jsonObject({{"type", jsonString("RuntimeDefault")}})}});
  // The Secret files' group, so that uid 11211 reads them through their 0440 mode. Only with
  // Secrets: an unchanged template for every cluster without them (no restart on upgrade).
  if (secrets) sc["fsGroup"] = Json::number(kMemcachedUid);
  return sc;
}

Json podTemplate(const ClusterRef& ref, const ClusterSpec& spec, const std::string& manager,
                 const std::string& cluster_domain) {
  // Users' pod labels first, ours over them: the selector labels must stay ours.
  std::map<std::string, std::string> labels = spec.pod_labels;
  for (const auto& [k, v] : commonLabels(ref.name, manager)) labels[k] = v;
  Json metadata = jsonObject({{"labels", jsonStringMap(labels)}});
  std::map<std::string, std::string> annotations = spec.pod_annotations;
  if (spec.auth.enabled && !spec.auth.file_hash.empty()) {
    annotations[kAuthHashAnnotation] = spec.auth.file_hash;
  }
  if (!annotations.empty()) metadata["annotations"] = jsonStringMap(annotations);

  std::vector<Json> containers = {memcachedContainer(spec)};
  if (spec.monitoring.enabled) containers.push_back(exporterContainer(ref, spec, cluster_domain));
  const std::vector<Json> volumes = podVolumes(spec);

  Json pod = Json::object();
  pod["containers"] = jsonArray(containers);
  if (!volumes.empty()) pod["volumes"] = jsonArray(volumes);
  // memcached needs neither the Kubernetes API nor service environment variables.
  pod["automountServiceAccountToken"] = Json::boolean(false);
  pod["enableServiceLinks"] = Json::boolean(false);
  pod["terminationGracePeriodSeconds"] = Json::number(30);
  pod["securityContext"] = podSecurityContext(!volumes.empty());

  // The user's affinity wins where it speaks about pod anti-affinity; otherwise ours is added.
  Json affinity = spec.affinity ? *spec.affinity : Json::object();
  if (!affinity.has_field("podAntiAffinity")) {
    affinity["podAntiAffinity"] = antiAffinityTerm(ref, spec.anti_affinity);
  }
  pod["affinity"] = affinity;
  if (!spec.node_selector.empty()) pod["nodeSelector"] = jsonStringMap(spec.node_selector);
  if (spec.tolerations) pod["tolerations"] = *spec.tolerations;
  if (spec.topology_spread_constraints) {
    pod["topologySpreadConstraints"] = *spec.topology_spread_constraints;
  }
  if (!spec.priority_class_name.empty()) {
    pod["priorityClassName"] = jsonString(spec.priority_class_name);
  }
  return jsonObject({{"metadata", metadata}, {"spec", pod}});
}

}  // namespace

ClusterRef clusterRefOf(const Json& cluster) {
  ClusterRef ref;
  ref.ns = stringAt(cluster, {"metadata", "namespace"});
  ref.name = stringAt(cluster, {"metadata", "name"});
  ref.uid = stringAt(cluster, {"metadata", "uid"});
  ref.generation = intAt(cluster, {"metadata", "generation"}).value_or(0);
  return ref;
}

Json ownerReference(const ClusterRef& ref) {
  return jsonObject({{"apiVersion", jsonString("memcached.operator.io/v1alpha1")},
                     {"kind", jsonString("MemcachedCluster")},
                     {"name", jsonString(ref.name)},
                     {"uid", jsonString(ref.uid)},
                     {"controller", Json::boolean(true)},
                     {"blockOwnerDeletion", Json::boolean(true)}});
}

Json childMetadata(const ClusterRef& ref, const std::string& name, const std::string& manager) {
  return jsonObject({{"name", jsonString(name)},
                     {"namespace", jsonString(ref.ns)},
                     {"labels", jsonStringMap(commonLabels(ref.name, manager))},
                     {"ownerReferences", jsonArray({ownerReference(ref)})}});
}

Json withSpecHash(Json desired) {
  const std::string hash = jsonHash(desired);
  Json& metadata = desired["metadata"];
  if (!metadata.has_field("annotations")) metadata["annotations"] = Json::object();
  metadata["annotations"][kSpecHashAnnotation] = jsonString(hash);
  return desired;
}

std::string clientServiceName(const std::string& cluster) { return cluster + "-client"; }

std::vector<std::string> memcachedArgs(const ClusterSpec& spec) {
  std::vector<std::string> args = {"-p", absl::StrCat(spec.port),
                                   "-U", "0",
                                   "-l", absl::StrCat("$(", kPodIpEnv, "),127.0.0.1"),
                                   "-m", absl::StrCat(spec.memcached.memory_mb),
                                   "-c", absl::StrCat(spec.memcached.max_connections),
                                   "-t", absl::StrCat(spec.memcached.threads),
                                   "-I", spec.memcached.max_item_size};
  if (spec.tls.enabled) {
    // The files, not copies: memcached's refresh_certs (sent by the operator after a rotation)
    // reads these paths again, and the kubelet swaps the Secret's files under them.
    const int verify_mode = spec.tls.client_auth == ClientAuth::kRequire ? 2 : 0;
    args.push_back("-Z");
    args.push_back("-o");
    args.push_back(absl::StrCat("ssl_chain_cert=", kTlsMountPath, "/tls.crt,ssl_key=",
                                kTlsMountPath, "/tls.key,ssl_ca_cert=", kTlsMountPath,
                                "/ca.crt,ssl_verify_mode=", verify_mode));
  }
  if (spec.auth.enabled) {
    args.push_back("-Y");
    args.push_back(absl::StrCat(kAuthMountPath, "/", spec.auth.secret_key));
  }
  args.insert(args.end(), spec.memcached.extra_args.begin(), spec.memcached.extra_args.end());
  return args;
}

std::vector<std::string> readinessCommand(const ClusterSpec& spec) {
  const std::string connect =
      absl::StrCat("exec 3<>/dev/tcp/\"$", kPodIpEnv, "\"/", spec.port);
  if (spec.tls.enabled) {
    // bash cannot speak TLS (and the images carry no TLS client), but the plaintext request
    // is enough: a live memcached fails the handshake at once and closes the connection (read
    // sees EOF or a reset, status 1), while a hung one, whose listen backlog still completes
    // the TCP handshake, leaves read to time out (status > 128). Verified against memcached
    // 1.6.18 -Z, with and without -Y, running and SIGSTOPped (docs/security.md). Each probe
    // counts one failed handshake in memcached's stats. SIGPIPE is ignored: a memcached that
    // closes at once (at maxConnections) must not kill the probe before it reads the close.
    return {"bash", "-c",
            absl::StrCat("trap '' PIPE; ", connect, " && { printf 'version\\r\\n' >&3; ",
                         "IFS= read -r -t ", kReadinessReplySeconds,
                         " reply <&3 2>/dev/null; (( $? <= 128 )); }")};
  }
  // A request, not just a connect: the kernel completes TCP handshakes for a hung (or stopped)
  // memcached from its listen backlog, so a tcpSocket probe kept passing. memcached answers
  // "version" from any worker thread in microseconds; 2 s without an answer is a hang, not load.
  // A memcached at maxConnections answers new connections with "ERROR Too many open
  // connections" and closes them: it is alive and its existing clients are served, so that
  // counts as ready rather than flapping the member out under load. With authentication on,
  // memcached answers an unauthenticated "version" with "CLIENT_ERROR unauthenticated": as
  // live an answer, and the probe holds no credential.
  std::string accepted = "$reply == 'VERSION '* || $reply == 'ERROR Too many open connections'*";
  if (spec.auth.enabled) {
    absl::StrAppend(&accepted, " || $reply == 'CLIENT_ERROR unauthenticated'*");
  }
  return {"bash", "-c",
          absl::StrCat(connect, " && printf 'version\\r\\n' >&3 && IFS= read -r -t ",
                       kReadinessReplySeconds, " reply <&3 && [[ ", accepted, " ]]")};
}

std::vector<std::string> exporterArgs(const ClusterRef& ref, const ClusterSpec& spec,
                                      const std::string& cluster_domain) {
  // memcached on the pod's address (where it listens, with 127.0.0.1), metrics on every
  // address of the pod: the NetworkPolicy, not the listen address, limits who scrapes.
  std::vector<std::string> args = {
      absl::StrCat("--memcached.address=$(", kPodIpEnv, "):", spec.port),
      absl::StrCat("--web.listen-address=:", spec.monitoring.port)};
  if (!spec.tls.enabled) return args;
  // The exporter checks the name in memcached's certificate; the pod's DNS name is the one a
  // certificate for the cluster carries (*.<name>.<ns>.svc.<domain>, docs/security.md).
  args.push_back("--memcached.tls.enable");
  args.push_back(absl::StrCat("--memcached.tls.ca-file=", kTlsMountPath, "/ca.crt"));
  args.push_back(absl::StrCat("--memcached.tls.server-name=$(", kPodNameEnv, ").", ref.name, ".",
                              ref.ns, ".svc.", cluster_domain));
  if (exporterClientCertificate(spec)) {
    const char* dir = separateClientSecret(spec) ? kClientTlsMountPath : kTlsMountPath;
    args.push_back(absl::StrCat("--memcached.tls.cert-file=", dir, "/tls.crt"));
    args.push_back(absl::StrCat("--memcached.tls.key-file=", dir, "/tls.key"));
  }
  return args;
}

Json defaultResources(const ClusterSpec& spec) {
  // Item memory plus ~1/8 for the hash table and slab overhead plus 32Mi for connection buffers
  // and threads; requests == limits for memory so the pod is never the first to be OOM-killed.
  const int64_t mi = spec.memcached.memory_mb + spec.memcached.memory_mb / 8 + 32;
  const std::string memory = mebibytes(mi);
  return jsonObject(
      {{"requests", jsonObject({{"cpu", jsonString("100m")}, {"memory", jsonString(memory)}})},
       {"limits", jsonObject({{"memory", jsonString(memory)}})}});
}

Json buildHeadlessService(const ClusterRef& ref, const ClusterSpec& spec,
                          const std::string& manager) {
  Json svc = jsonObject({{"apiVersion", jsonString("v1")},
                         {"kind", jsonString("Service")},
                         {"metadata", childMetadata(ref, ref.name, manager)}});
  // The exporter's port only here: the ServiceMonitor scrapes every member through the
  // headless Service's endpoints.
  Json ports = servicePorts(spec);
  if (spec.monitoring.enabled) {
    ports = jsonArray({servicePort("memcached", spec.port),
                       servicePort(kMetricsPortName, spec.monitoring.port)});
  }
  svc["spec"] = jsonObject({{"type", jsonString("ClusterIP")},
                            {"clusterIP", jsonString("None")},
                            {"publishNotReadyAddresses", Json::boolean(true)},
                            {"selector", jsonStringMap(selectorLabels(ref.name))},
                            {"ports", ports}});
  return withSpecHash(svc);
}

Json buildClientService(const ClusterRef& ref, const ClusterSpec& spec,
                        const std::string& manager) {
  Json svc = jsonObject({{"apiVersion", jsonString("v1")},
                         {"kind", jsonString("Service")},
                         {"metadata", childMetadata(ref, clientServiceName(ref.name), manager)}});
  svc["spec"] = jsonObject({{"type", jsonString("ClusterIP")},
                            {"selector", jsonStringMap(selectorLabels(ref.name))},
                            {"ports", servicePorts(spec)}});
  return withSpecHash(svc);
}

Json buildStatefulSet(const ClusterRef& ref, const ClusterSpec& spec, int64_t replicas,
                      const std::string& manager, const std::string& cluster_domain) {
  Json sts = jsonObject({{"apiVersion", jsonString("apps/v1")},
                         {"kind", jsonString("StatefulSet")},
                         {"metadata", childMetadata(ref, ref.name, manager)}});
  Json s = Json::object();
  s["replicas"] = Json::number(replicas);
  s["serviceName"] = jsonString(ref.name);
  // Parallel: memcached pods do not depend on each other, so scale-up starts all new pods at
  // once, and a crashlooping pod does not block the others (OrderedReady would). Scale-down
  // order does not matter either: the operator has drained every outgoing pod before it lowers
  // replicas.
  s["podManagementPolicy"] = jsonString("Parallel");
  s["selector"] = labelSelector(ref.name);
  // A Warm rolling update restarts the pods itself, one at a time after moving its keys out;
  // the StatefulSet must never restart one on its own.
  s["updateStrategy"] =
      jsonObject({{"type", jsonString(warmRollout(spec) ? "OnDelete" : "RollingUpdate")}});
  s["template"] = podTemplate(ref, spec, manager, cluster_domain);
  sts["spec"] = s;
  // The hash must not depend on replicas: a scale is a replicas change, not a template change.
  Json for_hash = sts;
  for_hash["spec"]["replicas"] = Json::number(0);
  const std::string hash = jsonHash(for_hash);
  sts["metadata"]["annotations"] = jsonObject({{kSpecHashAnnotation, jsonString(hash)}});
  return sts;
}

Json buildPodDisruptionBudget(const ClusterRef& ref, const ClusterSpec& spec,
                              const std::string& manager) {
  Json pdb = jsonObject({{"apiVersion", jsonString("policy/v1")},
                         {"kind", jsonString("PodDisruptionBudget")},
                         {"metadata", childMetadata(ref, ref.name, manager)}});
  pdb["spec"] = jsonObject({{"maxUnavailable", Json::number(spec.pdb_max_unavailable)},
                            {"selector", labelSelector(ref.name)}});
  return withSpecHash(pdb);
}

}  // namespace mcop::memcached
