#include "util/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "util/logging.h"

namespace mcop::util {
namespace {

std::string fetch(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "connect failed";
  (void)::write(fd, request.data(), request.size());
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, n);
  ::close(fd);
  return out;
}

TEST(HttpServer, ServesHandlersAnd404) {
  HttpServer server("127.0.0.1:0");
  bool ready = false;
  server.handle("/readyz", [&] {
    return ready ? HttpResponse{200, "text/plain", "ok\n"} : HttpResponse{503, "text/plain", "caches not synced\n"};
  });
  ASSERT_TRUE(server.start().ok());
  ASSERT_GT(server.port(), 0);
  std::string r = fetch(server.port(), "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 503", 0), 0u) << r;
  ready = true;
  r = fetch(server.port(), "GET /readyz?verbose HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("\r\n\r\nok\n"), std::string::npos);
  EXPECT_EQ(fetch(server.port(), "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(fetch(server.port(), "POST /readyz HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  server.stop();
}

TEST(HttpServer, BindErrorsAreReported) {
  HttpServer a("127.0.0.1:0");
  ASSERT_TRUE(a.start().ok());
  HttpServer b("127.0.0.1:" + std::to_string(a.port()));
  EXPECT_FALSE(b.start().ok());
  EXPECT_FALSE(HttpServer("nonsense").start().ok());
  HttpServer off("0");
  EXPECT_TRUE(off.start().ok());
  EXPECT_TRUE(off.disabled());
}

TEST(Logging, SplitsKeyValuePairs) {
  auto [msg, pairs] = splitLogMessage("reconcile failed cluster=shop/a took_ms=3 error=\"x \\\"y\\\" z\"");
  EXPECT_EQ(msg, "reconcile failed");
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0], (std::pair<std::string, std::string>{"cluster", "shop/a"}));
  EXPECT_EQ(pairs[1].second, "3");
  EXPECT_EQ(pairs[2].second, "x \"y\" z");
  auto [plain, none] = splitLogMessage("no pairs here");
  EXPECT_EQ(plain, "no pairs here");
  EXPECT_TRUE(none.empty());
}

TEST(Logging, QuotedValuesSurviveTheSplit) {
  // An API server message quoting a resource name once ended the value early in JSON logs.
  const std::string error = R"(PermissionDenied: configmaps "cache" is forbidden: a\b)";
  auto [msg, pairs] = splitLogMessage("reconcile failed cluster=shop/a error=" + util::quoted(error));
  EXPECT_EQ(msg, "reconcile failed");
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[1], (std::pair<std::string, std::string>{"error", error}));
}

}  // namespace
}  // namespace mcop::util
