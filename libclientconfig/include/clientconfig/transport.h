// Byte-stream transports for the memcached text protocol: the Transport interface
// (so TLS or an in-memory fake can stand in) and TcpTransport, plain TCP with a
// deadline on every operation.
// Thread-safety: a Transport is one connection used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "clientconfig/result.h"

namespace clientconfig {

class Transport {
public:
  virtual ~Transport() = default;
  // Sends every byte or fails; a partial write leaves the stream unusable.
  virtual Result<void> writeAll(std::string_view data) = 0;
  // One line without its terminator ("\n" or "\r\n"). memcached ends most lines with
  // "\r\n" but metadump lines with a bare "\n", so both are accepted.
  virtual Result<std::string> readLine(std::chrono::milliseconds timeout) = 0;
  // Exactly n bytes (a value body), or an error.
  virtual Result<std::string> readExact(size_t n, std::chrono::milliseconds timeout) = 0;
  // This end's address as memcached prints peers in `stats conns` ("tcp:IP:PORT"),
  // so a caller can leave its own connection out of a count; empty if unknown.
  virtual std::string localAddress() const { return {}; }
  // TLS transports: SHA-256 hex of the peer's leaf certificate (DER); empty otherwise.
  virtual std::string peerCertificateSha256() const { return {}; }
};

using TransportPtr = std::unique_ptr<Transport>;

class TcpTransport : public Transport {
public:
  // Lines longer than this are a protocol error, so a misbehaving peer cannot make
  // us buffer without bound.
  static constexpr size_t kMaxLineBytes = 1 << 20;

  // Resolves host (numeric addresses skip DNS), then connects non-blocking and waits
  // at most `timeout` per address tried. Name resolution itself uses getaddrinfo,
  // which has no timeout of its own; pass addresses where that matters.
  static Result<std::unique_ptr<TcpTransport>> connect(const std::string& host, uint16_t port,
                                                       std::chrono::milliseconds timeout);

  explicit TcpTransport(int fd); // takes ownership of a connected socket
  ~TcpTransport() override;
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  Result<void> writeAll(std::string_view data) override;
  Result<std::string> readLine(std::chrono::milliseconds timeout) override;
  Result<std::string> readExact(size_t n, std::chrono::milliseconds timeout) override;
  std::string localAddress() const override;

  // Also used by writeAll; exposed for callers who pipeline.
  Result<void> writeAll(std::string_view data, std::chrono::milliseconds timeout);
  void setWriteTimeout(std::chrono::milliseconds timeout) { write_timeout_ = timeout; }
  int fd() const { return fd_; }

private:
  // Reads whatever is available into buf_, waiting until `deadline`.
  Result<void> fill(std::chrono::steady_clock::time_point deadline);

  int fd_;
  std::string buf_;   // received, not yet consumed bytes start at buf_pos_
  size_t buf_pos_ = 0;
  std::chrono::milliseconds write_timeout_{5000};
};

} // namespace clientconfig
