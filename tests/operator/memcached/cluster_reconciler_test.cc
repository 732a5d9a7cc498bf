// ClusterReconciler against the in-memory API: children, membership, the drain state machine
// (with a FakeClock and a fake connection counter), restarts, paused, steady state, conflicts.
// The test plays the StatefulSet controller and the kubelet itself (runPods), seeding pods
// without counting them as operator writes.
#include "memcached/cluster_reconciler.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>

#include <gtest/gtest.h>

#include "testing/recording_event_recorder.h"
#include "testing/fake_api_client.h"
#include "kube/memory_store.h"
#include "memcached/child_cache.h"
#include "memcached/cluster_status.h"
#include "memcached/endpoints_config.h"
#include "memcached/json_util.h"
#include "memcached/metrics.h"
#include "testing/fake_clock.h"
#include "test_pki.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sstream>

namespace mcop::memcached {
namespace {

using kube::FakeApiClient;
using kube::Verb;
namespace res = kube::resources;
using std::chrono::milliseconds;
using std::chrono::seconds;

class FakeConnectionCounter : public ConnectionCounter {
 public:
  absl::StatusOr<int64_t> currentConnections(const MemberEndpoint& member) override {
    const std::string& address = member.address;
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    endpoints_.push_back(member);
    if (failing_.count(address)) return absl::UnavailableError("connect refused " + address);
    auto it = conns_.find(address);
    return it == conns_.end() ? kBaseline : it->second;
  }
  void set(const std::string& address, int64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    conns_[address] = n;
  }
  void fail(const std::string& address, bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    if (on) {
      failing_.insert(address);
    } else {
      failing_.erase(address);
    }
  }
  int calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // Every member asked, as asked (host, security).
  std::vector<MemberEndpoint> endpoints() const {
    std::lock_guard<std::mutex> lock(mu_);
    return endpoints_;
  }
  // The measuring connection alone, as a fresh memcached 1.6.x reports it (listening sockets
  // are not counted).
  static constexpr int64_t kBaseline = 1;

 private:
  mutable std::mutex mu_;
  std::map<std::string, int64_t> conns_;
  std::set<std::string> failing_;
  int calls_ = 0;
  std::vector<MemberEndpoint> endpoints_;
};

// Records each flush_all, and can fail it.
class FakeMemberFlusher : public MemberFlusher {
 public:
  absl::Status flushAll(const MemberEndpoint& member) override {
    const std::string& address = member.address;
    std::lock_guard<std::mutex> lock(mu_);
    if (failing_) return absl::UnavailableError("connect refused " + address);
    flushed_.push_back(address);
    return absl::OkStatus();
  }
  void fail(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    failing_ = on;
  }
  std::vector<std::string> flushed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return flushed_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> flushed_;
  bool failing_ = false;
};

// Records each sweep: which member, and the ring it was given (server names, hashing, version),
// plus what the test's hook saw at that moment (e.g. the published list). hold() makes sweeps
// block until release() or until their SweepControl stops them (recorded in stops()).
class FakeStaleCopySweeper : public StaleCopySweeper {
 public:
  struct Call {
    std::string member;
    std::vector<std::string> ring;
    clientconfig::Hashing hashing;
    uint64_t version = 0;
    std::vector<std::string> published_then;
  };
  absl::StatusOr<SweepCounts> sweep(const clientconfig::Snapshot& ring, size_t member,
                                    const SweepControl& control,
                                    const MemberSecurity* security) override {
    std::unique_lock<std::mutex> lock(mu_);
    securities_.push_back(security);
    Call call{ring.servers()[member].name, {}, ring.hashing(), ring.version(), {}};
    for (const auto& s : ring.servers()) call.ring.push_back(s.name);
    if (hook_) call.published_then = hook_();
    calls_.push_back(call);
    cv_.notify_all();
    while (held_) {
      // The control's deadline follows the test's FakeClock, which notifies nobody: poll it.
      if (auto s = control.check(); !s.ok()) {
        stops_.push_back(call.member + ": " + std::string(s.message()));
        cv_.notify_all();
        return s;
      }
      cv_.wait_for(lock, milliseconds(2));
    }
    if (failing_.count(call.member)) return absl::DeadlineExceededError("sweep budget exceeded");
    return SweepCounts{1000, 10};
  }
  void hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
    cv_.notify_all();
  }
  // Waits (bounded) until at least `calls` sweeps have begun and `stops` were stopped.
  bool waitFor(size_t calls, size_t stops = 0) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(10),
                        [&] { return calls_.size() >= calls && stops_.size() >= stops; });
  }
  std::vector<std::string> stops() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stops_;
  }
  void fail(const std::string& member) {
    std::lock_guard<std::mutex> lock(mu_);
    failing_.insert(member);
  }
  void onSweep(std::function<std::vector<std::string>()> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    hook_ = std::move(hook);
  }
  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Call> calls_;
  std::vector<std::string> stops_;
  bool held_ = false;
  std::set<std::string> failing_;
  std::function<std::vector<std::string>()> hook_;
  std::vector<const MemberSecurity*> securities_;
};

// The certificate each member serves (by address), what refresh_certs makes it serve (the
// files the kubelet projected), and members whose refresh_certs fails.
class FakeCertificateReloader : public CertificateReloader {
 public:
  absl::StatusOr<std::string> servedCertificate(const MemberEndpoint& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++looks_;
    auto it = served_.find(m.address);
    if (it == served_.end()) return absl::UnavailableError("connect refused " + m.address);
    return it->second;
  }
  absl::Status reloadCertificates(const MemberEndpoint& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++reloads_;
    if (failing_.count(m.address)) return absl::InternalError("refresh_certs: ERROR");
    if (auto it = projected_.find(m.address); it != projected_.end()) served_[m.address] = it->second;
    return absl::OkStatus();
  }
  void serve(const std::string& address, const std::string& sha) {
    std::lock_guard<std::mutex> lock(mu_);
    served_[address] = sha;
  }
  void project(const std::string& address, const std::string& sha) {
    std::lock_guard<std::mutex> lock(mu_);
    projected_[address] = sha;
  }
  void fail(const std::string& address, bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    if (on) failing_.insert(address); else failing_.erase(address);
  }
  int reloads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reloads_;
  }
  int looks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return looks_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> served_, projected_;
  std::set<std::string> failing_;
  int reloads_ = 0;
  int looks_ = 0;
};

std::string podIp(int ordinal) { return "127.0.10." + std::to_string(ordinal + 1); }

class ClusterReconcilerTest : public testing::Test {
 protected:
  ClusterReconcilerTest() { newReconciler(); }

  // Sweeps run on the runner's thread, one member at a time (in ring order), and a pass waits
  // for the sweep it finds unfinished: the fake's instant sweep is recorded in the pass that
  // started it.
  static ClusterReconcilerOptions waitingForSweeps() {
    ClusterReconcilerOptions options;
    options.sweeps.threads = 1;
    options.sweep_wait = seconds(30);
    return options;
  }
  // As in production: four members at a time, and a pass never waits for a sweep.
  static ClusterReconcilerOptions backgroundSweeps() {
    ClusterReconcilerOptions options;
    options.sweeps.threads = 4;
    options.sweeps.deadline = seconds(120);
    return options;
  }

  // A fresh reconciler on the same API: what an operator restart looks like.
  void newReconciler(ClusterReconcilerOptions options = waitingForSweeps()) {
    ClusterStores stores{&clusters_,         &stateful_sets_, &services_, &config_maps_, &pdbs_,
                         &pods_,             &network_policies_,
                         serve_service_monitors_ ? &service_monitors_ : nullptr};
    reconciler_.reset();  // its sweeps stop before the new one starts
    reconciler_ = std::make_unique<ClusterReconciler>(api_, stores, events_, clock_, counter_,
                                                      sweeper_, flusher_, certificates_, options);
  }

  void syncStore(kube::MemoryStore& store, const kube::ResourceType& type) {
    store.clear();
    auto list = api_->list(type, "", {});
    ASSERT_TRUE(list.ok());
    for (auto item : list->items) {
      // The operator's child informers hold every object, through the same transform.
      const bool child = &type != &res::kMemcachedCluster && &type != &res::kPod;
      if (child) cacheChildOrStub(item);
      store.upsert(item);
    }
  }
  void sync() {
    syncStore(clusters_, res::kMemcachedCluster);
    syncStore(stateful_sets_, res::kStatefulSet);
    syncStore(services_, res::kService);
    syncStore(config_maps_, res::kConfigMap);
    syncStore(pdbs_, res::kPodDisruptionBudget);
    syncStore(pods_, res::kPod);
    syncStore(network_policies_, res::kNetworkPolicy);
    syncStore(service_monitors_, res::kServiceMonitor);
  }

  controller::Result reconcile() {
    sync();
    auto result = reconciler_->reconcile({"shop", "sessions"}, {});
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : controller::Result{};
  }

  void createCluster(const std::string& spec) {
    api_->seed(res::kMemcachedCluster,
               Json::parse(R"({"apiVersion":"memcached.operator.io/v1alpha1",
                 "kind":"MemcachedCluster","metadata":{"name":"sessions","namespace":"shop"},
                 "spec":)" + spec + "}"));
  }
  void patchSpec(const std::string& patch) {
    auto r = api_->patch(res::kMemcachedCluster, "shop", "sessions", kube::PatchType::kMerge,
                         Json::parse(R"({"spec":)" + patch + "}"), {});
    ASSERT_TRUE(r.ok()) << r.status();
  }

  Json pod(int ordinal, bool ready) {
    const std::string name = "sessions-" + std::to_string(ordinal);
    return Json::parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name +
                       R"(","namespace":"shop","labels":{"app.kubernetes.io/name":"memcached",
        "app.kubernetes.io/instance":"sessions","memcached.operator.io/cluster":"sessions"}},
        "status":{"podIP":")" + podIp(ordinal) + R"(","conditions":[{"type":"Ready","status":")" +
                       (ready ? "True" : "False") + R"("}]}})");
  }
  void setPodReady(int ordinal, bool ready) { api_->seed(res::kPod, pod(ordinal, ready)); }
  bool podExists(int ordinal) {
    return api_->peek(res::kPod, "shop", "sessions-" + std::to_string(ordinal)).has_value();
  }

  // The StatefulSet controller and kubelet: pods 0..replicas-1 exist and are Ready.
  void runPods() {
    const int64_t replicas = stsReplicas();
    for (int i = 0; i < 16; ++i) {
      if (i < replicas && !podExists(i)) api_->seed(res::kPod, pod(i, true));
      if (i >= replicas && podExists(i)) {
        ASSERT_TRUE(api_->remove(res::kPod, "shop", "sessions-" + std::to_string(i), {}).ok());
      }
    }
  }

  // Reconcile and run pods until nothing changes (bounded).
  void converge() {
    for (int i = 0; i < 10; ++i) {
      api_->resetCounters();
      reconcile();
      runPods();
      if (api_->writeCount() == 0) return;
    }
    FAIL() << "did not converge";
  }

  Json cluster() { return *api_->peek(res::kMemcachedCluster, "shop", "sessions"); }
  ClusterStatus status() { return parseClusterStatus(cluster()); }
  int64_t stsReplicas() {
    auto sts = api_->peek(res::kStatefulSet, "shop", "sessions");
    return sts ? intAt(*sts, {"spec", "replicas"}).value_or(-1) : -1;
  }
  std::optional<Json> configMap() {
    return api_->peek(res::kConfigMap, "shop", "sessions-endpoints");
  }
  std::vector<std::string> published() {
    auto cm = configMap();
    if (!cm) return {};
    return publishedServerNames(*cm).value_or(std::vector<std::string>{"<unreadable>"});
  }
  int64_t version() {
    auto cm = configMap();
    return cm ? publishedVersion(*cm).value_or(-1) : -1;
  }
  const Condition* condition(const ClusterStatus& s, const std::string& type) {
    return findCondition(s.conditions, type);
  }
  int eventCount(const std::string& reason) {
    return static_cast<int>(events_.withReason(reason).size());
  }
  int statusWrites() {
    int n = 0;
    for (const auto& a : api_->actions()) {
      if (kube::isWrite(a.verb) && a.subresource == "status") ++n;
    }
    return n;
  }

  // A cluster of `n` Ready, published members with a short drain.
  void startCluster(int n, const std::string& drain = R"({"minSeconds":60,"timeoutSeconds":600})") {
    createCluster(R"({"replicas":)" + std::to_string(n) + R"(,"drain":)" + drain + "}");
    converge();
    ASSERT_EQ(published().size(), static_cast<size_t>(n));
  }

  util::FakeClock clock_;
  std::shared_ptr<FakeApiClient> api_ = std::make_shared<FakeApiClient>(&clock_);
  kube::MemoryStore clusters_, stateful_sets_, services_, config_maps_, pdbs_, pods_;
  kube::MemoryStore network_policies_, service_monitors_;
  bool serve_service_monitors_ = false;  // the monitoring.coreos.com API; set before newReconciler
  kube::RecordingEventRecorder events_;
  std::shared_ptr<FakeConnectionCounter> counter_ = std::make_shared<FakeConnectionCounter>();
  std::shared_ptr<FakeStaleCopySweeper> sweeper_ = std::make_shared<FakeStaleCopySweeper>();
  std::shared_ptr<FakeMemberFlusher> flusher_ = std::make_shared<FakeMemberFlusher>();
  std::shared_ptr<FakeCertificateReloader> certificates_ =
      std::make_shared<FakeCertificateReloader>();
  std::unique_ptr<ClusterReconciler> reconciler_;
};

