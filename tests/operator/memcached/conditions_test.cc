// Conditions as tables: each row is one situation of a pass and the condition it must produce.
#include "memcached/conditions.h"

#include <functional>

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

Member member(int64_t ordinal, MemberState state) {
  Member m;
  m.ordinal = ordinal;
  m.name = "sessions-" + std::to_string(ordinal);
  m.state = state;
  return m;
}

ConditionsInput base() {
  ConditionsInput in;
  in.generation = 4;
  in.spec_replicas = 3;
  in.pdb_max_unavailable = 1;
  in.drain_timeout_seconds = 600;
  in.config_version = 7;
  for (int i = 0; i < 3; ++i) in.members.push_back(member(i, MemberState::kActive));
  return in;
}

struct AvailableRow {
  std::string name;
  std::vector<MemberState> states;
  int64_t spec_replicas;
  int64_t max_unavailable;
  std::string status;
  std::string reason;
};

TEST(AvailableConditionTest, Table) {
  using S = MemberState;
  const std::vector<AvailableRow> rows = {
      {"all ready", {S::kActive, S::kActive, S::kActive}, 3, 1, "True", "MembersReady"},
      {"one unready within budget", {S::kActive, S::kUnready, S::kActive}, 3, 1, "True",
       "MinimumMembersReady"},
      {"two unready over budget", {S::kActive, S::kUnready, S::kUnready}, 3, 1, "False",
       "MembersUnready"},
      {"all unready", {S::kUnready}, 1, 1, "False", "MembersUnready"},
      {"none published", {S::kJoining, S::kJoining}, 2, 1, "False", "NoMembers"},
      {"scaled to zero", {}, 0, 1, "True", "ScaledToZero"},
      {"draining only counts as none", {S::kDraining}, 0, 1, "True", "ScaledToZero"},
      {"negative budget is zero", {S::kActive, S::kUnready}, 2, -1, "False", "MembersUnready"},
  };
  for (const auto& row : rows) {
    ConditionsInput in = base();
    in.members.clear();
    for (size_t i = 0; i < row.states.size(); ++i) {
      in.members.push_back(member(static_cast<int64_t>(i), row.states[i]));
    }
    in.spec_replicas = row.spec_replicas;
    in.pdb_max_unavailable = row.max_unavailable;
    const Condition c = availableCondition(in);
    EXPECT_EQ(c.status, row.status) << row.name;
    EXPECT_EQ(c.reason, row.reason) << row.name;
    EXPECT_EQ(c.observed_generation, 4) << row.name;
  }
}

TEST(ProgressingConditionTest, Table) {
  struct Row {
    std::string name;
    std::function<void(ConditionsInput&)> set;
    std::string status;
    std::string reason;
    std::string message;
  };
  DrainStatus waiting{2, {"sessions-2"}, "t", "", "", true};
  DrainStatus decided = waiting;
  decided.outcome = kDrainOutcomeDrained;
  const std::vector<Row> rows = {
      {"stable", [](ConditionsInput&) {}, "False", "Stable", "3 members, endpoints version 7"},
      {"draining, default message", [&](ConditionsInput& in) { in.drain = waiting; }, "True",
       "Draining", "draining sessions-2"},
      {"draining, the drain's message",
       [&](ConditionsInput& in) {
         in.drain = waiting;
         in.drain_message = "waiting for clients to leave sessions-2";
       },
       "True", "Draining", "waiting for clients to leave sessions-2"},
      {"decided, waiting for pods", [&](ConditionsInput& in) { in.drain = decided; }, "True",
       "ScalingDown", "waiting for sessions-2 to terminate"},
      {"decided, lowering blocked",
       [&](ConditionsInput& in) {
         in.drain = decided;
         in.lowering_blocked = true;
       },
       "True", "ScalingDown", "waiting for the published endpoints to drop the outgoing pods"},
      {"scaling up",
       [](ConditionsInput& in) {
         in.members.push_back(member(3, MemberState::kJoining));
         in.scaling_up = true;
       },
       "True", "ScalingUp", "waiting for sessions-3 to become Ready and join the endpoints"},
      {"waiting for pods",
       [](ConditionsInput& in) { in.members[1].state = MemberState::kJoining; }, "True",
       "WaitingForPods", "waiting for sessions-1 to become Ready and join the endpoints"},
      {"rolling update", [](ConditionsInput& in) { in.rolling_update = true; }, "True",
       "RollingUpdate", "the StatefulSet is rolling out a new pod template"},
  };
  for (const auto& row : rows) {
    ConditionsInput in = base();
    row.set(in);
    const Condition c = progressingCondition(in);
    EXPECT_EQ(c.status, row.status) << row.name;
    EXPECT_EQ(c.reason, row.reason) << row.name;
    EXPECT_EQ(c.message, row.message) << row.name;
  }
}

