// libFuzzer target for the watch stream framing (WatchStreamDecoder): arbitrary bytes as the body
// of a watch response, fed in arbitrary chunks. The first input byte says how many of the next
// bytes are chunk sizes (cycled through), and the line limit; the rest is the body.
// Invariants beyond "no crash" (no exception escapes either):
//   - the chunking changes nothing: events and the final error are those of the body fed whole;
//   - what comes out is what the informer can apply: ADDED/MODIFIED/DELETED name their object, a
//     bookmark's object is an object, an error is an error (never OK) and says why;
//   - an error ends the stream: next() repeats it, and more input changes nothing;
//   - the line limit holds: a body with a line over it never yields that line.
// Thread-safety: single-threaded (libFuzzer calls it serially).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kube/watch_stream.h"

using mcop::kube::EventType;
using mcop::kube::WatchStreamDecoder;

namespace {

// One decoded stream: each event as type and serialized object, then how it ended.
struct Outcome {
  std::vector<std::pair<EventType, std::string>> events;
  std::string end;  // "" ended cleanly, else the error's ToString()
  bool operator==(const Outcome&) const = default;
};

bool named(const mcop::kube::Object& obj) {
  if (!obj.is_object() || !obj.has_field("metadata")) return false;
  const auto& meta = obj.at("metadata");
  return meta.is_object() && meta.has_field("name") && meta.at("name").is_string() &&
         !meta.at("name").as_string().empty();
}

// Takes what the decoder has; true when the stream is over (ended or failed).
bool drain(WatchStreamDecoder& d, Outcome& out) {
  while (true) {
    auto ev = d.next();
    if (!ev.ok()) {
      if (ev.status().message().empty()) std::abort();
      out.end = ev.status().ToString();
      if (d.next().status() != ev.status()) std::abort();  // not sticky
      d.feed("{\"type\":\"BOOKMARK\"}\n");
      if (d.next().status() != ev.status()) std::abort();  // input after an error was decoded
      return true;
    }
    if (!*ev) return d.closed();
    const auto& e = **ev;
    if (e.type == EventType::kBookmark ? !e.object.is_object() : !named(e.object)) std::abort();
    out.events.emplace_back(e.type, e.object.serialize());
  }
}

Outcome decode(std::string_view body, const std::vector<size_t>& chunks, size_t limit) {
  WatchStreamDecoder d(limit);
  Outcome out;
  size_t i = 0;
  while (!body.empty()) {
    size_t n = chunks.empty() ? body.size() : chunks[i++ % chunks.size()];
    d.feed(body.substr(0, n));
    body.remove_prefix(std::min(n, body.size()));
    if (drain(d, out)) return out;
  }
  d.close();
  if (!drain(d, out)) std::abort();  // closed and drained, yet not over
  return out;
}

size_t longestLine(std::string_view body) {
  size_t longest = 0;
  while (!body.empty()) {
    size_t nl = body.find('\n');
    longest = std::max(longest, nl == std::string_view::npos ? body.size() : nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
  }
  return longest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Low 3 bits: how many chunk sizes follow (0: the body in one piece); high bits: the line
  // limit, small enough for inputs to cross it.
  size_t count = std::min<size_t>(data[0] & 7, size - 1);
  size_t limit = 16 + (data[0] >> 3) * 16;
  std::vector<size_t> chunks;
  for (size_t i = 0; i < count; ++i) chunks.push_back(1 + data[1 + i] % 64);
  std::string_view body = in.substr(1 + count);

  Outcome whole = decode(body, {}, limit);
  Outcome split = decode(body, chunks, limit);
  if (!(whole == split)) std::abort();
  // No line longer than the limit came through: if every line fits, no "longer than" error.
  // (By its prefix: an unknown type's error quotes the type, which may say anything.)
  bool over = whole.end.rfind("DATA_LOSS: watch: event line longer than ", 0) == 0;
  if (over && longestLine(body) <= limit) std::abort();
  // The production limit changes nothing for a body whose lines all fit the small one.
  if (!over && !(decode(body, {}, WatchStreamDecoder::kMaxLineBytes) == whole)) std::abort();
  return 0;
}
