// WarmCopier over libclientconfig's MemcachedAdmin: one connection streams the source's dump,
// another reads and re-checks on the source, one per next owner adds and deletes copies. All
// per-item traffic goes in pipelined batches (MemcachedAdmin's meta batches).
// Thread-safety: copy() keeps its state in a CopyRun on the calling thread's stack.
#include "memcached/warm_copier.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>

#include "clientconfig/memcached_admin.h"
#include "memcached/admin_status.h"
#include "util/failpoint.h"
#include "util/token_bucket.h"

namespace mcop::memcached {
namespace {

using clientconfig::MemcachedAdmin;
using std::chrono::milliseconds;

constexpr milliseconds kMaxBusyBackoff{1000};
// memcached reads an expiry above 30 days as an absolute unix time, not a TTL.
constexpr int64_t kMaxRelativeTtl = 60 * 60 * 24 * 30;
// The rate limits allow a burst of this many seconds' worth (at least one batch of items), so
// a copy starts at once but the load it puts on the servers stays smooth.
constexpr double kBurst = 0.1;
// Items listed between two checks of the control while the dump streams.
constexpr uint64_t kDumpCheckEvery = 256;

using AdminPtr = std::unique_ptr<MemcachedAdmin>;


struct Candidate {
  std::string key;
  int64_t la = 0;
  uint64_t size = 0;
  uint32_t target = 0;  // index into next.servers()
};

bool sameServer(const clientconfig::Server& a, const clientconfig::Server& b) {
  return a.host == b.host && a.port == b.port;
}

// One copy from one source: the state the dump's sink, the batches and the resume rules share.
class CopyRun {
 public:
  CopyRun(const util::Clock& clock, const WarmCopyOptions& options, const clientconfig::Snapshot& current,
          size_t source, const clientconfig::Snapshot& next, const SweepControl& control,
          const WarmCopyProgress& resume, const WarmCopyObserver& observer)
      : clock_(clock),
        options_(options),
        current_(current),
        source_(source),
        next_(next),
        control_(control),
        resume_(resume),
        observer_(observer),
        deadline_(clock.steadyNow() + options.deadline),
        items_(clock, options.items_per_second, std::max<double>(options.items_per_second * kBurst, options.batch)),
        bytes_(clock, options.bytes_per_second, options.bytes_per_second * kBurst) {
    progress_ = resume;
    progress_.done = false;
  }

  WarmCopyResult run() {
    absl::Status s = prepare();
    if (s.ok()) s = enumerate();
    if (s.ok()) {
      plan();
      notify();
      s = copyAll();
    }
    if (s.ok()) progress_.done = true;
    return {s, progress_};
  }

 private:
  bool before(int64_t la_a, const std::string& key_a, int64_t la_b, const std::string& key_b) const {
    if (options_.hottest_first && la_a != la_b) return la_a > la_b;
    return key_a < key_b;
  }

  void notify() const {
    if (observer_.on_progress) observer_.on_progress(progress_);
  }

  absl::Status stopCheck() const {
    if (auto s = control_.check(); !s.ok()) return s;
    if (clock_.steadyNow() >= deadline_) {
      return absl::DeadlineExceededError(absl::StrCat("warm copy deadline of ", options_.deadline.count() / 1000,
                                                      "s passed after ", progress_.counts.processed, " items (",
                                                      progress_.counts.copied, " copied)"));
    }
    return absl::OkStatus();
  }

  // Connects to the source (a dump connection and a read connection) and reads its clock.
  absl::Status prepare() {
    if (source_ >= current_.servers().size()) {
      return absl::InvalidArgumentError(absl::StrCat("no server ", source_, " in the current ring"));
    }
    if (auto s = stopCheck(); !s.ok()) return s;
    const auto& server = current_.servers()[source_];
    const MemberSecurity* security = options_.security.get();
    auto dump = connectMember(server.address, server.port, server.host, options_.timeout, security);
    if (!dump.ok()) return adminStatus(dump.error(), "connect to source " + server.name);
    auto reader =
        connectMember(server.address, server.port, server.host, options_.timeout, security);
    if (!reader.ok()) return adminStatus(reader.error(), "connect to source " + server.name);
    dump_ = std::move(*dump);
    reader_ = std::move(*reader);
    auto time = serverTime(*reader_, "source " + server.name);
    if (!time.ok()) return time.status();
    source_time_ = *time;
    return absl::OkStatus();
  }

  static absl::StatusOr<int64_t> serverTime(MemcachedAdmin& admin, const std::string& who) {
    auto stats = admin.stats();
    if (!stats.ok()) return adminStatus(stats.error(), "stats of " + who);
    auto it = stats->find("time");
    int64_t t = 0;
    if (it == stats->end() || !absl::SimpleAtoi(it->second, &t)) {
      return absl::UnknownError(absl::StrCat("stats of ", who, ": no time"));
    }
    return t;
  }