TEST(DegradedConditionTest, Table) {
  struct Row {
    std::string name;
    std::function<void(ConditionsInput&)> set;
    std::string status;
    std::string reason;
  };
  DrainStatus timed_out{2, {"sessions-2"}, "t", "t", kDrainOutcomeTimedOut, true};
  const auto previous = [](std::string reason, int64_t generation) {
    return Condition{kConditionDegraded, "True", reason, "before", generation, "t0"};
  };
  const std::vector<Row> rows = {
      {"as expected", [](ConditionsInput&) {}, "False", "AsExpected"},
      {"pods failing",
       [](ConditionsInput& in) { in.pods[0] = PodView{"sessions-0", 0, false, false, "", "CrashLoopBackOff"}; },
       "True", "PodsFailing"},
      {"drain timed out", [&](ConditionsInput& in) { in.drain = timed_out; }, "True",
       "DrainTimeout"},
      {"timeout kept in its generation",
       [&](ConditionsInput& in) { in.previous_degraded = previous("DrainTimeout", 4); }, "True",
       "DrainTimeout"},
      {"timeout dropped by a new generation",
       [&](ConditionsInput& in) { in.previous_degraded = previous("DrainTimeout", 3); }, "False",
       "AsExpected"},
      {"write failure carried",
       [&](ConditionsInput& in) { in.previous_degraded = previous(kReasonApplyFailed, 4); },
       "True", kReasonApplyFailed},
      {"write failure cleared",
       [&](ConditionsInput& in) {
         in.previous_degraded = previous(kReasonApplyFailed, 4);
         in.carry_write_failure = false;
       },
       "False", "AsExpected"},
      {"stats unavailable",
       [](ConditionsInput& in) { in.measure_failures = {"sessions-1: refused"}; }, "True",
       "StatsUnavailable"},
      {"failing pods win over a timeout",
       [&](ConditionsInput& in) {
         in.drain = timed_out;
         in.pods[1] = PodView{"sessions-1", 1, false, false, "", "ErrImagePull"};
       },
       "True", "PodsFailing"},
  };
  for (const auto& row : rows) {
    ConditionsInput in = base();
    row.set(in);
    const Condition c = degradedCondition(in);
    EXPECT_EQ(c.status, row.status) << row.name;
    EXPECT_EQ(c.reason, row.reason) << row.name;
  }
}

TEST(DecideConditionsTest, PhaseFollowsDegradedThenProgressingThenAvailable) {
  ConditionsInput in = base();
  EXPECT_EQ(decideConditions(in).phase, "Available");
  in.rolling_update = true;
  EXPECT_EQ(decideConditions(in).phase, "Progressing");
  in.measure_failures = {"sessions-0: refused"};
  EXPECT_EQ(decideConditions(in).phase, "Degraded");
  ConditionsInput none = base();
  none.members.clear();
  none.members.push_back(member(0, MemberState::kJoining));
  none.members[0].state = MemberState::kJoining;
  // Joining members make it Progressing; with nothing to wait for and nothing published, it is
  // Unavailable.
  EXPECT_EQ(decideConditions(none).phase, "Progressing");
  none.members.clear();
  EXPECT_EQ(decideConditions(none).phase, "Unavailable");
}

TEST(DecideConditionsTest, PausedDecidesOnlyAvailable) {
  ConditionsInput in = base();
  in.paused = true;
  const ConditionsDecision d = decideConditions(in);
  EXPECT_EQ(d.available.reason, "MembersReady");
  EXPECT_FALSE(d.progressing.has_value());
  EXPECT_FALSE(d.degraded.has_value());
  EXPECT_EQ(d.phase, "");
}

TEST(ApplyConditionsTest, KeepsTransitionTimeWhenStatusHolds) {
  std::vector<Condition> conditions;
  applyConditions(decideConditions(base()), "t1", conditions);
  ASSERT_EQ(conditions.size(), 3u);
  ConditionsInput in = base();
  in.config_version = 8;  // another Stable message, same status
  applyConditions(decideConditions(in), "t2", conditions);
  const Condition* progressing = findCondition(conditions, kConditionProgressing);
  ASSERT_NE(progressing, nullptr);
  EXPECT_EQ(progressing->last_transition_time, "t1");
  EXPECT_EQ(progressing->message, "3 members, endpoints version 8");
  in.rolling_update = true;
  applyConditions(decideConditions(in), "t3", conditions);
  EXPECT_EQ(findCondition(conditions, kConditionProgressing)->last_transition_time, "t3");
}

}  // namespace
}  // namespace mcop::memcached
