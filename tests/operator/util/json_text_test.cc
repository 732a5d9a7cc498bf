// jsonEscape: the exact bytes log lines and endpoints.json are written with, and that what it
// writes reads back as the same string.
#include "util/json_text.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace mcop::util {
namespace {

using namespace std::string_literals;

TEST(JsonEscape, PlainTextUnchanged) {
  EXPECT_EQ(jsonEscape(""), "");
  EXPECT_EQ(jsonEscape("c-0.c.ns.svc.cluster.local"), "c-0.c.ns.svc.cluster.local");
  EXPECT_EQ(jsonEscape("10.0.0.1:11211 / ok ' ~ \x7f"), "10.0.0.1:11211 / ok ' ~ \x7f");
}

TEST(JsonEscape, QuotesAndBackslashes) {
  EXPECT_EQ(jsonEscape(R"(say "hi")"), R"(say \"hi\")");
  EXPECT_EQ(jsonEscape(R"(C:\dir\)"), R"(C:\\dir\\)");
}

TEST(JsonEscape, ControlCharacters) {
  EXPECT_EQ(jsonEscape("a\nb\rc\td"), R"(a\nb\rc\td)");
  EXPECT_EQ(jsonEscape("\b\f"), R"(\b\f)");
  EXPECT_EQ(jsonEscape("\x01\x1f\x1b"), R"(\u0001\u001f\u001b)");
  EXPECT_EQ(jsonEscape("a\0b"s), R"(a\u0000b)");
}

TEST(JsonEscape, Utf8KeptInvalidReplaced) {
  EXPECT_EQ(jsonEscape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  // A lone continuation byte and a truncated sequence: U+FFFD, never invalid JSON.
  EXPECT_EQ(jsonEscape("a\x80z"), "a\xef\xbf\xbdz");
  EXPECT_EQ(jsonEscape("a\xc3"), "a\xef\xbf\xbd");
}

TEST(JsonEscape, ReadsBackAsTheSameString) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all.push_back(static_cast<char>(c));
  all += "\xc3\xa9\xf0\x9f\x98\x80";
  auto parsed = nlohmann::json::parse("\"" + jsonEscape(all) + "\"");
  EXPECT_EQ(parsed.get<std::string>(), all);
}

}  // namespace
}  // namespace mcop::util
