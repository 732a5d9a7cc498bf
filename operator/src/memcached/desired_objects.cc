// Desired-object builders: see desired_objects.h.
#include "memcached/desired_objects.h"

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

Json labelSelector(const std::string& cluster) {
  return jsonObject({{"matchLabels", jsonStringMap(selectorLabels(cluster))}});
}

Json servicePorts(const ClusterSpec& spec) {
  return jsonArray({jsonObject({{"name", jsonString("memcached")},
                                {"port", Json::number(spec.port)},
                                {"targetPort", Json::number(spec.port)},
                                {"protocol", jsonString("TCP")}})});
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

Json podTemplate(const ClusterRef& ref, const ClusterSpec& spec, const std::string& manager) {
  // Users' pod labels first, ours over them: the selector labels must stay ours.
  std::map<std::string, std::string> labels = spec.pod_labels;
  for (const auto& [k, v] : commonLabels(ref.name, manager)) labels[k] = v;
  Json metadata = jsonObject({{"labels", jsonStringMap(labels)}});
  if (!spec.pod_annotations.empty()) {
    metadata["annotations"] = jsonStringMap(spec.pod_annotations);
  }

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
  container["env"] = jsonArray({jsonObject(
      {{"name", jsonString(kPodIpEnv)},
       {"valueFrom",
        jsonObject({{"fieldRef", jsonObject({{"apiVersion", jsonString("v1")},
                                              {"fieldPath", jsonString("status.podIP")}})}})}})});
  // Readiness only: a liveness probe that restarts a busy memcached (e.g. at maxConnections)
  // would throw its whole cache away; a crashed memcached exits and is restarted anyway.
  container["readinessProbe"] =
      jsonObject({{"exec", jsonObject({{"command", jsonStringArray(readinessCommand(spec))}})},
                  {"periodSeconds", Json::number(kReadinessPeriodSeconds)},
                  {"timeoutSeconds", Json::number(kReadinessTimeoutSeconds)},
                  {"successThreshold", Json::number(1)},
                  {"failureThreshold", Json::number(kReadinessFailureThreshold)}});
  container["resources"] = spec.resources ? *spec.resources : defaultResources(spec);
  container["securityContext"] = jsonObject(
      {{"allowPrivilegeEscalation", Json::boolean(false)},
       {"capabilities", jsonObject({{"drop", jsonStringArray({"ALL"})}})},
       {"readOnlyRootFilesystem", Json::boolean(true)},
       {"runAsNonRoot", Json::boolean(true)},
       {"runAsUser", Json::number(kMemcachedUid)},
       {"runAsGroup", Json::number(kMemcachedUid)},
       {"seccompProfile", jsonObject({{"type", jsonString("RuntimeDefault")}})}});

  Json pod = Json::object();
  pod["containers"] = jsonArray({container});
  // memcached needs neither the Kubernetes API nor service environment variables.
  pod["automountServiceAccountToken"] = Json::boolean(false);
  pod["enableServiceLinks"] = Json::boolean(false);
  pod["terminationGracePeriodSeconds"] = Json::number(30);
  pod["securityContext"] =
      jsonObject({{"runAsNonRoot", Json::boolean(true)},
                  {"runAsUser", Json::number(kMemcachedUid)},
                  {"runAsGroup", Json::number(kMemcachedUid)},
                  {"seccompProfile", jsonObject({{"type", jsonString("RuntimeDefault")}})}});

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
  args.insert(args.end(), spec.memcached.extra_args.begin(), spec.memcached.extra_args.end());
  return args;
}

std::vector<std::string> readinessCommand(const ClusterSpec& spec) {
  // A request, not just a connect: the kernel completes TCP handshakes for a hung (or stopped)
  // memcached from its listen backlog, so a tcpSocket probe kept passing. memcached answers
  // "version" from any worker thread in microseconds; 2 s without an answer is a hang, not load.
  // A memcached at maxConnections answers new connections with "ERROR Too many open
  // connections" and closes them: it is alive and its existing clients are served, so that
  // counts as ready rather than flapping the member out under load.
  return {"bash", "-c",
          absl::StrCat("exec 3<>/dev/tcp/\"$", kPodIpEnv, "\"/", spec.port,
                       " && printf 'version\\r\\n' >&3 && IFS= read -r -t ",
                       kReadinessReplySeconds,
                       " reply <&3 && [[ $reply == 'VERSION '* || $reply == 'ERROR Too many open "
                       "connections'* ]]")};
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
  svc["spec"] = jsonObject({{"type", jsonString("ClusterIP")},
                            {"clusterIP", jsonString("None")},
                            {"publishNotReadyAddresses", Json::boolean(true)},
                            {"selector", jsonStringMap(selectorLabels(ref.name))},
                            {"ports", servicePorts(spec)}});
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
                      const std::string& manager) {
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
  s["template"] = podTemplate(ref, spec, manager);
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
