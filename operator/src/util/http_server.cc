#include "util/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <spdlog/spdlog.h>

namespace mcop::util {

namespace {

const char* reasonPhrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

void writeAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace

HttpServer::HttpServer(std::string bind_address) : bind_address_(std::move(bind_address)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::handle(const std::string& path, std::function<HttpResponse()> handler) {
  handlers_[path] = std::move(handler);
}

absl::Status HttpServer::start() {
  if (disabled()) return absl::OkStatus();
  auto colon = bind_address_.rfind(':');
  std::string host = colon == std::string::npos ? "" : bind_address_.substr(0, colon);
  std::string port_str = colon == std::string::npos ? bind_address_ : bind_address_.substr(colon + 1);
  int port;
  if (!absl::SimpleAtoi(port_str, &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad bind address \"", bind_address_, "\" (want host:port or :port)"));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (host.empty() || host == "0.0.0.0") {
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (host == "localhost") {
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  } else if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("bad bind address \"", bind_address_, "\" (IPv4 address expected)"));
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    std::string err = std::strerror(errno);
    ::close(listen_fd_);
    listen_fd_ = -1;
    return absl::UnavailableError(absl::StrCat("cannot listen on ", bind_address_, ": ", err));
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { loop(); });
  return absl::OkStatus();
}

void HttpServer::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
}

void HttpServer::loop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;  // wake up regularly to notice stop()
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{2, 0};  // a client that sends nothing cannot hold the server
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    serve(fd);
    ::close(fd);
  }
}

void HttpServer::serve(int fd) {
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos &&
         req.size() < 16384) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    req.append(buf, static_cast<size_t>(n));
  }
  auto sp1 = req.find(' ');
  auto sp2 = sp1 == std::string::npos ? std::string::npos : req.find(' ', sp1 + 1);
  if (sp2 == std::string::npos) return;
  std::string method = req.substr(0, sp1);
  std::string target = req.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string path = target.substr(0, target.find('?'));
  HttpResponse resp;
  auto it = handlers_.find(path);
  if (method != "GET" && method != "HEAD") {
    resp = {405, "text/plain; charset=utf-8", "method not allowed\n"};
  } else if (it == handlers_.end()) {
    resp = {404, "text/plain; charset=utf-8", "not found\n"};
  } else {
    try {
      resp = it->second();
    } catch (const std::exception& e) {
      resp = {500, "text/plain; charset=utf-8", std::string("internal error: ") + e.what() + "\n"};
    }
  }
  std::string out = absl::StrCat("HTTP/1.1 ", resp.code, " ", reasonPhrase(resp.code),
                                 "\r\nContent-Type: ", resp.content_type,
                                 "\r\nContent-Length: ", resp.body.size(),
                                 "\r\nConnection: close\r\n\r\n");
  if (method != "HEAD") out += resp.body;
  writeAll(fd, out);
}

}  // namespace mcop::util
