// Informer against FakeApiClient: initial list, watch events, bookmarks, 410 relist with
// deletions discovered, reconnect after 500s, label-filtered informers, the shared factory.
#include "kube/informer.h"

#include <thread>

#include <gtest/gtest.h>

#include "testing/fake_api_client.h"
#include "kube/object_meta.h"

namespace mcop::kube {
namespace {

using namespace std::chrono_literals;
using resources::kConfigMap;

template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

Object cm(const std::string& name, const std::string& app = "x") {
  return Object::parse(R"({"metadata":{"name":")" + name + R"(","namespace":"shop","labels":{"app":")" +
                       app + R"("}},"data":{}})");
}

// Records handler calls.
struct Recorder {
  std::mutex mu;
  std::vector<std::string> calls;
  InformerHandlers handlers() {
    return {[this](const Object& o) { push("add " + nameOf(o)); },
            [this](const Object& o, const Object& n) { push("update " + nameOf(n)); },
            [this](const Object& o) { push("delete " + nameOf(o)); }};
  }
  void push(std::string s) {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(std::move(s));
  }
  bool has(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    return std::find(calls.begin(), calls.end(), s) != calls.end();
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return calls.size();
  }
};

InformerOptions fast() {
  InformerOptions o;
  o.initial_backoff = 1ms;
  o.max_backoff = 5ms;
  o.page_size = 2;
  return o;
}

TEST(Informer, ListsPagedThenWatches) {
  auto api = std::make_shared<FakeApiClient>();
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(api->create(kConfigMap, "shop", cm(n)).ok());
  Informer inf(api, kConfigMap, fast());
  Recorder rec;
  inf.addHandlers(rec.handlers());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  EXPECT_EQ(api->count(Verb::kList), 2) << "three objects in pages of two";
  EXPECT_TRUE(rec.has("add a") && rec.has("add b") && rec.has("add c"));
  EXPECT_TRUE(inf.store().get("shop", "b"));

  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("d")).ok());
  auto b = *api->get(kConfigMap, "shop", "b");
  b["data"]["k"] = Object::string("v");
  ASSERT_TRUE(api->update(kConfigMap, b, "").ok());
  ASSERT_TRUE(api->remove(kConfigMap, "shop", "a", {}).ok());
  ASSERT_TRUE(eventually([&] { return rec.has("delete a"); }));
  EXPECT_TRUE(rec.has("add d"));
  EXPECT_TRUE(rec.has("update b"));
  EXPECT_FALSE(inf.store().get("shop", "a"));
  EXPECT_EQ(stringField(*inf.store().get("shop", "b"), {"data", "k"}), "v");

  api->sendBookmarks();
  ASSERT_TRUE(eventually([&] { return inf.lastResourceVersion() == api->currentResourceVersion(); }));
  inf.stop();
}

Object withManagedFields(Object obj) {
  obj["metadata"]["managedFields"] = Object::parse(
      R"([{"manager":"kubectl","operation":"Apply","fieldsType":"FieldsV1","fieldsV1":{"f:data":{}}}])");
  return obj;
}

// What the cache keeps (and handlers see) has no managedFields, from the list and from watch
// events alike; the rest of the object is untouched. A transform of our own replaces it.
TEST(Informer, CachesObjectsWithoutManagedFields) {
  auto api = std::make_shared<FakeApiClient>();
  ASSERT_TRUE(api->create(kConfigMap, "shop", withManagedFields(cm("listed"))).ok());
  Informer inf(api, kConfigMap, fast());
  std::mutex mu;
  std::vector<Object> seen;
  inf.addHandlers({[&](const Object& o) { std::lock_guard<std::mutex> l(mu); seen.push_back(o); },
                   [&](const Object&, const Object& n) { std::lock_guard<std::mutex> l(mu); seen.push_back(n); },
                   nullptr});
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  ASSERT_TRUE(api->create(kConfigMap, "shop", withManagedFields(cm("watched"))).ok());
  ASSERT_TRUE(eventually([&] { return inf.store().get("shop", "watched").has_value(); }));
  for (const char* name : {"listed", "watched"}) {
    auto cached = inf.store().get("shop", name);
    ASSERT_TRUE(cached);
    EXPECT_FALSE(cached->at("metadata").has_field("managedFields")) << name;
    EXPECT_EQ(labelsOf(*cached).at("app"), "x") << name;
    EXPECT_FALSE(resourceVersionOf(*cached).empty()) << name;
  }
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(seen.size(), 2u);
  for (const Object& o : seen) EXPECT_FALSE(o.at("metadata").has_field("managedFields"));
}

