// MemcachedStaleCopySweeper: StaleCopySweeper over libclientconfig's MemcachedAdmin. The dump
// streams on one connection while the deletes go out on another in pipelined batches, so
// memory stays bounded by one batch of keys whatever the size of the cache.
// Thread-safety: sweep() keeps its state on the stack (its own connections); any number of
// threads may call it at once.
#include "memcached/stale_copy_sweeper.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

#include "clientconfig/memcached_admin.h"
#include "memcached/admin_status.h"
#include "util/failpoint.h"

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


class Unlimited : public SweepControl {
 public:
  absl::Status check() const override { return absl::OkStatus(); }
  void pause(milliseconds duration) const override { std::this_thread::sleep_for(duration); }
};

using AdminPtr = std::unique_ptr<clientconfig::MemcachedAdmin>;

// One sweep of one member: the state that the dump's callback, the delete batches and the
// retries on a busy crawler share, on the calling thread's stack.
class SweepRun {
 public:
  struct Limits {
    steady_clock::time_point deadline;
    milliseconds budget;
    milliseconds busy_backoff;
  };

  SweepRun(const clientconfig::Snapshot& ring, size_t member, const SweepControl& control,
           Limits limits, AdminPtr dump, AdminPtr deleter)
      : ring_(ring),
        member_(member),
        control_(control),
        limits_(limits),
        dump_(std::move(dump)),
        deleter_(std::move(deleter)) {}

  absl::StatusOr<SweepCounts> run() {
    // The LRU crawler's dump can miss a few items that move between LRUs while it walks
    // (measured: about 0.05% of 1M items in one pass), so walk again until a pass finds
    // nothing more to remove.
    for (int pass = 0; pass < kMaxPasses; ++pass) {
      const uint64_t removed_before = counts_.removed;
      uint64_t scanned = 0;
      if (auto s = walk(scanned); !s.ok()) return s;
      if (!flush()) return failure_;
      if (pass == 0) counts_.scanned = scanned;
      if (pass == 0) util::failpoint(util::Failpoint::kSweepFirstPass);
      if (counts_.removed == removed_before) break;
      if (auto s = control_.check(); !s.ok()) return s;
    }
    return counts_;
  }

 private:
  // Deletes the collected keys; false (with failure_ set) when the deletes failed.
  bool flush() {
    if (batch_.empty()) return true;
    auto deleted = deleter_->metaDeleteBatch(batch_);
    batch_.clear();
    if (!deleted.ok()) {
      failure_ = adminStatus(deleted.error(), "delete");
      return false;
    }
    for (bool d : *deleted) counts_.removed += d ? 1 : 0;
    return true;
  }

  // The dump's sink: collects keys this member does not own; false stops the dump.
  bool visit(const clientconfig::MetadumpItem& item, uint64_t& scanned) {
    ++scanned;
    if (ring_.serverIndex(item.key) != member_) batch_.push_back(item.key);
    if (batch_.size() >= kDeleteBatch && !flush()) return false;
    if (steady_clock::now() > limits_.deadline) {
      failure_ = absl::DeadlineExceededError(absl::StrCat(
          "sweep budget of ", limits_.budget.count() / 1000, "s exceeded after ",
          counts_.scanned + scanned, " items (", counts_.removed, " removed)"));
      return false;
    }
    if (auto s = control_.check(); !s.ok()) {
      failure_ = absl::Status(s.code(), absl::StrCat(s.message(), " after ",
                                                     counts_.scanned + scanned, " items (",
                                                     counts_.removed, " removed)"));
      return false;
    }
    return true;
  }

  // One walk of the cache. memcached runs one crawl at a time and refuses a dump while its
  // crawler is busy (its own background LRU crawl, or another client's dump): wait for it,
  // within the budget.
  absl::Status walk(uint64_t& scanned) {
    milliseconds backoff = limits_.busy_backoff;
    for (;;) {
      auto walked = dump_->metadump(
          [&](const clientconfig::MetadumpItem& item) { return visit(item, scanned); });
      if (!failure_.ok()) return failure_;
      if (walked.ok()) return absl::OkStatus();
      if (!clientconfig::MemcachedAdmin::isCrawlerBusy(walked.error())) {
        return adminStatus(walked.error(), "lru_crawler metadump");
      }
      ++counts_.busy_waits;
      const auto left =
          std::chrono::duration_cast<milliseconds>(limits_.deadline - steady_clock::now());
      if (left <= milliseconds(0)) {
        return absl::DeadlineExceededError(absl::StrCat(
            "sweep budget of ", limits_.budget.count() / 1000, "s exceeded: memcached's LRU "
            "crawler stayed busy (", counts_.busy_waits, " dumps refused)"));
      }
      spdlog::debug("lru crawler busy, retrying server={} attempt={} backoff_ms={}",
                    ring_.servers()[member_].name, counts_.busy_waits, backoff.count());
      control_.pause(std::min(backoff, left));
      if (auto s = control_.check(); !s.ok()) return s;
      backoff = std::min(backoff * 2, kMaxBusyBackoff);
    }
  }

  const clientconfig::Snapshot& ring_;
  const size_t member_;
  const SweepControl& control_;
  const Limits limits_;
  AdminPtr dump_;     // streams the dump
  AdminPtr deleter_;  // sends the deletes while the dump is in flight
  SweepCounts counts_;
  std::vector<std::string> batch_;
  absl::Status failure_;  // why the dump was stopped, when the sink stopped it
};

class MemcachedStaleCopySweeper : public StaleCopySweeper {
 public:
  MemcachedStaleCopySweeper(milliseconds timeout, milliseconds budget, milliseconds busy_backoff)
      : timeout_(timeout), budget_(budget), busy_backoff_(busy_backoff) {}

  absl::StatusOr<SweepCounts> sweep(const clientconfig::Snapshot& ring, size_t member,
                                    const SweepControl& control,
                                    const MemberSecurity* security) override {
    if (member >= ring.servers().size()) {
      return absl::InvalidArgumentError(absl::StrCat("no server ", member, " in the ring"));
    }
    if (auto s = control.check(); !s.ok()) return s;
    const clientconfig::Server& server = ring.servers()[member];
    const auto deadline = steady_clock::now() + budget_;
    auto dump = connectMember(server.address, server.port, server.host, timeout_, security);
    if (!dump.ok()) return adminStatus(dump.error(), "connect");
    auto deleter = connectMember(server.address, server.port, server.host, timeout_, security);
    if (!deleter.ok()) return adminStatus(deleter.error(), "connect");
    SweepRun run(ring, member, control, {deadline, budget_, busy_backoff_}, std::move(*dump),
                 std::move(*deleter));
    return run.run();
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
