#include "util/failpoint.h"

#include <unistd.h>

#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mcop::util {
namespace {

using ::testing::HasSubstr;

// Each test leaves nothing armed for the next one. The death tests re-run this binary for the
// child ("threadsafe") and the children leave with _exit: other tests of the binary leave
// threads behind, and a forked copy of them must run no exit handler.
class FailpointTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  void TearDown() override { armFailpoints({}); }
};

TEST_F(FailpointTest, ParsesNamesAndHitCounts) {
  auto plan = parseFailpoints(" decision-recorded, replicas-lower-after@3 ,,");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (FailpointPlan{{Failpoint::kDecisionRecorded, 1},
                                  {Failpoint::kReplicasLowerAfter, 3}}));
  auto empty = parseFailpoints("");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(FailpointTest, EveryKnownNameParses) {
  std::set<std::string_view> names;
  for (const auto& fp : kFailpoints) {
    auto plan = parseFailpoints(std::string(fp.name) + "@2");
    ASSERT_TRUE(plan.ok()) << fp.name;
    EXPECT_EQ(*plan, (FailpointPlan{{fp.point, 2}}));
    EXPECT_FALSE(fp.description.empty()) << fp.name;
    EXPECT_TRUE(names.insert(fp.name).second) << "duplicate name " << fp.name;
  }
}

// A typo must fail loudly and say what would have been accepted.
TEST_F(FailpointTest, RejectsBadInputNamingTheKnownFailpoints) {
  for (const char* bad : {"decision-recorde", "decision-recorded@0", "decision-recorded@",
                          "decision-recorded@x", "decision-recorded@-1", "decision-recorded@1x",
                          "@2", "decision-recorded,decision-recorded@2",
                          "decision-recorded@99999999999999999999999"}) {
    auto plan = parseFailpoints(bad);
    ASSERT_FALSE(plan.ok()) << bad;
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    const std::string msg(plan.status().message());
    EXPECT_THAT(msg, HasSubstr("MCOP_FAILPOINTS")) << bad;
    for (const auto& fp : kFailpoints) EXPECT_THAT(msg, HasSubstr(std::string(fp.name))) << bad;
  }
  EXPECT_THAT(std::string(parseFailpoints("nope").status().message()),
              HasSubstr("unknown failpoint \"nope\""));
  EXPECT_THAT(std::string(parseFailpoints("sweep-first-pass@0").status().message()),
              HasSubstr("bad hit count"));
  EXPECT_THAT(std::string(parseFailpoints("sweep-first-pass,sweep-first-pass").status().message()),
              HasSubstr("given twice"));
}

TEST_F(FailpointTest, UnarmedPointsDoNothingAndAreNotCounted) {
  failpoint(Failpoint::kDecisionRecorded);  // nothing armed at all: returns
  EXPECT_EQ(failpointHits(Failpoint::kDecisionRecorded), 0u);
  armFailpoints({{Failpoint::kReplicasLowerAfter, 5}});
  for (int i = 0; i < 10; ++i) failpoint(Failpoint::kDecisionRecorded);
  EXPECT_EQ(failpointHits(Failpoint::kDecisionRecorded), 0u);
}

TEST_F(FailpointTest, CountsHitsUntilTheArmedOne) {
  armFailpoints({{Failpoint::kSweepFirstPass, 4}});
  for (int i = 0; i < 3; ++i) failpoint(Failpoint::kSweepFirstPass);
  EXPECT_EQ(failpointHits(Failpoint::kSweepFirstPass), 3u);
  // Arming again starts the count over.
  armFailpoints({{Failpoint::kSweepFirstPass, 4}});
  EXPECT_EQ(failpointHits(Failpoint::kSweepFirstPass), 0u);
}

// Fails if firing did not exit, exited with another code, or wrote another line.
TEST_F(FailpointTest, FiresAtTheArmedHitWithItsExitCode) {
  EXPECT_EXIT(
      {
        armFailpoints({{Failpoint::kReplicasLowerBefore, 3}});
        failpoint(Failpoint::kReplicasLowerBefore);
        failpoint(Failpoint::kReplicasLowerBefore);
        failpoint(Failpoint::kDecisionRecorded);
        failpoint(Failpoint::kReplicasLowerBefore);
        _exit(0);  // not reached when the third hit fires
      },
      ::testing::ExitedWithCode(kFailpointExitCode),
      "failpoint replicas-lower-before fired \\(hit 3\\): exiting");
}

TEST_F(FailpointTest, DoesNotFireBeforeTheArmedHit) {
  EXPECT_EXIT(
      {
        armFailpoints({{Failpoint::kReplicasLowerBefore, 3}});
        failpoint(Failpoint::kReplicasLowerBefore);
        failpoint(Failpoint::kReplicasLowerBefore);
        _exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace mcop::util
