// MemcachedStaleCopySweeper against a real memcached: what it deletes, how it waits out
// memcached's busy LRU crawler (BUSY answers to lru_crawler metadump), and how its budget and
// its SweepControl stop it.
#include "memcached/stale_copy_sweeper.h"

#include <future>
#include <mutex>

#include <gtest/gtest.h>

#include "clientconfig/memcached_admin.h"
#include "libclientconfig/memcached_process.h"

namespace mcop::memcached {
namespace {

using clientconfig::MemcachedAdmin;
using clientconfig::testing::MemcachedProcess;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Counts checks and pauses; can stop the sweep after a number of checks or at the first pause.
class TestControl : public SweepControl {
 public:
  absl::Status check() const override {
    std::lock_guard<std::mutex> lock(mu_);
    ++checks_;
    if (stop_after_checks_ > 0 && checks_ > stop_after_checks_) return stop_;
    if (stop_at_pause_ && pauses_ > 0) return stop_;
    return absl::OkStatus();
  }
  void pause(milliseconds duration) const override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++pauses_;
    }
    std::this_thread::sleep_for(duration);
  }

  void stopAfterChecks(int n) { stop_after_checks_ = n; }
  void stopAtFirstPause() { stop_at_pause_ = true; }
  int pauses() const {
    std::lock_guard<std::mutex> lock(mu_);
    return pauses_;
  }

 private:
  mutable std::mutex mu_;
  mutable int checks_ = 0;
  mutable int pauses_ = 0;
  int stop_after_checks_ = 0;
  bool stop_at_pause_ = false;
  absl::Status stop_ = absl::CancelledError("sweep cancelled: test");
};

class StaleCopySweeperTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.running());
    auto admin = MemcachedAdmin::connect("127.0.0.1", server_.port(), milliseconds(2000));
    ASSERT_TRUE(admin.ok()) << admin.error().toString();
    admin_ = std::move(*admin);
    // Member 0 is the real server; member 1 is never contacted (only its keys are deleted).
    std::vector<clientconfig::Server> servers{
        {"cache-0", "cache-0.cache.shop.svc", "127.0.0.1", server_.port(), 1, "active"},
        {"cache-1", "cache-1.cache.shop.svc", "127.0.0.1", 1, 1, "active"}};
    auto ring = clientconfig::makeSnapshot("shop/cache", 3,
                                           clientconfig::Hashing::KetamaLibmemcached, servers);
    ASSERT_TRUE(ring.ok()) << ring.error().toString();
    ring_ = *ring;
  }

  // Writes `n` keys to the real server; returns how many of them the ring gives to cache-1.
  uint64_t fill(int n) {
    std::vector<MemcachedAdmin::MetaSetRequest> items;
    uint64_t elsewhere = 0;
    for (int i = 0; i < n; ++i) {
      items.push_back({"product:" + std::to_string(i), "v1", 0, 0});
      if (ring_->serverIndex(items.back().key) != 0) ++elsewhere;
    }
    auto stored = admin_->metaSetBatch(items, clientconfig::MetaSetMode::Set);
    EXPECT_TRUE(stored.ok()) << stored.error().toString();
    return elsewhere;
  }

  // memcached's crawler walks the LRUs for itself, asleep 100 ms every 1000 items so that it
  // lasts: while it runs, every lru_crawler metadump is answered BUSY.
  void busyCrawler() {
    ASSERT_EQ(*admin_->command("lru_crawler sleep 100000"), "OK");
    std::string started;
    for (int i = 0; i < 100 && started != "OK"; ++i) {
      started = *admin_->command("lru_crawler crawl all");  // BUSY while an autocrawl runs
      if (started != "OK") std::this_thread::sleep_for(milliseconds(20));
    }
    ASSERT_EQ(started, "OK");
    auto probe = admin_->metadumpAll();
    ASSERT_FALSE(probe.ok());
    ASSERT_TRUE(MemcachedAdmin::isCrawlerBusy(probe.error())) << probe.error().toString();
  }
  // Back to memcached's default pace: the crawl ends within moments.
  void crawlerFreed() { ASSERT_EQ(*admin_->command("lru_crawler sleep 100"), "OK"); }

  std::vector<std::string> keysLeft() {
    auto items = admin_->metadumpAll();
    // A dump the sweep abandoned keeps the crawler busy for a moment.
    for (int i = 0; i < 500 && !items.ok() && MemcachedAdmin::isCrawlerBusy(items.error()); ++i) {
      std::this_thread::sleep_for(milliseconds(10));
      items = admin_->metadumpAll();
    }
    EXPECT_TRUE(items.ok()) << items.error().toString();
    std::vector<std::string> keys;
    if (items.ok()) {
      for (const auto& it : *items) keys.push_back(it.key);
    }
    return keys;
  }

  MemcachedProcess server_;
  clientconfig::MemcachedAdminPtr admin_;
  clientconfig::SnapshotPtr ring_;
};

