// Membership as tables: which Ready pods are probed before they join, what the probes' results
// make of them, and the replicas a pass applies.
#include "memcached/membership.h"

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

PodView pod(int64_t ordinal, bool ready) {
  return PodView{"sessions-" + std::to_string(ordinal), ordinal, ready, false,
                 "10.0.0." + std::to_string(ordinal + 1), ""};
}

Member recorded(int64_t ordinal, MemberState state, std::optional<int64_t> baseline,
                bool flush_required = false) {
  Member m;
  m.ordinal = ordinal;
  m.name = "sessions-" + std::to_string(ordinal);
  m.host = memberHost(m.name, "sessions", "shop", "cluster.local");
  m.address = "10.0.0." + std::to_string(ordinal + 1);
  m.state = state;
  m.baseline_connections = baseline;
  m.flush_required = flush_required;
  return m;
}

MembershipInput input(int64_t ring_size) {
  MembershipInput in;
  in.cluster = "sessions";
  in.ns = "shop";
  in.domain = "cluster.local";
  in.ring_size = ring_size;
  return in;
}

TEST(JoinProbesTest, Table) {
  using S = MemberState;
  struct Row {
    std::string name;
    std::vector<Member> previous;
    bool ready;
    std::optional<JoinProbe> want;
  };
  const std::vector<Row> rows = {
      {"new Ready pod is measured", {}, true, JoinProbe{"sessions-0", "10.0.0.1", false, true}},
      {"new pod not Ready: nothing", {}, false, std::nullopt},
      {"published: nothing", {recorded(0, S::kActive, 3)}, true, std::nullopt},
      {"unready published: nothing", {recorded(0, S::kUnready, 3)}, true, std::nullopt},
      {"back from a drain: flushed, keeps its baseline", {recorded(0, S::kDraining, 3)}, true,
       JoinProbe{"sessions-0", "10.0.0.1", true, false}},
      {"flush still owed", {recorded(0, S::kJoining, 3, true)}, true,
       JoinProbe{"sessions-0", "10.0.0.1", true, false}},
      {"joining with a baseline: nothing to ask", {recorded(0, S::kJoining, 3)}, true,
       std::nullopt},
  };
  for (const auto& row : rows) {
    MembershipInput in = input(1);
    in.previous = row.previous;
    in.pods[0] = pod(0, row.ready);
    const auto probes = joinProbes(in);
    ASSERT_EQ(probes.size(), row.want ? 1u : 0u) << row.name;
    if (!row.want) continue;
    EXPECT_EQ(probes[0].name, row.want->name) << row.name;
    EXPECT_EQ(probes[0].address, row.want->address) << row.name;
    EXPECT_EQ(probes[0].flush, row.want->flush) << row.name;
    EXPECT_EQ(probes[0].measure, row.want->measure) << row.name;
  }
}

