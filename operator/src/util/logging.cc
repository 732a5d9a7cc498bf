#include "util/logging.h"

#include <ctime>
#include <vector>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "util/json_text.h"
#include "util/time.h"

namespace mcop::util {

namespace {

bool isKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '-';
}

class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string ts = formatRfc3339Micro(msg.time);
    auto [text, pairs] = splitLogMessage(std::string(msg.payload.data(), msg.payload.size()));
    std::string line = std::string("{\"ts\":\"") + ts + "\",\"level\":\"" +
                       std::string(spdlog::level::to_string_view(msg.level).data(),
                                   spdlog::level::to_string_view(msg.level).size()) +
                       "\",\"msg\":\"" + jsonEscape(text) + "\"";
    for (const auto& [k, v] : pairs) {
      if (k == "ts" || k == "level" || k == "msg") continue;
      line += ",\"" + jsonEscape(k) + "\":\"" + jsonEscape(v) + "\"";
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

}  // namespace

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::pair<std::string, std::vector<std::pair<std::string, std::string>>> splitLogMessage(
    const std::string& s) {
  std::vector<std::pair<std::string, std::string>> pairs;
  // The message ends where the first " key=" starts.
  size_t msg_end = s.size();
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && s[i - 1] != ' ') continue;
    size_t j = i;
    while (j < s.size() && isKeyChar(s[j])) ++j;
    if (j > i && j < s.size() && s[j] == '=') {
      msg_end = i == 0 ? 0 : i - 1;
      break;
    }
  }
  std::string text = s.substr(0, msg_end);
  size_t i = msg_end;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t k = i;
    while (i < s.size() && isKeyChar(s[i])) ++i;
    if (i >= s.size() || s[i] != '=' || i == k) {
      // Not a pair: keep the rest as part of the message.
      text += " " + s.substr(k);
      break;
    }
    std::string key = s.substr(k, i - k);
    ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        value += s[i++];
      }
      ++i;
    } else {
      while (i < s.size() && s[i] != ' ') value += s[i++];
    }
    pairs.emplace_back(std::move(key), std::move(value));
  }
  return {text, pairs};
}

absl::Status setupLogging(const std::string& format, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError("--log-level: want trace, debug, info, warn, error, critical or off; got \"" + level + "\"");
  }
  auto logger = spdlog::stderr_logger_mt("memcached-operator");
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else if (format == "text") {
    logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%fZ %^%-5l%$ %v", spdlog::pattern_time_type::utc));
  } else {
    return absl::InvalidArgumentError("--log-format: want json or text; got \"" + format + "\"");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace mcop::util
