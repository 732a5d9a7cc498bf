// The domain's per-cluster metrics: a deleted cluster leaves no series behind.
#include "memcached/metrics.h"

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

TEST(ClusterMetrics, ForgetClusterRemovesEverySeriesOfThatClusterOnly) {
  const std::string gone = "metrics-test/gone";
  const std::string kept = "metrics-test/kept";
  for (const std::string& c : {gone, kept}) {
    publishedConfigVersion().set({c}, 7);
    drainDuration().observe({c}, 12);
    drainTimeouts().inc({c});
    staleCopiesRemoved().inc({c}, 5);
    staleCopySweepFailures().inc({c});
  }
  ASSERT_NE(util::defaultRegistry().render().find(gone), std::string::npos);
  forgetCluster(gone);
  const std::string text = util::defaultRegistry().render();
  EXPECT_EQ(text.find(gone), std::string::npos) << text;
  for (const char* family : {"memcached_operator_config_version{cluster=\"metrics-test/kept\"} 7",
                             "memcached_operator_drain_duration_seconds_count{cluster=\"metrics-test/kept\"} 1",
                             "memcached_operator_drain_timeouts_total{cluster=\"metrics-test/kept\"} 1",
                             "memcached_operator_stale_copies_removed_total{cluster=\"metrics-test/kept\"} 5",
                             "memcached_operator_stale_copy_sweep_failures_total{cluster=\"metrics-test/kept\"} 1"}) {
    EXPECT_NE(text.find(family), std::string::npos) << family << "\n" << text;
  }
  forgetCluster(kept);
}

}  // namespace
}  // namespace mcop::memcached
