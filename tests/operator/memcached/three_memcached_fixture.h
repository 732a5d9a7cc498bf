// ThreeMemcachedTest: a GoogleTest fixture with three real memcached processes (members 0, 1
// and 2, named cache-0..2) and the rings a warm transition copies between (two_ = {0, 1},
// three_ = {0, 1, 2}), plus the helpers that fill a member and list what it holds. Shared by the
// tests of the warm copy engine and of the runner that drives it. Test-only.
// Thread-safety: owned by one test; the admin connections are not shared between threads.
#pragma once

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "clientconfig/memcached_admin.h"
#include "clientconfig/snapshot.h"
#include "libclientconfig/memcached_process.h"

namespace mcop::memcached {

class ThreeMemcachedTest : public testing::Test {
 protected:
  void SetUp() override {
    for (auto* p : {&a_, &b_, &c_}) ASSERT_TRUE(p->running());
    for (auto* p : {&a_, &b_, &c_}) {
      auto admin = clientconfig::MemcachedAdmin::connect("127.0.0.1", p->port(),
                                                         std::chrono::milliseconds(2000));
      ASSERT_TRUE(admin.ok()) << admin.error().toString();
      admins_.push_back(std::move(*admin));
    }
    two_ = ring({0, 1});
    three_ = ring({0, 1, 2});
  }

  // A ring of the named members (0 = a, 1 = b, 2 = c), hashed by their stable host names.
  clientconfig::SnapshotPtr ring(const std::vector<int>& members) {
    const clientconfig::testing::MemcachedProcess* procs[] = {&a_, &b_, &c_};
    std::vector<clientconfig::Server> servers;
    for (int m : members) {
      const std::string name = "cache-" + std::to_string(m);
      servers.push_back({name, name + ".cache.shop.svc", "127.0.0.1", procs[m]->port(), 1, "active"});
    }
    auto snapshot = clientconfig::makeSnapshot("shop/cache", members.size(), clientconfig::Hashing::KetamaLibmemcached,
                                               servers);
    EXPECT_TRUE(snapshot.ok()) << snapshot.error().toString();
    return *snapshot;
  }

  // `n` keys that `from` routes to member index `owner`, named "<prefix><i>", i of 5 digits (so
  // that every key of a prefix, and so every item of one value size, has the same size).
  static std::vector<std::string> keysOwned(const clientconfig::Snapshot& from, uint32_t owner, int n,
                                            const std::string& prefix) {
    std::vector<std::string> keys;
    for (int i = 0; static_cast<int>(keys.size()) < n; ++i) {
      std::string n = std::to_string(i);
      std::string k = prefix + std::string(5 - std::min<size_t>(5, n.size()), '0') + n;
      if (from.serverIndex(k) == owner) keys.push_back(k);
    }
    return keys;
  }

  // The host of the server `snapshot` routes `key` to.
  static std::string ownerHost(const clientconfig::Snapshot& snapshot, const std::string& key) {
    return snapshot.servers()[snapshot.serverIndex(key)].host;
  }

  // Keys of a's that move to c in 2 → 3, out of `n` keys a owns.
  std::vector<std::string> movingKeys(int n) {
    std::vector<std::string> moving;
    for (const auto& k : keysOwned(*two_, 0, n, "item:")) {
      if (three_->serverIndex(k) == 2) moving.push_back(k);
    }
    return moving;
  }

  static std::string valueOf(const std::string& key, size_t size = 100) {
    std::string v = key + ":";
    while (v.size() < size) v += static_cast<char>('a' + v.size() % 26);
    v.resize(size);
    return v;
  }

  // Flags i % flag_mod (0: none; memcached stores non-zero flags in 4 more bytes).
  void put(int member, const std::vector<std::string>& keys, int64_t ttl = 0, uint32_t flag_mod = 7) {
    std::vector<clientconfig::MemcachedAdmin::MetaSetRequest> reqs;
    for (size_t i = 0; i < keys.size(); ++i) {
      reqs.push_back({keys[i], valueOf(keys[i]), ttl, flag_mod ? static_cast<uint32_t>(i % flag_mod) : 0});
    }
    auto stored = admins_[member]->metaSetBatch(reqs, clientconfig::MetaSetMode::Set);
    ASSERT_TRUE(stored.ok()) << stored.error().toString();
  }

  std::set<std::string> keysOn(int member) {
    auto items = admins_[member]->metadumpAll();
    for (int i = 0; i < 500 && !items.ok() && clientconfig::MemcachedAdmin::isCrawlerBusy(items.error()); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      items = admins_[member]->metadumpAll();
    }
    EXPECT_TRUE(items.ok()) << items.error().toString();
    std::set<std::string> keys;
    if (items.ok()) {
      for (const auto& it : *items) keys.insert(it.key);
    }
    return keys;
  }

  clientconfig::testing::MemcachedProcess a_, b_, c_;
  std::vector<clientconfig::MemcachedAdminPtr> admins_;
  clientconfig::SnapshotPtr two_, three_;
};

}  // namespace mcop::memcached