TEST_F(ClusterReconcilerTest, CreatesChildrenAndPublishesReadyPodsInOrdinalOrder) {
  createCluster(R"({"replicas":2})");
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_TRUE(api_->peek(res::kService, "shop", "sessions").has_value());
  EXPECT_TRUE(api_->peek(res::kService, "shop", "sessions-client").has_value());
  EXPECT_TRUE(api_->peek(res::kPodDisruptionBudget, "shop", "sessions").has_value());
  EXPECT_EQ(version(), 1);
  EXPECT_TRUE(published().empty());
  EXPECT_EQ(status().phase, "Progressing");

  runPods();
  reconcile();
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_EQ(version(), 2);
  ClusterStatus s = status();
  EXPECT_EQ(s.config_version, 2);
  EXPECT_EQ(s.replicas, 2);
  EXPECT_EQ(s.ready_replicas, 2);
  EXPECT_EQ(s.phase, "Available");
  EXPECT_EQ(s.selector,
            "app.kubernetes.io/instance=sessions,app.kubernetes.io/name=memcached,"
            "memcached.operator.io/cluster=sessions");
  ASSERT_EQ(s.members.size(), 2u);
  EXPECT_EQ(s.members[0].state, MemberState::kActive);
  EXPECT_EQ(s.members[1].baseline_connections, FakeConnectionCounter::kBaseline);
  EXPECT_EQ(s.members[1].address, podIp(1));
  EXPECT_EQ(s.members[1].host, "sessions-1.sessions.shop.svc.cluster.local");
  EXPECT_EQ(condition(s, kConditionAvailable)->status, "True");
  EXPECT_EQ(condition(s, kConditionProgressing)->status, "False");
  EXPECT_EQ(condition(s, kConditionDegraded)->status, "False");
  EXPECT_EQ(condition(s, kConditionAvailable)->observed_generation, 1);
  EXPECT_GE(eventCount("EndpointsPublished"), 2);
}

// After an API outage the ConfigMap's informer can lag behind the ConfigMap's last write (its
// watch backing off) while status already records that write's version. Seen in the e2e
// outage test: version 3 published twice, first with one member unready, then with two. The
// recorded version must never be reused for other content.
TEST_F(ClusterReconcilerTest, StaleConfigMapCacheNeverReusesAPublishedVersion) {
  startCluster(2);
  const int64_t v = version();
  const Json before = *configMap();
  setPodReady(1, false);
  reconcile();
  ASSERT_EQ(version(), v + 1);
  ASSERT_EQ(status().config_version, v + 1);
  const std::string published_text = configMap()->serialize();

  setPodReady(0, false);  // another content change, seen while the ConfigMap's cache is stale
  sync();
  config_maps_.upsert(before);
  auto r = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(version(), v + 2) << "version " << v + 1 << " was published as:\n" << published_text
                              << "\nand is now:\n" << configMap()->serialize();
  EXPECT_EQ(status().config_version, v + 2);
}

// The ConfigMap read only happens in that window: a cache that is current costs no read.
TEST_F(ClusterReconcilerTest, CurrentConfigMapCacheIsNotReadAgain) {
  startCluster(2);
  api_->resetCounters();
  reconcile();
  for (const auto& a : api_->actions()) {
    EXPECT_FALSE(a.verb == kube::Verb::kGet && a.resource == "/configmaps") << "read the ConfigMap";
  }
}

TEST_F(ClusterReconcilerTest, SteadyStateMakesNoWrites) {
  startCluster(3);
  api_->resetCounters();
  for (int i = 0; i < 3; ++i) reconcile();
  EXPECT_EQ(api_->writeCount(), 0);
  // A restarted operator agrees: still nothing to write.
  newReconciler();
  reconcile();
  EXPECT_EQ(api_->writeCount(), 0);
}

TEST_F(ClusterReconcilerTest, ScaleUpJoinsNewPodWhenReady) {
  startCluster(2);
  const int64_t v = version();
  patchSpec(R"({"replicas":3})");
  reconcile();
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_EQ(version(), v);  // nothing new to publish until the pod is Ready
  EXPECT_EQ(condition(status(), kConditionProgressing)->reason, "ScalingUp");
  EXPECT_EQ(eventCount("ScalingUp"), 2);  // creation and this scale
  api_->seed(res::kPod, pod(2, false));
  reconcile();
  EXPECT_EQ(published().size(), 2u);
  setPodReady(2, true);
  reconcile();
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1", "sessions-2"}));
  EXPECT_EQ(version(), v + 1);
}

TEST_F(ClusterReconcilerTest, UnreadyMemberKeepsItsPlace) {
  startCluster(3);
  const int64_t v = version();
  setPodReady(1, false);
  reconcile();
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1", "sessions-2"}));
  EXPECT_EQ(version(), v + 1);  // the state changed, the ring did not
  EXPECT_NE(configMap()->at("data").at(kEndpointsJsonKey).as_string().find("\"unready\""),
            std::string::npos);
  ClusterStatus s = status();
  EXPECT_EQ(s.members[1].state, MemberState::kUnready);
  // One unready member is within the default disruption budget (maxUnavailable 1).
  EXPECT_EQ(condition(s, kConditionAvailable)->status, "True");
  EXPECT_EQ(condition(s, kConditionAvailable)->reason, "MinimumMembersReady");
  setPodReady(1, true);
  reconcile();
  EXPECT_EQ(status().members[1].state, MemberState::kActive);
  EXPECT_EQ(version(), v + 2);
}

TEST_F(ClusterReconcilerTest, MoreUnreadyMembersThanTheBudgetAreUnavailable) {
  startCluster(3);
  setPodReady(0, false);
  setPodReady(2, false);
  reconcile();
  ClusterStatus s = status();
  EXPECT_EQ(condition(s, kConditionAvailable)->status, "False");
  EXPECT_EQ(condition(s, kConditionAvailable)->reason, "MembersUnready");
  EXPECT_NE(condition(s, kConditionAvailable)->message.find("sessions-0, sessions-2"),
            std::string::npos);
}

TEST_F(ClusterReconcilerTest, ASingleUnreadyMemberIsNeverAvailable) {
  startCluster(1);
  setPodReady(0, false);
  reconcile();
  EXPECT_EQ(condition(status(), kConditionAvailable)->status, "False");
}

TEST_F(ClusterReconcilerTest, BaselineIsMeasuredBeforePublishing) {
  createCluster(R"({"replicas":1})");
  reconcile();
  counter_->fail(podIp(0), true);
  runPods();
  auto result = reconcile();
  EXPECT_TRUE(published().empty());
  EXPECT_TRUE(result.requeue_after.has_value());
  EXPECT_EQ(status().members[0].state, MemberState::kJoining);
  EXPECT_EQ(condition(status(), kConditionDegraded)->reason, "StatsUnavailable");
  counter_->fail(podIp(0), false);
  counter_->set(podIp(0), 5);
  reconcile();
  EXPECT_EQ(published(), std::vector<std::string>{"sessions-0"});
  EXPECT_EQ(status().members[0].baseline_connections, 5);
}

TEST_F(ClusterReconcilerTest, ScaleDownDrainsBeforeDeleting) {
  startCluster(3);
  const int64_t v = version();
  patchSpec(R"({"replicas":2})");
  auto result = reconcile();
  // Recorded first, with the sweep of stale copies pending: the published list is untouched.
  ClusterStatus s = status();
  ASSERT_TRUE(s.drain.has_value());
  EXPECT_FALSE(s.drain->stale_copies_swept);
  EXPECT_EQ(published().size(), 3u);
  EXPECT_EQ(version(), v);
  EXPECT_EQ(s.members[2].state, MemberState::kActive);
  EXPECT_TRUE(sweeper_->calls().empty());
  ASSERT_TRUE(result.requeue_after.has_value());

  // The next pass sweeps, then unpublishes; the StatefulSet keeps its 3 replicas.
  result = reconcile();
  s = status();
  EXPECT_TRUE(s.drain->stale_copies_swept);
  EXPECT_EQ(sweeper_->calls().size(), 2u);
  EXPECT_EQ(s.drain->target_replicas, 2);
  EXPECT_EQ(s.drain->members, std::vector<std::string>{"sessions-2"});
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_EQ(version(), v + 1);
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_EQ(s.members[2].state, MemberState::kDraining);
  EXPECT_EQ(eventCount("DrainStarted"), 1);
  ASSERT_TRUE(result.requeue_after.has_value());
  EXPECT_LE(*result.requeue_after, std::chrono::milliseconds(2000));
  EXPECT_TRUE(s.drain->published_at.empty());

  // The informer delivers the new ConfigMap: the drain clock starts.
  reconcile();
  EXPECT_EQ(status().drain->published_at, status().drain->started_at);

  // Before minSeconds nothing moves, even with no clients left.
  clock_.advance(seconds(30));
  reconcile();
  EXPECT_EQ(stsReplicas(), 3);

  // After minSeconds, clients still connected: keep waiting.
  counter_->set(podIp(2), FakeConnectionCounter::kBaseline + 2);
  clock_.advance(seconds(31));
  result = reconcile();
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_EQ(condition(status(), kConditionProgressing)->reason, "Draining");
  EXPECT_NE(condition(status(), kConditionProgressing)->message.find(
                "waiting for clients to leave sessions-2"),
            std::string::npos);

  // Clients gone: decided, then lowered.
  counter_->set(podIp(2), FakeConnectionCounter::kBaseline);
  clock_.advance(seconds(2));
  reconcile();
  EXPECT_EQ(status().drain->outcome, kDrainOutcomeDrained);
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_EQ(eventCount("DrainCompleted"), 1);
  EXPECT_EQ(version(), v + 1);

  // The pod terminates; the drain record is cleared, nothing new to publish.
  runPods();
  reconcile();
  s = status();
  EXPECT_FALSE(s.drain.has_value());
  EXPECT_EQ(s.members.size(), 2u);
  EXPECT_EQ(version(), v + 1);
  EXPECT_EQ(s.phase, "Available");
}

TEST_F(ClusterReconcilerTest, DrainThresholdAllowsSomeConnections) {
  startCluster(2, R"({"minSeconds":0,"timeoutSeconds":600,"connectionThreshold":2})");
  patchSpec(R"({"replicas":1})");
  reconcile();
  reconcile();
  counter_->set(podIp(1), FakeConnectionCounter::kBaseline + 2);
  reconcile();
  EXPECT_EQ(stsReplicas(), 1);
}

TEST_F(ClusterReconcilerTest, DrainTimeoutScalesDownWithWarning) {
  startCluster(3, R"({"minSeconds":10,"timeoutSeconds":60})");
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  reconcile();
  counter_->set(podIp(2), 100);
  clock_.advance(seconds(59));
  reconcile();
  EXPECT_EQ(stsReplicas(), 3);
  clock_.advance(seconds(1));
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
  auto warnings = events_.withReason("DrainTimeout");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].severity, kube::EventSeverity::kWarning);
  // 100 measured, less the baseline of the measuring connection.
  EXPECT_NE(warnings[0].message.find("sessions-2 (99 client connections)"), std::string::npos);
  ClusterStatus s = status();
  EXPECT_EQ(s.drain->outcome, kDrainOutcomeTimedOut);
  EXPECT_EQ(condition(s, kConditionDegraded)->reason, "DrainTimeout");
  EXPECT_NE(util::defaultRegistry().render().find(
                "memcached_operator_drain_timeouts_total{cluster=\"shop/sessions\"}"),
            std::string::npos);
  // The reason stays visible after the drain finished, until the spec changes.
  runPods();
  reconcile();
  s = status();
  EXPECT_FALSE(s.drain.has_value());
  EXPECT_EQ(condition(s, kConditionDegraded)->reason, "DrainTimeout");
  EXPECT_EQ(events_.withReason("DrainTimeout").size(), 1u);
  patchSpec(R"({"replicas":2,"image":"memcached:1.6.19"})");
  reconcile();
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
}

TEST_F(ClusterReconcilerTest, RestartMidDrainResumesFromStatus) {
  startCluster(3);
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  reconcile();
  const std::string started = status().drain->published_at;
  clock_.advance(seconds(40));
  // The operator dies and comes back: the drain clock is the one recorded in status.
  newReconciler();
  reconcile();
  EXPECT_EQ(status().drain->published_at, started);
  EXPECT_EQ(stsReplicas(), 3);
  clock_.advance(seconds(21));
  newReconciler();
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
  // And again once lowered, before and after the outgoing pod is gone: nothing is told twice.
  newReconciler();
  reconcile();
  runPods();
  newReconciler();
  reconcile();
  EXPECT_FALSE(status().drain.has_value());
  EXPECT_EQ(eventCount("DrainStarted"), 1);
  EXPECT_EQ(eventCount("DrainCompleted"), 1);
  // ScalingDown is two events, each once: the decision (before the drain) and the lowering.
  auto scaling_down = events_.withReason("ScalingDown");
  ASSERT_EQ(scaling_down.size(), 2u);
  EXPECT_EQ(scaling_down[0].message, "scaling down from 3 to 2 replicas: draining first");
  EXPECT_EQ(scaling_down[1].message, "StatefulSet sessions scaled from 3 to 2 replicas");
  EXPECT_EQ(sweeper_->calls().size(), 2u);  // swept once, before publishing; never again
}

