// Kubernetes timestamps: RFC 3339 in UTC, seconds ("Time") or microseconds ("MicroTime").
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace mcop::util {

// "2026-01-01T00:00:00Z": metav1.Time (creationTimestamp, event timestamps).
std::string formatRfc3339(std::chrono::system_clock::time_point t);
// "2026-01-01T00:00:00.000000Z": metav1.MicroTime (Lease acquireTime/renewTime).
std::string formatRfc3339Micro(std::chrono::system_clock::time_point t);
// Parses RFC 3339 date-times, so both forms above: any fraction (kept to the nanosecond), "Z" or
// a "+hh:mm"/"-hh:mm" offset, lowercase "t"/"z" as RFC 3339 allows; a leap second (":60") reads
// as the next minute. nullopt when malformed, out of range (month 13, Feb 30, 24:00) or outside
// what a time_point holds.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(const std::string& s);

// Go-style durations as flags take them: "15s", "500ms", "1m30s", "1.5h" (units ns, us, ms, s,
// m, h; truncated to milliseconds); a bare integer is seconds ("10" = 10s). nullopt when
// malformed, negative, infinite or beyond the range of milliseconds.
std::optional<std::chrono::milliseconds> parseDuration(const std::string& s);

}  // namespace mcop::util
