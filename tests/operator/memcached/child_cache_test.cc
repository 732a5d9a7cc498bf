// The child caches' transform: ours whole (managedFields dropped), everything else a stub that
// only says who holds the name.
#include "memcached/child_cache.h"

#include <gtest/gtest.h>

#include "kube/memory_store.h"
#include "memcached/json_util.h"
#include "memcached/labels.h"

namespace mcop::memcached {
namespace {

const char* kForeignService = R"({"apiVersion":"v1","kind":"Service",
  "metadata":{"name":"sessions","namespace":"shop","uid":"u-1","resourceVersion":"7",
    "labels":{"app":"web","app.kubernetes.io/managed-by":"helm"},
    "annotations":{"note":"big"},"managedFields":[{"manager":"kubectl"}],
    "ownerReferences":[{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"d-1",
                        "controller":true}]},
  "spec":{"selector":{"app":"web"},"ports":[{"port":80}]},"status":{}})";

Json ours(bool labelled, bool owned) {
  Json obj = Json::parse(R"({"apiVersion":"v1","kind":"ConfigMap",
    "metadata":{"name":"sessions-endpoints","namespace":"shop","uid":"u-2",
      "resourceVersion":"9","managedFields":[{"manager":"memcached-operator"}]},
    "data":{"endpoints.json":"{}"}})");
  if (labelled) {
    obj["metadata"]["labels"] = jsonStringMap(commonLabels("sessions"));
  }
  if (owned) {
    obj["metadata"]["ownerReferences"] = Json::parse(
        R"([{"apiVersion":"memcached.operator.io/v1alpha1","kind":"MemcachedCluster",
             "name":"sessions","uid":"c-1","controller":true}])");
  }
  return obj;
}

TEST(ChildCacheTest, SomeoneElsesObjectBecomesAStubOfNameAndOwner) {
  Json obj = Json::parse(kForeignService);
  ASSERT_FALSE(isOurChild(obj));
  cacheChildOrStub(obj);
  ASSERT_EQ(obj.as_object().size(), 1u) << obj.serialize();
  const Json& meta = obj.at("metadata");
  EXPECT_EQ(meta.as_object().size(), 5u) << obj.serialize();
  EXPECT_EQ(stringAt(obj, {"metadata", "name"}), "sessions");
  EXPECT_EQ(stringAt(obj, {"metadata", "namespace"}), "shop");
  EXPECT_EQ(stringAt(obj, {"metadata", "uid"}), "u-1");
  EXPECT_EQ(stringAt(obj, {"metadata", "resourceVersion"}), "7");
  ASSERT_TRUE(meta.at("ownerReferences").is_array());
  EXPECT_EQ(stringAt(meta.at("ownerReferences").as_array().at(0), {"name"}), "web");
  EXPECT_FALSE(findPath(obj, {"metadata", "labels"}));
  EXPECT_FALSE(findPath(obj, {"spec"}));
}

TEST(ChildCacheTest, AStubIsNotFoundByLabels) {
  kube::MemoryStore store;
  Json obj = Json::parse(kForeignService);
  cacheChildOrStub(obj);
  store.upsert(obj);
  EXPECT_TRUE(store.get("shop", "sessions").has_value());
  EXPECT_TRUE(store.list("shop", {{"app", "web"}}).empty());
}

TEST(ChildCacheTest, OursStaysWholeWithoutManagedFields) {
  for (auto [labelled, owned] : {std::pair{true, true}, {true, false}, {false, true}}) {
    Json obj = ours(labelled, owned);
    ASSERT_TRUE(isOurChild(obj)) << obj.serialize();
    cacheChildOrStub(obj);
    EXPECT_EQ(stringAt(obj, {"data", "endpoints.json"}), "{}") << obj.serialize();
    EXPECT_EQ(stringAt(obj, {"kind"}), "ConfigMap");
    EXPECT_FALSE(findPath(obj, {"metadata", "managedFields"}));
    EXPECT_EQ(stringAt(obj, {"metadata", "labels", kManagedByLabel}),
              labelled ? kDefaultManager : "");
  }
}

TEST(ChildCacheTest, NeitherLabelledNorControlledByAClusterIsNotOurs) {
  // Unlabelled, owned by a MemcachedCluster but not as its controller.
  Json obj = ours(false, true);
  obj["metadata"]["ownerReferences"][0]["controller"] = Json::boolean(false);
  EXPECT_FALSE(isOurChild(obj));
  // Controlled by a kind of the same name from another API group.
  obj = ours(false, true);
  obj["metadata"]["ownerReferences"][0]["apiVersion"] = Json::string("example.com/v1");
  EXPECT_FALSE(isOurChild(obj));
  cacheChildOrStub(obj);
  EXPECT_FALSE(findPath(obj, {"data"}));
}

}  // namespace
}  // namespace mcop::memcached
