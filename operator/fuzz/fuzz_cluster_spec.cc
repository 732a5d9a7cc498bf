// libFuzzer target for the MemcachedCluster spec parser: arbitrary JSON text (invalid JSON
// is skipped) through parseClusterSpec, as it comes from the API server. Beyond "no crash"
// (no exception escapes either: the reconciler does not expect one), parsing is deterministic.
// Thread-safety: single-threaded (libFuzzer calls it serially).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "memcached/cluster_spec.h"
#include "memcached/json_util.h"

using mcop::memcached::Json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Json cluster;
  try {
    cluster = Json::parse(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const std::exception&) {
    return 0;  // not JSON: the API server never sends that
  }
  auto first = mcop::memcached::parseClusterSpec(cluster);
  auto again = mcop::memcached::parseClusterSpec(cluster);
  if (first.errors != again.errors) std::abort();
  return 0;
}
