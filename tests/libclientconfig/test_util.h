// Test helpers: endpoints.json documents and kubelet-style ConfigMap directories.
// Thread-safety: test-only, single-threaded use.
#pragma once

#include <string>

namespace clientconfig::testing {

// A valid endpoints.json with `n` servers c-0..c-(n-1) (host c-I.c.ns.svc, address
// 10.0.0.I, port 11211+I), and optionally a previous ring of `previous_servers`.
inline std::string serversJson(int n, const std::string& indent = "    ") {
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    out += i ? ",\n" : "\n";
    out += indent + "{\"name\": \"c-" + std::to_string(i) + "\", \"host\": \"c-" + std::to_string(i) +
           ".c.ns.svc\", \"address\": \"10.0.0." + std::to_string(i) + "\", \"port\": " + std::to_string(11211 + i) +
           ", \"weight\": 1, \"state\": \"active\"}";
  }
  return out + "\n  ]";
}

inline std::string endpointsJson(int n, unsigned version, int previous_servers = -1) {
  std::string prev = "null";
  if (previous_servers >= 0) {
    prev = "{\"version\": " + std::to_string(version - 1) + ", \"hashing\": \"ketama-libmemcached\", \"servers\": " +
           serversJson(previous_servers) + "}";
  }
  return "{\n  \"schema\": \"memcached.operator.io/endpoints/v1\",\n  \"cluster\": \"ns/c\",\n  \"version\": " +
         std::to_string(version) + ",\n  \"hashing\": \"ketama-libmemcached\",\n  \"servers\": " + serversJson(n) +
         ",\n  \"previous\": " + prev + "\n}\n";
}

} // namespace clientconfig::testing