  // Whether the interrupted run this one resumes already processed the item: it sits at or
  // before the cursor in the order. Last access only grows, so every item processed then still
  // does; an item accessed or written since may have moved there too, and is left to the
  // switch phase's backfill (cold, never stale).
  bool doneBefore(int64_t la, const std::string& key) const {
    const auto& c = resume_.cursor;
    return c.valid && !before(c.last_access, c.key, la, key);
  }

  // The dump's sink: keeps the candidates not already done; false stops the dump.
  bool visit(const clientconfig::MetadumpItem& item) {
    auto& counts = progress_.counts;
    ++counts.scanned;
    if (counts.scanned % kDumpCheckEvery == 0) {
      if (auto s = stopCheck(); !s.ok()) {
        failure_ = s;
        return false;
      }
    }
    if (item.exp >= 0 && item.exp - source_time_ <= options_.min_ttl_seconds) return true;
    if (current_.serverIndex(item.key) != source_) return true;
    const uint32_t target = next_.serverIndex(item.key);
    if (target == clientconfig::Ring::kNoServer) return true;
    if (sameServer(next_.servers()[target], current_.servers()[source_])) return true;
    ++counts.candidates;
    if (doneBefore(item.la, item.key)) {
      ++counts.already_done;
      return true;
    }
    candidates_.push_back({item.key, item.la, item.size, target});
    trim(false);
    return true;
  }

  uint64_t remainingItems() const {
    if (options_.max_items == 0) return UINT64_MAX;
    const uint64_t done = resume_.counts.processed;
    return done >= options_.max_items ? 0 : options_.max_items - done;
  }

  // Keeps only the first remainingItems() candidates in order once there are twice as many
  // (or always, when `final`), so memory follows max_items rather than the cache's size.
  void trim(bool final) {
    const uint64_t keep = remainingItems();
    if (keep == UINT64_MAX) return;
    if (!final && candidates_.size() < 2 * keep + 1024) return;
    if (candidates_.size() <= keep) return;
    auto order = [this](const Candidate& a, const Candidate& b) { return before(a.la, a.key, b.la, b.key); };
    std::nth_element(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(keep), candidates_.end(),
                     order);
    progress_.counts.skipped_bound += candidates_.size() - keep;
    candidates_.resize(keep);
  }

  // Streams the dump, waiting out memcached's busy crawler within the deadline. It walks the
  // hash table (`metadump hash`, which 1.6.18 has), not the LRUs: an LRU walk misses items that
  // clients' hits move between LRUs meanwhile (measured: a fifth of them under a steady reader),
  // a hash walk does not. A server that does not know it is walked by LRU.
  absl::Status enumerate() {
    milliseconds backoff = options_.busy_backoff;
    std::string what = "hash";
    for (;;) {
      auto& counts = progress_.counts;
      counts.scanned = counts.candidates = counts.already_done = counts.skipped_bound = 0;
      candidates_.clear();
      auto walked = dump_->metadump([this](const clientconfig::MetadumpItem& item) { return visit(item); }, what);
      if (!failure_.ok()) return failure_;
      if (walked.ok()) break;
      if (walked.error().code == clientconfig::ErrorCode::InvalidArgument && what == "hash") {
        what = "all";
        continue;
      }
      if (!MemcachedAdmin::isCrawlerBusy(walked.error())) return adminStatus(walked.error(), "lru_crawler metadump");
      ++progress_.counts.busy_waits;
      control_.pause(backoff);
      if (auto s = stopCheck(); !s.ok()) return s;
      backoff = std::min(backoff * 2, kMaxBusyBackoff);
    }
    dump_.reset();
    return absl::OkStatus();
  }

  // Orders the candidates and applies the bounds: max_items (trim) and each target's budget.
  void plan() {
    trim(true);
    std::sort(candidates_.begin(), candidates_.end(),
              [this](const Candidate& a, const Candidate& b) { return before(a.la, a.key, b.la, b.key); });
    if (options_.target_budget_bytes == 0) return;
    std::map<uint32_t, uint64_t> taken;
    std::vector<bool> closed(next_.servers().size(), false);
    for (const auto& [name, bytes] : progress_.target_bytes) {
      for (uint32_t i = 0; i < next_.servers().size(); ++i) {
        if (next_.servers()[i].name == name) taken[i] = bytes;
      }
    }
    std::vector<Candidate> kept;
    for (auto& c : candidates_) {
      if (!closed[c.target] && taken[c.target] + c.size <= options_.target_budget_bytes) {
        taken[c.target] += c.size;
        kept.push_back(std::move(c));
      } else {
        closed[c.target] = true;  // hottest first: nothing colder than a left-out item goes
        ++progress_.counts.skipped_bound;
      }
    }
    candidates_ = std::move(kept);
  }

