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
  EXPECT_EQ(stringAt(buildStatefulSet(ref_, spec_, 2, "m"), {"spec", "updateStrategy", "type"}),
            "RollingUpdate");
  ClusterSpec warm = spec_;
  warm.transition.mode = TransitionMode::kWarm;
  EXPECT_EQ(stringAt(buildStatefulSet(ref_, warm, 2, "m"), {"spec", "updateStrategy", "type"}),
            "OnDelete");
  warm.update_strategy = UpdateStrategy::kRollingUpdate;
  EXPECT_EQ(stringAt(buildStatefulSet(ref_, warm, 2, "m"), {"spec", "updateStrategy", "type"}),
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
  Json sts = buildStatefulSet(ref_, spec_, 2, "memcached-operator");
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
  Json sts = buildStatefulSet(ref_, spec_, 3, "memcached-operator");
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
  Json a = buildStatefulSet(ref_, spec_, 2, "memcached-operator");
  Json b = buildStatefulSet(ref_, spec_, 3, "memcached-operator");
  EXPECT_EQ(hash(a), hash(b));
  spec_.node_selector = {{"pool", "cache"}};
  Json c = buildStatefulSet(ref_, spec_, 2, "memcached-operator");
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

}  // namespace
}  // namespace mcop::memcached
