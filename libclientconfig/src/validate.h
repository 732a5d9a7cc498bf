// Checks shared by every way a server list enters the library (endpoints.json, the servers file,
// makeSnapshot), so each refuses the same things with the same words. Internal.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "clientconfig/contract.h"
#include "clientconfig/result.h"

namespace clientconfig::detail {

inline constexpr uint32_t kMaxWeight = 1000000;
inline constexpr size_t kMaxServers = 10000;

inline Error fieldError(const std::string& path, const std::string& what) {
  return makeError(ErrorCode::InvalidArgument, path + ": " + what);
}

// Host and address are used as DNS names, ring labels and connect targets:
// whitespace or control bytes in them can only be a mistake.
inline bool plainToken(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (unsigned char c : s) {
    if (c <= ' ' || c == 0x7f) return false;
  }
  return true;
}

// No two servers share host:port (they would be one ring member twice) or a name.
inline Result<void> checkUnique(const std::vector<Server>& servers, const std::string& path) {
  std::set<std::pair<std::string, uint16_t>> seen_endpoints;
  std::set<std::string> seen_names;
  for (size_t i = 0; i < servers.size(); ++i) {
    std::string p = path + "[" + std::to_string(i) + "]";
    if (!seen_endpoints.insert({servers[i].host, servers[i].port}).second)
      return fieldError(p, "duplicate host:port " + servers[i].host + ":" + std::to_string(servers[i].port));
    if (!seen_names.insert(servers[i].name).second)
      return fieldError(p + ".name", "duplicate name \"" + servers[i].name + "\"");
  }
  return {};
}

} // namespace clientconfig::detail
