// The ServiceMonitor a cluster gets, and how the operator tells whether its API is served.
#include "memcached/service_monitor.h"

#include <gtest/gtest.h>

#include "memcached/labels.h"
#include "testing/fake_api_client.h"

namespace mcop::memcached {
namespace {

using kube::FakeApiClient;
using kube::Verb;

TEST(ServiceMonitorTest, ScrapesTheMetricsPortOfTheClustersServices) {
  const Json sm = buildServiceMonitor({"shop", "sessions", "uid-1", 1}, "memcached-operator");
  EXPECT_EQ(stringAt(sm, {"apiVersion"}), "monitoring.coreos.com/v1");
  EXPECT_EQ(stringAt(sm, {"kind"}), "ServiceMonitor");
  EXPECT_EQ(stringAt(sm, {"metadata", "name"}), "sessions");
  EXPECT_EQ(stringAt(sm, {"metadata", "namespace"}), "shop");
  EXPECT_EQ(stringAt(sm.at("metadata").at("ownerReferences").at(0), {"uid"}), "uid-1");
  EXPECT_EQ(stringAt(sm, {"metadata", "labels", kManagedByLabel}), "memcached-operator");
  EXPECT_FALSE(stringAt(sm, {"metadata", "annotations", kSpecHashAnnotation}).empty());
  EXPECT_EQ(stringMapAt(sm, {"spec", "selector", "matchLabels"}), selectorLabels("sessions"));
  EXPECT_EQ(sm.at("spec").at("namespaceSelector").serialize(), R"({"matchNames":["shop"]})");
  EXPECT_EQ(sm.at("spec").at("endpoints").serialize(), R"([{"path":"/metrics","port":"metrics"}])");
}

// 404 on the list: not served; a list that answers: served; anything else: unknown (an error,
// not a guess either way).
TEST(ServiceMonitorTest, ServedIsAskedWithAListAndOnlyA404MeansNo) {
  FakeApiClient api;
  auto served = serviceMonitorsServed(api, "");
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_TRUE(*served);
  EXPECT_EQ(api.count(Verb::kList, kube::resources::kServiceMonitor), 1);

  api.failNext(Verb::kList, kube::resources::kServiceMonitor,
               absl::NotFoundError("the server could not find the requested resource"));
  served = serviceMonitorsServed(api, "shop");
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_FALSE(*served);

  api.failNext(Verb::kList, kube::resources::kServiceMonitor,
               absl::PermissionDeniedError("servicemonitors is forbidden"));
  served = serviceMonitorsServed(api, "");
  ASSERT_FALSE(served.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(served.status()));
  EXPECT_NE(served.status().message().find("servicemonitors is forbidden"), std::string::npos);
}

}  // namespace
}  // namespace mcop::memcached
