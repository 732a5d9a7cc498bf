// Kubernetes timestamps and Go-style durations through Abseil time (absl::FormatTime,
// absl::ParseTime, absl::ParseDuration: no locale, no process time zone, thread-safe). What is
// ours is only the shape Kubernetes wants: the exact output forms, the strict RFC 3339 layout
// on input, and the flag rules for durations (bare seconds, no negatives).
#include "util/time.h"

#include <cctype>
#include <limits>

#include <absl/strings/numbers.h>
#include <absl/time/time.h>

namespace mcop::util {

namespace {

// metav1.Time and metav1.MicroTime as the API server writes them (Go's RFC3339 and
// "2006-01-02T15:04:05.000000Z07:00" in UTC).
constexpr char kTimeFormat[] = "%Y-%m-%d%ET%H:%M:%SZ";
constexpr char kMicroTimeFormat[] = "%Y-%m-%d%ET%H:%M:%E6SZ";
// Any fraction, "Z" or "+hh:mm"; absl rejects out-of-range fields (month 13, Feb 30, 24:00).
constexpr char kParseFormat[] = "%E4Y-%m-%d%ET%H:%M:%E*S%Ez";

bool isDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }

// RFC 3339's fixed layout, which absl alone is laxer about: two-digit fields ("2026-1-1" is
// refused), no surrounding whitespace, and a "Z" or "±hh:mm" offset (not "+0100" or "+01").
bool hasRfc3339Shape(const std::string& s) {
  constexpr std::string_view kLayout = "dddd-dd-ddTdd:dd:dd";
  if (s.size() < kLayout.size() + 1) return false;
  for (size_t i = 0; i < kLayout.size(); ++i) {
    char want = kLayout[i];
    if (want == 'd' ? !isDigit(s[i]) : want == 'T' ? (s[i] != 'T' && s[i] != 't') : s[i] != want) {
      return false;
    }
  }
  char last = s.back();
  if (last == 'Z' || last == 'z') return true;
  if (s.size() < kLayout.size() + 6) return false;
  std::string_view off(s.data() + s.size() - 6, 6);
  return (off[0] == '+' || off[0] == '-') && isDigit(off[1]) && isDigit(off[2]) &&
         off[3] == ':' && isDigit(off[4]) && isDigit(off[5]);
}

}  // namespace

std::string formatRfc3339(std::chrono::system_clock::time_point t) {
  return absl::FormatTime(kTimeFormat, absl::FromChrono(t), absl::UTCTimeZone());
}

std::string formatRfc3339Micro(std::chrono::system_clock::time_point t) {
  return absl::FormatTime(kMicroTimeFormat, absl::FromChrono(t), absl::UTCTimeZone());
}

std::optional<std::chrono::system_clock::time_point> parseRfc3339(const std::string& s) {
  if (!hasRfc3339Shape(s)) return std::nullopt;
  absl::Time t;
  if (!absl::ParseTime(kParseFormat, s, &t, nullptr)) return std::nullopt;
  // Beyond what a system_clock time_point holds (years before 1678 or after 2262 with
  // nanoseconds), ToChronoTime would saturate: refuse instead of returning a wrong time.
  using Tp = std::chrono::system_clock::time_point;
  if (t < absl::FromChrono(Tp::min()) || t > absl::FromChrono(Tp::max())) return std::nullopt;
  return absl::ToChronoTime(t);
}

std::optional<std::chrono::milliseconds> parseDuration(const std::string& s) {
  using std::chrono::milliseconds;
  if (s.empty() || s[0] == '-') return std::nullopt;
  if (s.find_first_not_of("0123456789") == std::string::npos) {
    int64_t secs = 0;
    if (!absl::SimpleAtoi(s, &secs) || secs > std::numeric_limits<int64_t>::max() / 1000) {
      return std::nullopt;
    }
    return milliseconds(secs * 1000);
  }
  absl::Duration d;
  // absl also takes "inf" and signs; a flag's duration is finite and not negative.
  if (!absl::ParseDuration(s, &d) || d < absl::ZeroDuration() ||
      d > absl::FromChrono(milliseconds::max())) {
    return std::nullopt;
  }
  return absl::ToChronoMilliseconds(d);
}

}  // namespace mcop::util
