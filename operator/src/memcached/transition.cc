// Transition: see transition.h.
#include "memcached/transition.h"

#include <algorithm>
#include <set>
#include <utility>

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <spdlog/spdlog.h>

#include "memcached/endpoints_config.h"
#include "util/time.h"

namespace mcop::memcached {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<std::string> names(const std::vector<PublishedServer>& ring) {
  std::vector<std::string> out;
  out.reserve(ring.size());
  for (const auto& s : ring) out.push_back(s.name);
  return out;
}

std::string ringText(const std::vector<PublishedServer>& ring) {
  return absl::StrCat("[", absl::StrJoin(names(ring), ", "), "]");
}

// A member's address moves when its pod is rescheduled; its slot in the ring (host) does not.
// The rings a transition records follow the members' current addresses and states.
void refresh(std::vector<PublishedServer>& ring, const std::vector<PublishedServer>& current) {
  for (auto& s : ring) {
    for (const auto& c : current) {
      if (c.name == s.name && c.host == s.host) {
        s.address = c.address;
        s.state = c.state;
      }
    }
  }
}

std::chrono::system_clock::time_point parsedOr(const std::string& text,
                                               std::chrono::system_clock::time_point fallback) {
  auto t = util::parseRfc3339(text);
  return t ? *t : fallback;
}

// How long a published phase has been in force, and how long it must be.
milliseconds sincePublished(const TransitionStatus& t, std::chrono::system_clock::time_point now) {
  if (t.published_at.empty()) return milliseconds(0);
  return std::chrono::duration_cast<milliseconds>(now - parsedOr(t.published_at, now));
}

void event(TransitionStep& step, kube::EventSeverity severity, std::string reason,
           std::string message) {
  step.events.push_back({severity, std::move(reason), std::move(message)});
}

// What the endpoints publish for the recorded phase (or the desired ring when there is none).
void fillContent(TransitionStep& step, const TransitionInput& in) {
  step.next.clear();
  step.previous.clear();
  if (!step.transition) {
    step.phase.clear();
    step.servers = in.desired;
    return;
  }
  const TransitionStatus& t = *step.transition;
  step.phase = t.phase;
  if (t.phase == kPhasePrepare || t.phase == kPhaseCopy) {
    step.servers = t.from;
    step.next = t.to;
  } else if (t.phase == kPhaseSwitch) {
    step.servers = t.to;
    step.previous = t.from;
  } else {
    step.servers = t.to;
  }
}

void enterPhase(TransitionStep& step, const TransitionInput& in, const char* phase) {
  TransitionStatus& t = *step.transition;
  const auto started = parsedOr(t.phase_started_at, in.now);
  step.finished_phases.emplace_back(
      t.phase, std::chrono::duration<double>(in.now - started).count());
  spdlog::info("transition phase cluster={} from_phase={} to_phase={} to={}", in.key, t.phase,
               phase, absl::StrJoin(names(t.to), ","));
  t.phase = phase;
  t.phase_started_at = in.now_precise;
  t.published_at.clear();
  keepShorter(step.requeue, milliseconds(1));
}

void startTransition(TransitionStep& step, const TransitionInput& in,
                     std::vector<PublishedServer> from) {
  TransitionStatus t;
  t.phase = kPhasePrepare;
  t.from = std::move(from);
  t.to = in.desired;
  t.started_at = in.now_precise;
  t.phase_started_at = in.now_precise;
  event(step, kube::EventSeverity::kNormal, "TransitionStarted",
        absl::StrCat("warm transition from ", ringText(t.from), " to ", ringText(t.to),
                     ": publishing the next ring, copying in ",
                     in.settings.propagation_seconds, "s"));
  spdlog::info("transition started cluster={} from={} to={}", in.key,
               absl::StrJoin(names(t.from), ","), absl::StrJoin(names(t.to), ","));
  step.transition = std::move(t);
  keepShorter(step.requeue, in.max_poll_interval);
}

// A phase whose version has been published waits `bound`; true once it has.
bool waited(TransitionStep& step, const TransitionInput& in, milliseconds bound,
            const char* what) {
  const TransitionStatus& t = *step.transition;
  if (t.published_at.empty()) {
    step.message = absl::StrCat("warm transition to ", ringText(t.to), ": waiting for phase ",
                                t.phase, " to be published");
    keepShorter(step.requeue, in.max_poll_interval);
    return false;
  }
  const milliseconds since = sincePublished(t, in.now);
  if (since >= bound) return true;
  const auto until = parsedOr(t.published_at, in.now) + bound;
  step.message = absl::StrCat("warm transition to ", ringText(t.to), ": phase ", t.phase,
                              ", ", what, " until ", util::formatRfc3339(
                                  std::chrono::time_point_cast<seconds>(until) + seconds(1)));
  keepShorter(step.requeue, std::min(bound - since, in.max_poll_interval));
  return false;
}

// The transition is over: `to` becomes the stable ring, or the next transition starts from it.
void complete(TransitionStep& step, const TransitionInput& in) {
  TransitionStatus& t = *step.transition;
  const auto started = parsedOr(t.started_at, in.now);
  step.finished_phases.emplace_back(
      t.phase, std::chrono::duration<double>(in.now - parsedOr(t.phase_started_at, in.now))
                   .count());
  event(step, kube::EventSeverity::kNormal, "TransitionCompleted",
        absl::StrCat("warm transition to ", ringText(t.to), " completed in ",
                     std::chrono::duration_cast<seconds>(in.now - started).count(), "s",
                     t.cold_reason.empty() ? "" : " (cold: the copy failed)"));
  spdlog::info("transition completed cluster={} to={}", in.key, absl::StrJoin(names(t.to), ","));
  std::vector<PublishedServer> to = std::move(t.to);
  step.transition.reset();
  step.work = TransitionWorkKind::kNone;
  step.message.clear();
  if (!in.desired.empty() && !sameNames(to, in.desired)) {
    // The members moved on during the transition: the next one starts from the ring clients
    // use now.
    startTransition(step, in, std::move(to));
  }
}

bool contains(const std::vector<PublishedServer>& ring, const std::string& name) {
  return std::any_of(ring.begin(), ring.end(),
                     [&](const PublishedServer& s) { return s.name == name; });
}

// The members of `a` that `b` also lists, as indices into `a`.
std::vector<size_t> shared(const std::vector<PublishedServer>& a,
                           const std::vector<PublishedServer>& b) {
  std::vector<size_t> out;
  for (size_t i = 0; i < a.size(); ++i) {
    if (contains(b, a[i].name)) out.push_back(i);
  }
  return out;
}

// Whether `ring` lists a member `other` does not.
bool hasOthers(const std::vector<PublishedServer>& ring, const std::vector<PublishedServer>& other) {
  return std::any_of(ring.begin(), ring.end(),
                     [&](const PublishedServer& s) { return !contains(other, s.name); });
}

// The finalize clean is needed only when keys moved away from members that stay: some member
// of `to` is new. (With ketama, a ring that only loses members moves keys only away from the
// members that leave.)
bool needsClean(const TransitionStatus& t) { return hasOthers(t.to, t.from); }

void advance(TransitionStep& step, const TransitionInput& in) {
  TransitionStatus& t = *step.transition;
  const milliseconds propagation = seconds(in.settings.propagation_seconds);
  if (t.phase == kPhasePrepare) {
    if (!waited(step, in, propagation, "clients pick up the next ring")) return;
    enterPhase(step, in, kPhaseCopy);
  }
  if (t.phase == kPhaseCopy) {
    step.work = TransitionWorkKind::kCopy;
    step.message = absl::StrCat("warm transition to ", ringText(t.to),
                                ": copying the items that move to their next owners");
    return;
  }
  if (t.phase == kPhaseSwitch) {
    if (!t.backfilled) {
      if (!waited(step, in, propagation, "clients pick up the new ring")) return;
      step.work = TransitionWorkKind::kBackfill;
      step.message = absl::StrCat("warm transition to ", ringText(t.to),
                                  ": copying the items written after their first copy");
      return;
    }
    if (!waited(step, in, seconds(in.settings.window_seconds),
                "clients read misses through to the previous owners")) {
      return;
    }
    enterPhase(step, in, kPhaseFinalize);
  }
  if (t.phase == kPhaseFinalize) {
    if (!waited(step, in, propagation, "clients stop reading the previous owners")) return;
    if (t.cleaned || !needsClean(t)) {
      complete(step, in);
      return;
    }
    step.work = TransitionWorkKind::kClean;
    step.message = absl::StrCat("warm transition to ", ringText(t.to),
                                ": cleaning the old owners of the copies they no longer own");
  }
}

WarmCopyProgress resumeOf(const CopySourceStatus& c) {
  WarmCopyProgress p;
  p.counts.processed = c.processed;
  p.counts.copied = c.copied;
  p.counts.bytes = c.bytes;
  p.done = c.done;
  if (!c.cursor_key.empty()) {
    p.cursor.valid = true;
    p.cursor.key = c.cursor_key;
    p.cursor.last_access = c.cursor_last_access;
  }
  return p;
}

CopySourceStatus recordOf(const std::string& name, const WarmCopyProgress& p) {
  const auto& c = p.counts;
  CopySourceStatus s;
  s.name = name;
  s.processed = c.processed;
  s.copied = c.copied;
  s.skipped = c.skipped_present + c.skipped_changed + c.skipped_gone + c.skipped_bound;
  s.bytes = c.bytes;
  s.done = p.done;
  if (p.cursor.valid) {
    s.cursor_key = p.cursor.key;
    s.cursor_last_access = p.cursor.last_access;
  }
  return s;
}

void recordCopies(TransitionStatus& t, const std::map<std::string, WarmCopyProgress>& copies) {
  for (const auto& [name, progress] : copies) {
    CopySourceStatus record = recordOf(name, progress);
    auto it = std::find_if(t.copy.begin(), t.copy.end(),
                           [&](const CopySourceStatus& c) { return c.name == name; });
    if (it == t.copy.end()) {
      t.copy.push_back(std::move(record));
    } else {
      *it = std::move(record);
    }
  }
  // Ring order, so the recorded list does not move between passes.
  std::vector<CopySourceStatus> ordered;
  for (const auto& s : t.from) {
    for (const auto& c : t.copy) {
      if (c.name == s.name) ordered.push_back(c);
    }
  }
  t.copy = std::move(ordered);
}

std::string copySummary(const TransitionStatus& t) {
  uint64_t copied = 0, skipped = 0, bytes = 0;
  for (const auto& c : t.copy) {
    copied += c.copied;
    skipped += c.skipped;
    bytes += c.bytes;
  }
  return absl::StrCat(copied, " items (", bytes, " bytes) copied, ", skipped, " skipped");
}

absl::StatusOr<clientconfig::SnapshotPtr> ring(const std::string& cluster,
                                               const std::string& hashing,
                                               const std::vector<PublishedServer>& servers) {
  std::vector<clientconfig::Server> list;
  for (const auto& s : servers) list.push_back(toServer(s));
  auto snap = clientconfig::makeSnapshot(
      cluster, 0, clientconfig::parseHashing(hashing).value_or(
                      clientconfig::Hashing::KetamaLibmemcached),
      std::move(list));
  if (!snap.ok()) return absl::InvalidArgumentError(snap.error().toString());
  return *snap;
}

}  // namespace

