// The Warm rolling update's decisions: which member leaves first, when its pod is deleted, when
// it rejoins and when it is done; nothing while a drain or transition is under way, nothing for a
// RollingUpdate cluster. No I/O: inputs in, decisions out.
#include "memcached/rollout.h"

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

std::map<int64_t, PodView> pods(int n, const std::string& revision) {
  std::map<int64_t, PodView> out;
  for (int i = 0; i < n; ++i) {
    PodView p;
    p.name = "sessions-" + std::to_string(i);
    p.ordinal = i;
    p.ready = true;
    p.ip = "10.0.0." + std::to_string(i + 1);
    p.revision = revision;
    out[i] = p;
  }
  return out;
}

std::vector<Member> members(int n) {
  std::vector<Member> out;
  for (int i = 0; i < n; ++i) {
    Member m;
    m.name = "sessions-" + std::to_string(i);
    m.ordinal = i;
    m.state = MemberState::kActive;
    out.push_back(m);
  }
  return out;
}

std::vector<std::string> names(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back("sessions-" + std::to_string(i));
  return out;
}

RolloutInput input(const std::string& pod_revision) {
  RolloutInput in;
  in.key = "shop/sessions";
  in.warm = true;
  in.update_revision = "rev-2";
  in.replicas = 3;
  in.pods = pods(3, pod_revision);
  in.recorded_members = members(3);
  in.listed = names(3);
  in.now_precise = "2026-01-01T00:00:00.000000Z";
  return in;
}

TEST(Rollout, NothingWhenEveryPodRunsTheUpdateRevision) {
  const auto step = planRollout(input("rev-2"));
  EXPECT_FALSE(step.rollout);
  EXPECT_TRUE(step.excluded.empty());
}

TEST(Rollout, NothingForARollingUpdateClusterOrWhileADrainOrTransitionRuns) {
  auto in = input("rev-1");
  in.warm = false;
  EXPECT_FALSE(planRollout(in).rollout);
  in = input("rev-1");
  in.drain = true;
  EXPECT_FALSE(planRollout(in).rollout);
  in = input("rev-1");
  in.transition = true;
  EXPECT_FALSE(planRollout(in).rollout);
  // A member not Ready: wait (at most one member out at a time, and not one more than that).
  in = input("rev-1");
  in.pods[1].ready = false;
  EXPECT_FALSE(planRollout(in).rollout);
}

TEST(Rollout, TheHighestOutdatedMemberLeavesTheRingFirst) {
  auto in = input("rev-1");
  in.pods[2].revision = "rev-2";  // already updated
  const auto step = planRollout(in);
  ASSERT_TRUE(step.rollout);
  EXPECT_EQ(step.rollout->member, "sessions-1");
  EXPECT_EQ(step.rollout->phase, kRolloutLeaving);
  EXPECT_EQ(step.rollout->revision, "rev-2");
  EXPECT_EQ(step.excluded, (std::set<std::string>{"sessions-1"}));
  EXPECT_TRUE(step.delete_pod.empty());  // still listed
  ASSERT_EQ(step.events.size(), 1u);
  EXPECT_EQ(step.events[0].reason, "RollingUpdate");
}

TEST(Rollout, ThePodIsDeletedOnlyOnceNoRingListsItAndNoTransitionRuns) {
  auto in = input("rev-1");
  in.recorded = RolloutStatus{"sessions-2", kRolloutLeaving, "rev-2", "t"};
  in.transition = true;
  in.listed = names(3);
  auto step = planRollout(in);
  EXPECT_EQ(step.rollout->phase, kRolloutLeaving);
  EXPECT_TRUE(step.delete_pod.empty());
  // Transition over but the endpoints still list it (or cannot be read): wait.
  in.transition = false;
  EXPECT_TRUE(planRollout(in).delete_pod.empty());
  in.listed.reset();
  EXPECT_TRUE(planRollout(in).delete_pod.empty());
  in.listed = names(2);
  step = planRollout(in);
  EXPECT_EQ(step.rollout->phase, kRolloutRestarting);
  EXPECT_EQ(step.delete_pod, "sessions-2");
  EXPECT_EQ(step.excluded, (std::set<std::string>{"sessions-2"}));
  // Recorded restarting but the old pod is still there (a restart in between): deleted again.
  in.recorded = step.rollout;
  EXPECT_EQ(planRollout(in).delete_pod, "sessions-2");
  // Terminating: nothing more to delete.
  in.pods[2].terminating = true;
  in.pods[2].ready = false;
  EXPECT_TRUE(planRollout(in).delete_pod.empty());
}

