// FakeApiClient behaves like the API server where the operator depends on it.
#include "testing/fake_api_client.h"

#include <gtest/gtest.h>

#include "kube/event_recorder.h"
#include "kube/memory_store.h"
#include "kube/object_meta.h"
#include "testing/fake_clock.h"

namespace mcop::kube {
namespace {

using resources::kConfigMap;
using resources::kMemcachedCluster;
using resources::kPod;
using resources::kStatefulSet;

Object parse(const std::string& s) { return Object::parse(s); }

Object cluster(const std::string& name, int replicas) {
  return parse(R"({"apiVersion":"memcached.operator.io/v1alpha1","kind":"MemcachedCluster",
    "metadata":{"name":")" + name + R"(","namespace":"shop","labels":{"team":"a"}},
    "spec":{"replicas":)" + std::to_string(replicas) + "}}");
}

TEST(FakeApiClient, CreateSetsServerMetadata) {
  util::FakeClock clock;
  FakeApiClient api(&clock);
  auto created = api.create(kMemcachedCluster, "shop", cluster("a", 2));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(uidOf(*created).empty());
  EXPECT_FALSE(resourceVersionOf(*created).empty());
  EXPECT_EQ(created->at("metadata").at("generation").as_integer(), 1);
  EXPECT_EQ(stringField(*created, {"metadata", "creationTimestamp"}), "2026-01-01T00:00:00Z");
  auto again = api.create(kMemcachedCluster, "shop", cluster("a", 2));
  EXPECT_TRUE(IsAlreadyExists(again.status())) << again.status();
  EXPECT_TRUE(IsNotFound(api.get(kMemcachedCluster, "shop", "b").status()));
}

TEST(FakeApiClient, UpdateIsConditionalAndBumpsGenerationOnSpecOnly) {
  FakeApiClient api;
  auto obj = *api.create(kMemcachedCluster, "shop", cluster("a", 2));
  Object changed = obj;
  changed["spec"]["replicas"] = Object::number(3);
  auto updated = api.update(kMemcachedCluster, changed, "");
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->at("metadata").at("generation").as_integer(), 2);
  EXPECT_NE(resourceVersionOf(*updated), resourceVersionOf(obj));
  // Stale resourceVersion: conflict.
  auto stale = api.update(kMemcachedCluster, changed, "");
  EXPECT_TRUE(IsConflict(stale.status())) << stale.status();
  // A label change is not a spec change.
  Object labelled = *updated;
  labelled["metadata"]["labels"]["x"] = Object::string("y");
  auto l = api.update(kMemcachedCluster, labelled, "");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->at("metadata").at("generation").as_integer(), 2);
  // A no-op update keeps the resourceVersion.
  auto same = api.update(kMemcachedCluster, *l, "");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(resourceVersionOf(*same), resourceVersionOf(*l));
}

TEST(FakeApiClient, StatusSubresourceSeparatesSpecAndStatus) {
  FakeApiClient api;
  auto obj = *api.create(kMemcachedCluster, "shop", cluster("a", 2));
  Object with_status = obj;
  with_status["status"]["replicas"] = Object::number(2);
  // Plain update ignores status.
  auto u = api.update(kMemcachedCluster, with_status, "");
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE(u->has_field("status"));
  // Status update changes only status.
  with_status["spec"]["replicas"] = Object::number(9);
  with_status["metadata"]["resourceVersion"] = Object::string(resourceVersionOf(*u));
  auto s = api.update(kMemcachedCluster, with_status, "status");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->at("status").at("replicas").as_integer(), 2);
  EXPECT_EQ(s->at("spec").at("replicas").as_integer(), 2);
  EXPECT_EQ(s->at("metadata").at("generation").as_integer(), 1);
  // ConfigMaps have no status subresource: nothing special.
  auto cm = api.create(kConfigMap, "shop", parse(R"({"metadata":{"name":"c"},"data":{"k":"v"}})"));
  ASSERT_TRUE(cm.ok());
  EXPECT_EQ(stringField(*cm, {"data", "k"}), "v");
}

