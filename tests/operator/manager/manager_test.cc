// Manager against FakeApiClient: probes answer from start to the very end of the stop; the
// stop order (workers, then stop hooks, then the Lease, then informers, then HTTP); the Lease
// released only after the workers stopped; a lost Lease ends the run with exit code 1 and
// fences writes at once.
#include "manager/manager.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "kube/object_meta.h"
#include "testing/fake_api_client.h"

namespace mcop::manager {
namespace {

using namespace std::chrono_literals;
using kube::FakeApiClient;
using kube::Object;
namespace resources = kube::resources;

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The status line of GET path, or "" when nothing answers.
std::string statusOf(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)::write(fd, req.data(), req.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  ::close(fd);
  return out.substr(0, out.find("\r\n"));
}

// Records the order in which the parts of a stop happen.
struct Trace {
  std::mutex mu;
  std::vector<std::string> steps;
  void add(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    steps.push_back(s);
  }
  std::vector<std::string> get() {
    std::lock_guard<std::mutex> lock(mu);
    return steps;
  }
};

// A reconcile that takes a while, so a stop finds it running.
class SlowReconciler : public controller::Reconciler {
 public:
  explicit SlowReconciler(Trace& trace) : trace_(trace) {}
  absl::StatusOr<controller::Result> reconcile(const controller::Request& req,
                                               const controller::Context& ctx) override {
    ++calls;
    trace_.add("reconcile started");
    std::this_thread::sleep_for(300ms);
    trace_.add("reconcile finished");
    return controller::Result{};
  }
  std::atomic<int> calls{0};