TEST(Informer, KeepsManagedFieldsWithoutATransform) {
  auto api = std::make_shared<FakeApiClient>();
  ASSERT_TRUE(api->create(kConfigMap, "shop", withManagedFields(cm("a"))).ok());
  InformerOptions opts = fast();
  opts.transform = nullptr;
  Informer inf(api, kConfigMap, opts);
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  EXPECT_TRUE(inf.store().get("shop", "a")->at("metadata").has_field("managedFields"));
}

TEST(Informer, RelistsOnGoneAndReportsDeletionsMissedMeanwhile) {
  auto api = std::make_shared<FakeApiClient>();
  for (const char* n : {"a", "b"}) ASSERT_TRUE(api->create(kConfigMap, "shop", cm(n)).ok());
  Informer inf(api, kConfigMap, fast());
  Recorder rec;
  inf.addHandlers(rec.handlers());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));

  // While the watch is broken and history compacted, "a" disappears and "e" appears; the
  // watch then fails with 410.
  api->breakWatches(nullptr, absl::UnavailableError("connection reset"));
  api->failNext(Verb::kWatch, kConfigMap, absl::UnavailableError("apiserver down"), 2);
  ASSERT_TRUE(api->remove(kConfigMap, "shop", "a", {}).ok());
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("e")).ok());
  api->compact();
  ASSERT_TRUE(eventually([&] { return rec.has("delete a") && rec.has("add e"); }));
  EXPECT_EQ(inf.listCount(), 2u) << "one relist after 410";
  EXPECT_EQ(inf.store().list("shop", {}).size(), 2u);
  inf.stop();
}

// The cache hands the previous object to on_update (from its stored form): by watch and by a
// relist, which reports only objects whose resourceVersion changed.
TEST(Informer, UpdatesCarryThePreviousObjectByWatchAndByRelist) {
  auto api = std::make_shared<FakeApiClient>();
  for (const char* n : {"a", "b"}) ASSERT_TRUE(api->create(kConfigMap, "shop", cm(n)).ok());
  Informer inf(api, kConfigMap, fast());
  std::mutex mu;
  std::vector<std::string> updates;  // "name old->new" of data.v
  InformerHandlers h;
  h.on_update = [&](const Object& old_obj, const Object& new_obj) {
    std::lock_guard<std::mutex> lock(mu);
    updates.push_back(nameOf(new_obj) + " " + stringField(old_obj, {"data", "v"}) + "->" +
                      stringField(new_obj, {"data", "v"}));
  };
  inf.addHandlers(h);
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  auto setV = [&](const std::string& name, const std::string& v) {
    Object obj = *api->get(kConfigMap, "shop", name);
    obj["data"]["v"] = Object::string(v);
    ASSERT_TRUE(api->update(kConfigMap, obj, "").ok());
  };
  auto seen = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return updates;
  };
  setV("a", "1");
  ASSERT_TRUE(eventually([&] { return seen().size() == 1; }));
  EXPECT_EQ(seen().front(), "a ->1");

  // Cut off: "a" changes, "b" does not; the relist reports "a" alone, with its cached old self.
  api->breakWatches(nullptr, absl::UnavailableError("connection reset"));
  api->failNext(Verb::kWatch, kConfigMap, absl::UnavailableError("apiserver down"), 5);
  setV("a", "2");
  api->compact();
  // Watching again: the relist and all its handlers are done.
  ASSERT_TRUE(eventually([&] { return inf.listCount() == 2u && api->openWatches() == 1; }));
  EXPECT_EQ(seen(), (std::vector<std::string>{"a ->1", "a 1->2"}));
  EXPECT_EQ(stringField(*inf.store().get("shop", "a"), {"data", "v"}), "2");
  inf.stop();
}

TEST(Informer, GoneMidStreamRelists) {
  auto api = std::make_shared<FakeApiClient>();
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("a")).ok());
  Informer inf(api, kConfigMap, fast());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  api->breakWatches(nullptr, absl::OutOfRangeError("too old resource version"));
  ASSERT_TRUE(eventually([&] { return inf.listCount() == 2; }));
  inf.stop();
}

