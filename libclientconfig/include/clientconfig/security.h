// Connection security for memcached: TLS (optionally with a client certificate, for servers that
// require one) and memcached's ASCII authentication (`-Y` auth file: the first command of a
// connection is `set <any key> 0 0 <len>` whose value is "user password").
// Thread-safety: a TlsContext is immutable once built and shared by any number of connections;
// TlsFilesWatcher and AuthFileWatcher are safe to call from several threads.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "clientconfig/result.h"

namespace clientconfig {

// PEM text of a trust anchor and, for servers that require client certificates, a certificate
// chain and its private key (the keys `ca.crt`, `tls.crt`, `tls.key` of a kubernetes.io/tls
// Secret as cert-manager writes it).
struct TlsPem {
  std::string ca_pem;    // required: the CA that signed the servers' certificates
  std::string cert_pem;  // optional: client certificate chain (leaf first)
  std::string key_pem;   // required when cert_pem is set
};

// The same as files (a mounted Secret's directory, e.g. /etc/memcached-tls/ca.crt).
struct TlsFiles {
  std::string ca_file;
  std::string cert_file;  // empty: no client certificate
  std::string key_file;
};

// An OpenSSL client context: TLS 1.2 or later, the peer's chain verified against the CA only
// (never the system roots), the peer's name checked when a server name is given at connect.
class TlsContext {
 public:
  // InvalidArgument naming what is wrong ("tls.key does not match tls.crt", "ca.crt: no
  // certificate in PEM") when the material cannot be used.
  static Result<std::shared_ptr<const TlsContext>> fromPem(const TlsPem& pem);
  static Result<std::shared_ptr<const TlsContext>> fromFiles(const TlsFiles& files);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // The underlying SSL_CTX* (opaque here so this header needs no OpenSSL include).
  void* native() const { return ctx_; }

 private:
  explicit TlsContext(void* ctx) : ctx_(ctx) {}
  void* ctx_;
};
using TlsContextPtr = std::shared_ptr<const TlsContext>;

// Follows a mounted Secret: current() rebuilds the context when a file's content changed (the
// kubelet swaps the directory on rotation) and keeps the last good context when the new files
// do not load, reporting why in lastError().
class TlsFilesWatcher {
 public:
  explicit TlsFilesWatcher(TlsFiles files);
  // The first call loads (an error when the files never loaded); later calls check the files at
  // most once per `recheck` and return the last good context.
  Result<TlsContextPtr> current(std::chrono::milliseconds recheck = std::chrono::seconds(1));
  std::optional<std::string> lastError() const;

 private:
  mutable std::mutex mu_;
  TlsFiles files_;
  TlsContextPtr ctx_;
  std::string fingerprint_;  // of the files' content the context was built from
  std::chrono::steady_clock::time_point checked_{};
  std::optional<std::string> last_error_;
};

// memcached ASCII authentication credentials.
struct Credentials {
  std::string username;
  std::string password;
};

// The first `user:password` entry of a memcached auth file (the format of `-Y`: one entry a
// line); InvalidArgument when there is none or a line is malformed (never echoing a password).
Result<Credentials> parseAuthFile(std::string_view text);

// Follows a mounted auth file (memcached's -Y format): current() re-reads it when its content
// changed, at most once per `recheck`, and keeps the last good credentials when the new content
// does not parse (lastError() says why, never quoting the file).
class AuthFileWatcher {
 public:
  explicit AuthFileWatcher(std::string path);
  Result<Credentials> current(std::chrono::milliseconds recheck = std::chrono::seconds(1));
  std::optional<std::string> lastError() const;

 private:
  mutable std::mutex mu_;
  std::string path_;
  std::optional<Credentials> credentials_;
  std::string fingerprint_;
  std::chrono::steady_clock::time_point checked_{};
  std::optional<std::string> last_error_;
};

// How MemcachedAdmin::connect talks to a server.
struct ConnectOptions {
  TlsContextPtr tls;                       // null: plaintext
  std::string server_name;                 // TLS: SNI and the name the certificate must carry;
                                           // empty: the chain is verified, the name is not
  std::optional<Credentials> credentials;  // authenticate right after connecting
};

}  // namespace clientconfig