// The operator may stop between deciding and recording. Here every step of a drain first loses
// its status write (a 409, or the process dying before the write), then the operator restarts and
// takes the step again: each event is told once, by the pass whose status records it.
TEST_F(ClusterReconcilerTest, EveryDrainStepLosingItsStatusWriteThenARestartTellsEachEventOnce) {
  startCluster(3, R"({"minSeconds":0,"timeoutSeconds":600})");
  const int publishes = eventCount("EndpointsPublished");
  patchSpec(R"({"replicas":2})");
  bool lose = false;
  api_->setFailureHook([&](const FakeApiClient::Action& a) {
    if (lose && a.verb == Verb::kUpdate && a.subresource == "status") {
      return absl::AbortedError("the object has been modified");
    }
    return absl::OkStatus();
  });
  for (int step = 0; step < 12 && (stsReplicas() != 2 || status().drain.has_value()); ++step) {
    lose = true;
    sync();
    (void)reconciler_->reconcile({"shop", "sessions"}, {});
    lose = false;
    newReconciler();
    reconcile();
    runPods();
    clock_.advance(seconds(1));
  }
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_FALSE(status().drain.has_value());
  EXPECT_EQ(eventCount("DrainStarted"), 1);
  EXPECT_EQ(eventCount("DrainCompleted"), 1);
  auto scaling_down = events_.withReason("ScalingDown");
  ASSERT_EQ(scaling_down.size(), 2u);
  EXPECT_EQ(scaling_down[0].message, "scaling down from 3 to 2 replicas: draining first");
  EXPECT_EQ(scaling_down[1].message, "StatefulSet sessions scaled from 3 to 2 replicas");
  EXPECT_EQ(eventCount("EndpointsPublished"), publishes + 1);  // the list without sessions-2
}

TEST_F(ClusterReconcilerTest, NeverShrinksWhileAnOutgoingPodIsPublished) {
  startCluster(3, R"({"minSeconds":0,"timeoutSeconds":0})");
  const Json old_cm = *configMap();
  patchSpec(R"({"replicas":2})");
  reconcile();  // records the drain; the sweep and the publish come next

  // The ConfigMap write fails: the drain is recorded, the StatefulSet untouched.
  api_->failNext(Verb::kPatch, res::kConfigMap, absl::UnavailableError("etcd timeout"));
  sync();
  EXPECT_FALSE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
  // Reported as Degraded with the API's message, once, not as a generic error.
  EXPECT_EQ(eventCount("ReconcileError"), 0);
  EXPECT_EQ(eventCount("ApplyFailed"), 1);
  EXPECT_EQ(condition(status(), kConditionDegraded)->reason, "ApplyFailed");
  EXPECT_TRUE(status().drain.has_value());
  EXPECT_EQ(stsReplicas(), 3);

  reconcile();  // publishes the list without sessions-2
  const Json new_cm = *configMap();
  ASSERT_EQ(published().size(), 2u);

  // Someone puts the old list back, and our cache has not seen it yet: the drain is decided,
  // but the live ConfigMap still lists sessions-2, so the StatefulSet must not shrink.
  api_->seed(res::kConfigMap, old_cm);
  sync();
  config_maps_.upsert(new_cm);
  auto r = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(status().drain->outcome, kDrainOutcomeDrained);
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_TRUE(r->requeue_after.has_value());

  // With a fresh cache the list is republished, then the StatefulSet shrinks.
  reconcile();
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_EQ(stsReplicas(), 2);
}

TEST_F(ClusterReconcilerTest, ScalingBackUpCancelsTheDrain) {
  startCluster(3);
  const int64_t v = version();
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  EXPECT_EQ(published().size(), 2u);
  const int before = counter_->calls();
  patchSpec(R"({"replicas":3})");
  reconcile();
  ClusterStatus s = status();
  EXPECT_FALSE(s.drain.has_value());
  EXPECT_EQ(published().size(), 3u);
  EXPECT_EQ(version(), v + 2);
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_EQ(s.members[2].state, MemberState::kActive);
  // The returning member keeps its baseline: no measurement with clients attached.
  EXPECT_EQ(counter_->calls(), before);
  EXPECT_EQ(eventCount("DrainCancelled"), 1);
}

TEST_F(ClusterReconcilerTest, DeeperScaleDownRetargetsAndRestartsTheClock) {
  startCluster(4);
  patchSpec(R"({"replicas":3})");
  reconcile();
  reconcile();
  reconcile();
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1", "sessions-2"}));
  clock_.advance(seconds(50));
  patchSpec(R"({"replicas":2})");
  reconcile();
  EXPECT_TRUE(status().drain->published_at.empty());
  EXPECT_FALSE(status().drain->stale_copies_swept);
  EXPECT_EQ(published().size(), 3u);  // sessions-2 stays until the second sweep is done
  reconcile();
  // The second sweep routes by the ring published then: [0, 1, 2], not the first one's [0..3].
  auto calls = sweeper_->calls();
  ASSERT_EQ(calls.size(), 5u);
  for (size_t i = 3; i < 5; ++i) {
    EXPECT_EQ(calls[i].ring,
              (std::vector<std::string>{"sessions-0", "sessions-1", "sessions-2"}));
  }
  EXPECT_EQ(calls[3].member, "sessions-0");
  EXPECT_EQ(calls[4].member, "sessions-1");
  reconcile();
  ClusterStatus s = status();
  EXPECT_EQ(s.drain->target_replicas, 2);
  EXPECT_EQ(s.drain->members, (std::vector<std::string>{"sessions-2", "sessions-3"}));
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  clock_.advance(seconds(20));  // 70 s after the first start, 20 s after the second
  reconcile();
  EXPECT_EQ(stsReplicas(), 4);
  clock_.advance(seconds(41));
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
}

TEST_F(ClusterReconcilerTest, PausedWritesOnlyStatus) {
  startCluster(2);
  patchSpec(R"({"paused":true,"replicas":3,"image":"memcached:1.6.21"})");
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->writeCount(), 1);
  EXPECT_EQ(statusWrites(), 1);
  EXPECT_EQ(stsReplicas(), 2);
  ClusterStatus s = status();
  EXPECT_EQ(s.phase, "Paused");
  EXPECT_EQ(condition(s, kConditionProgressing)->reason, "Paused");
  // Observing continues (a pod goes unready), still without touching children.
  setPodReady(0, false);
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->writeCount(), statusWrites());
  EXPECT_EQ(status().ready_replicas, 1);
  patchSpec(R"({"paused":false})");
  reconcile();
  EXPECT_EQ(stsReplicas(), 3);
}

TEST_F(ClusterReconcilerTest, InvalidSpecIsReportedNotRetried) {
  createCluster(R"({"replicas":2,"drain":{"minSeconds":60,"timeoutSeconds":30}})");
  api_->resetCounters();
  auto result = reconcile();
  EXPECT_FALSE(result.requeue_after.has_value());
  EXPECT_EQ(api_->writeCount(), 1);  // status only
  ClusterStatus s = status();
  EXPECT_EQ(condition(s, kConditionDegraded)->reason, "InvalidSpec");
  EXPECT_NE(condition(s, kConditionDegraded)->message.find("must be >= spec.drain.minSeconds"),
            std::string::npos);
  EXPECT_EQ(eventCount("InvalidSpec"), 1);
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->writeCount(), 0);
  EXPECT_EQ(eventCount("InvalidSpec"), 1);
}

TEST_F(ClusterReconcilerTest, ApplyConflictIsRetried) {
  createCluster(R"({"replicas":2})");
  api_->failNext(Verb::kPatch, res::kStatefulSet, absl::AbortedError("conflict"), 2);
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
}

TEST_F(ClusterReconcilerTest, StaleStatusConflictBacksOffWithoutActing) {
  startCluster(2);
  patchSpec(R"({"replicas":1})");
  api_->failNext(Verb::kUpdate, res::kMemcachedCluster, absl::AbortedError("conflict"));
  const int64_t v = version();
  sync();
  auto result = reconciler_->reconcile({"shop", "sessions"}, {});
  // An error, not a fixed short requeue: the workqueue's per-key exponential backoff applies,
  // so repeated conflicts slow down instead of retrying every 250 ms with the backoff reset.
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(kube::IsConflict(result.status()));
  EXPECT_EQ(version(), v);  // nothing published on a decision that was not recorded
  EXPECT_EQ(eventCount("ReconcileError"), 0);
  reconcile();
  EXPECT_EQ(published().size(), 2u);  // the drain starts once the decision is recorded
  EXPECT_TRUE(status().drain.has_value());
}

TEST_F(ClusterReconcilerTest, DisablingThePdbDeletesIt) {
  startCluster(2);
  patchSpec(R"({"podDisruptionBudget":{"enabled":false}})");
  reconcile();
  EXPECT_FALSE(api_->peek(res::kPodDisruptionBudget, "shop", "sessions").has_value());
}

TEST_F(ClusterReconcilerTest, DeletedClusterIsANoOp) {
  auto result = reconcile();
  EXPECT_FALSE(result.requeue_after.has_value());
  EXPECT_EQ(api_->writeCount(), 0);
}

TEST_F(ClusterReconcilerTest, ConditionTransitionTimeMovesOnlyOnFlip) {
  startCluster(3);
  const std::string t0 = condition(status(), kConditionAvailable)->last_transition_time;
  clock_.advance(seconds(10));
  setPodReady(1, false);  // still True (within the budget), different reason
  reconcile();
  EXPECT_EQ(condition(status(), kConditionAvailable)->reason, "MinimumMembersReady");
  EXPECT_EQ(condition(status(), kConditionAvailable)->last_transition_time, t0);
  clock_.advance(seconds(10));
  setPodReady(2, false);  // flips to False
  reconcile();
  const std::string t1 = condition(status(), kConditionAvailable)->last_transition_time;
  EXPECT_EQ(condition(status(), kConditionAvailable)->status, "False");
  EXPECT_NE(t0, t1);
  clock_.advance(seconds(10));
  setPodReady(0, false);  // still False, different message
  reconcile();
  EXPECT_EQ(condition(status(), kConditionAvailable)->last_transition_time, t1);
}

}  // namespace
}  // namespace mcop::memcached

namespace mcop::memcached {
namespace {

TEST_F(ClusterReconcilerTest, ScaleToZeroDrainsEveryMember) {
  startCluster(2, R"({"minSeconds":0,"timeoutSeconds":60})");
  patchSpec(R"({"replicas":0})");
  reconcile();
  reconcile();
  EXPECT_TRUE(published().empty());
  EXPECT_TRUE(sweeper_->calls().empty());  // nobody stays: nothing to sweep
  EXPECT_EQ(stsReplicas(), 2);
  reconcile();
  EXPECT_EQ(stsReplicas(), 0);
  runPods();
  reconcile();
  ClusterStatus s = status();
  EXPECT_FALSE(s.drain.has_value());
  EXPECT_TRUE(s.members.empty());
  EXPECT_EQ(condition(s, kConditionAvailable)->reason, "ScaledToZero");
  EXPECT_EQ(s.phase, "Available");
}

// Not Ready is not "no clients": clients connect by the published list, and after an API
// server outage the node lifecycle controller turns every pod NotReady while memcached keeps
// serving (the e2e outage test saw a drain complete, and the pod go, under held connections).
// A not-Ready outgoing member is measured; only one that does not answer is taken as idle.
TEST_F(ClusterReconcilerTest, OutgoingPodThatIsNotReadyIsStillMeasured) {
  startCluster(3, R"({"minSeconds":5,"timeoutSeconds":600})");
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  reconcile();
  counter_->set(podIp(2), 50);  // clients still connected
  setPodReady(2, false);
  clock_.advance(seconds(5));
  reconcile();
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_EQ(status().drain->outcome, "");

  counter_->fail(podIp(2), true);  // not Ready and not answering: nobody can be using it
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_EQ(status().drain->outcome, kDrainOutcomeDrained);
}

TEST_F(ClusterReconcilerTest, SpecChangeRollsTheTemplateWithoutTouchingTheRing) {
  startCluster(2);
  const int64_t v = version();
  const Json before = *api_->peek(res::kStatefulSet, "shop", "sessions");
  patchSpec(R"({"memcached":{"memoryMB":128,"extraArgs":["-o","modern"]}})");
  reconcile();
  const Json after = *api_->peek(res::kStatefulSet, "shop", "sessions");
  const Json& args = after.at("spec").at("template").at("spec").at("containers").at(0).at("args");
  EXPECT_EQ(args.at(7).as_string(), "128");  // -m
  EXPECT_EQ(args.at(args.size() - 1).as_string(), "modern");
  EXPECT_NE(stringAt(before, {"metadata", "annotations", "memcached.operator.io/spec-hash"}),
            stringAt(after, {"metadata", "annotations", "memcached.operator.io/spec-hash"}));
  EXPECT_EQ(version(), v);
  // Dropping extraArgs again is applied too (the spec hash changes).
  patchSpec(R"({"memcached":{"extraArgs":null}})");
  reconcile();
  const Json sts = *api_->peek(res::kStatefulSet, "shop", "sessions");
  const Json& args2 = sts.at("spec").at("template").at("spec").at("containers").at(0).at("args");
  EXPECT_EQ(args2.size(), 14u);
}

TEST_F(ClusterReconcilerTest, RescheduledPodKeepsItsPlaceWithANewAddress) {
  startCluster(2);
  const int64_t v = version();
  Json p = pod(1, true);
  p["status"]["podIP"] = Json::string("127.0.20.9");
  api_->seed(res::kPod, p);
  reconcile();
  auto cm = configMap();
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_NE(cm->at("data").at(kEndpointsJsonKey).as_string().find("127.0.20.9"),
            std::string::npos);
  EXPECT_EQ(version(), v + 1);
  EXPECT_EQ(status().members[1].baseline_connections, FakeConnectionCounter::kBaseline);
}

// --- The sweep of stale copies (StaleCopySweeper) as a step of the scale-down drain.

TEST_F(ClusterReconcilerTest, SweepRunsOnStayingMembersWithThePreShrinkRingBeforePublishing) {
  createCluster(R"({"replicas":3,"clientConfig":{"hashing":"ketama-libketama"},
                    "drain":{"minSeconds":60,"timeoutSeconds":600}})");
  converge();
  ASSERT_EQ(published().size(), 3u);
  const int64_t v = version();
  sweeper_->onSweep([this] { return published(); });
  const double removed_before = staleCopiesRemoved().value({"shop/sessions"});