 private:
  Trace& trace_;
};

Object mcc(const std::string& name) {
  return Object::parse(R"({"apiVersion":"memcached.operator.io/v1alpha1","kind":"MemcachedCluster",
    "metadata":{"name":")" + name + R"(","namespace":"shop"},"spec":{"replicas":1}})");
}

struct Fixture {
  explicit Fixture(std::optional<controller::LeaderElectionConfig> le = std::nullopt) {
    ManagerOptions o;
    o.metrics_bind = "127.0.0.1:" + std::to_string(metrics_port);
    o.health_bind = "127.0.0.1:" + std::to_string(health_port);
    o.leader_election = le;
    o.informers.initial_backoff = 1ms;
    o.metrics = &registry;
    o.force_exit = [this] { ++forced_exits; };
    manager = std::make_unique<Manager>(api, api, clock, o);
    auto rec = std::make_unique<SlowReconciler>(trace);
    reconciler = rec.get();
    controller::ControllerOptions co;
    co.workers = 1;
    controller::Controller& c = manager->addController("test", std::move(rec), co);
    c.watchPrimary(manager->informers().informer(resources::kMemcachedCluster));
  }
  int metrics_port = freePort();
  int health_port = freePort();
  util::RealClock clock;
  std::shared_ptr<FakeApiClient> api = std::make_shared<FakeApiClient>();
  util::MetricsRegistry registry;
  Trace trace;
  std::atomic<int> forced_exits{0};
  std::unique_ptr<Manager> manager;
  SlowReconciler* reconciler = nullptr;
};

TEST(Manager, StopsWorkersThenHooksAndAnswersProbesToTheEnd) {
  Fixture f;
  ASSERT_TRUE(f.api->create(resources::kMemcachedCluster, "shop", mcc("a")).ok());
  f.manager->addStopHook([&] {
    f.trace.add("hook");
    // Probes still answer while stopping.
    f.trace.add("healthz during stop: " + statusOf(f.health_port, "/healthz"));
  });
  ASSERT_TRUE(f.manager->start().ok());
  EXPECT_EQ(statusOf(f.health_port, "/healthz"), "HTTP/1.1 200 OK");
  ASSERT_TRUE(eventually([&] { return statusOf(f.health_port, "/readyz") == "HTTP/1.1 200 OK"; }));
  ASSERT_TRUE(eventually([&] { return f.reconciler->calls.load() == 1; }));
  EXPECT_NE(statusOf(f.metrics_port, "/metrics").find("200"), std::string::npos);
  EXPECT_EQ(statusOf(f.metrics_port, "/healthz"), "HTTP/1.1 404 Not Found") << "probes on their own address";
  f.manager->requestShutdown(0, "test");
  EXPECT_EQ(f.manager->wait(), 0);
  EXPECT_EQ(f.trace.get(), (std::vector<std::string>{"reconcile started", "reconcile finished", "hook",
                                                     "healthz during stop: HTTP/1.1 200 OK"}));
  EXPECT_EQ(statusOf(f.health_port, "/healthz"), "") << "HTTP stops last, but it stops";
  EXPECT_EQ(f.forced_exits.load(), 0);
}

TEST(Manager, ReadyzWaitsForTheCaches) {
  Fixture f;
  f.api->failNext(kube::Verb::kList, resources::kMemcachedCluster, absl::UnavailableError("500"), 1000000);
  ASSERT_TRUE(f.manager->start().ok());
  EXPECT_EQ(statusOf(f.health_port, "/readyz"), "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(statusOf(f.health_port, "/healthz"), "HTTP/1.1 200 OK");
  f.manager->requestShutdown(0, "test");
  EXPECT_EQ(f.manager->wait(), 0);
}

TEST(Manager, BindFailureIsReturnedByRun) {
  // The port held by a socket of its own, as another process's would be.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ManagerOptions o;
  o.metrics_bind = "0";
  o.health_bind = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  util::MetricsRegistry registry;
  o.metrics = &registry;
  util::RealClock clock;
  Manager m(std::make_shared<FakeApiClient>(), nullptr, clock, o);
  auto code = m.run();
  ::close(fd);
  ASSERT_FALSE(code.ok());
  EXPECT_NE(code.status().message().find("--health-probe-bind-address"), std::string::npos) << code.status();
}

controller::LeaderElectionConfig fastLease(const std::string& id) {
  controller::LeaderElectionConfig le;
  le.lease_namespace = "ops";
  le.identity = id;
  le.lease_duration = 3s;
  le.renew_deadline = 2s;
  le.retry_period = 100ms;
  return le;
}

std::string holder(FakeApiClient& api) {
  auto l = api.peek(resources::kLease, "ops", "memcached-operator-leader");
  return l ? kube::stringField(*l, {"spec", "holderIdentity"}) : "<none>";
}

TEST(Manager, ReleasesTheLeaseOnlyAfterWorkersAndHooksStopped) {
  Fixture f(fastLease("me"));
  ASSERT_TRUE(f.api->create(resources::kMemcachedCluster, "shop", mcc("a")).ok());
  f.manager->addStopHook([&] { f.trace.add("hook, lease held by " + holder(*f.api)); });
  ASSERT_TRUE(f.manager->start().ok());
  ASSERT_TRUE(eventually([&] { return f.reconciler->calls.load() == 1; })) << "the leader reconciles";
  EXPECT_EQ(holder(*f.api), "me");
  EXPECT_EQ(f.registry.gauge("memcached_operator_leader", "").value(), 1);
  f.manager->requestShutdown(0, "test");
  EXPECT_EQ(f.manager->wait(), 0);
  EXPECT_EQ(f.trace.get(), (std::vector<std::string>{"reconcile started", "reconcile finished",
                                                     "hook, lease held by me"}));
  EXPECT_EQ(holder(*f.api), "") << "released for a fast hand-over";
  EXPECT_EQ(f.registry.gauge("memcached_operator_leader", "").value(), 0);
}

TEST(Manager, LostLeaseFencesWritesAndExitsNonZero) {
  Fixture f(fastLease("me"));
  ASSERT_TRUE(f.manager->start().ok());
  ASSERT_TRUE(eventually([&] { return holder(*f.api) == "me"; }));
  ASSERT_TRUE(eventually([&] { return f.registry.gauge("memcached_operator_leader", "").value() == 1; }));
  auto exit_code = std::async(std::launch::async, [&] { return f.manager->wait(); });
  // Another candidate takes the Lease (as after a long pause of ours).
  Object l = *f.api->peek(resources::kLease, "ops", "memcached-operator-leader");
  l["spec"]["holderIdentity"] = Object::string("other");
  ASSERT_TRUE(f.api->update(resources::kLease, l, "").ok());
  ASSERT_EQ(exit_code.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(exit_code.get(), 1);
  auto refused = f.manager->writer()->create(resources::kConfigMap, "shop",
                                             Object::parse(R"({"metadata":{"name":"x"}})"));
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_EQ(holder(*f.api), "other") << "a lost Lease is not released";
  EXPECT_EQ(f.forced_exits.load(), 0) << "the stop took less than the grace";
}

}  // namespace
}  // namespace mcop::manager

namespace mcop::manager {
namespace {

size_t threadsOfThisProcess() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

TEST(IoThreads, FollowWorkersAndInformersWithinBounds) {
  EXPECT_EQ(ioThreads(1, 1), 2u);    // never fewer than 2
  EXPECT_EQ(ioThreads(4, 8), 2u);    // the defaults: 12 streams
  EXPECT_EQ(ioThreads(16, 8), 3u);   // 24 streams
  EXPECT_EQ(ioThreads(17, 8), 4u);   // 25 streams: one more thread
  EXPECT_EQ(ioThreads(64, 8), 8u);   // capped
  EXPECT_EQ(ioThreads(-3, 0), 2u);
}

// Each TEST runs in a process of its own (gtest_discover_tests), so this one sees the pool
// created here and nowhere else.
TEST(IoThreads, SizeThePoolOnceBeforeFirstUse) {
  const size_t before = threadsOfThisProcess();
  ASSERT_TRUE(initIoThreads(3).ok());
  // The pool starts its threads when it is created (cpprestsdk's default would start 40).
  EXPECT_EQ(threadsOfThisProcess(), before + 3);
  absl::Status again = initIoThreads(5);
  EXPECT_TRUE(absl::IsFailedPrecondition(again)) << again;
  EXPECT_EQ(threadsOfThisProcess(), before + 3);
}

}  // namespace
}  // namespace mcop::manager

namespace mcop::manager {
namespace {

// Each TEST runs in a process of its own (gtest_discover_tests): the signal mask and the
// signals sent here stay in it.
TEST(ManagerSignals, SigtermStopsGracefullyWithoutAThreadOfItsOwn) {
  blockShutdownSignals();
  Fixture f;
  const size_t before = threadsOfThisProcess();
  f.manager->shutdownOnSignals();
  EXPECT_EQ(threadsOfThisProcess(), before) << "wait()'s own thread takes the signals";
  ASSERT_TRUE(f.manager->start().ok());
  std::thread killer([] {
    std::this_thread::sleep_for(200ms);
    ::kill(::getpid(), SIGTERM);
  });
  EXPECT_EQ(f.manager->wait(), 0);
  killer.join();
  EXPECT_EQ(f.forced_exits.load(), 0);
}

// The Lease lost (or any request from another thread) still wakes a wait() that sits in
// sigwait(), with that request's exit code.
TEST(ManagerSignals, ARequestFromAnotherThreadWakesTheSignalWait) {
  blockShutdownSignals();
  Fixture f;
  f.manager->shutdownOnSignals();
  ASSERT_TRUE(f.manager->start().ok());
  std::thread requester([&] {
    std::this_thread::sleep_for(200ms);
    f.manager->requestShutdown(1, "leader election lost");
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(f.manager->wait(), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  requester.join();
}

}  // namespace
}  // namespace mcop::manager