TEST_F(StaleCopySweeperTest, RemovesOnlyTheCopiesOfKeysOwnedElsewhere) {
  const uint64_t elsewhere = fill(2000);
  ASSERT_GT(elsewhere, 0u);
  auto counts = makeMemcachedStaleCopySweeper()->sweep(*ring_, 0, SweepControl::unlimited(), nullptr);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_GE(counts->scanned, 1990u);  // a dump can miss an item the crawler finds locked
  EXPECT_LE(counts->scanned, 2000u);
  EXPECT_EQ(counts->removed, elsewhere);
  EXPECT_EQ(counts->busy_waits, 0u);
  const auto left = keysLeft();
  EXPECT_EQ(left.size(), 2000u - elsewhere);
  for (const auto& key : left) EXPECT_EQ(ring_->serverIndex(key), 0u) << key;
}

// The crawler is busy when the sweep starts: the sweep waits for it and then does its work,
// instead of failing with the first BUSY.
TEST_F(StaleCopySweeperTest, WaitsOutABusyCrawler) {
  const uint64_t elsewhere = fill(20000);
  busyCrawler();
  TestControl control;
  auto sweeper = makeMemcachedStaleCopySweeper(milliseconds(2000), seconds(60), milliseconds(20));
  auto sweep = std::async(std::launch::async, [&] { return sweeper->sweep(*ring_, 0, control, nullptr); });
  // Refused at least once, and waiting rather than failed; then memcached's crawl ends.
  for (int i = 0; i < 500 && control.pauses() == 0; ++i) {
    if (sweep.wait_for(milliseconds(20)) == std::future_status::ready) {
      FAIL() << "the sweep ended without waiting for the crawler: " << sweep.get().status();
    }
  }
  ASSERT_GT(control.pauses(), 0);
  crawlerFreed();
  ASSERT_EQ(sweep.wait_for(seconds(30)), std::future_status::ready);
  auto counts = sweep.get();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_GE(counts->busy_waits, 1u);
  EXPECT_EQ(counts->busy_waits, static_cast<uint64_t>(control.pauses()));
  // One dump may miss an item or two that the crawler finds locked (hence the extra passes).
  EXPECT_GE(counts->scanned, 19900u);
  EXPECT_LE(counts->scanned, 20000u);
  EXPECT_EQ(counts->removed, elsewhere);
  EXPECT_EQ(keysLeft().size(), 20000u - elsewhere);
}

TEST_F(StaleCopySweeperTest, ACrawlerBusyForTheWholeBudgetFailsTheSweep) {
  fill(20000);
  busyCrawler();
  auto sweeper =
      makeMemcachedStaleCopySweeper(milliseconds(2000), milliseconds(300), milliseconds(20));
  auto counts = sweeper->sweep(*ring_, 0, SweepControl::unlimited(), nullptr);
  ASSERT_FALSE(counts.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(counts.status())) << counts.status();
  EXPECT_NE(counts.status().message().find("LRU crawler stayed busy"), std::string::npos)
      << counts.status();
  crawlerFreed();
}

TEST_F(StaleCopySweeperTest, CancelledWhileWaitingForTheCrawler) {
  fill(20000);
  busyCrawler();
  TestControl control;
  control.stopAtFirstPause();
  auto counts = makeMemcachedStaleCopySweeper()->sweep(*ring_, 0, control, nullptr);
  ASSERT_FALSE(counts.ok());
  EXPECT_EQ(counts.status(), absl::CancelledError("sweep cancelled: test"));
  crawlerFreed();
}

TEST_F(StaleCopySweeperTest, TheControlStopsAWalkInProgress) {
  fill(5000);
  TestControl control;
  control.stopAfterChecks(100);
  auto counts = makeMemcachedStaleCopySweeper()->sweep(*ring_, 0, control, nullptr);
  ASSERT_FALSE(counts.ok());
  EXPECT_TRUE(absl::IsCancelled(counts.status())) << counts.status();
  EXPECT_NE(counts.status().message().find("sweep cancelled: test after "), std::string::npos)
      << counts.status();
  // Stopped early: most of the cache was never looked at.
  EXPECT_GT(keysLeft().size(), 4000u);
}

}  // namespace
}  // namespace mcop::memcached
