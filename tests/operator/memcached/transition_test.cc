// The Warm transition's decisions: planTransition's phases in order, each waiting for its version
// to be seen published and for its bound, the copy and clean work recorded, a failed copy going
// on cold, a change of members during a transition queued after it, and the work each phase asks
// for. No I/O: inputs in, decisions out.
#include "memcached/transition.h"

#include <gtest/gtest.h>

#include "util/time.h"

namespace mcop::memcached {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const auto kT0 = *util::parseRfc3339("2026-01-01T00:10:00Z");

std::vector<PublishedServer> ring(int n) {
  std::vector<PublishedServer> out;
  for (int i = 0; i < n; ++i) {
    const std::string name = "sessions-" + std::to_string(i);
    out.push_back({name, name + ".sessions.shop.svc.cluster.local",
                   "10.0.0." + std::to_string(i + 1), 11211, 1, "active"});
  }
  return out;
}

std::vector<std::string> names(const std::vector<PublishedServer>& r) {
  std::vector<std::string> out;
  for (const auto& s : r) out.push_back(s.name);
  return out;
}

TransitionInput input(int published, int desired, TransitionMode mode = TransitionMode::kWarm) {
  TransitionInput in;
  in.key = "shop/sessions";
  in.settings.mode = mode;
  in.settings.propagation_seconds = 10;
  in.settings.window_seconds = 30;
  in.published = ring(published);
  in.desired = ring(desired);
  in.recorded_version = 4;
  in.now = kT0;
  in.now_precise = util::formatRfc3339Micro(kT0);
  return in;
}

// The next pass, `after` later, with status as `step` recorded it and the ConfigMap at
// `cached_phase` under the recorded version (one more when the step published a new phase).
TransitionInput later(TransitionInput in, const TransitionStep& step, milliseconds after,
                      const std::string& cached_phase) {
  in.recorded = step.transition;
  in.now += after;
  in.now_precise = util::formatRfc3339Micro(in.now);
  in.cached_version = in.recorded_version;
  in.cached_phase = cached_phase;
  return in;
}

bool hasEvent(const TransitionStep& step, const std::string& reason) {
  for (const auto& e : step.events) {
    if (e.reason == reason) return true;
  }
  return false;
}

TEST(Transition, ColdModePublishesTheDesiredRingAtOnce) {
  const auto step = planTransition(input(2, 3, TransitionMode::kCold));
  EXPECT_FALSE(step.transition);
  EXPECT_EQ(step.phase, "");
  EXPECT_EQ(names(step.servers), names(ring(3)));
  EXPECT_TRUE(step.next.empty());
}

TEST(Transition, NoTransitionForTheFirstPublishOrAnUnchangedRing) {
  EXPECT_FALSE(planTransition(input(0, 2)).transition);
  // A cluster still coming up (its ring never held spec.replicas members): members join cold.
  auto coming_up = input(1, 2);
  coming_up.established = false;
  EXPECT_FALSE(planTransition(coming_up).transition);
  EXPECT_EQ(names(planTransition(coming_up).servers), names(ring(2)));
  EXPECT_FALSE(planTransition(input(3, 3)).transition);
  // Only addresses changed (a pod rescheduled): published at once, no keys move.
  auto in = input(3, 3);
  in.desired[1].address = "10.0.9.9";
  const auto step = planTransition(in);
  EXPECT_FALSE(step.transition);
  EXPECT_EQ(step.servers[1].address, "10.0.9.9");
}

TEST(Transition, ScaleUpStartsInPrepareWithTheNextRingBesideTheCurrentOne) {
  const auto step = planTransition(input(2, 3));
  ASSERT_TRUE(step.transition);
  EXPECT_EQ(step.transition->phase, kPhasePrepare);
  EXPECT_EQ(step.phase, kPhasePrepare);
  EXPECT_EQ(names(step.servers), names(ring(2)));
  EXPECT_EQ(names(step.next), names(ring(3)));
  EXPECT_TRUE(step.previous.empty());
  EXPECT_EQ(step.work, TransitionWorkKind::kNone);
  EXPECT_TRUE(hasEvent(step, "TransitionStarted"));
  EXPECT_TRUE(step.transition->published_at.empty());
}

TEST(Transition, PrepareWaitsForItsVersionThenForThePropagationBound) {
  const auto in = input(2, 3);
  const auto started = planTransition(in);
  // Not published yet (the cache still shows the stable document).
  auto step = planTransition(later(in, started, seconds(30), ""));
  EXPECT_EQ(step.transition->phase, kPhasePrepare);
  EXPECT_TRUE(step.transition->published_at.empty());
  EXPECT_NE(step.message.find("to be published"), std::string::npos) << step.message;
  // Seen published now: the propagation bound counts from here, not from the start.
  step = planTransition(later(in, started, seconds(31), kPhasePrepare));
  EXPECT_EQ(step.transition->phase, kPhasePrepare);
  EXPECT_FALSE(step.transition->published_at.empty());
  ASSERT_TRUE(step.requeue);
  EXPECT_LE(*step.requeue, milliseconds(2000));
  // 9 s later: still waiting; 10 s later: copy, with the copy work asked for.
  step = planTransition(later(in, step, seconds(40), kPhasePrepare));
  EXPECT_EQ(step.transition->phase, kPhasePrepare);
  EXPECT_EQ(step.work, TransitionWorkKind::kNone);
  auto published = step;
  step = planTransition(later(in, published, seconds(41), kPhasePrepare));
  EXPECT_EQ(step.transition->phase, kPhaseCopy);
  EXPECT_EQ(step.phase, kPhaseCopy);
  EXPECT_EQ(step.work, TransitionWorkKind::kCopy);
  EXPECT_EQ(names(step.next), names(ring(3)));
  ASSERT_EQ(step.finished_phases.size(), 1u);
  EXPECT_EQ(step.finished_phases[0].first, kPhasePrepare);
}

TEST(Transition, AVersionOfAnotherPhaseDoesNotCountAsPublished) {
  const auto in = input(2, 3);
  auto started = planTransition(in);
  auto step = planTransition(later(in, started, seconds(1), kPhaseSwitch));
  EXPECT_TRUE(step.transition->published_at.empty());
  auto other = later(in, started, seconds(1), kPhasePrepare);
  other.cached_version = in.recorded_version - 1;
  EXPECT_TRUE(planTransition(other).transition->published_at.empty());
}

// A transition recorded in `phase`, published `since` ago.
TransitionInput inPhase(const char* phase, int from, int to, seconds since) {
  auto in = input(from, to);
  TransitionStatus t;
  t.phase = phase;
  t.from = ring(from);
  t.to = ring(to);
  t.started_at = util::formatRfc3339Micro(kT0 - seconds(600));
  t.phase_started_at = util::formatRfc3339Micro(kT0 - since - seconds(1));
  t.published_at = util::formatRfc3339Micro(kT0 - since);
  in.recorded = t;
  in.cached_version = in.recorded_version;
  in.cached_phase = phase;
  return in;
}

TEST(Transition, CopyProgressIsRecordedAndAFinishedCopySwitches) {
  const auto in = inPhase(kPhaseCopy, 2, 3, seconds(5));
  auto step = planTransition(in);
  ASSERT_EQ(step.work, TransitionWorkKind::kCopy);
  WarmCopyProgress p;
  p.counts.copied = 70;
  p.counts.processed = 80;
  p.counts.skipped_present = 10;
  p.counts.bytes = 7000;
  p.cursor = {true, 1234, "user:9"};
  applyTransitionWork(step, in, {false, absl::OkStatus(), {{"sessions-1", p}}, {}, {}});
  EXPECT_EQ(step.transition->phase, kPhaseCopy);
  ASSERT_EQ(step.transition->copy.size(), 1u);
  EXPECT_EQ(step.transition->copy[0].name, "sessions-1");
  EXPECT_EQ(step.transition->copy[0].copied, 70u);
  EXPECT_EQ(step.transition->copy[0].skipped, 10u);
  EXPECT_EQ(step.transition->copy[0].cursor_key, "user:9");
  EXPECT_NE(step.message.find("70 items"), std::string::npos) << step.message;

  step = planTransition(in);
  p.done = true;
  applyTransitionWork(step, in, {true, absl::OkStatus(), {{"sessions-1", p}}, {}, seconds(3)});
  EXPECT_EQ(step.transition->phase, kPhaseSwitch);
  EXPECT_EQ(step.phase, kPhaseSwitch);
  EXPECT_EQ(step.work, TransitionWorkKind::kNone);
  EXPECT_EQ(names(step.servers), names(ring(3)));
  EXPECT_EQ(names(step.previous), names(ring(2)));
  EXPECT_TRUE(step.next.empty());
  EXPECT_TRUE(step.transition->published_at.empty());
  EXPECT_TRUE(step.transition->cold_reason.empty());
  EXPECT_TRUE(hasEvent(step, "WarmCopyFinished"));
}

TEST(Transition, AFailedCopyGoesOnColdWithAWarning) {
  const auto in = inPhase(kPhaseCopy, 2, 3, seconds(5));
  auto step = planTransition(in);
  applyTransitionWork(step, in,
                      {true, absl::DeadlineExceededError("copy from sessions-0: too slow"), {},
                       {}, {}});
  EXPECT_EQ(step.transition->phase, kPhaseSwitch);
  EXPECT_NE(step.transition->cold_reason.find("too slow"), std::string::npos);
  ASSERT_TRUE(hasEvent(step, "WarmCopyFailed"));
  for (const auto& e : step.events) {
    if (e.reason == "WarmCopyFailed") EXPECT_EQ(e.severity, kube::EventSeverity::kWarning);
  }
}

TEST(Transition, SwitchBackfillsOnceClientsReadTheNewRing) {
  auto in = inPhase(kPhaseSwitch, 2, 3, seconds(9));
  auto step = planTransition(in);
  EXPECT_EQ(step.work, TransitionWorkKind::kNone);  // clients may still write the old owners
  in = inPhase(kPhaseSwitch, 2, 3, seconds(10));
  step = planTransition(in);
  ASSERT_EQ(step.work, TransitionWorkKind::kBackfill);
  EXPECT_EQ(names(step.previous), names(ring(2)));
  auto work = transitionWork(step, "shop/sessions", "ketama-libmemcached", {});
  ASSERT_TRUE(work.ok());
  EXPECT_TRUE(work->sweep.empty());
  EXPECT_EQ(work->sources, (std::vector<size_t>{0, 1}));
  EXPECT_TRUE(work->resume.empty());
  EXPECT_NE(transitionWorkId("u", *step.transition),
            (TransitionWorkId{"u", step.transition->started_at, kPhaseCopy}));
  applyTransitionWork(step, in, {false, absl::OkStatus(), {}, {}, {}});
  EXPECT_FALSE(step.transition->backfilled);
  // Done (even failed: it only costs warmth): recorded, and the window still applies.
  applyTransitionWork(step, in, {true, absl::UnavailableError("gone"), {}, {}, {}});
  EXPECT_TRUE(step.transition->backfilled);
  EXPECT_EQ(step.transition->phase, kPhaseSwitch);
  EXPECT_EQ(step.work, TransitionWorkKind::kNone);
}

// A switch published `since` ago whose backfill is done.
TransitionInput backfilled(seconds since) {
  auto in = inPhase(kPhaseSwitch, 2, 3, since);
  in.recorded->backfilled = true;
  return in;
}

TEST(Transition, SwitchKeepsPreviousForTheWindowThenFinalizes) {
  auto step = planTransition(backfilled(seconds(29)));
  EXPECT_EQ(step.transition->phase, kPhaseSwitch);
  EXPECT_EQ(names(step.previous), names(ring(2)));
  // The window has passed but the backfill has not run: it runs first.
  EXPECT_EQ(planTransition(inPhase(kPhaseSwitch, 2, 3, seconds(30))).work,
            TransitionWorkKind::kBackfill);
  step = planTransition(backfilled(seconds(30)));
  EXPECT_EQ(step.transition->phase, kPhaseFinalize);
  EXPECT_EQ(step.phase, kPhaseFinalize);
  EXPECT_EQ(names(step.servers), names(ring(3)));
  EXPECT_TRUE(step.previous.empty());
  EXPECT_EQ(step.work, TransitionWorkKind::kNone);  // its own version must be seen first
}

TEST(Transition, FinalizeCleansTheOldOwnersThenPublishesTheStableRing) {
  auto in = inPhase(kPhaseFinalize, 2, 3, seconds(9));
  EXPECT_EQ(planTransition(in).work, TransitionWorkKind::kNone);
  in = inPhase(kPhaseFinalize, 2, 3, seconds(10));
  auto step = planTransition(in);
  ASSERT_EQ(step.work, TransitionWorkKind::kClean);
  applyTransitionWork(step, in, {false, absl::OkStatus(), {}, {}, {}});
  EXPECT_EQ(step.transition->phase, kPhaseFinalize);
  applyTransitionWork(step, in, {true, absl::OkStatus(), {}, {}, {}});
  EXPECT_FALSE(step.transition);
  EXPECT_EQ(step.phase, "");
  EXPECT_EQ(names(step.servers), names(ring(3)));
  EXPECT_TRUE(hasEvent(step, "TransitionCompleted"));
  EXPECT_TRUE(step.message.empty());
}

TEST(Transition, AShrinkingRingNeedsNoCleanAndCompletes) {
  const auto step = planTransition(inPhase(kPhaseFinalize, 3, 2, seconds(10)));
  EXPECT_FALSE(step.transition);
  EXPECT_EQ(names(step.servers), names(ring(2)));
}

TEST(Transition, MembersThatMoveOnDuringATransitionWaitForIt) {
  // Recorded 2 -> 3 in switch; the members now say 4.
  auto in = inPhase(kPhaseSwitch, 2, 3, seconds(1));
  in.desired = ring(4);
  auto step = planTransition(in);
  EXPECT_EQ(names(step.transition->to), names(ring(3)));
  EXPECT_EQ(names(step.servers), names(ring(3)));
  // At the end of this one, the next starts from the ring clients use: 3 -> 4.
  in = inPhase(kPhaseFinalize, 2, 3, seconds(10));
  in.desired = ring(4);
  step = planTransition(in);
  applyTransitionWork(step, in, {true, absl::OkStatus(), {}, {}, {}});
  ASSERT_TRUE(step.transition);
  EXPECT_EQ(step.transition->phase, kPhasePrepare);
  EXPECT_EQ(names(step.transition->from), names(ring(3)));
  EXPECT_EQ(names(step.transition->to), names(ring(4)));
  EXPECT_EQ(names(step.servers), names(ring(3)));
  EXPECT_EQ(names(step.next), names(ring(4)));
  EXPECT_TRUE(hasEvent(step, "TransitionCompleted"));
  EXPECT_TRUE(hasEvent(step, "TransitionStarted"));
}

TEST(Transition, RecordedRingsFollowTheMembersAddresses) {
  auto in = inPhase(kPhaseCopy, 2, 3, seconds(1));
  in.desired[2].address = "10.0.7.7";
  const auto step = planTransition(in);
  EXPECT_EQ(step.transition->to[2].address, "10.0.7.7");
  EXPECT_EQ(step.next[2].address, "10.0.7.7");
}

TEST(Transition, CopyWorkSweepsTargetsThatStayOnlyWhenTheRingLosesMembers) {
  TransitionSettings settings;
  settings.copy_items_per_second = 500;
  settings.copy_timeout_seconds = 20;
  auto up = planTransition(inPhase(kPhaseCopy, 2, 3, seconds(1)));
  auto work = transitionWork(up, "shop/sessions", "ketama-libmemcached", settings);
  ASSERT_TRUE(work.ok()) << work.status();
  EXPECT_TRUE(work->sweep.empty());
  EXPECT_EQ(work->sources, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(work->copy.items_per_second, 500);
  EXPECT_EQ(work->deadline, seconds(20));

  auto down = planTransition(inPhase(kPhaseCopy, 3, 2, seconds(1)));
  work = transitionWork(down, "shop/sessions", "ketama-libmemcached", settings);
  ASSERT_TRUE(work.ok()) << work.status();
  EXPECT_EQ(work->sweep, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(work->sweep_ring->servers().size(), 3u);
  EXPECT_EQ(work->sources, (std::vector<size_t>{0, 1, 2}));
}

TEST(Transition, CopyWorkResumesFromTheRecordedCursorsAndSkipsFinishedSources) {
  auto step = planTransition(inPhase(kPhaseCopy, 3, 2, seconds(1)));
  step.transition->copy = {{"sessions-0", 5, 5, 0, 50, true, 0, ""},
                           {"sessions-2", 40, 30, 10, 300, false, 777, "k:12"}};
  auto work = transitionWork(step, "shop/sessions", "ketama-libmemcached", {});
  ASSERT_TRUE(work.ok());
  EXPECT_EQ(work->sources, (std::vector<size_t>{1, 2}));
  ASSERT_EQ(work->resume.count("sessions-2"), 1u);
  const auto& r = work->resume.at("sessions-2");
  EXPECT_TRUE(r.cursor.valid);
  EXPECT_EQ(r.cursor.key, "k:12");
  EXPECT_EQ(r.cursor.last_access, 777);
  EXPECT_EQ(r.counts.processed, 40u);
}

TEST(Transition, CleanWorkSweepsTheOldOwnersAgainstTheNewRing) {
  auto step = planTransition(inPhase(kPhaseFinalize, 2, 3, seconds(10)));
  ASSERT_EQ(step.work, TransitionWorkKind::kClean);
  auto work = transitionWork(step, "shop/sessions", "ketama-libmemcached", {});
  ASSERT_TRUE(work.ok());
  EXPECT_EQ(work->sweep, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(work->sweep_ring->servers().size(), 3u);
  EXPECT_TRUE(work->sources.empty());
}

}  // namespace
}  // namespace mcop::memcached
