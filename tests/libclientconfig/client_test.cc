// Client tests against real memcached processes: routing by our ring, reloads that
// close connections to removed servers and keep the others, a kubelet swap with
// endpoints.json briefly missing, previous-owner fallback, timeouts.
#include "clientconfig/client.h"

#include <gtest/gtest.h>
#include <thread>

#include "clientconfig/memcached_admin.h"
#include "memcached_process.h"
#include "test_util.h"

namespace clientconfig {
namespace {

using namespace std::chrono_literals;
using testing::KubeletProjection;
using testing::makeTempDir;
using testing::MemcachedProcess;

std::string serverJson(int i, uint16_t port, const std::string& state = "active") {
  return "{\"name\": \"mc-" + std::to_string(i) + "\", \"host\": \"mc-" + std::to_string(i) +
         ".mc.test.svc\", \"address\": \"127.0.0.1\", \"port\": " + std::to_string(port) +
         ", \"weight\": 1, \"state\": \"" + state + "\"}";
}

// endpoints.json over the given servers (indexes into procs).
std::string endpointsFor(const std::vector<std::unique_ptr<MemcachedProcess>>& procs, const std::vector<int>& members,
                         unsigned version, const std::vector<int>& previous = {},
                         const std::vector<std::string>& states = {}) {
  auto list = [&](const std::vector<int>& idx) {
    std::string out = "[";
    for (size_t j = 0; j < idx.size(); ++j) {
      if (j) out += ", ";
      out += serverJson(idx[j], procs[idx[j]]->port(), j < states.size() ? states[j] : "active");
    }
    return out + "]";
  };
  std::string prev = "null";
  if (!previous.empty())
    prev = "{\"version\": " + std::to_string(version - 1) + ", \"hashing\": \"ketama-libmemcached\", \"servers\": " +
           list(previous) + "}";
  return "{\"schema\": \"memcached.operator.io/endpoints/v1\", \"cluster\": \"test/mc\", \"version\": " +
         std::to_string(version) + ", \"hashing\": \"ketama-libmemcached\", \"servers\": " + list(members) +
         ", \"previous\": " + prev + "}";
}

class ClientTest : public ::testing::Test {
protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      procs_.push_back(std::make_unique<MemcachedProcess>());
      ASSERT_TRUE(procs_.back()->running());
    }
  }
  MemcachedAdminPtr admin(int i) {
    auto a = MemcachedAdmin::connect("127.0.0.1", procs_[i]->port(), 1000ms);
    EXPECT_TRUE(a.ok());
    return a.ok() ? std::move(*a) : nullptr;
  }
  int procIndexOf(const Server* s) {
    for (size_t i = 0; i < procs_.size(); ++i) {
      if (procs_[i]->port() == s->port) return static_cast<int>(i);
    }
    return -1;
  }
  std::vector<std::unique_ptr<MemcachedProcess>> procs_;
};

TEST_F(ClientTest, OperationsLandOnTheRingOwner) {
  auto snap = parseSnapshot(endpointsFor(procs_, {0, 1, 2}, 1));
  ASSERT_TRUE(snap.ok()) << snap.error().toString();
  auto c = Client::create(*snap);
  ASSERT_TRUE(c.ok());
  Client& client = **c;
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("user:" + std::to_string(i));
  for (const auto& k : keys) ASSERT_TRUE(client.set(k, "v-" + k, 0, 7).ok());
  // Each key is on exactly the server our ring names, and nowhere else.
  std::vector<MemcachedAdminPtr> admins;
  for (int i = 0; i < 3; ++i) admins.push_back(admin(i));
  std::vector<int> per_server(3);
  for (const auto& k : keys) {
    int owner = procIndexOf((*snap)->route(k).owner);
    ++per_server[owner];
    for (int i = 0; i < 3; ++i) {
      auto g = admins[i]->metaGet(k);
      ASSERT_TRUE(g.ok());
      EXPECT_EQ(g->has_value(), i == owner) << k;
    }
  }
  for (int n : per_server) EXPECT_GT(n, 20);

  auto g = client.get("user:5");
  ASSERT_TRUE(g.ok() && g->has_value());
  EXPECT_EQ((*g)->value, "v-user:5");
  EXPECT_EQ((*g)->flags, 7u);
  EXPECT_FALSE(client.get("nope")->has_value());
  EXPECT_FALSE(*client.add("user:5", "x"));
  EXPECT_TRUE(*client.add("fresh", "x"));
  EXPECT_TRUE(*client.touch("fresh", 100));
  EXPECT_FALSE(*client.touch("absent", 100));
  EXPECT_TRUE(*client.remove("fresh"));
  EXPECT_FALSE(*client.remove("fresh"));
  auto multi = client.getMulti({"user:1", "user:2", "user:150", "missing"});
  ASSERT_TRUE(multi.ok()) << multi.error().toString();
  EXPECT_EQ(multi->size(), 3u);
  EXPECT_EQ(multi->at("user:150").value, "v-user:150");
  EXPECT_EQ(client.connectionCount(), 3u);
  EXPECT_FALSE(client.set("bad key", "v").ok());
  EXPECT_TRUE(client.set("empty", "").ok());
  EXPECT_EQ((*client.get("empty"))->value, "");
}

