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
// Parses both forms (any fraction, "Z" or a numeric offset); nullopt when malformed.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(const std::string& s);

// Go-style durations as flags take them: "15s", "500ms", "1m30s", "2h"; a bare number is
// seconds. nullopt when malformed or negative.
std::optional<std::chrono::milliseconds> parseDuration(const std::string& s);

}  // namespace mcop::util
