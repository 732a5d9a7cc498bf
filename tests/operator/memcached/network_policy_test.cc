// The NetworkPolicy a cluster gets: exactly the intended peers on exactly the intended ports.
#include "memcached/network_policy.h"

#include <gtest/gtest.h>

#include "memcached/drift.h"
#include "memcached/labels.h"

namespace mcop::memcached {
namespace {

class NetworkPolicyTest : public testing::Test {
 protected:
  ClusterSpec parse(const std::string& spec) {
    ParsedSpec p = parseClusterSpec(
        Json::parse(R"({"metadata":{"name":"sessions","namespace":"shop"},"spec":)" + spec + "}"));
    EXPECT_TRUE(p.errors.empty()) << (p.errors.empty() ? "" : p.errors[0]);
    return p.spec;
  }

  ClusterRef ref_{"shop", "sessions", "uid-1", 1};
  OperatorPeer operator_{"memcached-system",
                         {{"app.kubernetes.io/name", "memcached-operator"},
                          {"app.kubernetes.io/instance", "memcached-operator"}}};
};

const std::string kOperatorPeer =
    R"({"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"memcached-system"}},)"
    R"("podSelector":{"matchLabels":{"app.kubernetes.io/instance":"memcached-operator",)"
    R"("app.kubernetes.io/name":"memcached-operator"}}})";
const std::string kOwnPods =
    R"({"podSelector":{"matchLabels":{"app.kubernetes.io/instance":"sessions",)"
    R"("app.kubernetes.io/name":"memcached","memcached.operator.io/cluster":"sessions"}}})";

TEST_F(NetworkPolicyTest, AdmitsTheClientsTheOperatorAndTheClusterOnMemcachedsPortOnly) {
  const ClusterSpec spec = parse(R"({"networkPolicy":{"enabled":true,
      "allowedClients":[{"podSelector":{"matchLabels":{"app":"shop"}}},
                        {"namespaceSelector":{"matchLabels":{"team":"web"}},
                         "podSelector":{"matchLabels":{"role":"api"}}}],
      "allowedScrapers":[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}}]}})");
  const Json np = buildNetworkPolicy(ref_, spec, operator_, "memcached-operator");
  EXPECT_EQ(stringAt(np, {"apiVersion"}), "networking.k8s.io/v1");
  EXPECT_EQ(stringAt(np, {"kind"}), "NetworkPolicy");
  EXPECT_EQ(stringAt(np, {"metadata", "name"}), "sessions");
  EXPECT_EQ(stringAt(np, {"metadata", "namespace"}), "shop");
  EXPECT_EQ(stringAt(np.at("metadata").at("ownerReferences").at(0), {"uid"}), "uid-1");
  EXPECT_FALSE(stringAt(np, {"metadata", "annotations", kSpecHashAnnotation}).empty());
  EXPECT_EQ(stringMapAt(np, {"spec", "podSelector", "matchLabels"}), selectorLabels("sessions"));
  EXPECT_EQ(np.at("spec").at("policyTypes").serialize(), R"(["Ingress"])");
  // No monitoring: one rule, and the scrapers are nowhere.
  EXPECT_EQ(np.at("spec").at("ingress").serialize(),
            R"([{"from":[{"podSelector":{"matchLabels":{"app":"shop"}}},)"
            R"({"namespaceSelector":{"matchLabels":{"team":"web"}},)"
            R"("podSelector":{"matchLabels":{"role":"api"}}},)" +
                kOperatorPeer + "," + kOwnPods +
                R"(],"ports":[{"port":11211,"protocol":"TCP"}]}])");
}

TEST_F(NetworkPolicyTest, WithMonitoringTheScrapersReachOnlyTheExportersPort) {
  const ClusterSpec spec = parse(R"({"port":11300,"networkPolicy":{"enabled":true,
      "allowedScrapers":[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}}]},
      "monitoring":{"enabled":true,"port":9200}})");
  const Json np = buildNetworkPolicy(ref_, spec, operator_, "memcached-operator");
  const Json& ingress = np.at("spec").at("ingress");
  ASSERT_EQ(ingress.size(), 2u);
  // No client is allowed: memcached's port admits the operator and the cluster's own pods only.
  EXPECT_EQ(ingress.at(0).serialize(), R"({"from":[)" + kOperatorPeer + "," + kOwnPods +
                                           R"(],"ports":[{"port":11300,"protocol":"TCP"}]})");
  EXPECT_EQ(ingress.at(1).serialize(),
            R"({"from":[{"namespaceSelector":{"matchLabels":{"name":"monitoring"}}},)" +
                kOperatorPeer + "," + kOwnPods + R"(],"ports":[{"port":9200,"protocol":"TCP"}]})");
}

// An operator outside the cluster has no pods to select: only what the spec allows is added.
TEST_F(NetworkPolicyTest, AnOperatorOutsideTheClusterAddsNoPeer) {
  const ClusterSpec spec =
      parse(R"({"networkPolicy":{"enabled":true,"allowedClients":[{"ipBlock":{"cidr":"10.0.0.0/8"}}]}})");
  const Json np = buildNetworkPolicy(ref_, spec, OperatorPeer{}, "memcached-operator");
  EXPECT_EQ(np.at("spec").at("ingress").at(0).at("from").serialize(),
            R"([{"ipBlock":{"cidr":"10.0.0.0/8"}},)" + kOwnPods + "]");
}

TEST_F(NetworkPolicyTest, AChangedPeerIsApplied) {
  ClusterSpec spec = parse(R"({"networkPolicy":{"enabled":true,
      "allowedClients":[{"podSelector":{"matchLabels":{"app":"shop"}}}]}})");
  const Json before = buildNetworkPolicy(ref_, spec, operator_, "m");
  spec.network_policy.allowed_clients.clear();
  const Json after = buildNetworkPolicy(ref_, spec, operator_, "m");
  EXPECT_FALSE(isSubset(after, before));
  EXPECT_TRUE(isSubset(before, before));
}

}  // namespace
}  // namespace mcop::memcached