  patchSpec(R"({"replicas":2})");
  reconcile();
  EXPECT_TRUE(sweeper_->calls().empty());  // recorded as pending first
  EXPECT_FALSE(status().drain->stale_copies_swept);

  reconcile();
  const auto calls = sweeper_->calls();
  ASSERT_EQ(calls.size(), 2u);
  const std::vector<std::string> pre_shrink{"sessions-0", "sessions-1", "sessions-2"};
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].member, "sessions-" + std::to_string(i));  // never the outgoing pod
    EXPECT_EQ(calls[i].ring, pre_shrink);
    EXPECT_EQ(calls[i].version, static_cast<uint64_t>(v));
    EXPECT_EQ(calls[i].hashing, clientconfig::Hashing::KetamaLibketama);
    EXPECT_EQ(calls[i].published_then, pre_shrink);  // clients still route by that ring
  }
  EXPECT_TRUE(status().drain->stale_copies_swept);
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  auto removed = events_.withReason("StaleCopiesRemoved");
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0].severity, kube::EventSeverity::kNormal);
  EXPECT_NE(removed[0].message.find("removed 20 of 2000 items from sessions-0, sessions-1"),
            std::string::npos)
      << removed[0].message;
  EXPECT_EQ(staleCopiesRemoved().value({"shop/sessions"}) - removed_before, 20);
  EXPECT_EQ(eventCount("StaleCopySweepFailed"), 0);

  // Later passes of the same drain never sweep again.
  reconcile();
  clock_.advance(seconds(61));
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
  runPods();
  reconcile();
  EXPECT_EQ(sweeper_->calls().size(), 2u);
}

TEST_F(ClusterReconcilerTest, FailedSweepWarnsAndTheDrainGoesOn) {
  startCluster(3, R"({"minSeconds":0,"timeoutSeconds":60})");
  sweeper_->fail("sessions-1");
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  auto warnings = events_.withReason("StaleCopySweepFailed");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].severity, kube::EventSeverity::kWarning);
  EXPECT_NE(warnings[0].message.find("sessions-1 (sweep budget exceeded)"), std::string::npos)
      << warnings[0].message;
  auto removed = events_.withReason("StaleCopiesRemoved");
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_NE(removed[0].message.find("removed 10 of 1000 items from sessions-0 "),
            std::string::npos)
      << removed[0].message;
  EXPECT_TRUE(status().drain->stale_copies_swept);
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_EQ(sweeper_->calls().size(), 2u);  // a failure is not retried
}

TEST_F(ClusterReconcilerTest, UnreadablePublishedEndpointsWarnAndTheDrainGoesOn) {
  startCluster(3, R"({"minSeconds":0,"timeoutSeconds":60})");
  patchSpec(R"({"replicas":2})");
  reconcile();
  Json cm = *configMap();
  cm["data"]["endpoints.json"] = Json::string("{not json");
  api_->seed(res::kConfigMap, cm);
  reconcile();
  EXPECT_TRUE(sweeper_->calls().empty());
  auto warnings = events_.withReason("StaleCopySweepFailed");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].message.find("cannot read the published endpoints"), std::string::npos);
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
}

TEST_F(ClusterReconcilerTest, RestartBeforeTheSweepCompletedSweepsAgain) {
  startCluster(3);
  patchSpec(R"({"replicas":2})");
  reconcile();
  ASSERT_FALSE(status().drain->stale_copies_swept);

  // The operator sweeps, then dies before recording it: the status write never lands.
  api_->failNext(Verb::kUpdate, res::kMemcachedCluster, absl::UnavailableError("etcd timeout"));
  sync();
  EXPECT_FALSE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
  EXPECT_EQ(sweeper_->calls().size(), 2u);
  EXPECT_FALSE(status().drain->stale_copies_swept);
  EXPECT_EQ(published().size(), 3u);  // nothing published without the record

  // A new operator finds the sweep pending and runs it again, in full, before publishing.
  newReconciler();
  reconcile();
  auto calls = sweeper_->calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[2].member, "sessions-0");
  EXPECT_EQ(calls[3].member, "sessions-1");
  EXPECT_EQ(calls[3].ring, (std::vector<std::string>{"sessions-0", "sessions-1", "sessions-2"}));
  EXPECT_TRUE(status().drain->stale_copies_swept);
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_EQ(eventCount("DrainStarted"), 1);
}

TEST_F(ClusterReconcilerTest, SweepRoutesByTheLiveConfigMapNotALaggingCache) {
  startCluster(2);
  const Json two = *configMap();
  patchSpec(R"({"replicas":3})");
  converge();
  patchSpec(R"({"replicas":2})");
  reconcile();
  // The informer has not delivered the 3-server list yet; clients may already use it.
  sync();
  config_maps_.upsert(two);
  ASSERT_TRUE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
  auto calls = sweeper_->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].ring, (std::vector<std::string>{"sessions-0", "sessions-1", "sessions-2"}));
}

// A pass records a finished sweep, and its status write loses a 409: the next pass records the
// same result instead of sweeping every member again.
TEST_F(ClusterReconcilerTest, AFinishedSweepSurvivesALostStatusWrite) {
  startCluster(3);
  const double removed_before = staleCopiesRemoved().value({"shop/sessions"});
  patchSpec(R"({"replicas":2})");
  reconcile();
  ASSERT_FALSE(status().drain->stale_copies_swept);

  api_->failNext(Verb::kUpdate, res::kMemcachedCluster, absl::AbortedError("conflict"));
  sync();
  auto lost = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_FALSE(lost.ok());
  EXPECT_TRUE(kube::IsConflict(lost.status())) << lost.status();  // the workqueue retries it
  EXPECT_EQ(sweeper_->calls().size(), 2u);
  EXPECT_FALSE(status().drain->stale_copies_swept);
  EXPECT_EQ(published().size(), 3u);

  reconcile();
  EXPECT_EQ(sweeper_->calls().size(), 2u);  // not swept again
  EXPECT_TRUE(status().drain->stale_copies_swept);
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  auto removed = events_.withReason("StaleCopiesRemoved");
  ASSERT_EQ(removed.size(), 1u);  // the lost pass's events were never sent
  EXPECT_NE(removed[0].message.find("removed 20 of 2000 items from sessions-0, sessions-1"),
            std::string::npos)
      << removed[0].message;
  EXPECT_EQ(staleCopiesRemoved().value({"shop/sessions"}) - removed_before, 20);

  // Recorded: later passes neither sweep nor record it again.
  reconcile();
  clock_.advance(seconds(61));
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
  runPods();
  reconcile();
  EXPECT_EQ(sweeper_->calls().size(), 2u);
  EXPECT_EQ(eventCount("StaleCopiesRemoved"), 1);
}

// The sweep runs off the reconcile worker: a pass that finds it running returns at once with a
// requeue and says what it is waiting for; the members that stay are swept concurrently.
TEST_F(ClusterReconcilerTest, ReconcileReturnsWhileTheSweepRuns) {
  newReconciler(backgroundSweeps());
  startCluster(3);
  sweeper_->hold();
  patchSpec(R"({"replicas":2})");
  reconcile();  // records the drain

  sync();
  auto pass = std::async(std::launch::async,
                         [this] { return reconciler_->reconcile({"shop", "sessions"}, {}); });
  if (pass.wait_for(seconds(10)) != std::future_status::ready) {
    sweeper_->release();  // let the blocked pass finish before failing
    pass.wait();
    FAIL() << "reconcile waited for the sweep";
  }
  auto result = pass.get();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->requeue_after.has_value());
  EXPECT_LE(*result->requeue_after, seconds(1));
  ASSERT_TRUE(sweeper_->waitFor(2));  // both members that stay, at once
  EXPECT_EQ(sweeper_->calls().size(), 2u);

  ClusterStatus s = status();
  EXPECT_FALSE(s.drain->stale_copies_swept);
  EXPECT_EQ(published().size(), 3u);
  EXPECT_EQ(condition(s, kConditionProgressing)->reason, "Draining");
  EXPECT_EQ(condition(s, kConditionProgressing)->message,
            "sweeping stale copies from sessions-0, sessions-1 (0 of 2 done) before publishing "
            "the endpoints without sessions-2");

  // Passes while it runs only look: no second sweep.
  reconcile();
  reconcile();
  EXPECT_EQ(sweeper_->calls().size(), 2u);
  EXPECT_EQ(published().size(), 3u);

  sweeper_->release();
  for (int i = 0; i < 1000 && !status().drain->stale_copies_swept; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
    reconcile();
  }
  EXPECT_TRUE(status().drain->stale_copies_swept);
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_EQ(sweeper_->calls().size(), 2u);
  EXPECT_EQ(eventCount("StaleCopiesRemoved"), 1);
}

TEST_F(ClusterReconcilerTest, CancellingTheDrainCancelsTheSweep) {
  newReconciler(backgroundSweeps());
  startCluster(3);
  sweeper_->hold();
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  ASSERT_TRUE(sweeper_->waitFor(2));

  patchSpec(R"({"replicas":3})");
  reconcile();
  EXPECT_EQ(eventCount("DrainCancelled"), 1);
  ASSERT_TRUE(sweeper_->waitFor(2, 2)) << "the sweep was not stopped";
  for (const auto& stop : sweeper_->stops()) {
    EXPECT_NE(stop.find("sweep cancelled: the drain is over or was cancelled"), std::string::npos)
        << stop;
  }
  EXPECT_FALSE(status().drain.has_value());
  EXPECT_EQ(published().size(), 3u);
  EXPECT_EQ(eventCount("StaleCopiesRemoved"), 0);
  EXPECT_EQ(eventCount("StaleCopySweepFailed"), 0);  // cancelled is not failed
}

TEST_F(ClusterReconcilerTest, ADeeperTargetCancelsTheSweepAndSweepsAgain) {
  newReconciler(backgroundSweeps());
  startCluster(4);
  sweeper_->hold();
  patchSpec(R"({"replicas":3})");
  reconcile();
  reconcile();
  ASSERT_TRUE(sweeper_->waitFor(3));  // sessions-0..2, against the ring of 4

  patchSpec(R"({"replicas":2})");
  reconcile();  // retargets: sessions-2 and sessions-3 leave
  ASSERT_TRUE(sweeper_->waitFor(3, 3));
  for (const auto& stop : sweeper_->stops()) {
    EXPECT_NE(stop.find("sweep cancelled: the drain changed"), std::string::npos) << stop;
  }
  sweeper_->release();
  for (int i = 0; i < 1000 && !status().drain->stale_copies_swept; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
    reconcile();
  }
  ASSERT_TRUE(status().drain->stale_copies_swept);
  auto calls = sweeper_->calls();
  ASSERT_EQ(calls.size(), 5u);
  std::set<std::string> second{calls[3].member, calls[4].member};
  EXPECT_EQ(second, (std::set<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
}

TEST_F(ClusterReconcilerTest, DeletingTheClusterCancelsItsSweep) {
  newReconciler(backgroundSweeps());
  startCluster(3);
  sweeper_->hold();
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  ASSERT_TRUE(sweeper_->waitFor(2));
  ASSERT_TRUE(api_->remove(res::kMemcachedCluster, "shop", "sessions", {}).ok());
  reconcile();
  ASSERT_TRUE(sweeper_->waitFor(2, 2)) << "the sweep was not stopped";
  for (const auto& stop : sweeper_->stops()) {
    EXPECT_NE(stop.find("sweep cancelled: the cluster is deleted"), std::string::npos) << stop;
  }
}

// A sweep that outlives its overall deadline is reported like any failed sweep, and the drain
// goes on.
TEST_F(ClusterReconcilerTest, ASweepPastItsDeadlineWarnsAndTheDrainGoesOn) {
  newReconciler(backgroundSweeps());
  startCluster(3, R"({"minSeconds":0,"timeoutSeconds":600})");
  sweeper_->hold();
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  ASSERT_TRUE(sweeper_->waitFor(2));
  clock_.advance(seconds(121));
  ASSERT_TRUE(sweeper_->waitFor(2, 2));
  for (int i = 0; i < 1000 && !status().drain->stale_copies_swept; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
    reconcile();
  }
  ASSERT_TRUE(status().drain->stale_copies_swept);
  auto warnings = events_.withReason("StaleCopySweepFailed");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].message.find("sessions-0 (the sweep's overall deadline of 120s passed)"),
            std::string::npos)
      << warnings[0].message;
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
}

