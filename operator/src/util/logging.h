// Process-wide logging setup for spdlog: `text` (human-readable, UTC timestamps) or `json`
// (one object per line: ts, level, msg, plus every key=value pair of the message as its own
// field, so `reconciled cluster=shop/a took_ms=3` becomes
// {"ts":...,"level":"info","msg":"reconciled","cluster":"shop/a","took_ms":"3"}).
// Thread-safety: call setupLogging() once at start-up, before other threads log.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <absl/status/status.h>

namespace mcop::util {

// format: "text" or "json"; level: trace, debug, info, warn, error, critical, off.
absl::Status setupLogging(const std::string& format, const std::string& level);

// A log value that may hold spaces or quotes: `error={}` with quoted(text) keeps the line
// parseable by splitLogMessage (and by humans): "text" with " and \ escaped.
std::string quoted(std::string_view text);

// Splits "fixed message k=v k2=\"quoted v\"" into the message and its pairs (for JSON logs).
std::pair<std::string, std::vector<std::pair<std::string, std::string>>> splitLogMessage(
    const std::string& text);

}  // namespace mcop::util
