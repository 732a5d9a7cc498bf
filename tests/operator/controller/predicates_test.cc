// Event predicates as tables: which update of a cluster, a StatefulSet or a Pod wakes the
// cluster. A status write of the cluster itself must not; a child's status change must.
#include "controller/predicates.h"

#include <string>

#include <gtest/gtest.h>

namespace mcop::controller {
namespace {

using kube::Object;

Object cluster() {
  return Object::parse(R"({"apiVersion":"memcached.operator.io/v1alpha1","kind":"MemcachedCluster",
    "metadata":{"name":"sessions","namespace":"shop","uid":"u1","generation":3,"resourceVersion":"100"},
    "spec":{"replicas":3},"status":{"phase":"Available","configVersion":4}})");
}

// `o` with metadata.<key> set to the JSON `value`.
Object withMeta(Object o, const char* key, const std::string& value) {
  o["metadata"][key] = Object::parse(value);
  return o;
}

Object withStatus(Object o, const std::string& status) {
  o["status"] = Object::parse(status);
  return o;
}

struct Case {
  const char* what;
  Object old_obj;
  Object new_obj;
  bool wakes;
};

TEST(Predicates, ClusterWakesForWhatItsOwnerChanged) {
  const Object base = cluster();
  const Case cases[] = {
      {"status written (new resourceVersion)", base,
       withMeta(withStatus(base, R"({"phase":"Progressing","configVersion":5})"), "resourceVersion", R"("101")"),
       false},
      {"managedFields only", base,
       withMeta(base, "managedFields", R"([{"manager":"kubectl","operation":"Update"}])"), false},
      {"nothing but resourceVersion (a relist)", base, withMeta(base, "resourceVersion", R"("102")"), false},
      {"spec changed (generation)", base, withMeta(base, "generation", "4"), true},
      {"label added", base, withMeta(base, "labels", R"({"team":"web"})"), true},
      {"annotation added", base, withMeta(base, "annotations", R"({"note":"x"})"), true},
      {"finalizer added", base, withMeta(base, "finalizers", R"(["example.com/keep"])"), true},
      {"deletion started", base, withMeta(base, "deletionTimestamp", R"("2026-12-07T08:00:00Z")"), true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ownerIntentChanged(c.old_obj, c.new_obj), c.wakes) << c.what;
  }
}

TEST(Predicates, SingleFieldPredicates) {
  const Object base = withMeta(cluster(), "labels", R"({"a":"1"})");
  const Object relabelled = withMeta(cluster(), "labels", R"({"a":"2"})");
  const Object unlabelled = cluster();
  EXPECT_TRUE(labelsChanged(base, relabelled));
  EXPECT_TRUE(labelsChanged(base, unlabelled)) << "labels removed";
  EXPECT_FALSE(labelsChanged(base, base));
  EXPECT_FALSE(generationChanged(base, relabelled));
  EXPECT_FALSE(annotationsChanged(base, relabelled));
  EXPECT_FALSE(finalizersChanged(base, relabelled));
  EXPECT_FALSE(deletionTimestampChanged(base, relabelled));
  // null and missing read the same
  EXPECT_FALSE(annotationsChanged(unlabelled, withMeta(cluster(), "annotations", "null")));
  EXPECT_TRUE(generationChanged(base, withMeta(base, "generation", "4")));
}

TEST(Predicates, ObjectWithoutGenerationWakesOnAnyRealChange) {
  const Object a = Object::parse(R"({"metadata":{"name":"x","resourceVersion":"1"},"data":{"k":"v"}})");
  const Object b = Object::parse(R"({"metadata":{"name":"x","resourceVersion":"2"},"data":{"k":"w"}})");
  const Object c = Object::parse(R"({"metadata":{"name":"x","resourceVersion":"3"},"data":{"k":"v"}})");
  EXPECT_TRUE(ownerIntentChanged(a, b));
  EXPECT_FALSE(ownerIntentChanged(a, c));
}

Object statefulSet(const std::string& rv, int ready) {
  return Object::parse(R"({"kind":"StatefulSet","metadata":{"name":"sessions","namespace":"shop",
    "generation":2,"resourceVersion":")" + rv + R"("},
    "spec":{"replicas":3},"status":{"observedGeneration":2,"replicas":3,"readyReplicas":)" +
                      std::to_string(ready) + "}}");
}

Object pod(const std::string& rv, bool ready) {
  return Object::parse(R"({"kind":"Pod","metadata":{"name":"sessions-0","namespace":"shop",
    "resourceVersion":")" + rv + R"("},
    "spec":{"containers":[{"name":"memcached"}]},
    "status":{"phase":"Running","podIP":"10.0.0.7","conditions":[{"type":"Ready","status":")" +
                      (ready ? "True" : "False") + R"("}]}})");
}

TEST(Predicates, ChildrenWakeTheirOwnerForAnyChangeButBookkeeping) {
  const Case cases[] = {
      {"StatefulSet readyReplicas", statefulSet("1", 2), statefulSet("2", 3), true},
      {"StatefulSet resourceVersion only", statefulSet("1", 3), statefulSet("2", 3), false},
      {"StatefulSet managedFields only", statefulSet("1", 3),
       withMeta(statefulSet("2", 3), "managedFields", R"([{"manager":"kube-controller-manager"}])"), false},
      {"StatefulSet label", statefulSet("1", 3), withMeta(statefulSet("2", 3), "labels", R"({"a":"b"})"), true},
      {"StatefulSet spec", statefulSet("1", 3),
       withMeta(withStatus(statefulSet("2", 3), R"({"observedGeneration":2,"replicas":3,"readyReplicas":3})"),
                "generation", "3"), true},
      {"Pod becomes Ready", pod("7", false), pod("8", true), true},
      {"Pod stops being Ready", pod("7", true), pod("8", false), true},
      {"Pod resourceVersion only", pod("7", true), pod("8", true), false},
      {"Pod being deleted", pod("7", true), withMeta(pod("8", true), "deletionTimestamp", R"("2026-12-07T08:00:00Z")"), true},
      {"status appears", Object::parse(R"({"metadata":{"name":"a"}})"),
       Object::parse(R"({"metadata":{"name":"a"},"status":{}})"), true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(changedBeyondBookkeeping(c.old_obj, c.new_obj), c.wakes) << c.what;
  }
}

}  // namespace
}  // namespace mcop::controller
