// libFuzzer target for the endpoints.json parser and the servers-file parser.
// Invariants checked beyond "no crash": anything accepted round-trips through
// toJson() to an equal document, and every key routes to a listed server.
// Thread-safety: single-threaded (libFuzzer calls it serially).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "clientconfig/snapshot.h"

using namespace clientconfig;

namespace {

void checkSnapshot(const Snapshot& s, std::string_view input) {
  for (std::string_view key : {std::string_view("user:100"), std::string_view("product:50"), input.substr(0, 250)}) {
    Route r = s.route(key);
    if (s.servers().empty() != (r.owner == nullptr)) std::abort();
    if (r.owner != nullptr && (r.owner < s.servers().data() || r.owner >= s.servers().data() + s.servers().size()))
      std::abort();
    // A next or previous owner is a member of that ring, and only published in its phases.
    if (r.next_owner != nullptr && (!s.next || r.next_owner < s.next->servers.data() ||
                                    r.next_owner >= s.next->servers.data() + s.next->servers.size()))
      std::abort();
    if (r.previous_owner != nullptr && !s.previous) std::abort();
    if (s.next && s.previous) std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parseSnapshot(text);
  if (parsed.ok()) {
    checkSnapshot(**parsed, text);
    auto again = parseSnapshot(toJson(**parsed));
    if (!again.ok() || toDocument(**again) != toDocument(**parsed)) std::abort();
  } else if (parsed.error().message.empty()) {
    std::abort(); // every rejection must say why
  }
  auto servers = parseServersFile(text);
  if (servers.ok()) checkSnapshot(**servers, text);
  return 0;
}
