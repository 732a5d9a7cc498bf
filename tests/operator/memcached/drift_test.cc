// isSubset: the drift check.
#include "memcached/drift.h"

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

Json parse(const std::string& s) { return Json::parse(s); }

TEST(IsSubsetTest, ObjectsByKeyExtraLiveKeysAllowed) {
  EXPECT_TRUE(isSubset(parse(R"({"a":1})"), parse(R"({"a":1,"b":2})")));
  EXPECT_FALSE(isSubset(parse(R"({"a":1,"c":3})"), parse(R"({"a":1,"b":2})")));
  EXPECT_FALSE(isSubset(parse(R"({"a":{"x":"1"}})"), parse(R"({"a":{"x":"2"}})")));
  EXPECT_TRUE(isSubset(parse(R"({"a":null})"), parse(R"({})")));
}

TEST(IsSubsetTest, ArraysElementwiseWithEqualLength) {
  EXPECT_TRUE(isSubset(parse(R"([{"a":1},{"b":2}])"), parse(R"([{"a":1,"z":0},{"b":2}])")));
  EXPECT_FALSE(isSubset(parse(R"([{"a":1}])"), parse(R"([{"a":1},{"b":2}])")));
  EXPECT_FALSE(isSubset(parse(R"(["-p","1"])"), parse(R"(["1","-p"])")));
}

TEST(IsSubsetTest, ScalarsAndNumbers) {
  EXPECT_TRUE(isSubset(parse("1"), parse("1.0")));
  // A number and a string are equal only as the same quantity (see below).
  EXPECT_FALSE(isSubset(parse("1"), parse("\"2\"")));
  EXPECT_FALSE(isSubset(parse("1"), parse("\"x1\"")));
  EXPECT_FALSE(isSubset(parse("true"), parse("false")));
  EXPECT_FALSE(isSubset(parse("\"abc\""), parse("\"abd\"")));
}

TEST(IsSubsetTest, QuantitiesCompareByAmount) {
  EXPECT_TRUE(isSubset(parse(R"({"memory":"1024Mi"})"), parse(R"({"memory":"1Gi"})")));
  EXPECT_TRUE(isSubset(parse(R"({"cpu":"0.5"})"), parse(R"({"cpu":"500m"})")));
  EXPECT_TRUE(isSubset(parse(R"({"cpu":"1000m"})"), parse(R"({"cpu":"1"})")));
  EXPECT_FALSE(isSubset(parse(R"({"memory":"100Mi"})"), parse(R"({"memory":"100M"})")));
  // Not quantities: compared as text.
  EXPECT_FALSE(isSubset(parse(R"("soft")"), parse(R"("hard")")));
}

TEST(IsSubsetTest, IntegerQuantitiesEqualTheApiServersStrings) {
  // `cpu: 1` in a spec is a JSON number; the API server returns every quantity as a string.
  EXPECT_TRUE(isSubset(Json::parse(R"({"cpu":1,"memory":2})"),
                       Json::parse(R"({"cpu":"1","memory":"2"})")));
  EXPECT_TRUE(isSubset(Json::parse(R"({"cpu":0.5})"), Json::parse(R"({"cpu":"500m"})")));
  EXPECT_FALSE(isSubset(Json::parse(R"({"cpu":2})"), Json::parse(R"({"cpu":"1"})")));
  EXPECT_FALSE(isSubset(Json::parse(R"({"port":1})"), Json::parse(R"({"port":"one"})")));
}

}  // namespace
}  // namespace mcop::memcached
