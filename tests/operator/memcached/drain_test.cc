// The drain's decisions as tables: planDrain's transitions, the sweep's record, the clock, the
// connection verdict, the ring size and the lowering guard. No I/O: inputs in, decisions out.
#include "memcached/drain.h"

#include <functional>

#include <gtest/gtest.h>

#include "memcached/endpoints_config.h"
#include "util/time.h"

namespace mcop::memcached {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kNow[] = "2026-01-01T00:10:00.000000Z";

std::map<int64_t, PodView> pods(int64_t n) {
  std::map<int64_t, PodView> out;
  for (int64_t i = 0; i < n; ++i) {
    out[i] = PodView{"sessions-" + std::to_string(i), i, true, false,
                     "10.0.0." + std::to_string(i + 1), ""};
  }
  return out;
}

DrainInput input(int64_t current, int64_t wanted, std::optional<DrainStatus> recorded) {
  DrainInput in;
  in.key = "shop/sessions";
  in.cluster = "sessions";
  in.has_stateful_set = true;
  in.current = current;
  in.wanted = wanted;
  in.recorded = std::move(recorded);
  in.pods = pods(current);
  in.min_seconds = 60;
  in.now_precise = kNow;
  return in;
}

std::vector<std::string> reasons(const DrainStep& step) {
  std::vector<std::string> out;
  for (const auto& e : step.events) out.push_back(e.reason);
  return out;
}

TEST(PlanDrainTest, Transitions) {
  const DrainStatus sweeping{3, {"sessions-3", "sessions-4"}, "t0", "", "", false};
  DrainStatus swept = sweeping;
  swept.stale_copies_swept = true;
  DrainStatus decided = swept;
  decided.outcome = kDrainOutcomeDrained;
  struct Row {
    std::string name;
    DrainInput in;
    std::optional<int64_t> target;  // nullopt: no drain afterwards
    std::vector<std::string> members;
    DrainNext next;
    std::vector<std::string> events;
  };
  DrainInput gone = input(3, 3, decided);  // lowered, pods 3 and 4 gone
  DrainInput leaving = input(3, 3, decided);
  leaving.pods = pods(5);  // lowered, pods 3 and 4 still terminating
  DrainInput no_sts = input(0, 2, sweeping);
  no_sts.has_stateful_set = false;
  const std::vector<Row> rows = {
      {"steady", input(3, 3, std::nullopt), std::nullopt, {}, DrainNext::kNothing, {}},
      {"scale-up is not a drain", input(3, 5, std::nullopt), std::nullopt, {},
       DrainNext::kNothing, {}},
      {"start", input(5, 3, std::nullopt), 3, {"sessions-3", "sessions-4"}, DrainNext::kNothing,
       {"ScalingDown", "DrainStarted"}},
      {"sweep next", input(5, 3, sweeping), 3, {"sessions-3", "sessions-4"}, DrainNext::kSweep,
       {}},
      {"evaluate next", input(5, 3, swept), 3, {"sessions-3", "sessions-4"},
       DrainNext::kEvaluate, {}},
      {"decided: nothing to look at", input(5, 3, decided), 3, {"sessions-3", "sessions-4"},
       DrainNext::kNothing, {}},
      {"cancel", input(5, 5, sweeping), std::nullopt, {}, DrainNext::kNothing,
       {"DrainCancelled"}},
      {"retarget deeper", input(5, 2, swept), 2, {"sessions-2", "sessions-3", "sessions-4"},
       DrainNext::kNothing, {"DrainStarted"}},
      {"retarget shallower", input(5, 4, swept), 4, {"sessions-4"}, DrainNext::kNothing,
       {"DrainStarted"}},
      {"lowered, pods leaving", leaving, 3, {"sessions-3", "sessions-4"}, DrainNext::kNothing,
       {}},
      {"lowered, pods gone", gone, std::nullopt, {}, DrainNext::kNothing, {}},
      {"no StatefulSet", no_sts, std::nullopt, {}, DrainNext::kNothing, {}},
  };
  for (const auto& row : rows) {
    const DrainStep step = planDrain(row.in);
    ASSERT_EQ(step.drain.has_value(), row.target.has_value()) << row.name;
    if (row.target) {
      EXPECT_EQ(step.drain->target_replicas, *row.target) << row.name;
      EXPECT_EQ(step.drain->members, row.members) << row.name;
    }
    EXPECT_EQ(step.next, row.next) << row.name;
    EXPECT_EQ(reasons(step), row.events) << row.name;
  }
}

TEST(PlanDrainTest, StartRecordsAnUnsweptDrainAndRequeuesAtOnce) {
  const DrainStep step = planDrain(input(5, 3, std::nullopt));
  ASSERT_TRUE(step.drain);
  EXPECT_EQ(step.drain->started_at, kNow);
  EXPECT_FALSE(step.drain->stale_copies_swept);
  EXPECT_TRUE(step.drain->outcome.empty());
  ASSERT_TRUE(step.requeue);
  EXPECT_EQ(*step.requeue, milliseconds(1));
}

TEST(PlanDrainTest, DeeperRetargetSweepsAndWaitsAgainShallowerDoesNot) {
  const DrainStatus published{3, {"sessions-3", "sessions-4"}, "t0", "t1", "", true};
  const DrainStep deeper = planDrain(input(5, 2, published));
  EXPECT_FALSE(deeper.drain->stale_copies_swept);
  EXPECT_TRUE(deeper.drain->published_at.empty());
  const DrainStep shallower = planDrain(input(5, 4, published));
  EXPECT_TRUE(shallower.drain->stale_copies_swept);
  EXPECT_EQ(shallower.drain->published_at, "t1");
}

TEST(ApplySweepTest, Table) {
  using Kind = SweepObservation::Kind;
  struct Row {
    std::string name;
    SweepObservation sweep;
    bool swept;
    std::vector<std::string> events;
    std::optional<milliseconds> requeue;
  };
  SweepObservation running;
  running.kind = Kind::kRunning;
  running.pending = {"sessions-1"};
  running.finished = 1;
  running.total = 2;
  running.elapsed = milliseconds(300);
  SweepObservation unreadable;
  unreadable.kind = Kind::kUnreadable;
  unreadable.error = "cannot read the published endpoints: bad";
  SweepObservation done;
  done.kind = Kind::kDone;
  done.ring_version = 4;
  done.results.push_back({"sessions-0", SweepCounts{10, 2}, milliseconds(5)});
  done.results.push_back({"sessions-1", absl::UnavailableError("refused"), milliseconds(5)});
  const std::vector<Row> rows = {
      {"nothing to sweep", SweepObservation{}, true, {}, std::nullopt},
      {"running", running, false, {}, milliseconds(300)},
      {"unreadable", unreadable, true, {"StaleCopySweepFailed"}, std::nullopt},
      {"done", done, true, {"StaleCopiesRemoved", "StaleCopySweepFailed"}, std::nullopt},
  };
  for (const auto& row : rows) {
    DrainStep step;
    step.drain = DrainStatus{2, {"sessions-2"}, "t0", "", "", false};
    step.next = DrainNext::kSweep;
    applySweep(step, row.sweep, "shop/sessions", seconds(2));
    EXPECT_EQ(step.drain->stale_copies_swept, row.swept) << row.name;
    EXPECT_EQ(step.next, row.swept ? DrainNext::kEvaluate : DrainNext::kSweep) << row.name;
    EXPECT_EQ(reasons(step), row.events) << row.name;
    EXPECT_EQ(step.requeue, row.requeue) << row.name;
  }
}

TEST(ApplySweepTest, RunningPollsWithinBounds) {
  for (const auto& [elapsed, want] : std::vector<std::pair<int, int>>{
           {0, 50}, {300, 300}, {5000, 1000}}) {
    DrainStep step;
    step.drain = DrainStatus{2, {"sessions-2"}, "t0", "", "", false};
    SweepObservation running;
    running.kind = SweepObservation::Kind::kRunning;
    running.elapsed = milliseconds(elapsed);
    applySweep(step, running, "shop/sessions", seconds(2));
    EXPECT_EQ(step.requeue, milliseconds(want)) << elapsed;
    EXPECT_NE(step.message.find("sweeping stale copies from"), std::string::npos);
  }
}

TEST(DrainClockTest, Table) {
  const auto now = *util::parseRfc3339("2026-01-01T00:10:00Z");
  const std::vector<std::string> without = {"sessions-0", "sessions-1"};
  const std::vector<std::string> with = {"sessions-0", "sessions-1", "sessions-2"};
  struct Row {
    std::string name;
    std::string published_at;
    std::optional<std::vector<std::string>> names;
    bool published;
    std::string want_published_at;
    bool measuring;
  };
  const std::vector<Row> rows = {
      {"still listed", "", with, false, "", false},
      {"no ConfigMap", "", std::nullopt, false, "", false},
      {"just published", "", without, true, kNow, false},
      {"within the minimum", "2026-01-01T00:09:30Z", with, true, "2026-01-01T00:09:30Z", false},
      {"past the minimum", "2026-01-01T00:09:00Z", with, true, "2026-01-01T00:09:00Z", true},
      {"unreadable time restarts", "yesterday", with, true, kNow, false},
  };
  for (const auto& row : rows) {
    DrainStatus drain{2, {"sessions-2"}, "t0", row.published_at, "", true};
    const DrainClock clock = drainClock(drain, row.names, now, kNow, 60);
    EXPECT_EQ(clock.published, row.published) << row.name;
    EXPECT_EQ(clock.published_at, row.want_published_at) << row.name;
    EXPECT_EQ(clock.measuring, row.measuring) << row.name;
  }
}

// A member that is not Ready is measured too: clients use the published list, not readiness
// (after an API server outage the node lifecycle controller turns every pod NotReady while
// memcached keeps serving; the drain then completed with clients still connected).
TEST(DrainConnectionProbesTest, PublishedMembersWithAnAddressReadyOrNot) {
  std::vector<Member> members;
  for (int i = 2; i < 6; ++i) {
    Member m;
    m.name = "sessions-" + std::to_string(i);
    m.ordinal = i;
    if (i != 3) m.baseline_connections = 3;  // sessions-3 was never published
    members.push_back(m);
  }
  auto p = pods(6);
  p[4].ready = false;
  p.erase(5);
  const DrainStatus drain{2, {"sessions-2", "sessions-3", "sessions-4", "sessions-5"}, "t0",
                          "t1", "", true};
  const auto probes = drainConnectionProbes(drain, "sessions", members, p);
  ASSERT_EQ(probes.size(), 2u);
  EXPECT_EQ(probes[0].name, "sessions-2");
  EXPECT_EQ(probes[0].address, "10.0.0.3");
  EXPECT_EQ(probes[0].baseline, 3);
  EXPECT_TRUE(probes[0].ready);
  EXPECT_EQ(probes[1].name, "sessions-4");
  EXPECT_FALSE(probes[1].ready);
}

TEST(EvaluateDrainTest, NotReadyMemberWithClientsHoldsTheDrain) {
  struct Row {
    std::string name;
    ConnectionCounts counts;
    std::string outcome;
  };
  const std::vector<Row> rows = {
      {"not Ready, clients connected", {{"sessions-2", 9}}, ""},
      {"not Ready, clients gone", {{"sessions-2", 3}}, kDrainOutcomeDrained},
      {"not Ready, not answering", {{"sessions-2", absl::UnavailableError("refused")}},
       kDrainOutcomeDrained},
  };
  for (const auto& row : rows) {
    DrainStep step;
    step.drain = DrainStatus{2, {"sessions-2"}, "t0", "2026-01-01T00:00:00Z", "", true};
    DrainEvaluation eval;
    eval.key = "shop/sessions";
    eval.clock.published = true;
    eval.clock.published_at = "2026-01-01T00:00:00Z";
    eval.clock.started = *util::parseRfc3339("2026-01-01T00:00:00Z");
    eval.clock.elapsed = seconds(90);
    eval.clock.measuring = true;
    eval.probes = {{"sessions-2", "10.0.0.3", 3, false}};
    eval.counts = row.counts;
    eval.settings = DrainSettings{60, 600, 1};
    evaluateDrain(step, eval);
    EXPECT_EQ(step.drain->outcome, row.outcome) << row.name;
  }
}

TEST(EvaluateDrainTest, Table) {
  const auto published = *util::parseRfc3339("2026-01-01T00:00:00Z");
  struct Row {
    std::string name;
    int64_t elapsed_s;
    ConnectionCounts counts;
    std::string outcome;
    std::vector<std::string> events;
    bool decided_metric;
  };
  const std::vector<Row> rows = {
      {"clients gone", 90, {{"sessions-2", 3}}, kDrainOutcomeDrained, {"DrainCompleted"}, true},
      {"at the threshold", 90, {{"sessions-2", 4}}, kDrainOutcomeDrained, {"DrainCompleted"},
       true},
      {"clients left", 90, {{"sessions-2", 9}}, "", {}, false},
      {"stats unavailable", 90, {{"sessions-2", absl::UnavailableError("refused")}}, "", {},
       false},
      {"timed out", 600, {{"sessions-2", 9}}, kDrainOutcomeTimedOut, {"DrainTimeout"}, true},
  };
  for (const auto& row : rows) {
    DrainStep step;
    step.drain = DrainStatus{2, {"sessions-2"}, "t0", "2026-01-01T00:00:00Z", "", true};
    DrainEvaluation eval;
    eval.key = "shop/sessions";
    eval.clock.published = true;
    eval.clock.published_at = "2026-01-01T00:00:00Z";
    eval.clock.started = published;
    eval.clock.elapsed = seconds(row.elapsed_s);
    eval.clock.measuring = true;
    eval.probes = {{"sessions-2", "10.0.0.3", 3}};
    eval.counts = row.counts;
    eval.settings = DrainSettings{60, 600, 1};
    eval.now = published + seconds(row.elapsed_s);
    evaluateDrain(step, eval);
    EXPECT_EQ(step.drain->outcome, row.outcome) << row.name;
    EXPECT_EQ(reasons(step), row.events) << row.name;
    EXPECT_EQ(step.decided_after_seconds.has_value(), row.decided_metric) << row.name;
    if (row.outcome.empty()) {
      EXPECT_EQ(step.message,
                "waiting for clients to leave sessions-2 (at most 1 client connections each; "
                "scaling down anyway at 2026-01-01T00:10:00Z)")
          << row.name;
    }
  }
}

TEST(EvaluateDrainTest, WaitsForThePublishThenTheMinimum) {
  DrainStep step;
  step.drain = DrainStatus{2, {"sessions-2"}, "t0", "", "", true};
  DrainEvaluation eval;
  eval.settings = DrainSettings{60, 600, 0};
  eval.max_poll_interval = seconds(2);
  evaluateDrain(step, eval);
  EXPECT_EQ(step.message, "publishing the endpoints without sessions-2");
  EXPECT_TRUE(step.drain->published_at.empty());

  eval.clock.published = true;
  eval.clock.published_at = kNow;
  eval.clock.started = *util::parseRfc3339("2026-01-01T00:10:00Z");
  evaluateDrain(step, eval);
  EXPECT_EQ(step.drain->published_at, kNow);
  EXPECT_EQ(step.message,
            "waiting until 2026-01-01T00:11:00Z for clients to load the new endpoints before "
            "removing sessions-2");
  EXPECT_TRUE(step.drain->outcome.empty());
}

TEST(RingSizeTest, Table) {
  std::vector<Member> published;
  for (int i = 0; i < 5; ++i) {
    Member m;
    m.name = "sessions-" + std::to_string(i);
    m.ordinal = i;
    m.state = MemberState::kActive;
    published.push_back(m);
  }
  const DrainStatus unswept{3, {"sessions-3", "sessions-4"}, "t0", "", "", false};
  DrainStatus swept = unswept;
  swept.stale_copies_swept = true;
  EXPECT_EQ(ringSize(5, std::nullopt, published), 5);
  EXPECT_EQ(ringSize(5, unswept, published), 5);  // the published ring stays until swept
  EXPECT_EQ(ringSize(5, swept, published), 3);
  EXPECT_EQ(ringSize(3, swept, published), 3);
  EXPECT_EQ(ringSize(5, unswept, {}), 3);  // nothing published: nothing to keep
}

TEST(LoweringBlockedTest, Table) {
  // A ConfigMap as the operator publishes it (the guard reads it with the clients' parser).
  const auto cm = [](int members) {
    EndpointsContent content{"shop/sessions", "ketama-libmemcached", {}};
    for (int i = 0; i < members; ++i) {
      const std::string name = "sessions-" + std::to_string(i);
      content.servers.push_back({name, name + ".sessions.shop.svc.cluster.local",
                                 "10.0.0." + std::to_string(i + 1), 11211, 1, "active"});
    }
    Json data = Json::object();
    for (const auto& [k, v] : renderEndpointsData(content, 3)) data[k] = Json::string(v);
    Json cm = Json::object();
    cm["data"] = data;
    return cm;
  };
  EXPECT_FALSE(loweringBlocked(cm(3), "sessions", 3, 3));  // not lowering
  EXPECT_FALSE(loweringBlocked(cm(2), "sessions", 2, 3));
  EXPECT_TRUE(loweringBlocked(cm(3), "sessions", 2, 3));
  // A hand-edited list the clients' parser refuses still names sessions-2 for someone: wait.
  EXPECT_TRUE(loweringBlocked(
      Json::parse(R"({"data":{"endpoints.json":"{\"servers\":[{\"name\":\"sessions-0\"}]}"}})"),
      "sessions", 2, 3));
  EXPECT_FALSE(loweringBlocked(absl::NotFoundError("gone"), "sessions", 2, 3));
  EXPECT_TRUE(loweringBlocked(absl::UnavailableError("down"), "sessions", 2, 3));
  EXPECT_TRUE(loweringBlocked(Json::parse(R"({"data":{}})"), "sessions", 2, 3));
}

}  // namespace
}  // namespace mcop::memcached
