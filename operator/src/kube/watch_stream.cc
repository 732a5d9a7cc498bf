#include "kube/watch_stream.h"

#include <absl/strings/str_cat.h>

namespace mcop::kube {

namespace {

bool isBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// An ERROR event's metav1.Status to an absl::Status. The event is an error whatever its code
// says: a Status claiming success (or a code that is no HTTP error) is a broken server, treated
// as a server error so the informer retries with backoff.
absl::Status statusOfErrorEvent(const Object& status) {
  int code = 500;
  std::string reason, message;
  if (status.is_object()) {
    if (status.has_field("code") && status.at("code").is_number() &&
        status.at("code").as_number().is_int32()) {
      code = status.at("code").as_number().to_int32();
    }
    if (status.has_field("reason") && status.at("reason").is_string()) {
      reason = status.at("reason").as_string();
    }
    if (status.has_field("message") && status.at("message").is_string()) {
      message = status.at("message").as_string();
    }
  }
  if (code < 400 || code > 599) code = 500;
  return StatusFromHttp(code, reason, message);
}

absl::StatusOr<EventType> eventType(const std::string& type) {
  if (type == "ADDED") return EventType::kAdded;
  if (type == "MODIFIED") return EventType::kModified;
  if (type == "DELETED") return EventType::kDeleted;
  if (type == "BOOKMARK") return EventType::kBookmark;
  return absl::DataLossError(absl::StrCat("watch: unknown event type \"", type.substr(0, 64), "\""));
}

bool hasName(const Object& obj) {
  if (!obj.is_object() || !obj.has_field("metadata")) return false;
  const Object& meta = obj.at("metadata");
  return meta.is_object() && meta.has_field("name") && meta.at("name").is_string() &&
         !meta.at("name").as_string().empty();
}

}  // namespace

absl::StatusOr<WatchEvent> decodeWatchEventLine(std::string_view line) {
  Object ev;
  try {
    ev = Object::parse(std::string(line));
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("watch: unparsable event: ", e.what()));
  }
  if (!ev.is_object() || !ev.has_field("type") || !ev.at("type").is_string()) {
    return absl::DataLossError("watch: event without type");
  }
  const std::string type = ev.at("type").as_string();
  Object obj = ev.has_field("object") ? ev.at("object") : Object::object();
  if (type == "ERROR") return statusOfErrorEvent(obj);
  auto kind = eventType(type);
  if (!kind.ok()) return kind.status();
  if (*kind == EventType::kBookmark) {
    if (!obj.is_object()) return absl::DataLossError("watch: BOOKMARK event whose object is not an object");
  } else if (!hasName(obj)) {
    return absl::DataLossError(absl::StrCat("watch: ", type, " event without an object with metadata.name"));
  }
  return WatchEvent{*kind, std::move(obj)};
}

void WatchStreamDecoder::feed(std::string_view bytes) {
  if (closed_ || !error_.ok()) return;
  // Decoded bytes are dropped once they are most of the buffer: amortised O(1) per byte.
  if (begin_ > 0 && begin_ >= buffer_.size() / 2) {
    buffer_.erase(0, begin_);
    scanned_ -= begin_;
    begin_ = 0;
  }
  buffer_.append(bytes);
}

absl::StatusOr<std::optional<WatchEvent>> WatchStreamDecoder::fail(absl::Status status) {
  error_ = std::move(status);
  buffer_.clear();
  begin_ = scanned_ = 0;
  return error_;
}

absl::StatusOr<std::optional<WatchEvent>> WatchStreamDecoder::next() {
  while (error_.ok()) {
    size_t nl = buffer_.find('\n', scanned_);
    size_t end = nl == std::string::npos ? buffer_.size() : nl;
    if (end - begin_ > max_line_bytes_) {
      return fail(absl::DataLossError(
          absl::StrCat("watch: event line longer than ", max_line_bytes_, " bytes")));
    }
    if (nl == std::string::npos) {
      scanned_ = buffer_.size();
      // Without a newline, the rest is a line only once the body has ended.
      if (!closed_ || begin_ == buffer_.size()) return std::optional<WatchEvent>();
    }
    std::string_view line(buffer_.data() + begin_, end - begin_);
    begin_ = scanned_ = nl == std::string::npos ? end : end + 1;
    if (isBlank(line)) continue;
    auto ev = decodeWatchEventLine(line);
    if (!ev.ok()) return fail(ev.status());
    return std::optional<WatchEvent>(*std::move(ev));
  }
  return error_;
}

}  // namespace mcop::kube
