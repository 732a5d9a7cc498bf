#include "memcached/written_status.h"

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

using std::chrono::seconds;

Json clusterAt(const std::string& rv, const std::string& phase) {
  Json c = Json::parse(R"({"metadata":{"name":"a","namespace":"ns"},"spec":{"replicas":1}})");
  c["metadata"]["resourceVersion"] = Json::string(rv);
  if (!phase.empty()) c["status"]["phase"] = Json::string(phase);
  return c;
}

TEST(WrittenStatus, AStaleCacheGetsTheWrittenStatusAndVersion) {
  WrittenStatus w;
  const auto t = std::chrono::steady_clock::time_point{} + seconds(100);
  w.remember("ns/a", clusterAt("5", ""), clusterAt("6", "Progressing"), t);
  Json got = w.freshest("ns/a", clusterAt("5", ""), t);
  EXPECT_EQ(stringAt(got, {"metadata", "resourceVersion"}), "6");
  EXPECT_EQ(stringAt(got, {"status", "phase"}), "Progressing");
  EXPECT_EQ(intAt(got, {"spec", "replicas"}), 1);
  // Still there for the next pass until the cache moves on.
  EXPECT_EQ(w.size(), 1u);
}

TEST(WrittenStatus, AnyOtherVersionIsUsedAsItIsAndDropsTheEntry) {
  WrittenStatus w;
  const auto t = std::chrono::steady_clock::time_point{} + seconds(100);
  w.remember("ns/a", clusterAt("5", ""), clusterAt("6", "Progressing"), t);
  Json got = w.freshest("ns/a", clusterAt("7", "Edited"), t);
  EXPECT_EQ(stringAt(got, {"status", "phase"}), "Edited");
  EXPECT_EQ(w.size(), 0u);
  // Dropped: even the old version is now taken as it is.
  EXPECT_EQ(stringAt(w.freshest("ns/a", clusterAt("5", ""), t), {"metadata", "resourceVersion"}),
            "5");
}

TEST(WrittenStatus, TwoWritesInARowCoverEveryVersionTheyReplaced) {
  WrittenStatus w;
  const auto t = std::chrono::steady_clock::time_point{} + seconds(100);
  w.remember("ns/a", clusterAt("5", ""), clusterAt("6", "Degraded"), t);
  w.remember("ns/a", clusterAt("6", "Degraded"), clusterAt("7", "Progressing"), t);
  EXPECT_EQ(stringAt(w.freshest("ns/a", clusterAt("5", ""), t), {"status", "phase"}),
            "Progressing");
  EXPECT_EQ(stringAt(w.freshest("ns/a", clusterAt("6", "Degraded"), t), {"status", "phase"}),
            "Progressing");
}

TEST(WrittenStatus, OldEntriesAndForgottenClustersAreDropped) {
  WrittenStatus w;
  const auto t = std::chrono::steady_clock::time_point{} + seconds(100);
  w.remember("ns/a", clusterAt("5", ""), clusterAt("6", "Progressing"), t);
  w.remember("ns/b", clusterAt("8", ""), clusterAt("9", "Progressing"), t);
  w.forget("ns/b");
  EXPECT_EQ(w.size(), 1u);
  const auto later = t + WrittenStatus::kMaxAge + seconds(1);
  EXPECT_EQ(stringAt(w.freshest("ns/a", clusterAt("5", ""), later), {"metadata", "resourceVersion"}),
            "5");
  EXPECT_EQ(w.size(), 0u);
}

}  // namespace
}  // namespace mcop::memcached
