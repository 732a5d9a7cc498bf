// TcpTransport: non-blocking socket + poll(), so no operation outlives its deadline.
// Thread-safety: one connection, one thread at a time.
#include "clientconfig/transport.h"

#include "socket_wait.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace clientconfig {
namespace detail {

// Milliseconds left until deadline, for poll(); 0 when already past.
int remainingMs(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  if (left <= 0) return 0;
  return left > 1000000 ? 1000000 : static_cast<int>(left);
}

// Waits for `events` on fd until deadline. Retries EINTR.
Result<void> waitFor(int fd, short events, std::chrono::steady_clock::time_point deadline, const char* what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int ms = remainingMs(deadline);
    int rc = ::poll(&p, 1, ms);
    if (rc > 0) return {};
    if (rc == 0) return makeError(ErrorCode::DeadlineExceeded, std::string(what) + ": timed out");
    if (errno != EINTR) return makeError(ErrorCode::Internal, std::string(what) + ": poll: " + std::strerror(errno));
  }
}

} // namespace detail

namespace {

using detail::waitFor;

using Clock = std::chrono::steady_clock;

std::string errnoText(int err) { return std::strerror(err); }

Result<int> connectOne(const addrinfo* ai, Clock::time_point deadline) {
  int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) return makeError(ErrorCode::Internal, "socket: " + errnoText(errno));
  int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
  if (rc != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    return makeError(ErrorCode::Unavailable, errnoText(err));
  }
  if (rc != 0) {
    if (auto w = waitFor(fd, POLLOUT, deadline, "connect"); !w.ok()) {
      ::close(fd);
      return w.error();
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      ::close(fd);
      return makeError(ErrorCode::Unavailable, errnoText(err));
    }
  }
  // Admin commands are small request/response exchanges: Nagle only adds latency.
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

} // namespace

Result<std::unique_ptr<TcpTransport>> TcpTransport::connect(const std::string& host, uint16_t port,
                                                            std::chrono::milliseconds timeout) {
  std::string where = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_text = std::to_string(port);
  int gai = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (gai != 0) return makeError(ErrorCode::Unavailable, "resolve " + where + ": " + ::gai_strerror(gai));
  Error last = makeError(ErrorCode::Unavailable, "connect " + where + ": no addresses");
  auto deadline = Clock::now() + timeout;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    auto fd = connectOne(ai, deadline);
    if (fd.ok()) {
      ::freeaddrinfo(res);
      return std::make_unique<TcpTransport>(*fd);
    }
    last = makeError(fd.error().code, "connect " + where + ": " + fd.error().message);
    if (Clock::now() >= deadline) break;
  }
  ::freeaddrinfo(res);
  return last;
}

TcpTransport::TcpTransport(int fd) : fd_(fd) {
  // Callers may hand over a blocking socket; every wait here goes through poll().
  int flags = ::fcntl(fd_, F_GETFL, 0);
  if (flags >= 0 && !(flags & O_NONBLOCK)) ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
}

TcpTransport::~TcpTransport() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> TcpTransport::writeAll(std::string_view data) { return writeAll(data, write_timeout_); }

Result<void> TcpTransport::writeAll(std::string_view data, std::chrono::milliseconds timeout) {
  return sendAll(data, Clock::now() + timeout);
}

Result<void> TcpTransport::sendAll(std::string_view data, Deadline deadline) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto w = waitFor(fd_, POLLOUT, deadline, "write"); !w.ok()) return w;
      continue;
    }
    return makeError(ErrorCode::Unavailable, "write: " + errnoText(errno));
  }
  return {};
}

int TcpTransport::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

Result<void> TcpTransport::fill(Deadline deadline) {
  // Compact before growing so a long-lived connection doesn't keep consumed bytes.
  if (buf_pos_ > 0 && buf_pos_ == buf_.size()) {
    buf_.clear();
    buf_pos_ = 0;
  } else if (buf_pos_ > 65536) {
    buf_.erase(0, buf_pos_);
    buf_pos_ = 0;
  }
  return receiveSome(buf_, deadline);
}

Result<void> TcpTransport::receiveSome(std::string& out, Deadline deadline) {
  char chunk[16384];
  for (;;) {
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      out.append(chunk, static_cast<size_t>(n));
      return {};
    }
    if (n == 0) return makeError(ErrorCode::Unavailable, "read: connection closed by peer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto w = waitFor(fd_, POLLIN, deadline, "read"); !w.ok()) return w;
      continue;
    }
    return makeError(ErrorCode::Unavailable, "read: " + errnoText(errno));
  }
}

Result<std::string> TcpTransport::readLine(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  size_t scan_from = buf_pos_;
  for (;;) {
    size_t nl = buf_.find('\n', scan_from);
    if (nl != std::string::npos) {
      size_t end = nl;
      if (end > buf_pos_ && buf_[end - 1] == '\r') --end;
      std::string line = buf_.substr(buf_pos_, end - buf_pos_);
      buf_pos_ = nl + 1;
      return line;
    }
    if (buf_.size() - buf_pos_ > kMaxLineBytes) return makeError(ErrorCode::Protocol, "read: line too long");
    size_t consumed_before = buf_pos_;
    scan_from = buf_.size();
    if (auto f = fill(deadline); !f.ok()) return f.error();
    // fill() may have compacted the buffer; keep scan_from relative to it.
    if (buf_pos_ != consumed_before) scan_from -= consumed_before - buf_pos_;
  }
}

Result<std::string> TcpTransport::readExact(size_t n, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (buf_.size() - buf_pos_ < n) {
    if (auto f = fill(deadline); !f.ok()) return f.error();
  }
  std::string out = buf_.substr(buf_pos_, n);
  buf_pos_ += n;
  return out;
}

std::string TcpTransport::localAddress() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  char ip[INET6_ADDRSTRLEN] = {};
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    port = ntohs(a->sin_port);
    return "tcp:" + std::string(ip) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    port = ntohs(a->sin6_port);
    return "tcp6:[" + std::string(ip) + "]:" + std::to_string(port);
  }
  return {};
}

} // namespace clientconfig