TEST_F(ClientTest, FollowsReloadsAndClosesRemovedServers) {
  KubeletProjection proj(makeTempDir("cc-client-"));
  proj.project({{"endpoints.json", endpointsFor(procs_, {0, 1, 2}, 1)}});
  WatcherOptions wo;
  wo.dir = proj.dir();
  auto w = Watcher::start(wo);
  ASSERT_TRUE(w.ok());
  auto c = Client::create(**w);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE((*c)->set("k" + std::to_string(i), "v").ok());
  ASSERT_EQ((*c)->connectionCount(), 3u);
  auto a2 = admin(2);
  // The client + this admin (the fixture's readiness probe may still be closing).
  auto conns_before = std::stoi(a2->stats()->at("curr_connections"));
  for (int i = 0; i < 1000 && conns_before != 2; ++i) {
    std::this_thread::sleep_for(5ms);
    conns_before = std::stoi(a2->stats()->at("curr_connections"));
  }
  EXPECT_EQ(conns_before, 2);

  // Server 2 leaves the list: the client closes its connection at the reload,
  // without any further request from the application.
  proj.project({{"endpoints.json", endpointsFor(procs_, {0, 1}, 2)}});
  int now = conns_before;
  for (int i = 0; i < 1000 && now != 1; ++i) {
    std::this_thread::sleep_for(5ms);
    now = std::stoi(a2->stats()->at("curr_connections"));
  }
  EXPECT_EQ(now, 1);
  EXPECT_EQ((*c)->connectionCount(), 2u);
  EXPECT_EQ((*c)->snapshot()->version(), 2u);
  for (int i = 0; i < 100; ++i) {
    std::string k = "n" + std::to_string(i);
    ASSERT_TRUE((*c)->set(k, "v").ok());
    auto g = a2->metaGet(k);
    ASSERT_TRUE(g.ok());
    EXPECT_FALSE(g->has_value()) << "key written to a removed server";
  }
}

// memcached's total_connections: every connection ever accepted (the admin's own included).
int totalConnections(MemcachedAdmin& admin) {
  auto s = admin.stats();
  return s.ok() ? std::stoi(s->at("total_connections")) : -1;
}