  absl::Status copyAll() {
    for (size_t begin = 0; begin < candidates_.size(); begin += options_.batch) {
      if (auto s = stopCheck(); !s.ok()) return s;
      const size_t end = std::min(candidates_.size(), begin + options_.batch);
      if (auto s = pace(begin, end); !s.ok()) return s;
      if (auto s = copyBatch(begin, end); !s.ok()) return s;
      if (begin == 0) util::failpoint(util::Failpoint::kWarmCopyFirstBatch);
      notify();
    }
    return absl::OkStatus();
  }

  // Waits as long as the rate limits ask before the batch [begin, end).
  absl::Status pace(size_t begin, size_t end) {
    uint64_t size = 0;
    for (size_t i = begin; i < end; ++i) size += candidates_[i].size;
    const auto wait = std::max(items_.reserve(static_cast<double>(end - begin)), bytes_.reserve(static_cast<double>(size)));
    if (wait.count() > 0) {
      control_.pause(std::chrono::ceil<milliseconds>(wait));
      return stopCheck();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<MemcachedAdmin*> target(uint32_t index) {
    auto& slot = targets_[index];
    if (slot.admin) return slot.admin.get();
    const auto& server = next_.servers()[index];
    auto admin = connectMember(server.address, server.port, server.host, options_.timeout,
                               options_.security.get());
    if (!admin.ok()) return adminStatus(admin.error(), "connect to target " + server.name);
    auto time = serverTime(**admin, "target " + server.name);
    if (!time.ok()) return time.status();
    slot.admin = std::move(*admin);
    slot.time = *time;
    slot.connected = clock_.steadyNow();
    return slot.admin.get();
  }

  // The `T` of the copy: the remaining TTL, or an absolute time on the target's clock when it
  // exceeds what memcached reads as relative.
  int64_t copyTtl(int64_t remaining, uint32_t index) const {
    if (remaining < 0) return 0;
    if (remaining <= kMaxRelativeTtl) return remaining;
    const auto& slot = targets_.at(index);
    const auto since = std::chrono::duration_cast<std::chrono::seconds>(clock_.steadyNow() - slot.connected);
    return slot.time + since.count() + remaining;
  }

  struct Stored {
    size_t candidate;     // index into candidates_
    uint64_t source_cas;  // as read
    uint64_t copy_cas;    // of the copy on the target
    size_t value_size;
  };

  absl::Status copyBatch(size_t begin, size_t end);
  absl::Status addCopies(size_t begin, const std::vector<std::optional<clientconfig::MetaValue>>& values,
                         std::vector<Stored>& stored);
  absl::Status recheck(const std::vector<Stored>& stored);
  absl::Status undo(const std::vector<Stored>& stored, absl::Status failure);

  const util::Clock& clock_;
  const WarmCopyOptions& options_;
  const clientconfig::Snapshot& current_;
  const size_t source_;
  const clientconfig::Snapshot& next_;
  const SweepControl& control_;
  const WarmCopyProgress& resume_;
  const WarmCopyObserver& observer_;
  const std::chrono::steady_clock::time_point deadline_;
  util::TokenBucket items_;
  util::TokenBucket bytes_;
  WarmCopyProgress progress_;
  AdminPtr dump_;    // streams the dump
  AdminPtr reader_;  // reads and re-checks on the source
  struct Target {
    AdminPtr admin;
    int64_t time = 0;  // the target's unix time when connected
    std::chrono::steady_clock::time_point connected;
  };
  std::map<uint32_t, Target> targets_;
  int64_t source_time_ = 0;  // the source's unix time before the dump
  std::vector<Candidate> candidates_;
  absl::Status failure_;  // why the dump's sink stopped it
};

absl::Status CopyRun::copyBatch(size_t begin, size_t end) {
  std::vector<std::string> keys;
  keys.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) keys.push_back(candidates_[i].key);
  auto values = reader_->metaGetBatch(keys);
  if (!values.ok()) return adminStatus(values.error(), "read from source");
  std::vector<Stored> stored;
  if (auto s = addCopies(begin, *values, stored); !s.ok()) return undo(stored, s);
  if (!stored.empty() && observer_.before_recheck) {
    std::vector<std::string> stored_keys;
    for (const auto& st : stored) stored_keys.push_back(candidates_[st.candidate].key);
    observer_.before_recheck(stored_keys);
  }
  if (auto s = recheck(stored); !s.ok()) return undo(stored, s);
  auto& counts = progress_.counts;
  counts.processed += end - begin;
  ++counts.batches;
  for (size_t i = begin; i < end; ++i) {
    progress_.target_bytes[next_.servers()[candidates_[i].target].name] += candidates_[i].size;
  }
  const Candidate& last = candidates_[end - 1];
  progress_.cursor = {true, last.la, last.key};
  return absl::OkStatus();
}

// Adds the values read for candidates [begin, begin + values.size()) to their next owners.
absl::Status CopyRun::addCopies(size_t begin, const std::vector<std::optional<clientconfig::MetaValue>>& values,
                                std::vector<Stored>& stored) {
  std::map<uint32_t, std::vector<size_t>> by_target;  // candidate indices
  for (size_t i = 0; i < values.size(); ++i) {
    const auto& v = values[i];
    if (!v || (v->ttl >= 0 && v->ttl <= options_.min_ttl_seconds)) {
      ++progress_.counts.skipped_gone;
      continue;
    }
    by_target[candidates_[begin + i].target].push_back(begin + i);
  }
  for (const auto& [index, members] : by_target) {
    auto admin = target(index);
    if (!admin.ok()) return admin.status();
    std::vector<MemcachedAdmin::MetaSetRequest> requests;
    for (size_t c : members) {
      const auto& v = *values[c - begin];
      requests.push_back({candidates_[c].key, v.value, copyTtl(v.ttl, index), v.flags});
    }
    auto cas = (*admin)->metaSetBatchWithCas(requests, clientconfig::MetaSetMode::Add);
    if (!cas.ok()) return adminStatus(cas.error(), "add to target " + next_.servers()[index].name);
    for (size_t j = 0; j < members.size(); ++j) {
      if (!(*cas)[j]) {
        ++progress_.counts.skipped_present;
        continue;
      }
      const auto& v = *values[members[j] - begin];
      stored.push_back({members[j], v.cas, *(*cas)[j], v.value.size()});
    }
  }
  return absl::OkStatus();
}

// A batch that failed between its adds and the end of its re-check: its copies were not all
// confirmed, and one of them may hold a value the source has since replaced. Each is deleted
// while it is still the copy made here (CAS-conditional), so a newer write on the target stays.
// Best effort: a target that cannot be reached keeps what it has, which the returned error
// reports (the caller treats the targets as cold).
absl::Status CopyRun::undo(const std::vector<Stored>& stored, absl::Status failure) {
  std::map<uint32_t, std::vector<MemcachedAdmin::CasKey>> by_target;
  for (const auto& st : stored) {
    by_target[candidates_[st.candidate].target].push_back(
        {candidates_[st.candidate].key, st.copy_cas});
  }
  size_t kept = 0;
  for (const auto& [index, copies] : by_target) {
    auto it = targets_.find(index);
    if (it == targets_.end() || !it->second.admin ||
        !it->second.admin->metaDeleteIfCasBatch(copies).ok()) {
      kept += copies.size();
    }
  }
  if (kept == 0) return failure;
  return absl::Status(failure.code(),
                      absl::StrCat(failure.message(), "; ", kept,
                                   " unconfirmed copies could not be deleted from their targets"));
}

// Re-reads the source's CAS of every stored copy; deletes the copies whose source changed.
absl::Status CopyRun::recheck(const std::vector<Stored>& stored) {
  if (stored.empty()) return absl::OkStatus();
  std::vector<std::string> keys;
  for (const auto& st : stored) keys.push_back(candidates_[st.candidate].key);
  auto now = reader_->metaCasBatch(keys);
  if (!now.ok()) return adminStatus(now.error(), "re-check on source");
  std::map<uint32_t, std::vector<MemcachedAdmin::CasKey>> stale;
  for (size_t i = 0; i < stored.size(); ++i) {
    const auto& st = stored[i];
    if ((*now)[i] && *(*now)[i] == st.source_cas) {
      ++progress_.counts.copied;
      progress_.counts.bytes += st.value_size;
      continue;
    }
    ++progress_.counts.skipped_changed;
    stale[candidates_[st.candidate].target].push_back({keys[i], st.copy_cas});
  }
  for (const auto& [index, copies] : stale) {
    auto deleted = targets_.at(index).admin->metaDeleteIfCasBatch(copies);
    if (!deleted.ok()) return adminStatus(deleted.error(), "delete changed copies on " + next_.servers()[index].name);
  }
  return absl::OkStatus();
}

}  // namespace

WarmCopyResult WarmCopier::copy(const clientconfig::Snapshot& current, size_t source,
                                const clientconfig::Snapshot& next, const SweepControl& control,
                                const WarmCopyProgress& resume, const WarmCopyObserver& observer) const {
  if (options_.batch == 0) return {absl::InvalidArgumentError("warm copy: batch must be positive"), resume};
  CopyRun run(clock_, options_, current, source, next, control, resume, observer);
  return run.run();
}

}  // namespace mcop::memcached
