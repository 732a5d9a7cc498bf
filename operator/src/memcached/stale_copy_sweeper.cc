// MemcachedStaleCopySweeper: StaleCopySweeper over libclientconfig's MemcachedAdmin. The dump
// streams on one connection while the deletes go out on another in pipelined batches, so
// memory stays bounded by one batch of keys whatever the size of the cache.
// Thread-safety: sweep() keeps its state on the stack (its own connections); any number of
// threads may call it at once.
#include "memcached/stale_copy_sweeper.h"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "clientconfig/memcached_admin.h"

namespace mcop::memcached {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Keys collected from the dump before they are deleted (16 pipelined round trips).
constexpr size_t kDeleteBatch = clientconfig::MemcachedAdmin::kBatchChunk * 16;
// Walks of the cache per sweep at most; the last one normally removes nothing.
constexpr int kMaxPasses = 3;
// Longest pause between two dumps refused with BUSY.
constexpr milliseconds kMaxBusyBackoff{1000};

absl::Status toStatus(const clientconfig::Error& e, const std::string& what) {
  const std::string message = absl::StrCat(what, ": ", e.message);
  switch (e.code) {
    case clientconfig::ErrorCode::DeadlineExceeded:
      return absl::DeadlineExceededError(message);
    case clientconfig::ErrorCode::Unavailable:
      return absl::UnavailableError(message);
    default:
      return absl::UnknownError(absl::StrCat(what, ": ", e.toString()));
  }
}

class Unlimited : public SweepControl {
 public:
  absl::Status check() const override { return absl::OkStatus(); }
  void pause(milliseconds duration) const override { std::this_thread::sleep_for(duration); }
};

class MemcachedStaleCopySweeper : public StaleCopySweeper {
 public:
  MemcachedStaleCopySweeper(milliseconds timeout, milliseconds budget, milliseconds busy_backoff)
      : timeout_(timeout), budget_(budget), busy_backoff_(busy_backoff) {}

  absl::StatusOr<SweepCounts> sweep(const clientconfig::Snapshot& ring, size_t member,
                                    const SweepControl& control) override {
    if (member >= ring.servers().size()) {
      return absl::InvalidArgumentError(absl::StrCat("no server ", member, " in the ring"));
    }
    if (auto s = control.check(); !s.ok()) return s;
    const clientconfig::Server& server = ring.servers()[member];
    const auto started = steady_clock::now();
    const auto deadline = started + budget_;
    auto dump = clientconfig::MemcachedAdmin::connect(server.address, server.port, timeout_);
    if (!dump.ok()) return toStatus(dump.error(), "connect");
    auto deleter = clientconfig::MemcachedAdmin::connect(server.address, server.port, timeout_);
    if (!deleter.ok()) return toStatus(deleter.error(), "connect");

    SweepCounts counts;
    std::vector<std::string> batch;
    absl::Status failure;
    auto flush = [&]() {
      if (batch.empty()) return true;
      auto deleted = (*deleter)->metaDeleteBatch(batch);
      batch.clear();
      if (!deleted.ok()) {
        failure = toStatus(deleted.error(), "delete");
        return false;
      }
      for (bool d : *deleted) counts.removed += d ? 1 : 0;
      return true;
    };
    auto overBudget = [&](uint64_t scanned) {
      return absl::DeadlineExceededError(
          absl::StrCat("sweep budget of ", budget_.count() / 1000, "s exceeded after ", scanned,
                       " items (", counts.removed, " removed)"));
    };
    // The LRU crawler's dump can miss a few items that move between LRUs while it walks
    // (measured: about 0.05% of 1M items in one pass), so walk again until a pass finds
    // nothing more to remove.
    for (int pass = 0; pass < kMaxPasses; ++pass) {
      const uint64_t removed_before = counts.removed;
      uint64_t scanned = 0;
      auto sink = [&](const clientconfig::MetadumpItem& item) {
        ++scanned;
        if (ring.serverIndex(item.key) != member) batch.push_back(item.key);
        if (batch.size() >= kDeleteBatch && !flush()) return false;
        if (steady_clock::now() > deadline) {
          failure = overBudget(counts.scanned + scanned);
          return false;
        }
        if (auto s = control.check(); !s.ok()) {
          failure = absl::Status(s.code(), absl::StrCat(s.message(), " after ",
                                                        counts.scanned + scanned, " items (",
                                                        counts.removed, " removed)"));
          return false;
        }
        return true;
      };
      // memcached runs one crawl at a time and refuses a dump while its crawler is busy (its
      // own background LRU crawl, or another client's dump): wait for it, within the budget.
      milliseconds backoff = busy_backoff_;
      for (;;) {
        auto walked = (*dump)->metadump(sink);
        if (!failure.ok()) return failure;
        if (walked.ok()) break;
        if (!clientconfig::MemcachedAdmin::isCrawlerBusy(walked.error())) {
          return toStatus(walked.error(), "lru_crawler metadump");
        }
        ++counts.busy_waits;
        const auto left =
            std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
        if (left <= milliseconds(0)) {
          return absl::DeadlineExceededError(absl::StrCat(
              "sweep budget of ", budget_.count() / 1000, "s exceeded: memcached's LRU crawler "
              "stayed busy (", counts.busy_waits, " dumps refused)"));
        }
        spdlog::debug("lru crawler busy, retrying server={} attempt={} backoff_ms={}",
                      server.name, counts.busy_waits, backoff.count());
        control.pause(std::min(backoff, left));
        if (auto s = control.check(); !s.ok()) return s;
        backoff = std::min(backoff * 2, kMaxBusyBackoff);
      }
      if (!flush()) return failure;
      if (pass == 0) counts.scanned = scanned;
      if (counts.removed == removed_before) break;
      if (auto s = control.check(); !s.ok()) return s;
    }
    return counts;
  }

 private:
  milliseconds timeout_;
  milliseconds budget_;
  milliseconds busy_backoff_;
};

}  // namespace

const SweepControl& SweepControl::unlimited() {
  static const Unlimited control;
  return control;
}

StaleCopySweeperPtr makeMemcachedStaleCopySweeper(milliseconds timeout, milliseconds budget,
                                                  milliseconds busy_backoff) {
  return std::make_shared<MemcachedStaleCopySweeper>(timeout, budget, busy_backoff);
}

}  // namespace mcop::memcached
