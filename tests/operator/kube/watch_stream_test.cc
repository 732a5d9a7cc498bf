// WatchStreamDecoder: the framing of a watch response body (lines split anywhere across chunks,
// CRLF, blank lines, the line limit, the end of the body) and what each line may hold (types,
// objects, ERROR statuses), without a socket.
#include "kube/watch_stream.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kube/object_meta.h"

namespace mcop::kube {
namespace {

using ::testing::HasSubstr;

const std::string kAdded = R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})";
const std::string kModified =
    R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"6"}}})";
const std::string kBookmark = R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}})";
const std::string kGone =
    R"j({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 5 (9)"}})j";

// Everything the decoder yields, as text: "ADDED a 5", "BOOKMARK  9", "error: ...", then "end"
// when the stream is over ("more" when it waits for input).
std::vector<std::string> drain(WatchStreamDecoder& d) {
  std::vector<std::string> out;
  for (int i = 0; i < 1000; ++i) {
    auto ev = d.next();
    if (!ev.ok()) {
      out.push_back("error: " + ev.status().ToString());
      return out;
    }
    if (!*ev) {
      out.push_back(d.closed() ? "end" : "more");
      return out;
    }
    static const char* kNames[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"};
    out.push_back(std::string(kNames[static_cast<int>((*ev)->type)]) + " " + nameOf((*ev)->object) +
                  " " + resourceVersionOf((*ev)->object));
  }
  ADD_FAILURE() << "no end";
  return out;
}

// Feeds the body in the given chunks, draining after each, then closes.
std::vector<std::string> decode(const std::vector<std::string>& chunks, size_t limit = WatchStreamDecoder::kMaxLineBytes) {
  WatchStreamDecoder d(limit);
  std::vector<std::string> out;
  for (const auto& c : chunks) {
    d.feed(c);
    for (auto& s : drain(d))
      if (s != "more") out.push_back(s);
    if (!out.empty() && out.back().rfind("error", 0) == 0) return out;
  }
  d.close();
  for (auto& s : drain(d)) out.push_back(s);
  return out;
}

TEST(WatchStreamDecoder, EventsOfOneChunk) {
  EXPECT_EQ(decode({kAdded + "\n" + kModified + "\n" + kBookmark + "\n"}),
            (std::vector<std::string>{"ADDED a 5", "MODIFIED a 6", "BOOKMARK  9", "end"}));
}

// Fails if a line split across chunks were decoded per chunk (or lost its tail).
TEST(WatchStreamDecoder, SplitAnywhereGivesTheSameEvents) {
  const std::string body = kAdded + "\n" + kBookmark + "\n" + kGone + "\n";
  const std::vector<std::string> whole = decode({body});
  ASSERT_EQ(whole.size(), 3u);
  EXPECT_EQ(whole[0], "ADDED a 5");
  EXPECT_THAT(whole[2], HasSubstr("OUT_OF_RANGE"));
  for (size_t i = 0; i <= body.size(); ++i) {
    for (size_t j = i; j <= body.size(); j += 7) {
      EXPECT_EQ(decode({body.substr(0, i), body.substr(i, j - i), body.substr(j)}), whole)
          << "split at " << i << " and " << j;
    }
  }
  std::vector<std::string> bytes;
  for (char c : body) bytes.emplace_back(1, c);
  EXPECT_EQ(decode(bytes), whole);
}

TEST(WatchStreamDecoder, EventIsReadyAsSoonAsItsNewlineArrives) {
  WatchStreamDecoder d;
  d.feed(kAdded);
  auto none = d.next();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(*none) << "no newline yet";
  d.feed("\n" + kModified.substr(0, 10));
  auto ev = d.next();
  ASSERT_TRUE(ev.ok() && *ev) << ev.status();
  EXPECT_EQ((*ev)->type, EventType::kAdded);
  EXPECT_FALSE(*d.next());
}

TEST(WatchStreamDecoder, CrlfAndBlankLines) {
  EXPECT_EQ(decode({"\n\r\n  \n" + kAdded + "\r\n\r", "\n\t\n" + kModified + "\r\n"}),
            (std::vector<std::string>{"ADDED a 5", "MODIFIED a 6", "end"}));
}

// The server ends the watch after its last newline; a last line without one is still decoded.
TEST(WatchStreamDecoder, UnterminatedLastLineAtTheEnd) {
  EXPECT_EQ(decode({kAdded + "\n" + kModified}),
            (std::vector<std::string>{"ADDED a 5", "MODIFIED a 6", "end"}));
  EXPECT_EQ(decode({}), (std::vector<std::string>{"end"}));
  // A connection cut mid-event: the half line is not JSON.
  auto cut = decode({kAdded + "\n" + kModified.substr(0, 30)});
  ASSERT_EQ(cut.size(), 2u);
  EXPECT_THAT(cut[1], HasSubstr("DATA_LOSS: watch: unparsable event"));
}

// Fails if the decoder buffered an endless line: the error comes once the limit is passed, before
// any newline, and nothing after it is kept.
TEST(WatchStreamDecoder, OversizedLineIsRefusedBeforeItsEnd) {
  WatchStreamDecoder d(100);
  d.feed(kAdded + "\n");
  ASSERT_TRUE(d.next().ok());
  d.feed(std::string(100, ' '));
  auto at_limit = d.next();
  ASSERT_TRUE(at_limit.ok()) << "100 bytes is within the limit";
  d.feed("x");
  auto over = d.next();
  EXPECT_TRUE(absl::IsDataLoss(over.status())) << over.status();
  EXPECT_THAT(over.status().message(), HasSubstr("longer than 100 bytes"));
  d.feed("\n" + kAdded + "\n");
  EXPECT_EQ(d.next().status(), over.status()) << "the stream is over after an error";
  // A complete line over the limit is refused the same way as a partial one.
  EXPECT_EQ(decode({std::string(101, ' ') + "\n" + kAdded + "\n"}, 100),
            (std::vector<std::string>{"error: DATA_LOSS: watch: event line longer than 100 bytes"}));
  // 100 bytes plus "\r\n" is a 101-byte line.
  std::string line = kAdded.substr(0, kAdded.size() - 1) + std::string(100 - kAdded.size(), ' ') + "}";
  ASSERT_EQ(line.size(), 100u);
  EXPECT_EQ(decode({line + "\n"}, 100), (std::vector<std::string>{"ADDED a 5", "end"}));
  EXPECT_THAT(decode({line + "\r\n"}, 100)[0], HasSubstr("longer than 100 bytes"));
}

TEST(WatchStreamDecoder, InvalidJsonIsDataLoss) {
  for (const std::string& bad : {std::string("{"), std::string("not json"), std::string("{\"type\":\"ADDED\"} x"),
                                 std::string("\x01\xff")}) {
    auto out = decode({kAdded + "\n" + bad + "\n" + kModified + "\n"});
    ASSERT_EQ(out.size(), 2u) << bad;
    EXPECT_EQ(out[0], "ADDED a 5");
    EXPECT_THAT(out[1], HasSubstr("DATA_LOSS: watch: unparsable event")) << bad;
  }
}

// Fails if an event the informer cannot apply got through: an object without a name would be
// cached under an empty key, and an unknown type used to pass as a bookmark, advancing the
// resourceVersion past a change that was never applied.
TEST(WatchStreamDecoder, MissingOrWrongFieldsAreDataLoss) {
  struct Case {
    std::string line, error;
  };
  for (const Case& c : std::vector<Case>{
           {R"([1,2])", "event without type"},
           {R"({"object":{}})", "event without type"},
           {R"({"type":7,"object":{}})", "event without type"},
           {R"({"type":"ADDED"})", "ADDED event without an object with metadata.name"},
           {R"({"type":"MODIFIED","object":5})", "MODIFIED event without an object"},
           {R"({"type":"DELETED","object":{"metadata":{"name":""}}})", "DELETED event without"},
           {R"({"type":"ADDED","object":{"metadata":{"name":3}}})", "ADDED event without"},
           {R"({"type":"ADDED","object":{"metadata":"a"}})", "ADDED event without"},
           {R"({"type":"BOOKMARK","object":"rv"})", "BOOKMARK event whose object is not an object"},
           {R"({"type":"ADDDED","object":{"metadata":{"name":"a","resourceVersion":"7"}}})",
            "unknown event type \"ADDDED\""},
           {R"({"type":"","object":{}})", "unknown event type \"\""},
       }) {
    auto out = decode({c.line + "\n"});
    ASSERT_EQ(out.size(), 1u) << c.line;
    EXPECT_THAT(out[0], HasSubstr("DATA_LOSS")) << c.line;
    EXPECT_THAT(out[0], HasSubstr(c.error)) << c.line;
  }
  // A bookmark may come without its object (nothing to take from it, nothing wrong).
  EXPECT_EQ(decode({R"({"type":"BOOKMARK"})" "\n"}), (std::vector<std::string>{"BOOKMARK  ", "end"}));
}

// ERROR events: the Status's code decides; 410 is OutOfRange (relist). Fails if a Status
// claiming success made an OK status (an error event that is no error: absl refuses to build a
// StatusOr from it) or if a broken Status were not an error at all.
TEST(WatchStreamDecoder, ErrorEventsCarryTheirStatus) {
  struct Case {
    std::string object;
    absl::StatusCode code;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {R"j({"kind":"Status","code":410,"reason":"Expired","message":"too old"})j", absl::StatusCode::kOutOfRange, "too old"},
           {R"({"code":500,"message":"etcd down"})", absl::StatusCode::kUnavailable, "etcd down"},
           {R"({"code":403,"reason":"Forbidden"})", absl::StatusCode::kPermissionDenied, "HTTP 403 Forbidden"},
           {R"({"code":200,"message":"fine"})", absl::StatusCode::kUnavailable, "fine"},
           {R"({"code":0})", absl::StatusCode::kUnavailable, "HTTP 500"},
           {R"({"code":4294967706})", absl::StatusCode::kUnavailable, "HTTP 500"},
           {R"({"code":410.5})", absl::StatusCode::kUnavailable, "HTTP 500"},
           {R"({"code":"410"})", absl::StatusCode::kUnavailable, "HTTP 500"},
           {R"("gone")", absl::StatusCode::kUnavailable, "HTTP 500"},
       }) {
    WatchStreamDecoder d;
    d.feed(R"({"type":"ERROR","object":)" + c.object + "}\n" + kAdded + "\n");
    auto ev = d.next();
    EXPECT_EQ(ev.status().code(), c.code) << c.object << ": " << ev.status();
    EXPECT_THAT(ev.status().message(), HasSubstr(c.message)) << c.object;
    EXPECT_EQ(d.next().status(), ev.status()) << "an ERROR event ends the stream";
  }
  WatchStreamDecoder d;
  d.feed(R"({"type":"ERROR"})" "\n");
  EXPECT_TRUE(absl::IsUnavailable(d.next().status()));
}

