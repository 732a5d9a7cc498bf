// WarmCopier against real memcached processes: what it copies (and with which value, flags and
// TTL), what it refuses to overwrite, the write racing its re-check, hottest-first within the
// bounds, cancellation, the deadline, resuming, and the rate limit on a fake clock.
#include "memcached/warm_copier.h"

#include <atomic>
#include <mutex>
#include <set>

#include <gtest/gtest.h>

#include "clientconfig/memcached_admin.h"
#include "memcached/three_memcached_fixture.h"
#include "testing/fake_clock.h"

namespace mcop::memcached {
namespace {

using clientconfig::MemcachedAdmin;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Pauses advance the fake clock instead of sleeping; cancels once told to.
class FakeTimeControl : public SweepControl {
 public:
  explicit FakeTimeControl(util::FakeClock& clock) : clock_(clock) {}
  absl::Status check() const override {
    return cancelled_ ? absl::CancelledError("warm copy cancelled: test") : absl::OkStatus();
  }
  void pause(milliseconds duration) const override {
    clock_.advance(duration);
    paused_ += duration.count();
  }
  void cancel() { cancelled_ = true; }
  int64_t pausedMs() const { return paused_; }

 private:
  util::FakeClock& clock_;
  std::atomic<bool> cancelled_{false};
  mutable std::atomic<int64_t> paused_{0};
};

class WarmCopierTest : public ThreeMemcachedTest {
 protected:
  WarmCopyResult copy(const clientconfig::Snapshot& from, size_t source, const clientconfig::Snapshot& to,
                      WarmCopyOptions options = {}, const WarmCopyProgress& resume = {},
                      const WarmCopyObserver& observer = {}) {
    WarmCopier copier(clock_, options);
    return copier.copy(from, source, to, control_, resume, observer);
  }