TEST(PlanMembersTest, Table) {
  using S = MemberState;
  struct Row {
    std::string name;
    std::vector<Member> previous;
    bool ready;
    JoinProbeResult probed;
    S state;
    std::optional<int64_t> baseline;
    bool flush_required;
    bool joined;
    size_t failures;
    size_t events;
  };
  const JoinProbeResult measured{std::nullopt, absl::StatusOr<int64_t>(3)};
  const JoinProbeResult unmeasurable{std::nullopt,
                                     absl::StatusOr<int64_t>(absl::UnavailableError("refused"))};
  const JoinProbeResult flushed{absl::OkStatus(), std::nullopt};
  const JoinProbeResult unflushable{absl::UnavailableError("refused"), std::nullopt};
  const JoinProbeResult flushed_unmeasurable{absl::OkStatus(), unmeasurable.connections};
  const std::vector<Row> rows = {
      {"joins once measured", {}, true, measured, S::kActive, 3, false, true, 0, 0},
      {"not Ready: joining", {}, false, {}, S::kJoining, std::nullopt, false, false, 0, 0},
      {"measure failed: joining", {}, true, unmeasurable, S::kJoining, std::nullopt, false,
       false, 1, 0},
      {"published and Ready: active", {recorded(0, S::kUnready, 3)}, true, {}, S::kActive, 3,
       false, false, 0, 0},
      {"published, not Ready: unready", {recorded(0, S::kActive, 3)}, false, {}, S::kUnready, 3,
       false, false, 0, 0},
      {"back from a drain, emptied", {recorded(0, S::kDraining, 3)}, true, flushed, S::kActive,
       3, false, true, 0, 1},
      {"back from a drain, not emptied", {recorded(0, S::kDraining, 3)}, true, unflushable,
       S::kJoining, 3, true, false, 1, 0},
      {"back from a drain, not Ready: flush owed", {recorded(0, S::kDraining, 3)}, false, {},
       S::kJoining, 3, true, false, 0, 0},
      {"emptied but not measured: flush done", {recorded(0, S::kJoining, std::nullopt, true)},
       true, flushed_unmeasurable, S::kJoining, std::nullopt, false, false, 1, 1},
  };
  for (const auto& row : rows) {
    MembershipInput in = input(1);
    in.previous = row.previous;
    in.pods[0] = pod(0, row.ready);
    const MembershipResult r = planMembers(in, {{"sessions-0", row.probed}});
    ASSERT_EQ(r.members.size(), 1u) << row.name;
    const Member& m = r.members[0];
    EXPECT_EQ(m.state, row.state) << row.name;
    EXPECT_EQ(m.baseline_connections, row.baseline) << row.name;
    EXPECT_EQ(m.flush_required, row.flush_required) << row.name;
    EXPECT_EQ(r.joined.size(), row.joined ? 1u : 0u) << row.name;
    EXPECT_EQ(r.measure_failures.size(), row.failures) << row.name;
    EXPECT_EQ(r.events.size(), row.events) << row.name;
  }
}

TEST(PlanMembersTest, DrainingMembersFollowTheRingInOrdinalOrder) {
  MembershipInput in = input(2);
  for (int i = 0; i < 4; ++i) {
    in.previous.push_back(recorded(i, MemberState::kActive, 3));
    in.pods[i] = pod(i, true);
  }
  in.draining = {"sessions-3", "sessions-2", "sessions-3", "sessions-1"};  // 1 is in the ring
  const MembershipResult r = planMembers(in, {});
  ASSERT_EQ(r.members.size(), 4u);
  EXPECT_EQ(r.members[2].name, "sessions-2");
  EXPECT_EQ(r.members[2].state, MemberState::kDraining);
  EXPECT_EQ(r.members[3].name, "sessions-3");
  EXPECT_EQ(r.members[3].state, MemberState::kDraining);
  EXPECT_EQ(publishedServers(r.members, 11211).size(), 2u);
}

TEST(DecideReplicasTest, Table) {
  const DrainStatus waiting{3, {"sessions-3"}, "t0", "", "", true};
  DrainStatus decided = waiting;
  decided.outcome = kDrainOutcomeDrained;
  struct Row {
    std::string name;
    bool has_sts;
    int64_t wanted;
    int64_t current;
    std::optional<DrainStatus> drain;
    int64_t want;
  };
  const std::vector<Row> rows = {
      {"created at spec.replicas", false, 3, 0, std::nullopt, 3},
      {"steady", true, 3, 3, std::nullopt, 3},
      {"scale-up at once", true, 5, 3, std::nullopt, 5},
      {"scale-down waits for the drain", true, 3, 4, waiting, 4},
      {"drain decided: lowered", true, 3, 4, decided, 3},
      {"already lowered", true, 3, 3, decided, 3},
      {"scale-up waits while a drain is still tracked", true, 5, 3, decided, 3},
  };
  for (const auto& row : rows) {
    EXPECT_EQ(decideReplicas(row.has_sts, row.wanted, row.current, row.drain), row.want)
        << row.name;
  }
}

}  // namespace
}  // namespace mcop::memcached