TEST(WatchStreamDecoder, NothingIsDecodedAfterTheEnd) {
  WatchStreamDecoder d;
  d.feed(kAdded + "\n");
  d.close();
  d.feed(kModified + "\n");
  EXPECT_EQ(drain(d), (std::vector<std::string>{"ADDED a 5", "end"}));
  EXPECT_EQ(drain(d), (std::vector<std::string>{"end"}));
}

// Many events through a long stream: the decoder drops what it decoded (the buffer stays about
// one chunk) and keeps every event in order.
TEST(WatchStreamDecoder, LongStreamInOddChunks) {
  std::string body;
  for (int i = 0; i < 2000; ++i) {
    body += R"({"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":")" +
            std::to_string(i) + "\"}}}\n";
  }
  WatchStreamDecoder d(200);
  int seen = 0;
  for (size_t at = 0; at < body.size(); at += 997) {
    d.feed(std::string_view(body).substr(at, 997));
    while (true) {
      auto ev = d.next();
      ASSERT_TRUE(ev.ok()) << ev.status();
      if (!*ev) break;
      EXPECT_EQ(resourceVersionOf((*ev)->object), std::to_string(seen));
      ++seen;
    }
  }
  EXPECT_EQ(seen, 2000);
}

}  // namespace
}  // namespace mcop::kube