TEST_F(ClusterReconcilerTest, NoSweepOnScaleUpOrInSteadyState) {
  startCluster(2);
  patchSpec(R"({"replicas":3})");
  converge();
  EXPECT_EQ(published().size(), 3u);
  api_->resetCounters();
  reconcile();
  reconcile();
  EXPECT_EQ(api_->writeCount(), 0);
  EXPECT_TRUE(sweeper_->calls().empty());
  EXPECT_EQ(eventCount("StaleCopiesRemoved"), 0);
}

// --- objects this cluster does not control -------------------------------------------------

Json foreignConfigMap(const std::string& name, const std::string& owner_uid) {
  Json cm = Json::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":")" + name +
                        R"(","namespace":"shop"},"data":{"ca.crt":"root of trust"}})");
  if (!owner_uid.empty()) {
    cm["metadata"]["labels"] = Json::parse(
        R"({"app.kubernetes.io/managed-by":"memcached-operator","memcached.operator.io/cluster":"other"})");
    cm["metadata"]["ownerReferences"] = Json::parse(
        R"([{"apiVersion":"memcached.operator.io/v1alpha1","kind":"MemcachedCluster","name":"other","uid":")" +
        owner_uid + R"(","controller":true}])");
  }
  return cm;
}

TEST_F(ClusterReconcilerTest, NeverTakesOverAConfigMapItDoesNotControl) {
  api_->seed(res::kConfigMap, foreignConfigMap("app-settings", ""));
  createCluster(R"({"replicas":2,"clientConfig":{"configMapName":"app-settings"}})");
  api_->resetCounters();
  sync();
  auto result = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  // Only status is written: no ConfigMap, and no other child either.
  EXPECT_EQ(api_->writeCount(), 1);
  EXPECT_EQ(statusWrites(), 1);
  auto cm = api_->peek(res::kConfigMap, "shop", "app-settings");
  EXPECT_EQ(stringAt(*cm, {"data", "ca.crt"}), "root of trust");
  EXPECT_FALSE(findPath(*cm, {"metadata", "ownerReferences"}));
  EXPECT_EQ(stsReplicas(), -1);
  ClusterStatus s = status();
  EXPECT_EQ(s.phase, "Degraded");
  EXPECT_EQ(condition(s, kConditionDegraded)->reason, "ConfigMapConflict");
  EXPECT_NE(condition(s, kConditionDegraded)->message.find("ConfigMap shop/app-settings"),
            std::string::npos);
  EXPECT_EQ(eventCount("ConfigMapConflict"), 1);
  // Not a hot loop: a slow recheck, and nothing more is written while it lasts.
  ASSERT_TRUE(result->requeue_after.has_value());
  EXPECT_GE(*result->requeue_after, seconds(30));
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->writeCount(), 0);
  EXPECT_EQ(eventCount("ConfigMapConflict"), 1);
  // Once the object is gone, the cluster proceeds.
  ASSERT_TRUE(api_->remove(res::kConfigMap, "shop", "app-settings", {}).ok());
  converge();
  EXPECT_EQ(published().size(), 0u);  // no pods yet in this test's kubelet until runPods
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
}

TEST_F(ClusterReconcilerTest, NeverTakesOverAnotherClustersConfigMap) {
  api_->seed(res::kConfigMap, foreignConfigMap("shared-endpoints", "uid-of-another-cluster"));
  createCluster(R"({"replicas":2,"clientConfig":{"configMapName":"shared-endpoints"}})");
  reconcile();
  auto cm = api_->peek(res::kConfigMap, "shop", "shared-endpoints");
  EXPECT_EQ(stringAt(*cm, {"data", "ca.crt"}), "root of trust");
  const ClusterStatus s = status();
  const Condition* degraded = condition(s, kConditionDegraded);
  EXPECT_EQ(degraded->reason, "ConfigMapConflict");
  EXPECT_NE(degraded->message.find("uid-of-another-cluster"), std::string::npos);
}

TEST_F(ClusterReconcilerTest, NeverTakesOverAnApplicationService) {
  api_->seed(res::kService,
             Json::parse(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"sessions-client",
               "namespace":"shop"},"spec":{"selector":{"app":"web"},"ports":[{"port":80}]}})"));
  createCluster(R"({"replicas":2})");
  reconcile();
  auto svc = api_->peek(res::kService, "shop", "sessions-client");
  EXPECT_EQ(stringAt(*svc, {"spec", "selector", "app"}), "web");
  EXPECT_FALSE(findPath(*svc, {"metadata", "ownerReferences"}));
  EXPECT_EQ(condition(status(), kConditionDegraded)->reason, "ServiceConflict");
  EXPECT_EQ(stsReplicas(), -1);
  EXPECT_FALSE(configMap().has_value());
}

// The child caches hold every object of their kinds (others as stubs), so no child name is
// looked up on the API server: not for a new cluster's absent names, not in steady state.
TEST_F(ClusterReconcilerTest, ChildrenAreNeverReadFromTheApiServer) {
  createCluster(R"({"replicas":2,"podDisruptionBudget":{"enabled":true},
                    "networkPolicy":{"enabled":true}})");
  api_->resetCounters();
  reconcile();
  EXPECT_GT(api_->writeCount(), 1);  // the children were created
  runPods();
  for (int i = 0; i < 3; ++i) reconcile();
  EXPECT_EQ(published().size(), 2u);
  for (const auto* type : {&res::kService, &res::kConfigMap, &res::kStatefulSet,
                           &res::kPodDisruptionBudget, &res::kNetworkPolicy,
                           &res::kServiceMonitor}) {
    EXPECT_EQ(api_->count(kube::Verb::kGet, *type), 0) << type->plural;
  }
}

// Someone else's object is cached as a stub (name, uid, ownerReferences): a conflict found
// there, naming its controller, with no API read.
TEST_F(ClusterReconcilerTest, AStubInTheCacheIsAConflictWithoutAnApiRead) {
  api_->seed(res::kService,
             Json::parse(R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"sessions",
               "namespace":"shop","labels":{"app":"web"},"ownerReferences":[{"apiVersion":"apps/v1",
               "kind":"Deployment","name":"web","uid":"d-1","controller":true}]},
               "spec":{"selector":{"app":"web"},"ports":[{"port":80}]}})"));
  createCluster(R"({"replicas":2})");
  sync();
  auto cached = services_.get("shop", "sessions");
  ASSERT_TRUE(cached.has_value());
  ASSERT_FALSE(findPath(*cached, {"spec"})) << "not a stub: " << cached->serialize();
  api_->resetCounters();
  auto result = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(api_->count(kube::Verb::kGet), 0);
  EXPECT_EQ(api_->writeCount(), statusWrites());
  const ClusterStatus s = status();
  const Condition* degraded = condition(s, kConditionDegraded);
  ASSERT_NE(degraded, nullptr);
  EXPECT_EQ(degraded->reason, "ServiceConflict");
  EXPECT_NE(degraded->message.find("Service shop/sessions already exists and is not controlled "
                                   "by this MemcachedCluster (controlled by Deployment web uid "
                                   "d-1)"),
            std::string::npos)
      << degraded->message;
  auto svc = api_->peek(res::kService, "shop", "sessions");
  EXPECT_EQ(stringAt(*svc, {"spec", "selector", "app"}), "web");
}

// Our child whose managed-by label was removed is still ours (its controller ownerReference):
// cached whole, no conflict, and the label is put back.
TEST_F(ClusterReconcilerTest, OurChildWithoutItsLabelIsStillOurs) {
  startCluster(2);
  auto svc = api_->peek(res::kService, "shop", "sessions-client");
  ASSERT_TRUE(svc.has_value());
  svc->at("metadata").at("labels").as_object().erase("app.kubernetes.io/managed-by");
  api_->seed(res::kService, *svc);
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->count(kube::Verb::kGet), 0);
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
  svc = api_->peek(res::kService, "shop", "sessions-client");
  EXPECT_EQ(stringAt(*svc, {"metadata", "labels", "app.kubernetes.io/managed-by"}),
            "memcached-operator");
}

// The pass after the one that created the ConfigMap can start before the ConfigMap's watch event
// is in: the cache has none while status records version 1. That ConfigMap is read rather than
// taken as absent, which would publish version 2 over it.
TEST_F(ClusterReconcilerTest, AConfigMapNotInTheCacheYetIsReadNotRepublished) {
  createCluster(R"({"replicas":2})");
  reconcile();
  ASSERT_TRUE(configMap().has_value());
  ASSERT_EQ(status().config_version, 1);
  sync();
  config_maps_.erase("shop", "sessions-endpoints");
  api_->resetCounters();
  auto result = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(api_->count(kube::Verb::kGet, res::kConfigMap), 1);
  EXPECT_EQ(status().config_version, 1);
  EXPECT_EQ(publishedVersion(*configMap()), 1);
}

TEST_F(ClusterReconcilerTest, NeverAdoptsOrLowersAnOrphanedStatefulSet) {
  // What `kubectl delete mcc --cascade=orphan` leaves: our labels, no owner.
  startCluster(3);
  for (const auto* type : {&res::kStatefulSet, &res::kService, &res::kConfigMap,
                           &res::kPodDisruptionBudget}) {
    auto list = api_->list(*type, "shop", {});
    ASSERT_TRUE(list.ok());
    for (auto obj : list->items) {
      obj["metadata"].as_object().erase("ownerReferences");
      api_->seed(*type, obj);
    }
  }
  ASSERT_TRUE(api_->remove(res::kMemcachedCluster, "shop", "sessions", {}).ok());
  createCluster(R"({"replicas":1})");
  api_->resetCounters();
  reconcile();
  reconcile();
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_EQ(api_->writeCount(), statusWrites());
  const ClusterStatus s = status();
  EXPECT_EQ(condition(s, kConditionDegraded)->reason, "ServiceConflict");  // the first one
  EXPECT_NE(condition(s, kConditionDegraded)->message.find("StatefulSet shop/sessions"),
            std::string::npos);
}

// A PodDisruptionBudget named like the cluster that is not this cluster's: without our labels
// (someone's hand-made budget), or with them but controlled by another uid (left by an earlier
// cluster of this name deleted with --cascade=orphan).
Json foreignPdb(const std::string& owner_uid) {
  Json pdb = Json::parse(R"({"apiVersion":"policy/v1","kind":"PodDisruptionBudget",
    "metadata":{"name":"sessions","namespace":"shop"},
    "spec":{"minAvailable":2,"selector":{"matchLabels":{"app":"web"}}}})");
  if (!owner_uid.empty()) {
    pdb["metadata"]["labels"] = Json::parse(
        R"({"app.kubernetes.io/managed-by":"memcached-operator","memcached.operator.io/cluster":"sessions"})");
    pdb["metadata"]["ownerReferences"] = Json::parse(
        R"([{"apiVersion":"memcached.operator.io/v1alpha1","kind":"MemcachedCluster","name":"sessions","uid":")" +
        owner_uid + R"(","controller":true}])");
  }
  return pdb;
}

// The budget as foreignPdb made it: neither rewritten nor taken over (nor deleted).
void expectForeignPdbUntouched(FakeApiClient& api, const std::string& owner_uid) {
  auto pdb = api.peek(res::kPodDisruptionBudget, "shop", "sessions");
  ASSERT_TRUE(pdb.has_value());
  EXPECT_EQ(intAt(*pdb, {"spec", "minAvailable"}).value_or(-1), 2);
  EXPECT_EQ(stringAt(*pdb, {"spec", "selector", "matchLabels", "app"}), "web");
  EXPECT_FALSE(findPath(*pdb, {"spec", "maxUnavailable"}));
  const Json* owner = controllerOf(*pdb);
  EXPECT_EQ(owner ? stringAt(*owner, {"uid"}) : std::string(), owner_uid);
}

