// WatchStreamDecoder: turns the body of a Kubernetes watch response, as it arrives in chunks of
// any size, into watch events. The body is newline-delimited JSON, one {"type": ..., "object":
// ...} per line; a line may span any number of chunks and a chunk may hold many lines.
// Pure (no I/O), so every framing rule is unit-tested and fuzzed without a socket;
// RestApiClient's watch feeds it what it reads from the connection.
//
// Rules (what the API server sends, and what is refused):
//   - a line ends at "\n"; a "\r" before it is dropped; empty (or blank) lines are skipped;
//   - a line longer than the limit is refused as soon as that many bytes are buffered without a
//     newline, so a broken or hostile stream cannot make the operator buffer without bound;
//   - types ADDED, MODIFIED and DELETED need an object with a metadata.name (the informer's cache
//     is keyed by it); BOOKMARK takes any object (absent: {}); ERROR carries a metav1.Status,
//     whose code decides the error (410: OutOfRange, relist), a code that is not an HTTP error
//     counting as 500; any other type is refused (applying it as a bookmark would skip events);
//   - when the body ends, an unterminated last line is still an event.
// Errors (DataLoss for a malformed stream, the Status's own for an ERROR event) end the stream:
// every later next() returns the same error and further input is ignored. Decoding does not
// depend on how the bytes were split into chunks (the fuzz target checks that).
// Thread-safety: none; one decoder per watch, used by the thread reading it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <absl/status/status.h>
#include <absl/status/statusor.h>

#include "kube/api_client.h"

namespace mcop::kube {

class WatchStreamDecoder {
 public:
  // One event line may be this long: objects are limited to about 1.5 MiB by etcd, and their
  // JSON rendering (base64 binaryData, escapes) stays well within 16 MiB.
  static constexpr size_t kMaxLineBytes = size_t{16} << 20;

  explicit WatchStreamDecoder(size_t max_line_bytes = kMaxLineBytes)
      : max_line_bytes_(max_line_bytes) {}

  // Appends bytes received from the server (ignored after close() or an error).
  void feed(std::string_view bytes);
  // The body ended: what is buffered is the last of it.
  void close() { closed_ = true; }
  bool closed() const { return closed_; }

  // The next event from the bytes fed so far; std::nullopt when they hold no complete line
  // (after close(): the stream is over). An error ends the stream (see the header comment).
  absl::StatusOr<std::optional<WatchEvent>> next();

 private:
  absl::StatusOr<std::optional<WatchEvent>> fail(absl::Status status);

  const size_t max_line_bytes_;
  std::string buffer_;  // bytes fed and not yet decoded start at begin_
  size_t begin_ = 0;
  size_t scanned_ = 0;  // buffer_[begin_, scanned_) has no newline
  bool closed_ = false;
  absl::Status error_;  // sticky once set
};

// One event line (without its "\n") to an event, or the error it stands for. Blank lines are
// not events: the caller skips them.
absl::StatusOr<WatchEvent> decodeWatchEventLine(std::string_view line);

}  // namespace mcop::kube