TEST(Informer, ReconnectsAfterServerErrorsWithoutRelisting) {
  auto api = std::make_shared<FakeApiClient>();
  api->failNext(Verb::kList, kConfigMap, absl::UnavailableError("500"), 2);
  Informer inf(api, kConfigMap, fast());
  Recorder rec;
  inf.addHandlers(rec.handlers());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s)) << "synced after two failed lists";
  EXPECT_EQ(api->count(Verb::kList), 3);
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  api->breakWatches(nullptr, absl::UnavailableError("500"));
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("late")).ok());
  ASSERT_TRUE(eventually([&] { return rec.has("add late"); }));
  EXPECT_EQ(inf.listCount(), 1u) << "a broken connection resumes from the last resourceVersion";
  EXPECT_GE(api->count(Verb::kWatch), 2);
  // The server ending a watch (timeoutSeconds) also resumes.
  api->endWatches();
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("later")).ok());
  ASSERT_TRUE(eventually([&] { return rec.has("add later"); }));
  inf.stop();
}

TEST(Informer, LabelSelectorAndNamespaceFilter) {
  auto api = std::make_shared<FakeApiClient>();
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("mine", "x")).ok());
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("other", "y")).ok());
  Object elsewhere = cm("elsewhere", "x");
  elsewhere["metadata"]["namespace"] = Object::string("else");
  ASSERT_TRUE(api->create(kConfigMap, "else", elsewhere).ok());
  InformerOptions o = fast();
  o.ns = "shop";
  o.label_selector = "app=x";
  Informer inf(api, kConfigMap, o);
  Recorder rec;
  inf.addHandlers(rec.handlers());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  EXPECT_EQ(inf.store().list("", {}).size(), 1u);
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  // Relabelled out of the selector: a delete for this informer.
  auto mine = *api->get(kConfigMap, "shop", "mine");
  mine["metadata"]["labels"]["app"] = Object::string("z");
  ASSERT_TRUE(api->update(kConfigMap, mine, "").ok());
  ASSERT_TRUE(eventually([&] { return rec.has("delete mine"); }));
  EXPECT_EQ(inf.store().list("", {}).size(), 0u);
  inf.stop();
}

TEST(Informer, StopUnblocksAnIdleWatch) {
  auto api = std::make_shared<FakeApiClient>();
  Informer inf(api, kConfigMap, fast());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  auto start = std::chrono::steady_clock::now();
  inf.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // not the watch timeout
}

TEST(InformerFactory, SharesInformersAndWaitsForAll) {
  auto api = std::make_shared<FakeApiClient>();
  InformerFactory f(api, fast());
  Informer& a = f.informer(kConfigMap, "shop");
  Informer& b = f.informer(kConfigMap, "shop");
  Informer& c = f.informer(resources::kPod, "shop", "app=x");
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  EXPECT_EQ(c.options().label_selector, "app=x");
  EXPECT_FALSE(f.allSynced());
  f.startAll();
  EXPECT_TRUE(f.waitForSync(2s));
  EXPECT_TRUE(f.allSynced());
  f.stopAll();
}

// A caller's own transform replaces the default one for the informer it creates, for listed
// and watched objects alike.
TEST(InformerFactory, AppliesTheTransformTheInformerIsCreatedWith) {
  auto api = std::make_shared<FakeApiClient>();
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("listed")).ok());
  InformerFactory f(api, fast());
  Informer& inf = f.informer(kConfigMap, "shop", "", [](Object& o) {
    o["metadata"].as_object().erase("labels");
  });
  f.startAll();
  ASSERT_TRUE(f.waitForSync(2s));
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("watched")).ok());
  ASSERT_TRUE(eventually([&] { return inf.store().get("shop", "watched").has_value(); }));
  for (const char* name : {"listed", "watched"}) {
    EXPECT_TRUE(labelsOf(*inf.store().get("shop", name)).empty()) << name;
  }
  f.stopAll();
}

}  // namespace
}  // namespace mcop::kube

#include <cstdlib>

#include "kube/kubeconfig.h"
#include "kube/rest_api_client.h"

