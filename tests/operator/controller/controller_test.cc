// Controller: event sources map to the right keys, workers wait for sync, results drive the
// queue (error -> backoff, requeue_after -> delayed, success -> forget), one key never runs
// on two workers.
#include "controller/controller.h"

#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "testing/fake_api_client.h"
#include "testing/fake_clock.h"
#include "kube/object_meta.h"

namespace mcop::controller {
namespace {

using namespace std::chrono_literals;
using kube::FakeApiClient;
using kube::Object;
namespace resources = kube::resources;

template <typename Pred>
bool eventually(Pred pred) {
  for (int i = 0; i < 3000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return pred();
}

class ScriptedReconciler : public Reconciler {
 public:
  absl::StatusOr<Result> reconcile(const Request& req, const Context&) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!in_flight_.insert(req.key()).second) overlap_ = true;
      calls_[req.key()]++;
      ids_.push_back(currentReconcileId());
    }
    std::this_thread::sleep_for(delay_);
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.erase(req.key());
    auto it = results_.find(req.key());
    if (it != results_.end()) return it->second;
    return Result{};
  }
  int calls(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_[key];
  }
  void setResult(const std::string& key, absl::StatusOr<Result> r) {
    std::lock_guard<std::mutex> lock(mu_);
    results_.insert_or_assign(key, std::move(r));
  }
  std::mutex mu_;
  std::map<std::string, int> calls_;
  std::set<std::string> in_flight_;
  std::vector<std::string> ids_;
  std::map<std::string, absl::StatusOr<Result>> results_;
  bool overlap_ = false;
  std::chrono::milliseconds delay_{0};
};

kube::InformerOptions fast() {
  kube::InformerOptions o;
  o.initial_backoff = 1ms;
  o.max_backoff = 5ms;
  return o;
}

ControllerOptions opts(int workers = 2) {
  ControllerOptions o;
  o.workers = workers;
  o.queue.delay_poll = 1ms;
  o.metrics = nullptr;
  return o;
}

Object mcc(const std::string& name) {
  return Object::parse(R"({"apiVersion":"memcached.operator.io/v1alpha1","kind":"MemcachedCluster",
    "metadata":{"name":")" + name + R"(","namespace":"shop"},"spec":{"replicas":1}})");
}