TEST_F(ClusterReconcilerTest, NeverTakesOverAnUnlabelledPodDisruptionBudget) {
  api_->seed(res::kPodDisruptionBudget, foreignPdb(""));
  createCluster(R"({"replicas":2})");
  api_->resetCounters();
  sync();
  auto result = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  // Only status is written: not the budget, nor any other child.
  EXPECT_EQ(api_->writeCount(), 1);
  EXPECT_EQ(statusWrites(), 1);
  expectForeignPdbUntouched(*api_, "");
  EXPECT_FALSE(api_->peek(res::kService, "shop", "sessions").has_value());
  EXPECT_FALSE(configMap().has_value());
  EXPECT_EQ(stsReplicas(), -1);
  const ClusterStatus s = status();
  const Condition* degraded = condition(s, kConditionDegraded);
  EXPECT_EQ(degraded->status, "True");
  EXPECT_EQ(degraded->reason, "PodDisruptionBudgetConflict");
  EXPECT_NE(degraded->message.find("PodDisruptionBudget shop/sessions already exists"),
            std::string::npos)
      << degraded->message;
  EXPECT_NE(degraded->message.find("spec.podDisruptionBudget.enabled: false"), std::string::npos)
      << degraded->message;
  EXPECT_EQ(eventCount("PodDisruptionBudgetConflict"), 1);
  ASSERT_TRUE(result->requeue_after.has_value());
  EXPECT_GE(*result->requeue_after, seconds(30));
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->writeCount(), 0);
  EXPECT_EQ(eventCount("PodDisruptionBudgetConflict"), 1);
  expectForeignPdbUntouched(*api_, "");
}

// With the budget turned off the name is not ours to use, and not ours to clean up either: only
// a budget this cluster controls is deleted.
TEST_F(ClusterReconcilerTest, DisabledPdbNeverDeletesSomeoneElsesOfTheSameName) {
  api_->seed(res::kPodDisruptionBudget, foreignPdb(""));
  createCluster(R"({"replicas":2,"podDisruptionBudget":{"enabled":false}})");
  converge();
  expectForeignPdbUntouched(*api_, "");
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_EQ(published().size(), 2u);
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");

  // Labelled as ours but controlled by an earlier cluster of this name: in our cache, still not
  // ours.
  api_->seed(res::kPodDisruptionBudget, foreignPdb("uid-of-an-earlier-sessions"));
  api_->resetCounters();
  reconcile();
  reconcile();
  EXPECT_EQ(api_->count(Verb::kDelete, res::kPodDisruptionBudget), 0);
  expectForeignPdbUntouched(*api_, "uid-of-an-earlier-sessions");
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
}

// --- NetworkPolicy and ServiceMonitor ---------------------------------------------------------

TEST_F(ClusterReconcilerTest, NetworkPolicyIsAppliedWhenEnabledAndDeletedWhenDisabled) {
  ClusterReconcilerOptions options = waitingForSweeps();
  options.operator_peer = {"memcached-system", {{"app.kubernetes.io/name", "memcached-operator"}}};
  newReconciler(options);
  createCluster(R"({"replicas":2,"networkPolicy":{"enabled":true,
      "allowedClients":[{"podSelector":{"matchLabels":{"app":"shop"}}}]}})");
  converge();
  auto np = api_->peek(res::kNetworkPolicy, "shop", "sessions");
  ASSERT_TRUE(np.has_value());
  EXPECT_EQ(stringAt(*controllerOf(*np), {"kind"}), "MemcachedCluster");
  const std::string from = np->at("spec").at("ingress").at(0).at("from").serialize();
  EXPECT_NE(from.find(R"({"podSelector":{"matchLabels":{"app":"shop"}}})"), std::string::npos);
  EXPECT_NE(from.find(R"("kubernetes.io/metadata.name":"memcached-system")"), std::string::npos);
  EXPECT_EQ(published().size(), 2u);

  // Steady state writes nothing; a changed peer list is applied.
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->count(Verb::kPatch, res::kNetworkPolicy), 0);
  patchSpec(R"({"networkPolicy":{"allowedClients":[{"podSelector":{"matchLabels":{"app":"cart"}}}]}})");
  reconcile();
  EXPECT_EQ(api_->count(Verb::kPatch, res::kNetworkPolicy), 1);
  EXPECT_NE(api_->peek(res::kNetworkPolicy, "shop", "sessions")->serialize().find("cart"),
            std::string::npos);

  patchSpec(R"({"networkPolicy":{"enabled":false}})");
  reconcile();
  EXPECT_FALSE(api_->peek(res::kNetworkPolicy, "shop", "sessions").has_value());
}

// A NetworkPolicy of the same name that the cluster does not control is a conflict when the
// spec wants one (nothing written), and left alone when it does not.
TEST_F(ClusterReconcilerTest, NeverTakesOverOrDeletesSomeoneElsesNetworkPolicy) {
  const Json foreign = Json::parse(R"({"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy",
    "metadata":{"name":"sessions","namespace":"shop"},
    "spec":{"podSelector":{},"policyTypes":["Ingress"]}})");
  api_->seed(res::kNetworkPolicy, foreign);
  createCluster(R"({"replicas":2,"networkPolicy":{"enabled":true}})");
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->writeCount(), statusWrites());
  EXPECT_EQ(condition(status(), kConditionDegraded)->reason, "NetworkPolicyConflict");
  EXPECT_NE(condition(status(), kConditionDegraded)->message.find("spec.networkPolicy.enabled: false"),
            std::string::npos);
  patchSpec(R"({"networkPolicy":{"enabled":false}})");
  converge();
  EXPECT_EQ(api_->count(Verb::kDelete, res::kNetworkPolicy), 0);
  auto np = api_->peek(res::kNetworkPolicy, "shop", "sessions");
  ASSERT_TRUE(np.has_value());
  EXPECT_EQ(controllerOf(*np), nullptr);
  EXPECT_EQ(published().size(), 2u);
}

TEST_F(ClusterReconcilerTest, ServiceMonitorOnlyWhereItsApiIsServed) {
  createCluster(R"({"replicas":1,"monitoring":{"enabled":true}})");
  converge();  // not served: the exporter runs, nothing else is written
  EXPECT_EQ(api_->count(Verb::kPatch, res::kServiceMonitor), 0);
  EXPECT_FALSE(api_->peek(res::kServiceMonitor, "shop", "sessions").has_value());
  const auto sts = api_->peek(res::kStatefulSet, "shop", "sessions");
  EXPECT_EQ(sts->at("spec").at("template").at("spec").at("containers").size(), 2u);

  serve_service_monitors_ = true;
  newReconciler();
  converge();
  auto sm = api_->peek(res::kServiceMonitor, "shop", "sessions");
  ASSERT_TRUE(sm.has_value());
  EXPECT_EQ(stringAt(sm->at("spec").at("endpoints").at(0), {"port"}), "metrics");

  patchSpec(R"({"monitoring":{"serviceMonitor":false}})");
  reconcile();
  EXPECT_FALSE(api_->peek(res::kServiceMonitor, "shop", "sessions").has_value());
  patchSpec(R"({"monitoring":{"serviceMonitor":true}})");
  reconcile();
  EXPECT_TRUE(api_->peek(res::kServiceMonitor, "shop", "sessions").has_value());
  patchSpec(R"({"monitoring":{"enabled":false}})");
  reconcile();
  EXPECT_FALSE(api_->peek(res::kServiceMonitor, "shop", "sessions").has_value());
}

// --- failed child writes ----------------------------------------------------------------------

TEST_F(ClusterReconcilerTest, RejectedStatefulSetIsDegradedWithOneEventPerDistinctFailure) {
  createCluster(R"({"replicas":2})");
  const std::string rejected =
      "StatefulSet.apps \"sessions\" is invalid: spec.template.spec.containers[0].resources."
      "requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1";
  bool rejecting = true;
  api_->setFailureHook([&](const FakeApiClient::Action& a) {
    if (rejecting && a.verb == Verb::kPatch && a.resource == "apps/statefulsets") {
      return absl::InvalidArgumentError(rejected);
    }
    return absl::OkStatus();
  });
  for (int i = 0; i < 3; ++i) {
    sync();
    auto result = reconciler_->reconcile({"shop", "sessions"}, {});
    EXPECT_FALSE(result.ok());
  }
  ClusterStatus s = status();
  EXPECT_EQ(s.phase, "Degraded");
  const Condition* degraded = condition(s, kConditionDegraded);
  EXPECT_EQ(degraded->status, "True");
  EXPECT_EQ(degraded->reason, "ApplyFailed");
  EXPECT_NE(degraded->message.find("must be less than or equal to cpu limit"), std::string::npos);
  EXPECT_EQ(eventCount("ApplyFailed"), 1);
  EXPECT_EQ(eventCount("ReconcileError"), 0);
  EXPECT_EQ(eventCount("ScalingUp"), 0);  // nothing was scaled
  // The retries rewrite nothing: status was written once for the decision, once for the failure.
  api_->resetCounters();
  sync();
  EXPECT_FALSE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
  EXPECT_EQ(statusWrites(), 0);
  // Fixed: Degraded clears and the StatefulSet is created.
  rejecting = false;
  reconcile();
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
  EXPECT_EQ(eventCount("ScalingUp"), 1);
}

// A failed child write whose report in status loses a conflict (the cache was behind) is no
// ReconcileError: the pass returns the conflict, and the next one records the failure once.
TEST_F(ClusterReconcilerTest, AWriteFailureWhoseReportLosesAConflictIsDecidedAgain) {
  createCluster(R"({"replicas":2})");
  int status_updates = 0;
  api_->setFailureHook([&](const FakeApiClient::Action& a) {
    if (a.verb == Verb::kPatch && a.resource == "apps/statefulsets") {
      return absl::InvalidArgumentError("StatefulSet.apps \"sessions\" is invalid");
    }
    if (a.verb == Verb::kUpdate && a.subresource == "status" && ++status_updates == 2) {
      return absl::AbortedError("conflict");
    }
    return absl::OkStatus();
  });
  sync();
  auto result = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(kube::IsConflict(result.status())) << result.status();
  EXPECT_EQ(eventCount("ReconcileError"), 0);
  EXPECT_EQ(eventCount("ApplyFailed"), 0);  // not in status, so not reported yet
  sync();
  EXPECT_FALSE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
  EXPECT_EQ(condition(status(), kConditionDegraded)->reason, "ApplyFailed");
  EXPECT_EQ(eventCount("ApplyFailed"), 1);
  EXPECT_EQ(eventCount("ReconcileError"), 0);
}

// Applies to `resource` are rejected with *message (which the test may change between passes)
// while it is not empty.
FakeApiClient::FailureHook rejecting(const std::string& resource, const std::string* message) {
  return [resource, message](const FakeApiClient::Action& a) {
    if (!message->empty() && a.verb == Verb::kPatch && a.resource == resource) {
      return absl::InvalidArgumentError(*message);
    }
    return absl::OkStatus();
  };
}

// One event per distinct failure: the same failure on retry is none, another failure is one.
TEST_F(ClusterReconcilerTest, EachDistinctChildWriteFailureIsOneWarningEvent) {
  createCluster(R"({"replicas":2})");
  std::string message =
      "StatefulSet.apps \"sessions\" is invalid: spec.template.spec.containers[0].resources."
      "requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0";
  api_->setFailureHook(rejecting("apps/statefulsets", &message));
  const auto pass = [&] {
    sync();
    EXPECT_FALSE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
  };
  pass();
  auto warnings = events_.withReason("ApplyFailed");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0].severity, kube::EventSeverity::kWarning);
  EXPECT_NE(warnings[0].message.find(message), std::string::npos) << warnings[0].message;
  const Condition* degraded = condition(status(), kConditionDegraded);
  EXPECT_EQ(degraded->status, "True");
  EXPECT_EQ(degraded->reason, "ApplyFailed");
  EXPECT_NE(degraded->message.find("apply StatefulSet shop/sessions: " + message),
            std::string::npos)
      << degraded->message;

  pass();  // the same failure: no second event
  EXPECT_EQ(eventCount("ApplyFailed"), 1);

  const std::string first = message;
  message =
      "StatefulSet.apps \"sessions\" is invalid: spec.template.metadata.labels: Invalid value: "
      "\"-team\": name part must consist of alphanumeric characters";
  pass();  // another failure: a second event, and Degraded says the new one
  warnings = events_.withReason("ApplyFailed");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[1].severity, kube::EventSeverity::kWarning);
  EXPECT_NE(warnings[1].message.find(message), std::string::npos) << warnings[1].message;
  degraded = condition(status(), kConditionDegraded);
  EXPECT_EQ(degraded->reason, "ApplyFailed");
  EXPECT_NE(degraded->message.find(message), std::string::npos) << degraded->message;
  EXPECT_EQ(degraded->message.find(first), std::string::npos) << degraded->message;

  pass();
  pass();
  EXPECT_EQ(eventCount("ApplyFailed"), 2);
  EXPECT_EQ(eventCount("ReconcileError"), 0);
}

// The scale-up the StatefulSet write would have made did not happen: no event may say it did.
TEST_F(ClusterReconcilerTest, ARejectedScaleUpIsDegradedAndNotAnnouncedAsScalingUp) {
  startCluster(2);
  const int64_t v = version();
  ASSERT_EQ(eventCount("ScalingUp"), 1);  // the creation
  std::string message =
      "StatefulSet.apps \"sessions\" is invalid: spec.template.spec.containers[0].resources."
      "requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1";
  api_->setFailureHook(rejecting("apps/statefulsets", &message));
  patchSpec(R"({"replicas":3})");
  for (int i = 0; i < 3; ++i) {
    sync();
    EXPECT_FALSE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
    runPods();
  }
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_EQ(version(), v);
  ClusterStatus s = status();
  EXPECT_EQ(s.phase, "Degraded");
  const Condition* degraded = condition(s, kConditionDegraded);
  EXPECT_EQ(degraded->reason, "ApplyFailed");
  EXPECT_NE(degraded->message.find(message), std::string::npos) << degraded->message;
  EXPECT_EQ(eventCount("ScalingUp"), 1);
  EXPECT_EQ(eventCount("ApplyFailed"), 1);

  message.clear();  // fixed
  reconcile();
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_EQ(eventCount("ScalingUp"), 2);
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
}