bool sameNames(const std::vector<PublishedServer>& a, const std::vector<PublishedServer>& b) {
  return names(a) == names(b);
}

TransitionStep planTransition(const TransitionInput& in) {
  TransitionStep step;
  if (!in.recorded) {
    // A transition starts only between two non-empty rings of an established cluster: the
    // first publishes of a cluster coming up have little to keep warm, and an empty ring has no
    // owner to copy to.
    if (in.settings.mode == TransitionMode::kWarm && in.established && !in.published.empty() &&
        !in.desired.empty() && !sameNames(in.published, in.desired)) {
      startTransition(step, in, in.published);
    }
    fillContent(step, in);
    return step;
  }
  step.transition = in.recorded;
  TransitionStatus& t = *step.transition;
  refresh(t.from, in.published);
  refresh(t.from, in.desired);
  refresh(t.to, in.desired);
  if (t.published_at.empty() && in.cached_version && *in.cached_version == in.recorded_version &&
      in.cached_phase == t.phase) {
    t.published_at = in.now_precise;
  }
  advance(step, in);
  fillContent(step, in);
  return step;
}

void applyTransitionWork(TransitionStep& step, const TransitionInput& in,
                         const TransitionWorkProgress& work) {
  if (!step.transition || step.work == TransitionWorkKind::kNone) return;
  TransitionStatus& t = *step.transition;
  if (step.work == TransitionWorkKind::kCopy) {
    recordCopies(t, work.copies);
    if (!work.done) {
      step.message = absl::StrCat("warm transition to ", ringText(t.to), ": copying, ",
                                  copySummary(t));
      keepShorter(step.requeue, in.max_poll_interval);
      return;
    }
    if (work.status.ok()) {
      event(step, kube::EventSeverity::kNormal, "WarmCopyFinished",
            absl::StrCat(copySummary(t), " in ",
                         std::chrono::duration_cast<milliseconds>(work.elapsed).count(), "ms"));
    } else {
      t.cold_reason = std::string(work.status.message());
      event(step, kube::EventSeverity::kWarning, "WarmCopyFailed",
            absl::StrCat("the keys that move start cold on their new owners (", copySummary(t),
                         "): ", t.cold_reason));
    }
    step.work = TransitionWorkKind::kNone;
    enterPhase(step, in, kPhaseSwitch);
    advance(step, in);
  } else if (step.work == TransitionWorkKind::kBackfill) {
    if (!work.done) {
      keepShorter(step.requeue, in.max_poll_interval);
      return;
    }
    // A failed backfill costs only warmth: clients still read misses through to the previous
    // owners until the window ends.
    if (!work.status.ok()) {
      spdlog::warn("transition backfill failed cluster={} error={}", in.key,
                   std::string(work.status.message()));
    }
    t.backfilled = true;
    step.work = TransitionWorkKind::kNone;
    advance(step, in);
  } else {
    if (!work.done) {
      keepShorter(step.requeue, in.max_poll_interval);
      return;
    }
    if (!work.status.ok()) {
      event(step, kube::EventSeverity::kWarning, "TransitionCleanFailed",
            absl::StrCat("some old owners may keep copies of keys they no longer own (the "
                         "next transition sweeps them before copying): ",
                         work.status.message()));
    }
    t.cleaned = true;
    complete(step, in);
  }
  fillContent(step, in);
}

