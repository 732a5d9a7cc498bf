// Desired-object builders: the fields the design fixes, asserted one by one.
#include "memcached/desired_objects.h"

#include <gtest/gtest.h>

#include "memcached/labels.h"
#include "memcached/drift.h"

namespace mcop::memcached {
namespace {

class ChildrenTest : public testing::Test {
 protected:
  ClusterRef ref_{"shop", "sessions", "uid-1", 1};
  ClusterSpec spec_ = parseClusterSpec(Json::parse(
                                           R"({"metadata":{"name":"sessions"},"spec":{}})"))
                          .spec;
};

void expectOwnedAndLabelled(const Json& obj) {
  EXPECT_EQ(stringAt(obj, {"metadata", "namespace"}), "shop");
  EXPECT_EQ(stringAt(obj, {"metadata", "labels", "app.kubernetes.io/name"}), "memcached");
  EXPECT_EQ(stringAt(obj, {"metadata", "labels", "app.kubernetes.io/instance"}), "sessions");
  EXPECT_EQ(stringAt(obj, {"metadata", "labels", "app.kubernetes.io/managed-by"}),
            "memcached-operator");
  EXPECT_EQ(stringAt(obj, {"metadata", "labels", "memcached.operator.io/cluster"}), "sessions");
  const Json& owner = obj.at("metadata").at("ownerReferences").at(0);
  EXPECT_EQ(stringAt(owner, {"kind"}), "MemcachedCluster");
  EXPECT_EQ(stringAt(owner, {"apiVersion"}), "memcached.operator.io/v1alpha1");
  EXPECT_EQ(stringAt(owner, {"uid"}), "uid-1");
  EXPECT_EQ(boolAt(owner, {"controller"}), true);
  EXPECT_EQ(boolAt(owner, {"blockOwnerDeletion"}), true);
  EXPECT_FALSE(stringAt(obj, {"metadata", "annotations", kSpecHashAnnotation}).empty());
}

TEST_F(ChildrenTest, HeadlessService) {
  Json svc = buildHeadlessService(ref_, spec_, "memcached-operator");
  expectOwnedAndLabelled(svc);
  EXPECT_EQ(stringAt(svc, {"metadata", "name"}), "sessions");
  EXPECT_EQ(stringAt(svc, {"spec", "clusterIP"}), "None");
  EXPECT_EQ(boolAt(svc, {"spec", "publishNotReadyAddresses"}), true);
  EXPECT_EQ(intAt(svc.at("spec").at("ports").at(0), {"port"}), 11211);
  EXPECT_EQ(stringAt(svc, {"spec", "selector", "memcached.operator.io/cluster"}), "sessions");
}

TEST_F(ChildrenTest, WarmRolloutsMakeTheStatefulSetOnDelete) {
  EXPECT_EQ(stringAt(buildStatefulSet(ref_, spec_, 2, "m", "cluster.local"),
                     {"spec", "updateStrategy", "type"}),
            "RollingUpdate");
  ClusterSpec warm = spec_;
  warm.transition.mode = TransitionMode::kWarm;
  EXPECT_EQ(stringAt(buildStatefulSet(ref_, warm, 2, "m", "cluster.local"),
                     {"spec", "updateStrategy", "type"}),
            "OnDelete");
  warm.update_strategy = UpdateStrategy::kRollingUpdate;
  EXPECT_EQ(stringAt(buildStatefulSet(ref_, warm, 2, "m", "cluster.local"),
                     {"spec", "updateStrategy", "type"}),
            "RollingUpdate");
}

TEST_F(ChildrenTest, ClientService) {
  Json svc = buildClientService(ref_, spec_, "memcached-operator");
  expectOwnedAndLabelled(svc);
  EXPECT_EQ(stringAt(svc, {"metadata", "name"}), "sessions-client");
  EXPECT_EQ(findPath(svc, {"spec", "clusterIP"}), nullptr);
  EXPECT_EQ(stringAt(svc, {"spec", "type"}), "ClusterIP");
}

TEST_F(ChildrenTest, StatefulSet) {
  Json sts = buildStatefulSet(ref_, spec_, 2, "memcached-operator", "cluster.local");
  expectOwnedAndLabelled(sts);
  EXPECT_EQ(intAt(sts, {"spec", "replicas"}), 2);
  EXPECT_EQ(stringAt(sts, {"spec", "serviceName"}), "sessions");
  EXPECT_EQ(stringAt(sts, {"spec", "podManagementPolicy"}), "Parallel");
  EXPECT_EQ(stringMapAt(sts, {"spec", "selector", "matchLabels"}), selectorLabels("sessions"));
  EXPECT_EQ(stringAt(sts, {"spec", "template", "metadata", "labels",
                           "memcached.operator.io/cluster"}),
            "sessions");
  const Json& pod = sts.at("spec").at("template").at("spec");
  EXPECT_EQ(boolAt(pod, {"automountServiceAccountToken"}), false);
  const Json& c = pod.at("containers").at(0);
  EXPECT_EQ(stringAt(c, {"name"}), "memcached");
  EXPECT_EQ(stringAt(c, {"image"}), "memcached:1.6.18");
  EXPECT_EQ(c.at("command").serialize(), R"(["memcached"])");
  // Listens on the pod IP (expanded by the kubelet) and the pod's loopback, never on every
  // interface; UDP off.
  EXPECT_EQ(c.at("args").serialize(),
            R"(["-p","11211","-U","0","-l","$(POD_IP),127.0.0.1",)"
            R"("-m","64","-c","1024","-t","4","-I","1m"])");
  EXPECT_EQ(c.at("env").serialize(),
            R"([{"name":"POD_IP","valueFrom":)"
            R"({"fieldRef":{"apiVersion":"v1","fieldPath":"status.podIP"}}}])");
  // Readiness asks memcached a question (a connect alone passes for a hung memcached), briefly,
  // and needs two misses in a row.
  EXPECT_EQ(findPath(c, {"readinessProbe", "tcpSocket"}), nullptr);
  const Json& command = c.at("readinessProbe").at("exec").at("command");
  ASSERT_EQ(command.size(), 3u);
  EXPECT_EQ(command.at(0).as_string(), "bash");
  EXPECT_EQ(command.at(1).as_string(), "-c");
  EXPECT_NE(command.at(2).as_string().find("/dev/tcp/\"$POD_IP\"/11211"), std::string::npos);
  EXPECT_NE(command.at(2).as_string().find("version"), std::string::npos);
  EXPECT_EQ(intAt(c, {"readinessProbe", "periodSeconds"}), 5);
  EXPECT_EQ(intAt(c, {"readinessProbe", "timeoutSeconds"}), 3);
  EXPECT_EQ(intAt(c, {"readinessProbe", "failureThreshold"}), 2);
  EXPECT_EQ(intAt(c, {"readinessProbe", "successThreshold"}), 1);
  EXPECT_EQ(findPath(c, {"livenessProbe"}), nullptr);
  EXPECT_EQ(boolAt(c, {"securityContext", "runAsNonRoot"}), true);
  EXPECT_EQ(intAt(c, {"securityContext", "runAsUser"}), 11211);
  EXPECT_EQ(boolAt(c, {"securityContext", "allowPrivilegeEscalation"}), false);
  EXPECT_EQ(boolAt(c, {"securityContext", "readOnlyRootFilesystem"}), true);
  EXPECT_EQ(c.at("securityContext").at("capabilities").at("drop").serialize(), R"(["ALL"])");
  EXPECT_EQ(stringAt(c, {"securityContext", "seccompProfile", "type"}), "RuntimeDefault");
  // 64 + 64/8 + 32 = 104Mi, written canonically.
  EXPECT_EQ(stringAt(c, {"resources", "requests", "memory"}), "104Mi");
  EXPECT_EQ(stringAt(c, {"resources", "limits", "memory"}), "104Mi");
  EXPECT_EQ(stringAt(c, {"resources", "requests", "cpu"}), "100m");
  const Json* soft = findPath(pod, {"affinity", "podAntiAffinity",
                                    "preferredDuringSchedulingIgnoredDuringExecution"});
  ASSERT_NE(soft, nullptr);
  EXPECT_EQ(stringAt(soft->at(0), {"podAffinityTerm", "topologyKey"}), "kubernetes.io/hostname");
}

TEST_F(ChildrenTest, HardAntiAffinityExtraArgsAndPlacement) {
  spec_.anti_affinity = AntiAffinity::kHard;
  spec_.memcached.extra_args = {"-o", "modern"};
  spec_.node_selector = {{"pool", "cache"}};
  spec_.priority_class_name = "critical";
  spec_.pod_labels = {{"team", "web"}, {"app.kubernetes.io/name", "mine"}};
  Json sts = buildStatefulSet(ref_, spec_, 3, "memcached-operator", "cluster.local");
  const Json& pod = sts.at("spec").at("template").at("spec");
  EXPECT_NE(findPath(pod, {"affinity", "podAntiAffinity",
                           "requiredDuringSchedulingIgnoredDuringExecution"}),
            nullptr);
  const Json& args = pod.at("containers").at(0).at("args");
  EXPECT_EQ(args.at(args.size() - 2).as_string(), "-o");
  EXPECT_EQ(args.at(args.size() - 1).as_string(), "modern");
  EXPECT_EQ(stringAt(pod, {"nodeSelector", "pool"}), "cache");
  EXPECT_EQ(stringAt(pod, {"priorityClassName"}), "critical");
  const Json& labels = sts.at("spec").at("template").at("metadata").at("labels");
  EXPECT_EQ(stringAt(labels, {"team"}), "web");
  // The selector labels cannot be overridden by pod labels.
  EXPECT_EQ(stringAt(labels, {"app.kubernetes.io/name"}), "memcached");
}

TEST_F(ChildrenTest, SpecHashFollowsContentButNotReplicas) {
  auto hash = [](const Json& o) {
    return stringAt(o, {"metadata", "annotations", kSpecHashAnnotation});
  };
  Json a = buildStatefulSet(ref_, spec_, 2, "memcached-operator", "cluster.local");
  Json b = buildStatefulSet(ref_, spec_, 3, "memcached-operator", "cluster.local");
  EXPECT_EQ(hash(a), hash(b));
  spec_.node_selector = {{"pool", "cache"}};
  Json c = buildStatefulSet(ref_, spec_, 2, "memcached-operator", "cluster.local");
  EXPECT_NE(hash(a), hash(c));
  // Dropping the nodeSelector again changes the desired object, so it is re-applied.
  EXPECT_FALSE(isSubset(a, c));
}

TEST_F(ChildrenTest, PodDisruptionBudget) {
  spec_.pdb_max_unavailable = 2;
  Json pdb = buildPodDisruptionBudget(ref_, spec_, "memcached-operator");
  expectOwnedAndLabelled(pdb);
  EXPECT_EQ(stringAt(pdb, {"apiVersion"}), "policy/v1");
  EXPECT_EQ(intAt(pdb, {"spec", "maxUnavailable"}), 2);
  EXPECT_EQ(stringMapAt(pdb, {"spec", "selector", "matchLabels"}), selectorLabels("sessions"));
}

TEST_F(ChildrenTest, DefaultResourcesUseCanonicalQuantities) {
  spec_.memcached.memory_mb = 896;  // 896 + 112 + 32 = 1040Mi
  EXPECT_EQ(stringAt(defaultResources(spec_), {"limits", "memory"}), "1040Mi");
  spec_.memcached.memory_mb = 1792;  // 1792 + 224 + 32 = 2048Mi = 2Gi
  EXPECT_EQ(stringAt(defaultResources(spec_), {"limits", "memory"}), "2Gi");
}

const Json& podSpecOf(const Json& sts) { return sts.at("spec").at("template").at("spec"); }

const Json* containerNamed(const Json& pod, const std::string& name) {
  for (const auto& c : pod.at("containers").as_array()) {
    if (stringAt(c, {"name"}) == name) return &c;
  }
  return nullptr;
}

std::vector<std::string> strings(const Json& array) {
  std::vector<std::string> out;
  for (const auto& v : array.as_array()) out.push_back(v.as_string());
  return out;
}

// A cluster without TLS, authentication or monitoring keeps the pod template it had before they
// existed, byte for byte where it matters: an operator upgrade restarts no member.
TEST_F(ChildrenTest, APlainClusterKeepsItsTemplate) {
  const Json pod = podSpecOf(buildStatefulSet(ref_, spec_, 2, "m", "cluster.local"));
  EXPECT_EQ(pod.at("containers").size(), 1u);
  EXPECT_EQ(findPath(pod, {"volumes"}), nullptr);
  EXPECT_EQ(findPath(pod, {"securityContext", "fsGroup"}), nullptr);
  const Json& c = pod.at("containers").at(0);
  EXPECT_EQ(findPath(c, {"volumeMounts"}), nullptr);
  EXPECT_EQ(c.at("readinessProbe").at("exec").at("command").at(2).as_string(),
            "exec 3<>/dev/tcp/\"$POD_IP\"/11211 && printf 'version\\r\\n' >&3 && IFS= read -r -t 2 "
            "reply <&3 && [[ $reply == 'VERSION '* || $reply == 'ERROR Too many open "
            "connections'* ]]");
  EXPECT_EQ(findPath(buildStatefulSet(ref_, spec_, 2, "m", "cluster.local"),
                     {"spec", "template", "metadata", "annotations"}),
            nullptr);
  const Json svc = buildHeadlessService(ref_, spec_, "m");
  EXPECT_EQ(svc.at("spec").at("ports").size(), 1u);
}

TEST_F(ChildrenTest, TlsRunsMemcachedWithTheMountedSecret) {
  spec_.tls.enabled = true;
  spec_.tls.secret_name = "sessions-tls";
  spec_.memcached.extra_args = {"-o", "modern"};
  Json pod = podSpecOf(buildStatefulSet(ref_, spec_, 2, "m", "cluster.local"));
  const Json& c = pod.at("containers").at(0);
  EXPECT_EQ(strings(c.at("args")),
            (std::vector<std::string>{
                "-p", "11211", "-U", "0", "-l", "$(POD_IP),127.0.0.1", "-m", "64", "-c", "1024",
                "-t", "4", "-I", "1m", "-Z", "-o",
                "ssl_chain_cert=/etc/memcached/tls/tls.crt,ssl_key=/etc/memcached/tls/tls.key,"
                "ssl_ca_cert=/etc/memcached/tls/ca.crt,ssl_verify_mode=0",
                "-o", "modern"}));
  EXPECT_EQ(c.at("volumeMounts").serialize(),
            R"([{"mountPath":"/etc/memcached/tls","name":"tls","readOnly":true}])");
  // Readable by the group the pod's fsGroup gives memcached (0440), by nobody else; a missing
  // Secret keeps the pod from starting instead of starting without TLS.
  EXPECT_EQ(pod.at("volumes").serialize(),
            R"([{"name":"tls","secret":{"defaultMode":288,"optional":false,)"
            R"("secretName":"sessions-tls"}}])");
  EXPECT_EQ(intAt(pod, {"securityContext", "fsGroup"}), 11211);
  EXPECT_EQ(intAt(pod, {"securityContext", "runAsUser"}), 11211);
  // The probe cannot speak TLS: a prompt close counts, a timeout does not.
  const std::string probe = c.at("readinessProbe").at("exec").at("command").at(2).as_string();
  EXPECT_NE(probe.find("(( $? <= 128 ))"), std::string::npos) << probe;

  spec_.tls.client_auth = ClientAuth::kRequire;
  pod = podSpecOf(buildStatefulSet(ref_, spec_, 2, "m", "cluster.local"));
  EXPECT_NE(strings(pod.at("containers").at(0).at("args"))[16].find("ssl_verify_mode=2"),
            std::string::npos);
}

TEST_F(ChildrenTest, AuthMountsOnlyTheAuthFileAndTheHashRestartsThePods) {
  spec_.auth.enabled = true;
  spec_.auth.secret_name = "sessions-auth";
  spec_.auth.secret_key = "users";
  Json sts = buildStatefulSet(ref_, spec_, 2, "m", "cluster.local");
  const Json& pod = podSpecOf(sts);
  const std::vector<std::string> args = strings(pod.at("containers").at(0).at("args"));
  ASSERT_GE(args.size(), 2u);
  EXPECT_EQ(args[args.size() - 2], "-Y");
  EXPECT_EQ(args[args.size() - 1], "/etc/memcached/auth/users");
  EXPECT_EQ(pod.at("volumes").serialize(),
            R"([{"name":"auth","secret":{"defaultMode":288,"items":[{"key":"users","path":"users"}],)"
            R"("optional":false,"secretName":"sessions-auth"}}])");
  EXPECT_EQ(intAt(pod, {"securityContext", "fsGroup"}), 11211);
  // Until the reconciler has validated the file there is no hash, and no annotation.
  EXPECT_EQ(findPath(sts, {"spec", "template", "metadata", "annotations"}), nullptr);
  const std::string probe =
      pod.at("containers").at(0).at("readinessProbe").at("exec").at("command").at(2).as_string();
  EXPECT_NE(probe.find("'CLIENT_ERROR unauthenticated'*"), std::string::npos) << probe;

  spec_.auth.file_hash = "abc123";
  spec_.pod_annotations = {{"team", "web"}, {"memcached.operator.io/auth-hash", "mine"}};
  Json hashed = buildStatefulSet(ref_, spec_, 2, "m", "cluster.local");
  EXPECT_EQ(stringMapAt(hashed, {"spec", "template", "metadata", "annotations"}),
            (std::map<std::string, std::string>{{"memcached.operator.io/auth-hash", "abc123"},
                                                {"team", "web"}}));
  spec_.auth.file_hash = "def456";
  EXPECT_FALSE(isSubset(buildStatefulSet(ref_, spec_, 2, "m", "cluster.local"), hashed));
}

// Restricted Pod Security Standard: every container, with every feature on.
TEST_F(ChildrenTest, EveryContainerIsRestricted) {
  spec_.tls = {true, "sessions-tls", ClientAuth::kRequire, "sessions-client"};
  spec_.monitoring.enabled = true;
  const Json pod = podSpecOf(buildStatefulSet(ref_, spec_, 2, "m", "cluster.local"));
  ASSERT_EQ(pod.at("containers").size(), 2u);
  EXPECT_EQ(boolAt(pod, {"securityContext", "runAsNonRoot"}), true);
  EXPECT_EQ(stringAt(pod, {"securityContext", "seccompProfile", "type"}), "RuntimeDefault");
  EXPECT_EQ(findPath(pod, {"hostNetwork"}), nullptr);
  for (const auto& c : pod.at("containers").as_array()) {
    SCOPED_TRACE(stringAt(c, {"name"}));
    EXPECT_EQ(boolAt(c, {"securityContext", "allowPrivilegeEscalation"}), false);
    EXPECT_EQ(c.at("securityContext").at("capabilities").at("drop").serialize(), R"(["ALL"])");
    EXPECT_EQ(findPath(c, {"securityContext", "capabilities", "add"}), nullptr);
    EXPECT_EQ(boolAt(c, {"securityContext", "runAsNonRoot"}), true);
    EXPECT_EQ(intAt(c, {"securityContext", "runAsUser"}), 11211);
    EXPECT_EQ(stringAt(c, {"securityContext", "seccompProfile", "type"}), "RuntimeDefault");
    for (const auto& m : c.at("volumeMounts").as_array()) EXPECT_EQ(boolAt(m, {"readOnly"}), true);
  }
  for (const auto& v : pod.at("volumes").as_array()) {
    EXPECT_EQ(intAt(v, {"secret", "defaultMode"}), 0440);
  }
}

TEST_F(ChildrenTest, ExporterSidecarWithoutTls) {
  spec_.monitoring.enabled = true;
  const Json sts = buildStatefulSet(ref_, spec_, 2, "m", "cluster.local");
  const Json& pod = podSpecOf(sts);
  const Json* e = containerNamed(pod, "exporter");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(stringAt(*e, {"image"}), "quay.io/prometheus/memcached-exporter:v0.15.0");
  EXPECT_EQ(strings(e->at("args")),
            (std::vector<std::string>{"--memcached.address=$(POD_IP):11211",
                                      "--web.listen-address=:9150"}));
  EXPECT_EQ(e->at("ports").serialize(),
            R"([{"containerPort":9150,"name":"metrics","protocol":"TCP"}])");
  // No probes: a failing exporter must not take a healthy member out of the ring.
  EXPECT_EQ(findPath(*e, {"readinessProbe"}), nullptr);
  EXPECT_EQ(findPath(*e, {"livenessProbe"}), nullptr);
  EXPECT_EQ(stringAt(*e, {"resources", "requests", "memory"}), "32Mi");
  EXPECT_EQ(findPath(*e, {"volumeMounts"}), nullptr);
  EXPECT_EQ(findPath(pod, {"volumes"}), nullptr);
  // The metrics port on the headless Service (what the ServiceMonitor scrapes), not the client's.
  const Json headless = buildHeadlessService(ref_, spec_, "m");
  ASSERT_EQ(headless.at("spec").at("ports").size(), 2u);
  EXPECT_EQ(stringAt(headless.at("spec").at("ports").at(1), {"name"}), "metrics");
  EXPECT_EQ(intAt(headless.at("spec").at("ports").at(1), {"port"}), 9150);
  EXPECT_EQ(buildClientService(ref_, spec_, "m").at("spec").at("ports").size(), 1u);

  spec_.monitoring.resources = Json::parse(R"({"limits":{"memory":"200Mi"}})");
  spec_.monitoring.port = 9200;
  spec_.monitoring.image = "exporter:dev";
  const Json pod2 = podSpecOf(buildStatefulSet(ref_, spec_, 2, "m", "cluster.local"));
  const Json* e2 = containerNamed(pod2, "exporter");
  ASSERT_NE(e2, nullptr);
  EXPECT_EQ(e2->at("resources").serialize(), R"({"limits":{"memory":"200Mi"}})");
  EXPECT_EQ(strings(e2->at("args"))[1], "--web.listen-address=:9200");
  EXPECT_EQ(stringAt(*e2, {"image"}), "exporter:dev");
}

TEST_F(ChildrenTest, ExporterSpeaksTlsAndPresentsTheClientCertificateUnderRequire) {
  spec_.monitoring.enabled = true;
  spec_.tls.enabled = true;
  spec_.tls.secret_name = "sessions-tls";
  Json pod = podSpecOf(buildStatefulSet(ref_, spec_, 2, "m", "example.org"));
  const Json* e = containerNamed(pod, "exporter");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(strings(e->at("args")),
            (std::vector<std::string>{
                "--memcached.address=$(POD_IP):11211", "--web.listen-address=:9150",
                "--memcached.tls.enable", "--memcached.tls.ca-file=/etc/memcached/tls/ca.crt",
                "--memcached.tls.server-name=$(POD_NAME).sessions.shop.svc.example.org"}));
  EXPECT_NE(e->at("env").serialize().find(R"("fieldPath":"metadata.name")"), std::string::npos);
  EXPECT_EQ(e->at("volumeMounts").serialize(),
            R"([{"mountPath":"/etc/memcached/tls","name":"tls","readOnly":true}])");

  // Require without a client Secret: the server's own certificate.
  spec_.tls.client_auth = ClientAuth::kRequire;
  pod = podSpecOf(buildStatefulSet(ref_, spec_, 2, "m", "example.org"));
  std::vector<std::string> args = strings(containerNamed(pod, "exporter")->at("args"));
  EXPECT_EQ(std::vector<std::string>(args.end() - 2, args.end()),
            (std::vector<std::string>{"--memcached.tls.cert-file=/etc/memcached/tls/tls.crt",
                                      "--memcached.tls.key-file=/etc/memcached/tls/tls.key"}));
  EXPECT_EQ(pod.at("volumes").size(), 1u);

  // Require with a client Secret: mounted in the exporter only.
  spec_.tls.client_secret_name = "sessions-client";
  pod = podSpecOf(buildStatefulSet(ref_, spec_, 2, "m", "example.org"));
  args = strings(containerNamed(pod, "exporter")->at("args"));
  EXPECT_EQ(
      std::vector<std::string>(args.end() - 2, args.end()),
      (std::vector<std::string>{"--memcached.tls.cert-file=/etc/memcached/client-tls/tls.crt",
                                "--memcached.tls.key-file=/etc/memcached/client-tls/tls.key"}));
  EXPECT_EQ(pod.at("volumes").at(1).serialize(),
            R"({"name":"client-tls","secret":{"defaultMode":288,"optional":false,)"
            R"("secretName":"sessions-client"}})");
  EXPECT_EQ(containerNamed(pod, "exporter")->at("volumeMounts").size(), 2u);
  EXPECT_EQ(containerNamed(pod, "memcached")->at("volumeMounts").size(), 1u);
}

}  // namespace
}  // namespace mcop::memcached