// KNOWN DEFECT, disabled until fixed (run with --gtest_also_run_disabled_tests): Progressing is
// decided and recorded before the StatefulSet write, and a rejected write only changes Degraded,
// so Progressing stays True/ScalingUp ("waiting for sessions-2 to become Ready") while the
// StatefulSet was never raised, on creation as on a scale-up.
TEST_F(ClusterReconcilerTest,
       ProgressingDoesNotClaimScalingUpWhileTheStatefulSetIsRejected) {
  std::string message = "StatefulSet.apps \"sessions\" is invalid: spec.replicas: Invalid value";
  api_->setFailureHook(rejecting("apps/statefulsets", &message));
  createCluster(R"({"replicas":2})");
  const auto rejectedPass = [&] {
    sync();
    EXPECT_FALSE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
    runPods();
  };
  rejectedPass();
  rejectedPass();
  EXPECT_EQ(stsReplicas(), -1);
  const Condition* progressing = condition(status(), kConditionProgressing);
  EXPECT_NE(progressing->reason, "ScalingUp") << "on creation: " << progressing->message;

  message.clear();
  converge();
  ASSERT_EQ(stsReplicas(), 2);
  message = "StatefulSet.apps \"sessions\" is invalid: spec.template.spec.affinity: Invalid value";
  patchSpec(R"({"replicas":3})");
  rejectedPass();
  rejectedPass();
  EXPECT_EQ(stsReplicas(), 2);
  progressing = condition(status(), kConditionProgressing);
  EXPECT_NE(progressing->reason, "ScalingUp") << "on a scale-up: " << progressing->message;
}

// Not only the StatefulSet and the ConfigMap: a Service the API server refuses is Degraded with
// its message, once, and nothing after it in the order is written.
TEST_F(ClusterReconcilerTest, ARejectedServiceIsDegradedWithTheApiMessage) {
  createCluster(R"({"replicas":2})");
  std::string message =
      "Service \"sessions-client\" is invalid: metadata.annotations: Too long: must have at "
      "most 262144 bytes";
  api_->setFailureHook([&](const FakeApiClient::Action& a) {
    if (!message.empty() && a.verb == Verb::kPatch && a.resource == "/services" &&
        a.name == "sessions-client") {
      return absl::InvalidArgumentError(message);
    }
    return absl::OkStatus();
  });
  for (int i = 0; i < 2; ++i) {
    sync();
    EXPECT_FALSE(reconciler_->reconcile({"shop", "sessions"}, {}).ok());
  }
  ClusterStatus s = status();
  EXPECT_EQ(s.phase, "Degraded");
  const Condition* degraded = condition(s, kConditionDegraded);
  EXPECT_EQ(degraded->status, "True");
  EXPECT_EQ(degraded->reason, "ApplyFailed");
  EXPECT_NE(degraded->message.find("apply Service shop/sessions-client: " + message),
            std::string::npos)
      << degraded->message;
  EXPECT_EQ(eventCount("ApplyFailed"), 1);
  EXPECT_EQ(eventCount("ReconcileError"), 0);
  EXPECT_FALSE(api_->peek(res::kService, "shop", "sessions-client").has_value());
  EXPECT_FALSE(configMap().has_value());
  EXPECT_EQ(stsReplicas(), -1);

  message.clear();
  reconcile();
  EXPECT_TRUE(api_->peek(res::kService, "shop", "sessions-client").has_value());
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
}

// --- the version is the operator's -------------------------------------------------------------

void editPublishedVersion(FakeApiClient& api, int64_t from, const std::string& to) {
  Json cm = *api.peek(res::kConfigMap, "shop", "sessions-endpoints");
  std::string text = stringAt(cm, {"data", "endpoints.json"});
  const std::string needle = "\"version\": " + std::to_string(from) + ",";
  auto at = text.find(needle);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, needle.size(), "\"version\": " + to + ",");
  cm["data"]["endpoints.json"] = jsonString(text);
  api.seed(res::kConfigMap, cm);
}

TEST_F(ClusterReconcilerTest, HandEditedVersionIsPutBackNeverAdopted) {
  startCluster(2);
  const int64_t v = version();
  editPublishedVersion(*api_, v, "5");
  reconcile();
  EXPECT_EQ(version(), v);
  EXPECT_EQ(status().config_version, v);
  editPublishedVersion(*api_, v, "9223372036854775807");
  reconcile();
  EXPECT_EQ(version(), v);
  EXPECT_EQ(status().config_version, v);
  // The next real change continues from the operator's own record.
  setPodReady(1, false);
  reconcile();
  EXPECT_EQ(version(), v + 1);
}

TEST_F(ClusterReconcilerTest, RemovedLabelsAreRestoredWithoutANewVersion) {
  startCluster(2);
  const int64_t v = version();
  Json cm = *configMap();
  cm["metadata"].as_object().erase("labels");
  api_->seed(res::kConfigMap, cm);
  reconcile();
  EXPECT_EQ(version(), v);
  EXPECT_EQ(stringAt(*configMap(), {"metadata", "labels", "app.kubernetes.io/managed-by"}),
            "memcached-operator");
}

// --- a cancelled drain -------------------------------------------------------------------------

TEST_F(ClusterReconcilerTest, CancelledDrainEmptiesTheReturningMemberBeforeItServes) {
  startCluster(3);
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  ASSERT_EQ(published().size(), 2u);  // sessions-2 left the list
  // A failed flush keeps it out of the list (and retries), rather than serving old values.
  flusher_->fail(true);
  patchSpec(R"({"replicas":3})");
  reconcile();
  EXPECT_EQ(published().size(), 2u);
  ClusterStatus s = status();
  EXPECT_EQ(s.members[2].state, MemberState::kJoining);
  EXPECT_TRUE(s.members[2].flush_required);
  EXPECT_EQ(condition(s, kConditionDegraded)->reason, "StatsUnavailable");
  // A restart in between cannot skip the flush: it is recorded in status.
  newReconciler();
  flusher_->fail(false);
  reconcile();
  EXPECT_EQ(flusher_->flushed(), (std::vector<std::string>{podIp(2)}));
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1", "sessions-2"}));
  s = status();
  EXPECT_EQ(s.members[2].state, MemberState::kActive);
  EXPECT_FALSE(s.members[2].flush_required);
  // Published members are never flushed again.
  reconcile();
  EXPECT_EQ(flusher_->flushed().size(), 1u);
}

TEST_F(ClusterReconcilerTest, ScaleUpOfNewPodsFlushesNothing) {
  startCluster(2);
  patchSpec(R"({"replicas":3})");
  converge();
  EXPECT_EQ(published().size(), 3u);
  EXPECT_TRUE(flusher_->flushed().empty());
}

// --- status is written on change only -----------------------------------------------------------

TEST_F(ClusterReconcilerTest, WaitingDrainDoesNotRewriteStatusEveryPoll) {
  startCluster(3, R"({"minSeconds":60,"timeoutSeconds":300})");
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  reconcile();  // publishedAt recorded
  counter_->set(podIp(2), FakeConnectionCounter::kBaseline + 4);
  api_->resetCounters();
  for (int i = 0; i < 20; ++i) {
    clock_.advance(seconds(2));
    reconcile();
  }
  // Waiting for the minimum: no rewrite. The move to "waiting for clients" is one write.
  clock_.advance(seconds(40));
  reconcile();
  for (int i = 0; i < 20; ++i) {
    clock_.advance(seconds(2));
    reconcile();
  }
  EXPECT_LE(statusWrites(), 1);
  const ClusterStatus s = status();
  const Condition* progressing = condition(s, kConditionProgressing);
  EXPECT_NE(progressing->message.find("waiting for clients to leave sessions-2"),
            std::string::npos);
  // An absolute time (RFC 3339, UTC), not a countdown.
  EXPECT_NE(progressing->message.find("scaling down anyway at "), std::string::npos);
  EXPECT_NE(progressing->message.find("Z)"), std::string::npos);
}

TEST_F(ClusterReconcilerTest, ProgressingSaysWhenTheLiveEndpointsBlockLowering) {
  startCluster(3, R"({"minSeconds":1,"timeoutSeconds":10})");
  patchSpec(R"({"replicas":2})");
  reconcile();
  reconcile();
  clock_.advance(seconds(2));
  reconcile();  // the list without sessions-2 is seen: the minimum wait starts
  clock_.advance(seconds(2));
  const Json decided_cm = *configMap();
  {
    // Someone puts sessions-2 back into the live ConfigMap behind the operator's back.
    EndpointsContent c;
    c.cluster = "shop/sessions";
    c.hashing = "ketama-libmemcached";
    for (int i = 0; i < 3; ++i) {
      c.servers.push_back({"sessions-" + std::to_string(i), "h" + std::to_string(i), podIp(i),
                           11211, 1, "active"});
    }
    Json live = *configMap();
    live["data"]["endpoints.json"] = jsonString(renderEndpointsJson(c, version()));
    api_->seed(res::kConfigMap, live);
  }
  sync();
  config_maps_.upsert(decided_cm);  // the cache has not seen it: the guard reads the live object
  auto result = reconciler_->reconcile({"shop", "sessions"}, {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_NE(condition(status(), kConditionProgressing)->message.find(
                "waiting for the published endpoints to drop the outgoing pods"),
            std::string::npos);
}

// --- quantities -----------------------------------------------------------------------------

TEST_F(ClusterReconcilerTest, IntegerQuantitiesDoNotReapplyTheStatefulSet) {
  startCluster(2);
  patchSpec(R"({"resources":{"requests":{"cpu":1,"memory":"128Mi"},"limits":{"cpu":2,"memory":"128Mi"}}})");
  converge();
  // The API server returns every quantity as a canonical string.
  Json sts = *api_->peek(res::kStatefulSet, "shop", "sessions");
  Json& resources = sts["spec"]["template"]["spec"]["containers"][0]["resources"];
  ASSERT_TRUE(resources["requests"]["cpu"].is_number());
  resources["requests"]["cpu"] = jsonString("1");
  resources["limits"]["cpu"] = jsonString("2");
  api_->seed(res::kStatefulSet, sts);
  api_->resetCounters();
  reconcile();
  EXPECT_EQ(api_->count(Verb::kPatch, res::kStatefulSet), 0);
}

}  // namespace
}  // namespace mcop::memcached