TEST(FakeApiClient, MergeAndJsonPatch) {
  FakeApiClient api;
  ASSERT_TRUE(api.create(kConfigMap, "shop",
                         parse(R"({"metadata":{"name":"c","labels":{"a":"1","b":"2"}},"data":{"k":"v"}})"))
                  .ok());
  auto p = api.patch(kConfigMap, "shop", "c", PatchType::kMerge,
                     parse(R"({"metadata":{"labels":{"a":null,"c":"3"}},"data":{"k2":"v2"}})"), {});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(labelsOf(*p), (std::map<std::string, std::string>{{"b", "2"}, {"c", "3"}}));
  EXPECT_EQ(stringField(*p, {"data", "k2"}), "v2");
  auto j = api.patch(kConfigMap, "shop", "c", PatchType::kJson,
                     parse(R"([{"op":"test","path":"/data/k","value":"v"},
                               {"op":"replace","path":"/data/k","value":"w"},
                               {"op":"remove","path":"/data/k2"}])"),
                     {});
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(stringField(*j, {"data", "k"}), "w");
  EXPECT_FALSE(j->at("data").has_field("k2"));
  // Merge patch carrying a stale resourceVersion conflicts.
  auto stale = api.patch(kConfigMap, "shop", "c", PatchType::kMerge,
                         parse(R"({"metadata":{"resourceVersion":"1"},"data":{"x":"y"}})"), {});
  EXPECT_TRUE(IsConflict(stale.status())) << stale.status();
  EXPECT_TRUE(IsNotFound(api.patch(kConfigMap, "shop", "nope", PatchType::kMerge,
                                   parse(R"({"data":{}})"), {}).status()));
}

TEST(FakeApiClient, ApplyCreatesThenMerges) {
  FakeApiClient api;
  PatchOptions opts{"memcached-operator", true, ""};
  auto body = parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"e"},"data":{"a":"1"}})");
  auto created = api.patch(kConfigMap, "shop", "e", PatchType::kApply, body, opts);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(namespaceOf(*created), "shop");
  body["data"]["a"] = Object::string("2");
  auto merged = api.patch(kConfigMap, "shop", "e", PatchType::kApply, body, opts);
  ASSERT_TRUE(merged.ok());
  EXPECT_EQ(stringField(*merged, {"data", "a"}), "2");
  // Re-applying the same thing is a no-op on the server.
  auto again = api.patch(kConfigMap, "shop", "e", PatchType::kApply, body, opts);
  EXPECT_EQ(resourceVersionOf(*again), resourceVersionOf(*merged));
  EXPECT_TRUE(IsInvalid(api.patch(kConfigMap, "shop", "e", PatchType::kApply, body, {}).status()));
  // Apply to the status subresource.
  ASSERT_TRUE(api.create(kMemcachedCluster, "shop", cluster("a", 1)).ok());
  auto st = api.patch(kMemcachedCluster, "shop", "a", PatchType::kApply,
                      parse(R"({"status":{"configVersion":3}})"),
                      {"memcached-operator", true, "status"});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->at("status").at("configVersion").as_integer(), 3);
}

TEST(FakeApiClient, ListFiltersByNamespaceAndLabelsAndPages) {
  FakeApiClient api;
  for (int i = 0; i < 5; ++i) {
    Object pod = parse(R"({"metadata":{"name":"p)" + std::to_string(i) +
                       R"(","labels":{"app":")" + (i % 2 ? "x" : "y") + R"("}}})");
    ASSERT_TRUE(api.create(kPod, i < 4 ? "a" : "b", pod).ok());
  }
  EXPECT_EQ(api.list(kPod, "", {})->items.size(), 5u);
  EXPECT_EQ(api.list(kPod, "a", {})->items.size(), 4u);
  ListOptions sel;
  sel.label_selector = "app=x";
  EXPECT_EQ(api.list(kPod, "", sel)->items.size(), 2u);
  sel.label_selector = "app notin (x)";
  EXPECT_EQ(api.list(kPod, "", sel)->items.size(), 3u);
  ListOptions paged;
  paged.limit = 2;
  std::vector<std::string> names;
  do {
    auto page = api.list(kPod, "", paged);
    ASSERT_TRUE(page.ok());
    for (const auto& o : page->items) names.push_back(nameOf(o));
    paged.continue_token = page->continue_token;
  } while (!paged.continue_token.empty());
  EXPECT_EQ(names, (std::vector<std::string>{"p0", "p1", "p2", "p3", "p4"}));
}

