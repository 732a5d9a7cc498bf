// FencedApiClient: every kind of write is refused while the gate is closed and never reaches
// the wrapped client; reads and watches always pass; a reopened gate lets writes through.
#include "kube/fenced_api_client.h"

#include <atomic>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testing/fake_api_client.h"
#include "kube/object_meta.h"

namespace mcop::kube {
namespace {

using resources::kConfigMap;
using resources::kMemcachedCluster;
using ::testing::HasSubstr;

Object cm(const std::string& name) {
  return Object::parse(R"({"metadata":{"name":")" + name + R"(","namespace":"shop"},"data":{}})");
}

TEST(FencedApiClient, RefusesEveryWriteWhileClosedAndPassesReads) {
  auto api = std::make_shared<FakeApiClient>();
  std::atomic<bool> leader{true};
  FencedApiClient fenced(api, [&] { return leader.load(); });
  auto created = fenced.create(kConfigMap, "shop", cm("a"));
  ASSERT_TRUE(created.ok()) << created.status();
  auto mcc = api->seed(kMemcachedCluster, Object::parse(R"({"metadata":{"name":"c","namespace":"shop"},"spec":{}})"));

  leader = false;
  int writes = api->writeCount();
  std::vector<absl::Status> refused = {
      fenced.create(kConfigMap, "shop", cm("b")).status(),
      fenced.update(kConfigMap, *created, "").status(),
      fenced.update(kMemcachedCluster, mcc, "status").status(),
      fenced.patch(kConfigMap, "shop", "a", PatchType::kApply, cm("a"), {"memcached-operator", true, ""}).status(),
      fenced.patch(kMemcachedCluster, "shop", "c", PatchType::kMerge, Object::parse(R"({"status":{}})"),
                   {"", false, "status"}).status(),
      fenced.remove(kConfigMap, "shop", "a", {}),
  };
  for (const auto& s : refused) {
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("not the leader"));
    EXPECT_FALSE(IsRetryable(s));
  }
  EXPECT_EQ(api->writeCount(), writes) << "no refused write reached the API";
  EXPECT_EQ(fenced.refused(), refused.size());

  EXPECT_TRUE(fenced.get(kConfigMap, "shop", "a").ok());
  EXPECT_TRUE(fenced.list(kConfigMap, "shop", {}).ok());
  EXPECT_TRUE(fenced.watch(kConfigMap, "shop", {}).ok());

  leader = true;
  EXPECT_TRUE(fenced.remove(kConfigMap, "shop", "a", {}).ok());
}

}  // namespace
}  // namespace mcop::kube