  util::FakeClock clock_;
  FakeTimeControl control_{clock_};
};

// 2 → 3: a's keys that move go to c, with their value, flags and remaining TTL; keys that stay,
// copies a holds of b's keys, and items about to expire are not copied; b gets nothing.
TEST_F(WarmCopierTest, CopiesExactlyTheMovingKeysWithValueFlagsAndTtl) {
  const auto owned = keysOwned(*two_, 0, 3000, "item:");
  put(0, std::vector<std::string>(owned.begin(), owned.begin() + 1500), 0);
  put(0, std::vector<std::string>(owned.begin() + 1500, owned.end()), 1000);
  put(0, keysOwned(*two_, 1, 100, "b-owned:"), 0);  // stale copies of b's keys on a
  const auto expiring = keysOwned(*two_, 0, 100, "expiring:");
  put(0, expiring, 1);
  // An expiry beyond 30 days is an absolute time in memcached: the copy must keep it so.
  std::string far_key;
  for (const auto& k : keysOwned(*two_, 0, 100, "far:")) {
    if (three_->serverIndex(k) == 2) far_key = k;
  }
  ASSERT_FALSE(far_key.empty());
  const int64_t source_now = std::stoll(admins_[0]->stats()->at("time"));
  ASSERT_TRUE(*admins_[0]->metaSet(far_key, "far", source_now + 60 * 86400, 3));

  std::set<std::string> moving;
  for (const auto& k : owned) {
    if (three_->serverIndex(k) == 2) moving.insert(k);
  }
  ASSERT_GT(moving.size(), 500u);
  auto result = copy(*two_, 0, *three_);
  ASSERT_TRUE(result.status.ok()) << result.status;
  const auto& counts = result.progress.counts;
  EXPECT_TRUE(result.progress.done);
  EXPECT_EQ(counts.copied, moving.size() + 1);  // and far_key
  EXPECT_EQ(counts.copied, counts.candidates);
  EXPECT_EQ(counts.skipped_changed + counts.skipped_present + counts.skipped_gone, 0u);
  EXPECT_EQ(counts.bytes, counts.copied * 100 - (100 - 3));  // far_key's value is 3 bytes

  EXPECT_TRUE(keysOn(1).empty());
  const auto on_c = keysOn(2);
  EXPECT_EQ(on_c.size(), counts.copied);
  for (const auto& k : on_c) {
    if (k == far_key) continue;
    ASSERT_TRUE(moving.count(k)) << k;
  }
  for (size_t i = 0; i < owned.size(); ++i) {
    if (!on_c.count(owned[i])) continue;
    auto got = admins_[2]->metaGet(owned[i]);
    ASSERT_TRUE(got.ok() && got->has_value()) << owned[i];
    EXPECT_EQ((*got)->value, valueOf(owned[i]));
    EXPECT_EQ((*got)->flags, (i < 1500 ? i : i - 1500) % 7);
    if (i < 1500) {
      EXPECT_EQ((*got)->ttl, -1);
    } else {
      EXPECT_GT((*got)->ttl, 990);
      EXPECT_LE((*got)->ttl, 1000);
    }
  }
  auto far = admins_[2]->metaGet(far_key);
  ASSERT_TRUE(far.ok() && far->has_value());
  EXPECT_EQ((*far)->flags, 3u);
  EXPECT_GT((*far)->ttl, 60 * 86400 - 10);
  EXPECT_LE((*far)->ttl, 60 * 86400);
}

// Clients' hits move items between memcached's LRUs (an item turns active on its second hit);
// a walk of the LRUs misses items moving meanwhile, the walk of the hash table the copier uses
// does not.
TEST_F(WarmCopierTest, SeesItemsThatHitsAreMovingBetweenLrus) {
  const auto moving = movingKeys(3000);
  put(0, moving);
  for (int round = 0; round < 2; ++round) ASSERT_TRUE(admins_[0]->metaGetBatch(moving).ok());
  auto result = copy(*two_, 0, *three_);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.progress.counts.scanned, moving.size());
  EXPECT_EQ(result.progress.counts.copied, moving.size());
}

// 3 → 2: c's keys go to both a and b, each to its own next owner.
TEST_F(WarmCopierTest, CopiesToEveryNextOwner) {
  const auto owned = keysOwned(*three_, 2, 1000, "item:");
  put(2, owned);
  auto result = copy(*three_, 2, *two_, {.batch = 64});
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_GE(result.progress.counts.copied, 990u);
  const auto on_a = keysOn(0), on_b = keysOn(1);
  EXPECT_EQ(on_a.size() + on_b.size(), result.progress.counts.copied);
  EXPECT_GT(on_a.size(), 100u);
  EXPECT_GT(on_b.size(), 100u);
  for (const auto& k : on_a) EXPECT_EQ(ownerHost(*two_, k), "cache-0.cache.shop.svc") << k;
  for (const auto& k : on_b) EXPECT_EQ(ownerHost(*two_, k), "cache-1.cache.shop.svc") << k;
  EXPECT_EQ(result.progress.target_bytes.size(), 2u);
}

// What an aware client wrote on the next owner is newer than the source's copy: add refuses.
TEST_F(WarmCopierTest, DoesNotOverwriteANewerValueOnTheTarget) {
  std::vector<std::string> moving;
  for (const auto& k : keysOwned(*two_, 0, 600, "item:")) {
    if (three_->serverIndex(k) == 2) moving.push_back(k);
  }
  put(0, moving);
  const std::vector<std::string> newer(moving.begin(), moving.begin() + 20);
  for (const auto& k : newer) ASSERT_TRUE(*admins_[2]->metaSet(k, "newer", 0, 9));
  auto result = copy(*two_, 0, *three_);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.progress.counts.skipped_present, newer.size());
  EXPECT_EQ(result.progress.counts.copied + newer.size(), result.progress.counts.candidates);
  for (const auto& k : newer) {
    auto got = admins_[2]->metaGet(k);
    ASSERT_TRUE(got.ok() && got->has_value()) << k;
    EXPECT_EQ((*got)->value, "newer");
    EXPECT_EQ((*got)->flags, 9u);
  }
}

// A write (or delete) on the source between the copier's read and its re-check: the re-check
// sees the new CAS and the copy of the old value is deleted from the target.
TEST_F(WarmCopierTest, AWriteBetweenReadAndRecheckLeavesNoCopy) {
  std::vector<std::string> moving;
  for (const auto& k : keysOwned(*two_, 0, 900, "item:")) {
    if (three_->serverIndex(k) == 2) moving.push_back(k);
  }
  put(0, moving);
  std::set<std::string> raced;
  WarmCopyObserver observer;
  observer.before_recheck = [&](const std::vector<std::string>& stored) {
    // Every 10th stored key is rewritten, every 25th deleted, between add and re-check.
    for (size_t i = 0; i < stored.size(); ++i) {
      if (i % 10 == 0) {
        ASSERT_TRUE(*admins_[0]->metaSet(stored[i], "v2", 0, 0));
        raced.insert(stored[i]);
      } else if (i % 25 == 0) {
        ASSERT_TRUE(*admins_[0]->metaDelete(stored[i]));
        raced.insert(stored[i]);
      }
    }
  };
  auto result = copy(*two_, 0, *three_, {.batch = 50}, {}, observer);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ASSERT_GT(raced.size(), 10u);
  EXPECT_EQ(result.progress.counts.skipped_changed, raced.size());
  const auto on_c = keysOn(2);
  EXPECT_EQ(on_c.size(), result.progress.counts.copied);
  for (const auto& k : raced) EXPECT_FALSE(on_c.count(k)) << k << " kept a copy of the value before the write";
}