TEST(FakeApiClient, DeleteWithFinalizersAndCascade) {
  FakeApiClient api;
  api.setCascadeDelete(true);
  auto owner = *api.create(kMemcachedCluster, "shop", cluster("a", 1));
  Object sts = parse(R"({"metadata":{"name":"a","ownerReferences":[{"apiVersion":"memcached.operator.io/v1alpha1",
      "kind":"MemcachedCluster","name":"a","controller":true,"uid":")" + uidOf(owner) + R"("}]}})");
  ASSERT_TRUE(api.create(kStatefulSet, "shop", sts).ok());
  ASSERT_TRUE(api.remove(kMemcachedCluster, "shop", "a", {}).ok());
  EXPECT_FALSE(api.peek(kStatefulSet, "shop", "a"));

  Object fin = parse(R"({"metadata":{"name":"f","finalizers":["x/y"]},"data":{}})");
  auto f = *api.create(kConfigMap, "shop", fin);
  ASSERT_TRUE(api.remove(kConfigMap, "shop", "f", {}).ok());
  auto terminating = api.peek(kConfigMap, "shop", "f");
  ASSERT_TRUE(terminating);
  EXPECT_FALSE(stringField(*terminating, {"metadata", "deletionTimestamp"}).empty());
  auto clear = api.patch(kConfigMap, "shop", "f", PatchType::kMerge,
                         parse(R"({"metadata":{"finalizers":null}})"), {});
  ASSERT_TRUE(clear.ok()) << clear.status();
  EXPECT_FALSE(api.peek(kConfigMap, "shop", "f"));
}

TEST(FakeApiClient, ErrorInjectionAndCounters) {
  FakeApiClient api;
  api.failNext(Verb::kCreate, kConfigMap, absl::UnavailableError("injected 500"), 2);
  Object cm = parse(R"({"metadata":{"name":"c"}})");
  EXPECT_TRUE(absl::IsUnavailable(api.create(kConfigMap, "shop", cm).status()));
  EXPECT_TRUE(absl::IsUnavailable(api.create(kConfigMap, "shop", cm).status()));
  EXPECT_TRUE(api.create(kConfigMap, "shop", cm).ok());
  EXPECT_EQ(api.count(Verb::kCreate), 3);
  EXPECT_EQ(api.count(Verb::kCreate, kPod), 0);
  EXPECT_EQ(api.writeCount(), 3);
  api.setFailureHook([](const FakeApiClient::Action& a) {
    return a.name == "c" && a.verb == Verb::kGet ? absl::DeadlineExceededError("timeout")
                                                 : absl::OkStatus();
  });
  EXPECT_TRUE(absl::IsDeadlineExceeded(api.get(kConfigMap, "shop", "c").status()));
  api.resetCounters();
  EXPECT_EQ(api.writeCount(), 0);
}

TEST(FakeApiClient, WatchDeliversWritesBookmarksAndGone) {
  FakeApiClient api;
  ASSERT_TRUE(api.create(kConfigMap, "shop", parse(R"({"metadata":{"name":"a"}})")).ok());
  auto listed = api.list(kConfigMap, "shop", {});
  ListOptions opts;
  opts.resource_version = listed->resource_version;
  auto w = api.watch(kConfigMap, "shop", opts);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(api.create(kConfigMap, "shop", parse(R"({"metadata":{"name":"b"}})")).ok());
  ASSERT_TRUE(api.remove(kConfigMap, "shop", "a", {}).ok());
  api.sendBookmarks();
  auto e1 = (*w)->next();
  ASSERT_TRUE(e1.ok() && *e1);
  EXPECT_EQ((*e1)->type, EventType::kAdded);
  EXPECT_EQ(nameOf((*e1)->object), "b");
  auto e2 = (*w)->next();
  EXPECT_EQ((*e2)->type, EventType::kDeleted);
  auto e3 = (*w)->next();
  EXPECT_EQ((*e3)->type, EventType::kBookmark);
  EXPECT_EQ(resourceVersionOf((*e3)->object), api.currentResourceVersion());
  api.breakWatches(&kConfigMap, absl::OutOfRangeError("gone"));
  EXPECT_TRUE(IsGone((*w)->next().status()));

  // Watching from a compacted resourceVersion: 410.
  api.compact();
  auto old = api.watch(kConfigMap, "shop", opts);
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(IsGone((*old)->next().status()));
}