absl::StatusOr<TransitionWork> transitionWork(const TransitionStep& step,
                                              const std::string& cluster,
                                              const std::string& hashing,
                                              const TransitionSettings& settings) {
  const TransitionStatus& t = *step.transition;
  auto from = ring(cluster, hashing, t.from);
  if (!from.ok()) return from.status();
  auto to = ring(cluster, hashing, t.to);
  if (!to.ok()) return to.status();
  TransitionWork work;
  work.deadline = seconds(settings.copy_timeout_seconds);
  if (step.work == TransitionWorkKind::kClean) {
    work.sweep_ring = *to;
    work.sweep = shared(t.to, t.from);
    return work;
  }
  work.from = *from;
  work.to = *to;
  work.copy.items_per_second = static_cast<double>(settings.copy_items_per_second);
  work.copy.max_items = static_cast<uint64_t>(settings.copy_max_items);
  work.copy.deadline = work.deadline;
  if (step.work == TransitionWorkKind::kBackfill) {
    // A second pass of the same copy: every source, from the start (add never overwrites).
    for (size_t i = 0; i < t.from.size(); ++i) work.sources.push_back(i);
    return work;
  }
  // Members that stay and receive keys may hold old copies of them (left by an earlier
  // transition or drain): an `add` would not replace those, so they are swept first. Only a
  // ring that loses members moves keys onto members that stay.
  if (hasOthers(t.from, t.to)) {
    work.sweep_ring = *from;
    work.sweep = shared(t.from, t.to);
  }
  for (size_t i = 0; i < t.from.size(); ++i) {
    const std::string& name = t.from[i].name;
    auto recorded = std::find_if(t.copy.begin(), t.copy.end(),
                                 [&](const CopySourceStatus& c) { return c.name == name; });
    if (recorded != t.copy.end()) {
      if (recorded->done) continue;
      work.resume[name] = resumeOf(*recorded);
    }
    work.sources.push_back(i);
  }
  return work;
}

TransitionWorkId transitionWorkId(const std::string& uid, const TransitionStatus& transition) {
  return {uid, transition.started_at, transition.phase};
}

}  // namespace mcop::memcached