// The source dies between a batch's adds and its re-check: nothing confirms those copies, so
// they are deleted from the target and the copy fails with the source's error.
TEST_F(WarmCopierTest, AFailedRecheckLeavesNoUnconfirmedCopy) {
  std::vector<std::string> moving;
  for (const auto& k : keysOwned(*two_, 0, 900, "item:")) {
    if (three_->serverIndex(k) == 2) moving.push_back(k);
  }
  put(0, moving);
  size_t batches = 0;
  WarmCopyObserver observer;
  observer.before_recheck = [&](const std::vector<std::string>&) {
    if (++batches == 2) a_.stop();
  };
  auto result = copy(*two_, 0, *three_, {.batch = 50}, {}, observer);
  ASSERT_FALSE(result.status.ok());
  EXPECT_NE(std::string(result.status.message()).find("re-check on source"), std::string::npos)
      << result.status;
  // The first batch was confirmed; the second was deleted again.
  EXPECT_EQ(result.progress.counts.copied, keysOn(2).size());
  EXPECT_EQ(keysOn(2).size(), 50u);
}

// The hottest keys (latest access) go first: bounded by max_items, or by the target's budget,
// only the hot ones are copied.
TEST_F(WarmCopierTest, HottestFirstWithinMaxItemsAndTargetBudget) {
  std::vector<std::string> cold, hot;
  for (const auto& k : keysOwned(*two_, 0, 900, "item:")) {
    if (three_->serverIndex(k) == 2) (cold.size() <= hot.size() ? cold : hot).push_back(k);
  }
  put(0, cold, 0, 0);
  std::this_thread::sleep_for(milliseconds(1100));  // memcached's clock ticks in seconds
  put(0, hot, 0, 0);
  const std::set<std::string> hot_set(hot.begin(), hot.end());

  auto by_count = copy(*two_, 0, *three_, {.max_items = 100, .batch = 32});
  ASSERT_TRUE(by_count.status.ok()) << by_count.status;
  EXPECT_EQ(by_count.progress.counts.copied, 100u);
  EXPECT_EQ(by_count.progress.counts.skipped_bound, cold.size() + hot.size() - 100);
  auto on_c = keysOn(2);
  EXPECT_EQ(on_c.size(), 100u);
  for (const auto& k : on_c) EXPECT_TRUE(hot_set.count(k)) << k << " is cold";

  ASSERT_EQ(*admins_[2]->command("flush_all"), "OK");
  auto dump = admins_[0]->metadumpAll();
  ASSERT_TRUE(dump.ok());
  const uint64_t item_size = dump->front().size;  // same key and value lengths: one size
  auto by_budget = copy(*two_, 0, *three_, {.target_budget_bytes = item_size * 70 + item_size / 2});
  ASSERT_TRUE(by_budget.status.ok()) << by_budget.status;
  EXPECT_EQ(by_budget.progress.counts.copied, 70u);
  EXPECT_EQ(by_budget.progress.target_bytes.at("cache-2"), item_size * 70);
  on_c = keysOn(2);
  EXPECT_EQ(on_c.size(), 70u);
  for (const auto& k : on_c) EXPECT_TRUE(hot_set.count(k)) << k << " is cold";
}

