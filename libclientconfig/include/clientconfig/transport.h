// Byte-stream transports for the memcached text protocol: the Transport interface
// (so an in-memory fake can stand in), TcpTransport, plain TCP with a deadline on
// every operation, and TlsTransport, the same over OpenSSL.
// Thread-safety: a Transport is one connection used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "clientconfig/result.h"

// OpenSSL's SSL, declared here so this header needs no OpenSSL include.
struct ssl_st;

namespace clientconfig {

class TlsContext;

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
  // Pipelined commands: `data` is several commands, command i ending at offset ends[i] (the
  // last one at data.size()). TLS transports keep every TLS record ending at a command end
  // (see TlsTransport); others just write the bytes.
  virtual Result<void> writeCommands(std::string_view data, const std::vector<size_t>& ends) {
    (void)ends;
    return writeAll(data);
  }
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
  // Gives the socket up (for TlsTransport to take over); this object is unusable after.
  int release();

protected:
  using Deadline = std::chrono::steady_clock::time_point;
  std::chrono::milliseconds writeTimeout() const { return write_timeout_; }
  // The raw byte stream under the line buffering: receive at least one byte into `out`
  // (appending), waiting until `deadline`; send every byte of `data`. TlsTransport
  // overrides them, so both share the buffering and the line/exact-read semantics.
  virtual Result<void> receiveSome(std::string& out, Deadline deadline);
  virtual Result<void> sendAll(std::string_view data, Deadline deadline);

private:
  // Reads whatever is available into buf_, waiting until `deadline`.
  Result<void> fill(Deadline deadline);

  int fd_;
  std::string buf_;   // received, not yet consumed bytes start at buf_pos_
  size_t buf_pos_ = 0;
  std::chrono::milliseconds write_timeout_{5000};
};

// TLS over a non-blocking socket: the handshake, every read and every write are bounded by
// their deadline (poll() on OpenSSL's WANT_READ/WANT_WRITE).
class TlsTransport : public TcpTransport {
public:
  // Wraps a connected socket: handshake within `deadline` with `ctx` (shared; kept alive by
  // this transport). A non-empty `server_name` is sent as SNI (unless it is an IP address)
  // and the server's certificate must carry it (DNS SAN, or IP SAN for an address).
  // Errors: PermissionDenied when the server refused our certificate (a TLS alert),
  // Unavailable when the server's certificate did not verify (the reason named) or the
  // connection failed, DeadlineExceeded on timeout.
  static Result<std::unique_ptr<TlsTransport>> handshake(std::unique_ptr<TcpTransport> tcp,
                                                         std::shared_ptr<const TlsContext> ctx,
                                                         const std::string& server_name,
                                                         std::chrono::milliseconds timeout);
  ~TlsTransport() override;

  std::string peerCertificateSha256() const override { return peer_sha256_; }
  // memcached 1.6.18 stalls on a pipeline whose TLS record ends in the middle of a command:
  // it stops reading with the rest of the record decrypted inside OpenSSL and waits for the
  // socket to become readable again, which it never does (measured: a 34 KB batch of `ms`
  // commands, or one 20 KB `ms` followed by `mn`, hung until the client's timeout). So the
  // commands are written in groups of whole commands of at most one record (16 KiB), a larger
  // command alone: every record then ends where a command ends, and memcached, which reads a
  // record at a time, always consumes whole records.
  Result<void> writeCommands(std::string_view data, const std::vector<size_t>& ends) override;
  // "TLSv1.3" and "TLS_AES_256_GCM_SHA384", for diagnostics and the benchmark.
  std::string protocolVersion() const;
  std::string cipherName() const;

protected:
  Result<void> receiveSome(std::string& out, Deadline deadline) override;
  Result<void> sendAll(std::string_view data, Deadline deadline) override;

private:
  TlsTransport(int fd, ssl_st* ssl, std::shared_ptr<const TlsContext> ctx);
  // Runs an SSL call until it completes, polling on what OpenSSL waits for.
  template <class Op> Result<int> drive(Op op, Deadline deadline, const char* what);

  ssl_st* ssl_;
  std::shared_ptr<const TlsContext> ctx_;
  std::string peer_sha256_;
  std::string where_; // the server name, for messages
  bool wrote_ = false;
};

} // namespace clientconfig
