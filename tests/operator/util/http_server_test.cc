#include "util/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <vector>

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

// A port free a moment ago: the listener cannot bind port 0 and report it.
int freePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(HttpServer, ServesHandlersAnd404) {
  const int port = freePort();
  HttpServer server("127.0.0.1:" + std::to_string(port));
  std::atomic<bool> ready = false;
  server.handle("/readyz", [&] {
    return ready ? HttpResponse{200, "text/plain", "ok\n"} : HttpResponse{503, "text/plain", "caches not synced\n"};
  });
  server.handle("/boom", []() -> HttpResponse { throw std::runtime_error("bad"); });
  ASSERT_TRUE(server.start().ok());
  std::string r = fetch(port, "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 503", 0), 0u) << r;
  ready = true;
  r = fetch(port, "GET /readyz?verbose HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("\r\n\r\nok\n"), std::string::npos) << r;
  EXPECT_NE(r.find("Content-Type: text/plain"), std::string::npos) << r;
  r = fetch(port, "HEAD /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_EQ(r.find("ok\n"), std::string::npos) << "no body for HEAD: " << r;
  EXPECT_EQ(fetch(port, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(fetch(port, "POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(fetch(port, "GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").rfind("HTTP/1.1 500", 0), 0u);
  server.stop();
  EXPECT_EQ(fetch(port, "GET /readyz HTTP/1.1\r\n\r\n"), "connect failed") << "stopped means closed";
}

TEST(HttpServer, SilentAndKeptAliveConnectionsNeitherBlockRequestsNorStop) {
  const int port = freePort();
  HttpServer server("127.0.0.1:" + std::to_string(port));
  server.handle("/healthz", [] { return HttpResponse{200, "text/plain", "ok\n"}; });
  ASSERT_TRUE(server.start().ok());
  std::vector<int> idle;
  for (int i = 0; i < 20; ++i) {  // connected, never sending a byte
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    idle.push_back(fd);
  }
  EXPECT_EQ(fetch(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
  auto start = std::chrono::steady_clock::now();
  server.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2)) << "stop waits for no client";
  for (int fd : idle) ::close(fd);
}

// A socket listening on a free port, as another process's would be.
struct Occupied {
  Occupied() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd, 1);
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~Occupied() { ::close(fd); }
  int fd;
  int port;
};

TEST(HttpServer, BindErrorsAreReported) {
  Occupied taken;
  HttpServer b("127.0.0.1:" + std::to_string(taken.port));
  auto s = b.start();
  EXPECT_TRUE(absl::IsUnavailable(s)) << "port in use: " << s;
  EXPECT_FALSE(HttpServer("nonsense").start().ok());
  EXPECT_FALSE(HttpServer("127.0.0.1:0").start().ok()) << "port 0 cannot be reported";
  EXPECT_FALSE(HttpServer("127.0.0.1:70000").start().ok());
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
