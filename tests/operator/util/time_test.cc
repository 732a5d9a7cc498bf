#include "util/time.h"

#include <gtest/gtest.h>

namespace mcop::util {
namespace {

TEST(Time, FormatAndParseRoundTrip) {
  auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600) +
                                                 std::chrono::microseconds(123456));
  EXPECT_EQ(formatRfc3339(t), "2026-01-01T00:00:00Z");
  EXPECT_EQ(formatRfc3339Micro(t), "2026-01-01T00:00:00.123456Z");
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00.123456Z"), t);
  EXPECT_EQ(parseRfc3339("2026-01-01T01:00:00.123456+01:00"), t);
  EXPECT_FALSE(parseRfc3339("yesterday"));
  EXPECT_FALSE(parseRfc3339("2026-01-01T00:00:00"));
}

}  // namespace
}  // namespace mcop::util

namespace mcop::util {
namespace {

TEST(Time, ParseDuration) {
  using std::chrono::milliseconds;
  EXPECT_EQ(parseDuration("15s"), milliseconds(15000));
  EXPECT_EQ(parseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(parseDuration("1m30s"), milliseconds(90000));
  EXPECT_EQ(parseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(parseDuration("10"), milliseconds(10000));
  EXPECT_FALSE(parseDuration("ten seconds"));
  EXPECT_FALSE(parseDuration("5x"));
  EXPECT_FALSE(parseDuration("-5s"));
}

}  // namespace
}  // namespace mcop::util