// A reload that keeps the same servers (a new version: one member turned unready, a
// previous ring listed) keeps every connection: the client compares endpoints, not
// snapshots.
TEST_F(ClientTest, ReloadWithTheSameServersKeepsConnections) {
  KubeletProjection proj(makeTempDir("cc-client-same-"));
  proj.project({{"endpoints.json", endpointsFor(procs_, {0, 1, 2}, 1)}});
  WatcherOptions wo;
  wo.dir = proj.dir();
  wo.use_inotify = false;
  wo.poll_interval = 1h;
  auto w = Watcher::start(wo);
  ASSERT_TRUE(w.ok());
  auto c = Client::create(**w);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE((*c)->set("k" + std::to_string(i), "v").ok());
  ASSERT_EQ((*c)->connectionCount(), 3u);
  std::vector<MemcachedAdminPtr> admins;
  std::vector<int> before;
  for (int i = 0; i < 3; ++i) {
    admins.push_back(admin(i));
    before.push_back(totalConnections(*admins[i]));
  }
  proj.project({{"endpoints.json", endpointsFor(procs_, {0, 1, 2}, 2, {0, 1, 2}, {"active", "unready", "active"})}});
  ASSERT_TRUE((*w)->reloadNow().ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE((*c)->set("k" + std::to_string(i), "w").ok());
  EXPECT_EQ((*c)->snapshot()->version(), 2u);
  EXPECT_EQ((*c)->connectionCount(), 3u);
  // The admins keep their one connection each: any new connection is the client reconnecting.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(totalConnections(*admins[i]), before[i]) << "server " << i << " was reconnected";
}

// The kubelet moment where DIR/endpoints.json dangles (after the ..data rename, its
// payload not in ..data) while DIR/servers resolves: the client keeps its snapshot
// and its connections, instead of switching to the servers file (DNS names as
// addresses: every connection dropped, every request failing) and back.
TEST_F(ClientTest, EndpointsJsonMissingMidSwapKeepsConnections) {
  KubeletProjection proj(makeTempDir("cc-client-swap-"));
  std::string servers_file = "mc-0.mc.test.svc:" + std::to_string(procs_[0]->port()) + "\n";
  proj.project({{"endpoints.json", endpointsFor(procs_, {0, 1, 2}, 1)}, {"servers", servers_file}});
  WatcherOptions wo;
  wo.dir = proj.dir();
  wo.use_inotify = false;
  wo.poll_interval = 1h;
  auto w = Watcher::start(wo);
  ASSERT_TRUE(w.ok());
  auto c = Client::create(**w);
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 100; ++i) ASSERT_TRUE((*c)->set("k" + std::to_string(i), "v").ok());
  ASSERT_EQ((*c)->connectionCount(), 3u);
  std::vector<MemcachedAdminPtr> admins;
  std::vector<int> before;
  for (int i = 0; i < 3; ++i) {
    admins.push_back(admin(i));
    before.push_back(totalConnections(*admins[i]));
  }
  proj.prepare({{"servers", servers_file}});
  proj.swap();
  (*w)->reloadNow().ok();
  for (int i = 0; i < 100; ++i) {
    auto g = (*c)->get("k" + std::to_string(i));
    ASSERT_TRUE(g.ok()) << g.error().toString();
    EXPECT_TRUE(g->has_value());
  }
  EXPECT_EQ((*c)->snapshot()->version(), 1u);
  EXPECT_EQ((*c)->connectionCount(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(totalConnections(*admins[i]), before[i]) << "server " << i << " was reconnected";
}

TEST_F(ClientTest, MissFallsBackToPreviousOwner) {
  // Transition 2 -> 3 servers: keys that moved to server 2 are still on their old owner.
  auto snap = parseSnapshot(endpointsFor(procs_, {0, 1, 2}, 2, {0, 1}));
  ASSERT_TRUE(snap.ok()) << snap.error().toString();
  std::string moved_key;
  for (int i = 0; i < 1000 && moved_key.empty(); ++i) {
    std::string k = "product:" + std::to_string(i);
    if ((*snap)->route(k).previous_owner != nullptr) moved_key = k;
  }
  ASSERT_FALSE(moved_key.empty());
  Route r = (*snap)->route(moved_key);
  ASSERT_TRUE(*admin(procIndexOf(r.previous_owner))->metaSet(moved_key, "old-home", 0, 3));
  ClientOptions no_fallback;
  no_fallback.fallback_to_previous = false;
  auto c2 = Client::create(*snap, no_fallback);
  EXPECT_FALSE((*c2)->get(moved_key)->has_value());
  ClientOptions no_backfill;
  no_backfill.backfill = false;
  auto c3 = Client::create(*snap, no_backfill);
  auto m = (*c3)->getMulti({moved_key});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->at(moved_key).value, "old-home");
  EXPECT_FALSE(*admin(procIndexOf(r.owner))->metaGet(moved_key)) << "backfill = false never writes the owner";
  auto c = Client::create(*snap);
  auto g = (*c)->get(moved_key);
  ASSERT_TRUE(g.ok() && g->has_value());
  EXPECT_EQ((*g)->value, "old-home");
  EXPECT_EQ((*g)->flags, 3u);
  // The hit was backfilled onto the new owner: the next read is served there.
  auto on_owner = admin(procIndexOf(r.owner))->metaGet(moved_key);
  ASSERT_TRUE(on_owner.ok() && on_owner->has_value());
  EXPECT_EQ((*on_owner)->value, "old-home");
  EXPECT_EQ((*on_owner)->flags, 3u);
  EXPECT_EQ((*c)->stats().backfills, 1u);
  EXPECT_TRUE((*c2)->get(moved_key)->has_value());
}

TEST_F(ClientTest, FrozenServerTimesOut) {
  auto snap = parseSnapshot(endpointsFor(procs_, {0}, 1));
  ClientOptions o;
  o.io_timeout = 200ms;
  auto c = Client::create(*snap, o);
  ASSERT_TRUE((*c)->set("a", "b").ok());
  procs_[0]->pause();
  auto start = std::chrono::steady_clock::now();
  auto g = (*c)->get("a");
  auto took = std::chrono::steady_clock::now() - start;
  procs_[0]->resume();
  EXPECT_FALSE(g.ok()) << (g.ok() ? (g->has_value() ? (*g)->value : "miss") : "") << " took "
                       << std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  EXPECT_LT(took, 3s);
}

TEST_F(ClientTest, DeadServerIsAnError) {
  auto snap = parseSnapshot(endpointsFor(procs_, {0}, 1));
  auto c = Client::create(*snap);
  procs_[0]->stop();
  auto start = std::chrono::steady_clock::now();
  auto s = (*c)->set("a", "b");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::Unavailable) << s.error().toString();
  EXPECT_NE(s.error().message.find("mc-0"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(ClientTest, FailFastOnNotActiveOwner) {
  auto snap = parseSnapshot(endpointsFor(procs_, {0}, 1, {}, {"not-ready"}));
  ASSERT_TRUE(snap.ok());
  ClientOptions o;
  o.fail_fast_not_active = true;
  auto c = Client::create(*snap, o);
  auto s = (*c)->set("a", "b");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not-ready"), std::string::npos);
  EXPECT_EQ((*c)->connectionCount(), 0u);
  // Without the option the member is still used: not-ready keeps its ring slot.
  auto c2 = Client::create(*snap);
  EXPECT_TRUE((*c2)->set("a", "b").ok());
}

} // namespace
} // namespace clientconfig