namespace mcop::kube {
namespace {

// Integration: an informer on the real API server (e2e/cluster); set MCOP_TEST_KUBECONFIG.
TEST(InformerIntegration, SyncsAndFollowsRealServer) {
  const char* kc = std::getenv("MCOP_TEST_KUBECONFIG");
  if (!kc || !*kc) GTEST_SKIP() << "MCOP_TEST_KUBECONFIG not set";
  auto cfg = loadKubeconfig(kc, "");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  auto api = RestApiClient::create(*cfg);
  ASSERT_TRUE(api.ok()) << api.status();
  std::string label = "mcop-informer-test=" + std::to_string(::getpid());
  InformerOptions o;
  o.ns = "default";
  o.label_selector = label;
  o.min_watch_timeout = std::chrono::seconds(1);  // exercise the server ending watches
  o.max_watch_timeout = std::chrono::seconds(2);
  Informer inf(*api, resources::kConfigMap, o);
  Recorder rec;
  inf.addHandlers(rec.handlers());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(10s));
  std::string name = "mcop-informer-" + std::to_string(::getpid());
  Object obj = Object::parse(R"({"metadata":{"name":")" + name + R"(","labels":{"mcop-informer-test":")" +
                             std::to_string(::getpid()) + R"("}},"data":{}})");
  std::this_thread::sleep_for(3s);  // at least one server-ended watch
  ASSERT_TRUE((*api)->create(resources::kConfigMap, "default", obj).ok());
  ASSERT_TRUE(eventually([&] { return rec.has("add " + name); }));
  ASSERT_TRUE((*api)->remove(resources::kConfigMap, "default", name, {}).ok());
  ASSERT_TRUE(eventually([&] { return rec.has("delete " + name); }));
  EXPECT_EQ(inf.listCount(), 1u) << "server-ended watches resume without relisting";
  EXPECT_GE(inf.watchCount(), 2u);
  inf.stop();
}

}  // namespace
}  // namespace mcop::kube

namespace mcop::kube {
namespace {

// A watch whose connection died silently (no FIN, no RST: a NAT or load balancer dropped it,
// or the server froze) delivers nothing while the API server goes on. The informer must notice
// within its idle bound, watch again from the last resourceVersion (no relist), and so see an
// object created after the watch went dead.
TEST(Informer, RestartsASilentWatchWithinTheIdleBound) {
  auto api = std::make_shared<FakeApiClient>();
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("a")).ok());
  InformerOptions o = fast();
  o.watch_idle_timeout = 300ms;
  Informer inf(api, kConfigMap, o);
  Recorder rec;
  inf.addHandlers(rec.handlers());
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  uint64_t watches = inf.watchCount();

  api->freezeWatches();
  auto frozen_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(api->create(kConfigMap, "shop", cm("late")).ok());
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() - frozen_at < 5s) {
    seen = rec.has("add late");
    std::this_thread::sleep_for(5ms);
  }
  auto took = std::chrono::steady_clock::now() - frozen_at;
  ASSERT_TRUE(seen) << "an object created after the watch went silent was never seen";
  EXPECT_GE(took, 300ms) << "restarted before the idle bound: a quiet watch is not a dead one";
  EXPECT_LT(took, 2s) << "the idle bound is 300 ms";
  EXPECT_GT(inf.watchCount(), watches);
  EXPECT_EQ(inf.listCount(), 1u) << "resumed from the last resourceVersion, no relist";
  EXPECT_EQ(inf.idleRestarts(), 1u);
  inf.stop();
}

// Bookmarks are what tells a quiet live watch from a dead one: a watch that receives only
// bookmarks, more often than the idle bound, is kept.
TEST(Informer, KeepsAQuietWatchThatReceivesBookmarks) {
  auto api = std::make_shared<FakeApiClient>();
  InformerOptions o = fast();
  o.watch_idle_timeout = 500ms;
  Informer inf(api, kConfigMap, o);
  inf.start();
  ASSERT_TRUE(inf.waitForSync(2s));
  ASSERT_TRUE(eventually([&] { return api->openWatches() == 1; }));
  uint64_t watches = inf.watchCount();
  for (int i = 0; i < 15; ++i) {  // 1.5 s, three idle bounds
    std::this_thread::sleep_for(100ms);
    api->sendBookmarks();
  }
  EXPECT_EQ(inf.watchCount(), watches);
  EXPECT_EQ(inf.idleRestarts(), 0u);
  // And the watch asked for bookmarks, or the server would send none.
  EXPECT_TRUE(eventually([&] { return inf.lastResourceVersion() == api->currentResourceVersion(); }));
  inf.stop();
}

}  // namespace
}  // namespace mcop::kube