Object owned(const std::string& name, const std::string& owner, bool controller = true,
             const std::string& kind = "MemcachedCluster") {
  return Object::parse(R"({"metadata":{"name":")" + name + R"(","namespace":"shop",
    "ownerReferences":[{"apiVersion":"memcached.operator.io/v1alpha1","kind":")" + kind +
                       R"(","name":")" + owner + R"(","uid":"u1","controller":)" +
                       (controller ? "true" : "false") + "}]}}");
}

TEST(Controller, MapsPrimaryOwnedAndLabelledObjectsToClusterKeys) {
  auto api = std::make_shared<FakeApiClient>();
  util::RealClock clock;
  kube::Informer clusters(api, resources::kMemcachedCluster, fast());
  kube::Informer sets(api, resources::kStatefulSet, fast());
  kube::Informer pods(api, resources::kPod, fast());
  ScriptedReconciler rec;
  Controller c("memcachedcluster", rec, clock, opts());
  c.watchPrimary(clusters);
  c.watchOwned(sets, "MemcachedCluster", "memcached.operator.io");
  c.watchMapped(pods, labelMapper("memcached.operator.io/cluster"));
  clusters.start();
  sets.start();
  pods.start();
  ASSERT_TRUE(c.start(2s).ok());

  ASSERT_TRUE(api->create(resources::kMemcachedCluster, "shop", mcc("a")).ok());
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/a") == 1; }));
  ASSERT_TRUE(api->create(resources::kStatefulSet, "shop", owned("b-sts", "b")).ok());
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/b") == 1; }));
  ASSERT_TRUE(api->create(resources::kStatefulSet, "shop", owned("x", "c", /*controller=*/false)).ok());
  ASSERT_TRUE(api->create(resources::kStatefulSet, "shop", owned("y", "d", true, "Deployment")).ok());
  ASSERT_TRUE(api->create(resources::kPod, "shop", Object::parse(
      R"({"metadata":{"name":"e-0","labels":{"memcached.operator.io/cluster":"e"}}})")).ok());
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/e") == 1; }));
  ASSERT_TRUE(api->remove(resources::kStatefulSet, "shop", "b-sts", {}).ok());
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/b") == 2; })) << "a deleted child wakes its owner";
  EXPECT_EQ(rec.calls("shop/c"), 0) << "not a controller reference";
  EXPECT_EQ(rec.calls("shop/d"), 0) << "another kind of owner";
  EXPECT_EQ(rec.calls("shop/x"), 0);
  c.stop();
}

TEST(Controller, WorkersStartOnlyAfterCachesSync) {
  auto api = std::make_shared<FakeApiClient>();
  util::RealClock clock;
  ASSERT_TRUE(api->create(resources::kMemcachedCluster, "shop", mcc("a")).ok());
  api->failNext(kube::Verb::kList, resources::kStatefulSet, absl::UnavailableError("500"), 3);
  kube::InformerOptions slow = fast();
  slow.initial_backoff = 30ms;
  kube::Informer clusters(api, resources::kMemcachedCluster, fast());
  kube::Informer sets(api, resources::kStatefulSet, slow);
  ScriptedReconciler rec;
  Controller c("mcc", rec, clock, opts());
  c.watchPrimary(clusters);
  c.watchOwned(sets, "MemcachedCluster");
  clusters.start();
  sets.start();
  ASSERT_TRUE(clusters.waitForSync(2s));
  std::this_thread::sleep_for(10ms);
  EXPECT_EQ(rec.calls("shop/a"), 0);
  EXPECT_EQ(c.queue().len(), 1u) << "queued while caches sync";
  ASSERT_TRUE(c.start(5s).ok());
  EXPECT_TRUE(sets.hasSynced());
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/a") == 1; }));
  c.stop();
}

TEST(Controller, SyncTimeout) {
  auto api = std::make_shared<FakeApiClient>();
  util::RealClock clock;
  kube::Informer never(api, resources::kPod, fast());  // never started
  ScriptedReconciler rec;
  Controller c("mcc", rec, clock, opts());
  c.watchPrimary(never);
  EXPECT_TRUE(absl::IsUnavailable(c.start(50ms)));
}

TEST(Controller, ErrorBacksOffRequeueAfterDelaysSuccessForgets) {
  util::FakeClock clock;
  ScriptedReconciler rec;
  Controller c("mcc", rec, clock, opts());
  ASSERT_TRUE(c.start(1s).ok());
  rec.setResult("shop/err", absl::UnavailableError("apiserver down"));
  c.enqueue({"shop", "err"});
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/err") == 1; }));
  ASSERT_TRUE(eventually([&] { return c.queue().numRequeues("shop/err") == 1; }));
  clock.advance(5ms);
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/err") == 2; }));
  ASSERT_TRUE(eventually([&] { return c.queue().numRequeues("shop/err") == 2; }));
  clock.advance(9ms);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(rec.calls("shop/err"), 2) << "second retry waits 10 ms";
  rec.setResult("shop/err", Result{});
  clock.advance(1ms);
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/err") == 3; }));
  ASSERT_TRUE(eventually([&] { return c.queue().numRequeues("shop/err") == 0; })) << "success forgets";

  rec.setResult("shop/drain", Result{std::chrono::milliseconds(30000)});
  c.enqueue({"shop", "drain"});
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/drain") == 1; }));
  ASSERT_TRUE(eventually([&] { return c.queue().waitingLen() == 1; }));
  clock.advance(29s);
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(rec.calls("shop/drain"), 1);
  clock.advance(1s);
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/drain") == 2; }));
  c.stop();
  EXPECT_FALSE(rec.ids_.empty());
  EXPECT_EQ(rec.ids_[0].rfind("mcc-", 0), 0u) << rec.ids_[0];
}

TEST(Controller, NeverRunsOneKeyOnTwoWorkers) {
  util::RealClock clock;
  ScriptedReconciler rec;
  rec.delay_ = 2ms;
  Controller c("mcc", rec, clock, opts(4));
  ASSERT_TRUE(c.start(1s).ok());
  for (int i = 0; i < 200; ++i) c.enqueue({"shop", "k" + std::to_string(i % 3)});
  ASSERT_TRUE(eventually([&] { return c.queue().len() == 0 && c.queue().processingLen() == 0; }));
  c.stop();
  EXPECT_FALSE(rec.overlap_);
}

TEST(Controller, RecordsMetrics) {
  util::RealClock clock;
  util::MetricsRegistry registry;
  ScriptedReconciler rec;
  ControllerOptions o = opts();
  o.metrics = &registry;
  {
    Controller c("mcc", rec, clock, o);
    ASSERT_TRUE(c.start(1s).ok());
    rec.setResult("shop/bad", absl::InternalError("boom"));
    c.enqueue({"shop", "ok"});
    c.enqueue({"shop", "bad"});
    // Metrics are recorded after reconcile() returns: wait for them, not for the calls.
    auto& total = registry.counter("memcached_operator_reconcile_total", "", {});
    ASSERT_TRUE(eventually([&] {
      return total.value({"mcc", "success"}) == 1 && total.value({"mcc", "error"}) >= 1;
    }));
    std::string text = registry.render();
    EXPECT_NE(text.find(R"(memcached_operator_reconcile_total{controller="mcc",result="success"} 1)"), std::string::npos) << text;
    EXPECT_NE(text.find(R"(memcached_operator_reconcile_total{controller="mcc",result="requeue_after"} 0)"), std::string::npos)
        << "every result exists from the start: " << text;
    EXPECT_NE(text.find(R"(memcached_operator_reconcile_errors_total{controller="mcc"})"), std::string::npos);
    EXPECT_EQ(text.find("shop/"), std::string::npos) << "no series per object: " << text;
    EXPECT_NE(text.find("memcached_operator_reconcile_duration_seconds_count{controller=\"mcc\"}"), std::string::npos);
    EXPECT_NE(text.find(R"(memcached_operator_workqueue_depth{name="mcc"})"), std::string::npos) << text;
    c.stop();
  }
  // Callbacks no longer reach the destroyed controller: its series are gone.
  EXPECT_EQ(registry.render().find("memcached_operator_workqueue_depth"), std::string::npos);
}

TEST(Controller, PredicatesFilterUpdatesNotCreationsOrDeletions) {
  auto api = std::make_shared<FakeApiClient>();
  util::RealClock clock;
  kube::Informer clusters(api, resources::kMemcachedCluster, fast());
  ScriptedReconciler rec;
  Controller c("memcachedcluster", rec, clock, opts());
  c.watchPrimary(clusters, ownerIntentChanged);
  clusters.start();
  ASSERT_TRUE(c.start(2s).ok());
  auto created = api->create(resources::kMemcachedCluster, "shop", mcc("a"));
  ASSERT_TRUE(created.ok());
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/a") == 1; })) << "creation wakes";

  Object with_status = *created;
  with_status["status"] = Object::parse(R"({"phase":"Available"})");
  ASSERT_TRUE(api->update(resources::kMemcachedCluster, with_status, "status").ok());
  ASSERT_TRUE(eventually([&] { return c.filteredUpdates() == 1; }));
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(rec.calls("shop/a"), 1) << "a status write does not wake its own object";

  auto current = api->get(resources::kMemcachedCluster, "shop", "a");
  ASSERT_TRUE(current.ok());
  Object labelled = *current;
  labelled["metadata"]["labels"] = Object::parse(R"({"team":"web"})");
  ASSERT_TRUE(api->update(resources::kMemcachedCluster, labelled, "").ok());
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/a") == 2; })) << "a label change wakes; filtered=" << c.filteredUpdates() << " calls=" << rec.calls("shop/a");

  ASSERT_TRUE(api->remove(resources::kMemcachedCluster, "shop", "a", {}).ok());
  ASSERT_TRUE(eventually([&] { return rec.calls("shop/a") == 3; })) << "deletion wakes";
  EXPECT_EQ(c.filteredUpdates(), 1u);
  c.stop();
}

}  // namespace
}  // namespace mcop::controller