TEST(FakeApiClient, WatchCancelUnblocksAndSelectorTransitions) {
  FakeApiClient api;
  ListOptions opts;
  opts.label_selector = "app=x";
  opts.resource_version = api.currentResourceVersion();
  auto w = api.watch(kPod, "", opts);
  ASSERT_TRUE(w.ok());
  auto pod = *api.create(kPod, "a", parse(R"({"metadata":{"name":"p","labels":{"app":"y"}}})"));
  pod["metadata"]["labels"]["app"] = Object::string("x");
  pod = *api.update(kPod, pod, "");
  pod["metadata"]["labels"]["app"] = Object::string("z");
  ASSERT_TRUE(api.update(kPod, pod, "").ok());
  auto e1 = (*w)->next();
  EXPECT_EQ((*e1)->type, EventType::kAdded);
  auto e2 = (*w)->next();
  EXPECT_EQ((*e2)->type, EventType::kDeleted);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    (*w)->cancel();
  });
  EXPECT_TRUE(absl::IsCancelled((*w)->next().status()));
  t.join();
}

TEST(MemoryStore, GetListByNamespaceAndLabels) {
  MemoryStore store;
  store.upsert(parse(R"({"metadata":{"name":"a","namespace":"x","labels":{"c":"1","r":"m"}}})"));
  store.upsert(parse(R"({"metadata":{"name":"b","namespace":"x","labels":{"c":"2","r":"m"}}})"));
  store.upsert(parse(R"({"metadata":{"name":"a","namespace":"xy","labels":{"c":"1"}}})"));
  EXPECT_TRUE(store.get("x", "a"));
  EXPECT_FALSE(store.get("x", "c"));
  EXPECT_EQ(store.list("x", {}).size(), 2u);
  EXPECT_EQ(store.list("", {}).size(), 3u);
  EXPECT_EQ(store.list("", {{"c", "1"}}).size(), 2u);
  EXPECT_EQ(store.list("x", {{"c", "1"}, {"r", "m"}}).size(), 1u);
  EXPECT_EQ(store.list("x", {{"c", "3"}}).size(), 0u);
  // Relabel moves it between index buckets.
  store.upsert(parse(R"({"metadata":{"name":"a","namespace":"x","labels":{"c":"3"}}})"));
  EXPECT_EQ(store.list("x", {{"c", "1"}}).size(), 0u);
  EXPECT_EQ(store.list("x", {{"c", "3"}}).size(), 1u);
  EXPECT_TRUE(store.erase("x", "a"));
  EXPECT_EQ(store.list("x", {{"c", "3"}}).size(), 0u);
  EXPECT_EQ(store.size(), 2u);
}

TEST(ApiEventRecorder, CreatesThenAggregates) {
  util::FakeClock clock;
  auto api = std::make_shared<FakeApiClient>(&clock);
  ApiEventRecorder recorder(api, clock, "memcached-operator", "host-1");
  auto obj = *api->create(kMemcachedCluster, "shop", cluster("a", 1));
  recorder.record(obj, EventSeverity::kNormal, "ScaledUp", "replicas 1 -> 2");
  clock.advance(std::chrono::seconds(5));
  recorder.record(obj, EventSeverity::kNormal, "ScaledUp", "replicas 1 -> 2");
  recorder.record(obj, EventSeverity::kWarning, "DrainTimeout", "gave up");
  auto events = api->list(resources::kEvent, "shop", {});
  ASSERT_EQ(events->items.size(), 2u);
  const Object* scaled = nullptr;
  for (const auto& e : events->items) {
    if (stringField(e, {"reason"}) == "ScaledUp") scaled = &e;
  }
  ASSERT_NE(scaled, nullptr);
  EXPECT_EQ(scaled->at("count").as_integer(), 2);
  EXPECT_EQ(stringField(*scaled, {"type"}), "Normal");
  EXPECT_EQ(stringField(*scaled, {"source", "component"}), "memcached-operator");
  EXPECT_EQ(stringField(*scaled, {"involvedObject", "kind"}), "MemcachedCluster");
  EXPECT_EQ(stringField(*scaled, {"involvedObject", "uid"}), uidOf(obj));
  EXPECT_EQ(stringField(*scaled, {"firstTimestamp"}), "2026-01-01T00:00:00Z");
  EXPECT_EQ(stringField(*scaled, {"lastTimestamp"}), "2026-01-01T00:00:05Z");
  // Best-effort: an API failure is swallowed.
  api->failNext(Verb::kCreate, resources::kEvent, absl::UnavailableError("down"));
  recorder.record(obj, EventSeverity::kNormal, "Other", "x");
}

}  // namespace
}  // namespace mcop::kube