// Cancelled after two batches: stops before the third, progress says so and resumes from there
// without processing anything twice; a key rewritten since the interruption is not copied again
// (its copy was invalidated by the writer; it stays cold, never stale).
TEST_F(WarmCopierTest, CancelStopsBetweenBatchesAndResumes) {
  std::vector<std::string> moving;
  for (const auto& k : keysOwned(*two_, 0, 1200, "item:")) {
    if (three_->serverIndex(k) == 2) moving.push_back(k);
  }
  put(0, moving);
  std::vector<WarmCopyProgress> seen;
  WarmCopyObserver observer;
  observer.on_progress = [&](const WarmCopyProgress& p) {
    seen.push_back(p);
    if (p.counts.batches == 2) control_.cancel();
  };
  auto first = copy(*two_, 0, *three_, {.batch = 50}, {}, observer);
  EXPECT_EQ(first.status.code(), absl::StatusCode::kCancelled) << first.status;
  EXPECT_FALSE(first.progress.done);
  EXPECT_EQ(first.progress.counts.processed, 100u);
  EXPECT_EQ(first.progress.counts.copied, 100u);
  const auto copied = keysOn(2);
  EXPECT_EQ(copied.size(), 100u);
  ASSERT_TRUE(first.progress.cursor.valid);
  ASSERT_EQ(seen.size(), 3u);  // after enumeration, then each batch
  EXPECT_EQ(seen[0].counts.candidates, first.progress.counts.candidates);

  // A copied key rewritten on the source, its copy on c deleted by the (aware) writer.
  const std::string rewritten = *copied.begin();
  ASSERT_TRUE(*admins_[0]->metaSet(rewritten, "v2", 0, 0));
  ASSERT_TRUE(*admins_[2]->metaDelete(rewritten));
  // At once: the items the copier just read twice are being moved between the source's LRUs,
  // which an LRU walk (`metadump all`) would miss for a moment; the hash walk sees them.

  FakeTimeControl fresh(clock_);
  WarmCopier copier(clock_, {.batch = 50});
  auto second = copier.copy(*two_, 0, *three_, fresh, first.progress);
  ASSERT_TRUE(second.status.ok()) << second.status;
  EXPECT_TRUE(second.progress.done);
  EXPECT_EQ(second.progress.counts.already_done, 100u);
  EXPECT_EQ(second.progress.counts.skipped_present, 0u);  // nothing processed twice
  EXPECT_EQ(second.progress.counts.copied, second.progress.counts.candidates);  // 100 + the rest
  EXPECT_EQ(second.progress.counts.processed, second.progress.counts.candidates);
  EXPECT_FALSE(admins_[2]->metaGet(rewritten)->has_value());
  EXPECT_EQ(keysOn(2).size(), second.progress.counts.candidates - 1);
}

// Rate limits pace the batches on the (fake) clock: one batch at once (more than 0.1 s worth),
// then the rate.
TEST_F(WarmCopierTest, ItemRateLimitOnTheClock) {
  put(0, movingKeys(3000));
  const auto start = clock_.steadyNow();
  std::vector<std::pair<double, uint64_t>> paced;  // (seconds, items processed)
  WarmCopyObserver observer;
  observer.on_progress = [&](const WarmCopyProgress& p) {
    paced.push_back({std::chrono::duration<double>(clock_.steadyNow() - start).count(), p.counts.processed});
  };
  auto result = copy(*two_, 0, *three_, {.items_per_second = 200, .batch = 40}, {}, observer);
  ASSERT_TRUE(result.status.ok()) << result.status;
  const double n = static_cast<double>(result.progress.counts.processed);
  ASSERT_GT(n, 600);
  EXPECT_NEAR(control_.pausedMs() / 1000.0, (n - 40) / 200, 0.3);
  for (const auto& [t, done] : paced) EXPECT_LE(static_cast<double>(done), 40 + 200 * t + 1e-6) << t;
}

TEST_F(WarmCopierTest, ByteRateLimitOnTheClock) {
  put(0, movingKeys(3000), 0, 0);
  auto result = copy(*two_, 0, *three_, {.bytes_per_second = 50000, .batch = 40});
  ASSERT_TRUE(result.status.ok()) << result.status;
  const uint64_t item_size = admins_[0]->metadumpAll()->front().size;  // one size: flags 0
  const double total_bytes = static_cast<double>(result.progress.counts.processed * item_size);
  ASSERT_GT(total_bytes, 100000);
  EXPECT_NEAR(control_.pausedMs() / 1000.0, (total_bytes - 5000) / 50000, 0.3);
}

// The deadline stops the copy between batches, every copy made re-checked.
TEST_F(WarmCopierTest, DeadlineStopsBetweenBatches) {
  put(0, movingKeys(3000));
  std::vector<WarmCopyProgress> seen;
  WarmCopyObserver observer;
  observer.on_progress = [&](const WarmCopyProgress& p) { seen.push_back(p); };
  auto stopped = copy(*two_, 0, *three_, {.items_per_second = 200, .deadline = seconds(2), .batch = 40}, {}, observer);
  EXPECT_EQ(stopped.status.code(), absl::StatusCode::kDeadlineExceeded) << stopped.status;
  EXPECT_FALSE(stopped.progress.done);
  // One batch at once, then 200 a second for two seconds: 440 items, in whole batches.
  EXPECT_GE(stopped.progress.counts.processed, 400u);
  EXPECT_LE(stopped.progress.counts.processed, 480u);
  EXPECT_EQ(stopped.progress.counts.processed % 40, 0u);
  EXPECT_GT(stopped.progress.counts.candidates, 600u);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().counts.processed, stopped.progress.counts.processed);
  EXPECT_EQ(keysOn(2).size(), stopped.progress.counts.copied);
}

}  // namespace
}  // namespace mcop::memcached
