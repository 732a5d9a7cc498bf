#include "util/time.h"

#include <gtest/gtest.h>

namespace mcop::util {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using std::chrono::system_clock;

// 2026-01-01T00:00:00Z
const system_clock::time_point kNewYear{seconds(1767225600)};

TEST(Time, FormatAndParseRoundTrip) {
  auto t = kNewYear + microseconds(123456);
  EXPECT_EQ(formatRfc3339(t), "2026-01-01T00:00:00Z");
  EXPECT_EQ(formatRfc3339Micro(t), "2026-01-01T00:00:00.123456Z");
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00.123456Z"), t);
  EXPECT_EQ(parseRfc3339("2026-01-01T01:00:00.123456+01:00"), t);
  EXPECT_FALSE(parseRfc3339("yesterday"));
  EXPECT_FALSE(parseRfc3339("2026-01-01T00:00:00"));
}

TEST(Time, FormatsKubernetesForms) {
  // metav1.Time drops the fraction (never rounds up); MicroTime always has six digits.
  EXPECT_EQ(formatRfc3339(kNewYear), "2026-01-01T00:00:00Z");
  EXPECT_EQ(formatRfc3339Micro(kNewYear), "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(formatRfc3339(kNewYear - nanoseconds(1)), "2025-12-31T23:59:59Z");
  EXPECT_EQ(formatRfc3339Micro(kNewYear - nanoseconds(1)), "2025-12-31T23:59:59.999999Z");
  EXPECT_EQ(formatRfc3339Micro(kNewYear + nanoseconds(1999)), "2026-01-01T00:00:00.000001Z");
  EXPECT_EQ(formatRfc3339(system_clock::time_point{}), "1970-01-01T00:00:00Z");
  // Before the epoch the fraction still counts forward from the whole second.
  EXPECT_EQ(formatRfc3339Micro(system_clock::time_point{} - microseconds(999999)),
            "1969-12-31T23:59:59.000001Z");
  // Leap day and end of year.
  EXPECT_EQ(formatRfc3339(system_clock::time_point{seconds(1709164800)}), "2024-02-29T00:00:00Z");
  EXPECT_EQ(formatRfc3339(system_clock::time_point{seconds(1798761599)}), "2026-12-31T23:59:59Z");
}

TEST(Time, ParsesOffsets) {
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00Z"), kNewYear);
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00+00:00"), kNewYear);
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00-00:00"), kNewYear);
  EXPECT_EQ(parseRfc3339("2025-12-31T19:00:00-05:00"), kNewYear);
  EXPECT_EQ(parseRfc3339("2026-01-01T05:30:00+05:30"), kNewYear);
  EXPECT_EQ(parseRfc3339("2026-01-01T23:59:00+23:59"), kNewYear);
  // RFC 3339 allows lowercase separators.
  EXPECT_EQ(parseRfc3339("2026-01-01t00:00:00z"), kNewYear);
}

TEST(Time, ParsesFractions) {
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00.5Z"), kNewYear + milliseconds(500));
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00.000001Z"), kNewYear + microseconds(1));
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00.123456789Z"), kNewYear + nanoseconds(123456789));
  // Digits beyond the nanosecond are dropped, not rounded.
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00.1234567899999Z"), kNewYear + nanoseconds(123456789));
  EXPECT_EQ(parseRfc3339("2026-01-01T00:00:00.000000+01:00"), kNewYear - std::chrono::hours(1));
  // What we write we read back, to the microsecond.
  auto t = kNewYear + std::chrono::hours(24 * 59) + microseconds(987654);
  EXPECT_EQ(parseRfc3339(formatRfc3339Micro(t)), t);
  EXPECT_EQ(parseRfc3339(formatRfc3339(t)), t - microseconds(987654));
}

TEST(Time, RefusesMalformed) {
  for (const char* s : {
           "",
           "2026-01-01",
           "2026-01-01T00:00Z",
           "2026-01-01 00:00:00Z",        // space instead of T
           " 2026-01-01T00:00:00Z",       // surrounding whitespace
           "2026-01-01T00:00:00Z ",
           "2026-01-01T00:00:00ZZ",
           "2026-1-1T0:0:0Z",             // fields must have two digits
           "26-01-01T00:00:00Z",
           "+2026-01-01T00:00:00Z",
           "2026-01-01T00:00:00.Z",        // a dot needs digits
           "2026-01-01T00:00:00.12aZ",
           "2026-01-01T00:00:00+0100",     // offsets are hh:mm
           "2026-01-01T00:00:00+01",
           "2026-01-01T00:00:00+1:00",
           "2026-01-01T00:00:00+24:00",
           "2026-13-01T00:00:00Z",         // out-of-range fields are errors, not normalized
           "2026-02-29T00:00:00Z",
           "2026-04-31T00:00:00Z",
           "2026-01-01T24:00:00Z",
           "2026-01-01T00:60:00Z",
           "infinite-future",
           "9999-12-31T23:59:59Z",         // beyond a nanosecond time_point (year 2262)
       }) {
    EXPECT_FALSE(parseRfc3339(s)) << s;
  }
  EXPECT_TRUE(parseRfc3339("2024-02-29T00:00:00Z"));
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

TEST(Time, ParseDurationGoForms) {
  EXPECT_EQ(parseDuration("2h"), milliseconds(7200000));
  EXPECT_EQ(parseDuration("1h2m3s4ms"), milliseconds(3723004));
  EXPECT_EQ(parseDuration("0.5m"), milliseconds(30000));
  EXPECT_EQ(parseDuration("0s"), milliseconds(0));
  EXPECT_EQ(parseDuration("0"), milliseconds(0));
  EXPECT_EQ(parseDuration("+5s"), milliseconds(5000));
  // Below a millisecond truncates toward zero.
  EXPECT_EQ(parseDuration("1500us"), milliseconds(1));
  EXPECT_EQ(parseDuration("999999ns"), milliseconds(0));
  EXPECT_EQ(parseDuration("0.1s"), milliseconds(100));
}

TEST(Time, ParseDurationRefuses) {
  for (const char* s : {
           "", "s", "ms", "5 s", " 5s", "5s ", "1.5", "5sec", "5S", "1d", "-0s", "-1",
           "inf", "+inf", "1e3s", "--5s", "5s-1s",
           "99999999999999999999",  // bare seconds overflowing int64
           "9223372036854776",      // bare seconds overflowing milliseconds
           "9999999999999h",        // overflowing milliseconds
       }) {
    EXPECT_FALSE(parseDuration(s)) << s;
  }
}

}  // namespace
}  // namespace mcop::util