TEST(Rollout, TheNewPodRejoinsOnceReadyAndTheRolloutEndsWhenItIsPublished) {
  auto in = input("rev-1");
  in.recorded = RolloutStatus{"sessions-2", kRolloutRestarting, "rev-2", "t"};
  in.listed = names(2);
  in.pods[2].revision = "rev-2";
  in.pods[2].ready = false;
  auto step = planRollout(in);
  EXPECT_EQ(step.rollout->phase, kRolloutRestarting);
  EXPECT_TRUE(step.delete_pod.empty());
  EXPECT_EQ(step.excluded.count("sessions-2"), 1u);
  in.pods[2].ready = true;
  in.recorded_members[2].state = MemberState::kDraining;
  step = planRollout(in);
  EXPECT_EQ(step.rollout->phase, kRolloutRejoining);
  EXPECT_TRUE(step.excluded.empty());
  // Rejoining while the transition back runs.
  in.recorded = step.rollout;
  in.recorded_members[2].state = MemberState::kActive;
  in.transition = true;
  in.listed = names(3);
  EXPECT_TRUE(planRollout(in).rollout);
  in.transition = false;
  step = planRollout(in);
  EXPECT_FALSE(step.rollout);
  EXPECT_TRUE(step.excluded.empty());
}

// A scale-down during a rolling update drains and removes the member whose restart was recorded:
// the rollout of it ends instead of waiting for a pod that never comes back (found by
// TestReliabilityFailpoints: a scale-down step never converged, status.rollout still set).
TEST(Rollout, AMemberRemovedByAScaleDownEndsItsRollout) {
  auto in = input("rev-1");
  in.recorded = RolloutStatus{"sessions-2", kRolloutRestarting, "rev-2", "t"};
  in.listed = names(2);
  // Still there while the StatefulSet has 3 replicas: its restart goes on.
  in.pods.erase(2);
  EXPECT_TRUE(planRollout(in).rollout);
  // Replicas lowered to 2, its pod terminating, then gone: the rollout of it ends.
  in.replicas = 2;
  in.pods = pods(3, "rev-1");
  in.pods[2].terminating = true;
  auto step = planRollout(in);
  EXPECT_FALSE(step.rollout);
  EXPECT_TRUE(step.requeue.has_value());
  in.pods.erase(2);
  EXPECT_FALSE(planRollout(in).rollout);
  // A member below the replicas is never taken for removed.
  in.recorded = RolloutStatus{"sessions-1", kRolloutRestarting, "rev-2", "t"};
  in.pods.erase(1);
  EXPECT_TRUE(planRollout(in).rollout);
}

// The pass that ends a member's rollout looks again soon: status writes do not wake a cluster,
// so without the requeue the next outdated member would wait for an unrelated event (found by
// TestReliabilityFailpoints: the operator restarted right after a member's last publish and the
// rolling update stopped after one member).
TEST(Rollout, AMemberDoneLooksAgainForTheNextOutdatedMember) {
  auto in = input("rev-1");
  in.recorded = RolloutStatus{"sessions-2", kRolloutRejoining, "rev-2", "t"};
  in.pods[2].revision = "rev-2";
  in.max_poll_interval = std::chrono::milliseconds(1500);
  const auto step = planRollout(in);
  EXPECT_FALSE(step.rollout);
  ASSERT_TRUE(step.requeue);
  EXPECT_LE(*step.requeue, std::chrono::milliseconds(1500));
  // That next pass starts the next member.
  in.recorded.reset();
  const auto next = planRollout(in);
  ASSERT_TRUE(next.rollout);
  EXPECT_EQ(next.rollout->member, "sessions-1");
}

}  // namespace
}  // namespace mcop::memcached