namespace mcop::memcached {
namespace {

// The pass's Context. A stopping controller's pass asks memcached nothing and records nothing
// (the next pass, after a restart, decides again); it is no error worth an event.
TEST_F(ClusterReconcilerTest, ACancelledPassProbesNothingAndRecordsNothing) {
  createCluster(R"({"replicas":2})");
  reconcile();  // creates the StatefulSet
  runPods();
  sync();
  const int calls = counter_->calls();
  const int writes = statusWrites();
  std::atomic<bool> stopping{true};
  controller::Context ctx;
  ctx.cancelled = &stopping;
  auto result = reconciler_->reconcile({"shop", "sessions"}, ctx);
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(absl::IsCancelled(result.status())) << result.status();
  EXPECT_EQ(counter_->calls(), calls);
  EXPECT_EQ(statusWrites(), writes);
  EXPECT_EQ(eventCount("ReconcileError"), 0);
  EXPECT_TRUE(published().empty());

  reconcile();
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
}

// A pass past its deadline probes no more members: it records the ones left as joining (not
// measured, so Degraded says why) and looks again soon; a later pass lets them join.
TEST_F(ClusterReconcilerTest, APassPastItsDeadlineLeavesTheRestJoining) {
  createCluster(R"({"replicas":2})");
  reconcile();  // creates the StatefulSet
  runPods();
  sync();
  const int calls = counter_->calls();
  controller::Context ctx;
  ctx.deadline = std::chrono::steady_clock::now() - milliseconds(1);
  auto result = reconciler_->reconcile({"shop", "sessions"}, ctx);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(result->requeue_after.has_value());
  EXPECT_EQ(counter_->calls(), calls);
  EXPECT_TRUE(published().empty());
  ClusterStatus s = status();
  ASSERT_EQ(s.members.size(), 2u);
  EXPECT_EQ(s.members[0].state, MemberState::kJoining);
  EXPECT_EQ(condition(s, kConditionDegraded)->reason, "StatsUnavailable");
  EXPECT_EQ(condition(s, kConditionDegraded)->message,
            "cannot read memcached stats: sessions-0: not measured in time; sessions-1: not "
            "measured in time");

  reconcile();
  EXPECT_EQ(published(), (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
}

// A pass waiting for a sweep (sweep_wait is 30 s here) waits no longer than its deadline, and
// records the sweep as still running.
TEST_F(ClusterReconcilerTest, ASweepWaitEndsAtThePassDeadline) {
  startCluster(3);
  sweeper_->hold();
  patchSpec(R"({"replicas":2})");
  reconcile();  // records the drain
  sync();
  controller::Context ctx;
  ctx.deadline = std::chrono::steady_clock::now() + milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  auto result = reconciler_->reconcile({"shop", "sessions"}, ctx);
  const auto took = std::chrono::steady_clock::now() - start;
  sweeper_->release();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_LT(took, seconds(5));
  ASSERT_TRUE(result->requeue_after.has_value());
  EXPECT_LE(*result->requeue_after, seconds(1));
  EXPECT_FALSE(status().drain->stale_copies_swept);
  EXPECT_EQ(published().size(), 3u);
}

// --- The Secrets a cluster references (spec.tls, spec.auth) ---

// Captures what the operator logs while it lives, so a test can grep the log for secrets.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
    level_ = spdlog::default_logger()->level();
    spdlog::default_logger()->set_level(spdlog::level::debug);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    spdlog::default_logger()->set_level(level_);
  }
  std::string text() {
    spdlog::default_logger()->flush();
    return out_.str();
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  spdlog::level::level_enum level_;
};

class ClusterReconcilerSecretsTest : public ClusterReconcilerTest {
 protected:
  static constexpr char kPassword[] = "Very-s3cret-Passw0rd";

  void SetUp() override {
    // The certificates are made for the real time, which the operator checks them at.
    clock_.advance(std::chrono::system_clock::now() - clock_.now());
    // spec.tls and spec.auth are parsed by cluster_spec.cc (another change); until it reads
    // them, these passes cannot see a referenced Secret.
    Json probe = Json::parse(R"({"metadata":{"name":"x","namespace":"y"},
        "spec":{"tls":{"secretName":"t"},"auth":{"secretName":"a"}}})");
    const ParsedSpec parsed = parseClusterSpec(probe);
    if (!parsed.spec.tls.enabled || !parsed.spec.auth.enabled) {
      GTEST_SKIP() << "spec.tls / spec.auth are not parsed in this build";
    }
  }
  void seedValidSecrets() {
    api_->seed(kSecretResource, testpki::secret("shop", "cache-tls", testpki::tlsData(leaf_, ca_)));
    seedAuth(std::string("app:") + kPassword + "\n");
  }
  void seedAuth(const std::string& file) {
    api_->seed(kSecretResource, testpki::secret("shop", "cache-auth", {{"authfile", file}}));
  }
  static std::string secureSpec(int replicas) {
    return R"({"replicas":)" + std::to_string(replicas) +
           R"(,"drain":{"minSeconds":0,"timeoutSeconds":600},
               "tls":{"secretName":"cache-tls"},"auth":{"secretName":"cache-auth"}})";
  }
  // Everything a user or another tool can read about the cluster: status, events, the
  // endpoints ConfigMap and the StatefulSet.
  std::string everythingPublic() {
    std::string all = cluster().serialize();
    for (const auto& e : events_.events()) all += e.reason + " " + e.message + "\n";
    if (auto cm = configMap()) all += cm->serialize();
    if (auto sts = api_->peek(res::kStatefulSet, "shop", "sessions")) all += sts->serialize();
    return all;
  }
  void expectNoSecretIn(const std::string& text) {
    EXPECT_EQ(text.find(kPassword), std::string::npos);
    EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos);
    // Nor the base64 of the key as the Secret carries it.
    const std::string key_b64 = absl::Base64Escape(leaf_.key_pem());
    EXPECT_EQ(text.find(key_b64.substr(40, 40)), std::string::npos);
  }

  testpki::Identity ca_ = testpki::newCa();
  testpki::Identity leaf_ = testpki::newLeaf(ca_);
};

TEST_F(ClusterReconcilerSecretsTest, AMissingSecretCreatesNoPodsAndIsReportedOnce) {
  LogCapture log;
  createCluster(secureSpec(2));
  controller::Result result;
  for (int i = 0; i < 3; ++i) result = reconcile();
  EXPECT_EQ(stsReplicas(), -1);  // no StatefulSet: its pods would mount a Secret that is not there
  ClusterStatus s = status();
  const Condition* degraded = condition(s, kConditionDegraded);
  EXPECT_EQ(degraded->status, "True");
  EXPECT_EQ(degraded->reason, kReasonTlsSecretInvalid);
  EXPECT_NE(degraded->message.find("Secret shop/cache-tls (spec.tls.secretName) does not exist"),
            std::string::npos) << degraded->message;
  EXPECT_NE(degraded->message.find("Secret shop/cache-auth"), std::string::npos);
  EXPECT_NE(degraded->message.find("no memcached pod"), std::string::npos);
  EXPECT_EQ(eventCount(kReasonTlsSecretInvalid), 1);
  EXPECT_EQ(eventCount(kReasonAuthSecretInvalid), 1);
  EXPECT_EQ(eventCount("ReconcileError"), 0);
  // Nothing wakes the cluster when the Secret appears: it looks again on its own.
  ASSERT_TRUE(result.requeue_after.has_value());
  EXPECT_LE(*result.requeue_after, std::chrono::milliseconds(30000));
  // Only GETs by name: never a list or watch of Secrets.
  for (const auto& a : api_->actions()) {
    if (a.resource == "/secrets") EXPECT_EQ(a.verb, Verb::kGet);
  }

  seedValidSecrets();
  converge();
  EXPECT_EQ(stsReplicas(), 2);
  EXPECT_EQ(published().size(), 2u);
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
  expectNoSecretIn(everythingPublic());
  expectNoSecretIn(log.text());
}

TEST_F(ClusterReconcilerSecretsTest, AnInvalidSecretHoldsScaleDownWithNothingDeleted) {
  LogCapture log;
  seedValidSecrets();
  createCluster(secureSpec(3));
  converge();
  ASSERT_EQ(published().size(), 3u);

  // The auth file is emptied, then the cluster is scaled down.
  seedAuth("");
  patchSpec(R"({"replicas":2})");
  for (int i = 0; i < 6; ++i) {
    reconcile();
    runPods();
    clock_.advance(seconds(5));
  }
  EXPECT_EQ(stsReplicas(), 3);
  EXPECT_TRUE(podExists(2));
  EXPECT_EQ(api_->peek(res::kStatefulSet, "shop", "sessions").has_value(), true);
  ClusterStatus s = status();
  EXPECT_EQ(condition(s, kConditionDegraded)->reason, kReasonAuthSecretInvalid);
  EXPECT_NE(condition(s, kConditionDegraded)->message.find("the auth file is empty"),
            std::string::npos);
  EXPECT_EQ(eventCount(kReasonAuthSecretInvalid), 1);  // one per distinct problem, not per pass

  // A different problem is a new event.
  seedAuth("no-colon\n");
  reconcile();
  EXPECT_EQ(eventCount(kReasonAuthSecretInvalid), 2);

  // Fixed: the scale-down goes on.
  seedAuth(std::string("app:") + kPassword + "\n");
  for (int i = 0; i < 6 && stsReplicas() != 2; ++i) {
    reconcile();
    runPods();
    clock_.advance(seconds(5));
  }
  EXPECT_EQ(stsReplicas(), 2);
  expectNoSecretIn(everythingPublic());
  expectNoSecretIn(log.text());
}

TEST_F(ClusterReconcilerSecretsTest, AChangedAuthFileChangesThePodTemplateAndAnInvalidOneDoesNot) {
  seedValidSecrets();
  createCluster(secureSpec(2));
  converge();
  const std::string before =
      api_->peek(res::kStatefulSet, "shop", "sessions")->at("spec").at("template").serialize();
  seedAuth("app:rotated-password\n");
  reconcile();
  const std::string rotated =
      api_->peek(res::kStatefulSet, "shop", "sessions")->at("spec").at("template").serialize();
  EXPECT_NE(rotated, before);  // the file's hash is in the template: the members restart
  seedAuth("");
  reconcile();
  EXPECT_EQ(api_->peek(res::kStatefulSet, "shop", "sessions")->at("spec").at("template").serialize(),
            rotated);
}

std::string leafSha(const testpki::Identity& id) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(id.cert.get(), &der);
  std::string out = sha256Hex(std::string(reinterpret_cast<char*>(der), len));
  OPENSSL_free(der);
  return out;
}

TEST_F(ClusterReconcilerSecretsTest, TheOperatorsConnectionsUseTheValidatedSecrets) {
  seedValidSecrets();
  for (int i = 0; i < 2; ++i) certificates_->serve(podIp(i), leafSha(leaf_));
  createCluster(secureSpec(2));
  converge();
  const auto asked = counter_->endpoints();
  ASSERT_FALSE(asked.empty());
  for (const auto& m : asked) {
    EXPECT_EQ(m.host, m.name + ".sessions.shop.svc.cluster.local");
    ASSERT_TRUE(m.security != nullptr);
    EXPECT_TRUE(m.security->tls != nullptr);
    ASSERT_TRUE(m.security->credentials.has_value());
    EXPECT_EQ(m.security->credentials->username, "app");
    EXPECT_EQ(m.security->credentials->password, kPassword);
    const auto options = connectOptions(m.security.get(), m.host);
    EXPECT_EQ(options.server_name, m.host);
  }
  // A plaintext cluster's connections stay plaintext.
  EXPECT_EQ(connectOptions(nullptr, "x").tls, nullptr);
}

TEST_F(ClusterReconcilerSecretsTest, ARotatedCertificateIsReloadedUntilEveryMemberServesIt) {
  seedValidSecrets();
  for (int i = 0; i < 2; ++i) certificates_->serve(podIp(i), leafSha(leaf_));
  createCluster(secureSpec(2));
  converge();
  ClusterStatus s = status();
  ASSERT_TRUE(s.tls.has_value());
  EXPECT_EQ(s.tls->certificate_sha256, leafSha(leaf_));
  EXPECT_EQ(s.tls->members_serving, 2);
  EXPECT_EQ(certificates_->reloads(), 0);
  // Steady state: nobody is asked again.
  const int looks = certificates_->looks();
  reconcile();
  EXPECT_EQ(certificates_->looks(), looks);

  // cert-manager renews the Secret; the kubelet has projected it into sessions-0 only.
  testpki::Identity renewed = testpki::newLeaf(ca_);
  api_->seed(kSecretResource, testpki::secret("shop", "cache-tls", testpki::tlsData(renewed, ca_)));
  certificates_->project(podIp(0), leafSha(renewed));
  auto result = reconcile();
  s = status();
  EXPECT_EQ(s.tls->certificate_sha256, leafSha(renewed));
  EXPECT_EQ(s.tls->members_serving, 1);
  EXPECT_EQ(s.tls->pending, std::vector<std::string>{"sessions-1"});
  ASSERT_TRUE(result.requeue_after.has_value());
  EXPECT_LE(*result.requeue_after, milliseconds(10000));
  EXPECT_EQ(eventCount("CertificatesReloaded"), 0);

  // Then into sessions-1: every member serves it, one event.
  certificates_->project(podIp(1), leafSha(renewed));
  reconcile();
  s = status();
  EXPECT_EQ(s.tls->members_serving, 2);
  EXPECT_TRUE(s.tls->pending.empty());
  EXPECT_EQ(eventCount("CertificatesReloaded"), 1);
  reconcile();
  EXPECT_EQ(eventCount("CertificatesReloaded"), 1);
}

TEST_F(ClusterReconcilerSecretsTest, AFailedReloadIsDegradedOnceAndRetried) {
  seedValidSecrets();
  for (int i = 0; i < 2; ++i) certificates_->serve(podIp(i), leafSha(leaf_));
  createCluster(secureSpec(2));
  converge();
  testpki::Identity renewed = testpki::newLeaf(ca_);
  api_->seed(kSecretResource, testpki::secret("shop", "cache-tls", testpki::tlsData(renewed, ca_)));
  certificates_->project(podIp(0), leafSha(renewed));
  certificates_->fail(podIp(1), true);
  for (int i = 0; i < 3; ++i) reconcile();
  const ClusterStatus s = status();
  const Condition* degraded = condition(s, kConditionDegraded);
  EXPECT_EQ(degraded->reason, "CertificateReloadFailed");
  EXPECT_NE(degraded->message.find("sessions-1"), std::string::npos);
  EXPECT_EQ(eventCount("CertificateReloadFailed"), 1);
  certificates_->fail(podIp(1), false);
  certificates_->project(podIp(1), leafSha(renewed));
  reconcile();
  EXPECT_EQ(condition(status(), kConditionDegraded)->status, "False");
  EXPECT_EQ(eventCount("CertificatesReloaded"), 1);
}

TEST_F(ClusterReconcilerSecretsTest, NoReloadWhileTheTlsSecretIsInvalid) {
  seedValidSecrets();
  for (int i = 0; i < 2; ++i) certificates_->serve(podIp(i), leafSha(leaf_));
  createCluster(secureSpec(2));
  converge();
  const ClusterStatus before = status();
  testpki::Identity expired = testpki::newLeaf(ca_, "memcached", -std::chrono::hours(48),
                                               -std::chrono::hours(1));
  api_->seed(kSecretResource, testpki::secret("shop", "cache-tls", testpki::tlsData(expired, ca_)));
  for (int i = 0; i < 3; ++i) reconcile();
  EXPECT_EQ(certificates_->reloads(), 0);
  EXPECT_EQ(status().tls, before.tls);
  EXPECT_EQ(condition(status(), kConditionDegraded)->reason, kReasonTlsSecretInvalid);
}

}  // namespace
}  // namespace mcop::memcached
