// TLS for memcached connections: TlsContext (an OpenSSL client SSL_CTX built from PEM),
// TlsFilesWatcher (follows a mounted Secret) and TlsTransport (SSL over the TCP transport's
// non-blocking socket, every step bounded by a deadline); parseAuthFile and AuthFileWatcher.
// Thread-safety: a TlsContext is immutable after construction (OpenSSL allows an SSL_CTX to be
// shared by connections on several threads once configured); TlsFilesWatcher locks mu_;
// a TlsTransport is one connection used by one thread at a time.
#include "clientconfig/security.h"
#include "clientconfig/transport.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <poll.h>
#include <sstream>
#include <unistd.h>
#include <vector>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "socket_wait.h"

namespace clientconfig {
namespace {

using Clock = std::chrono::steady_clock;

// The reason strings of OpenSSL's error queue ("certificate verify failed; ..."), emptying it.
// Reason strings name what went wrong, never key material.
std::string drainErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    std::string r = reason ? reason : "error " + std::to_string(ERR_GET_REASON(e));
    if (out.find(r) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += r;
  }
  return out;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;

// An encrypted key would make OpenSSL prompt on the terminal; a Secret's key is never
// encrypted, so refuse instead.
int noPassword(char*, int, int, void*) { return -1; }

// Every certificate in a PEM text, in order; `what` names the Secret key for errors.
Result<std::vector<X509Ptr>> readCertificates(const std::string& pem, const char* what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return makeError(ErrorCode::Internal, std::string(what) + ": out of memory");
  std::vector<X509Ptr> out;
  for (;;) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, noPassword, nullptr);
    if (x == nullptr) break;
    out.emplace_back(x);
  }
  // Reading stops with "no start line" at the end of the text: that one is expected.
  unsigned long last = ERR_peek_last_error();
  if (ERR_GET_REASON(last) == PEM_R_NO_START_LINE) {
    ERR_clear_error();
  } else if (last != 0) {
    return makeError(ErrorCode::InvalidArgument, std::string(what) + ": malformed PEM: " + drainErrors());
  }
  if (out.empty()) return makeError(ErrorCode::InvalidArgument, std::string(what) + ": no certificate in PEM");
  return out;
}

Result<void> trustOnly(SSL_CTX* ctx, const std::string& ca_pem) {
  auto cas = readCertificates(ca_pem, "ca.crt");
  if (!cas.ok()) return cas.error();
  // A fresh, empty store: nothing from the system's default paths is trusted.
  X509_STORE* store = X509_STORE_new();
  for (auto& c : *cas) {
    if (X509_STORE_add_cert(store, c.get()) != 1) {
      X509_STORE_free(store);
      return makeError(ErrorCode::InvalidArgument, "ca.crt: " + drainErrors());
    }
  }
  SSL_CTX_set_cert_store(ctx, store); // takes ownership
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  return {};
}

Result<void> useClientCertificate(SSL_CTX* ctx, const TlsPem& pem) {
  auto chain = readCertificates(pem.cert_pem, "tls.crt");
  if (!chain.ok()) return chain.error();
  if (pem.key_pem.empty()) return makeError(ErrorCode::InvalidArgument, "tls.key: missing (tls.crt is set)");
  BioPtr bio(BIO_new_mem_buf(pem.key_pem.data(), static_cast<int>(pem.key_pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassword, nullptr));
  if (!key) return makeError(ErrorCode::InvalidArgument, "tls.key: no usable private key in PEM: " + drainErrors());
  if (SSL_CTX_use_certificate(ctx, (*chain)[0].get()) != 1)
    return makeError(ErrorCode::InvalidArgument, "tls.crt: " + drainErrors());
  for (size_t i = 1; i < chain->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, (*chain)[i].get()) != 1)
      return makeError(ErrorCode::InvalidArgument, "tls.crt: chain certificate " + std::to_string(i) + ": " + drainErrors());
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return makeError(ErrorCode::InvalidArgument, "tls.key does not match tls.crt");
  }
  return {};
}

Result<std::string> readWholeFile(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(ErrorCode::NotFound, std::string(what) + ": cannot read " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

std::string sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex(md, len);
}

std::string peerSha256(SSL* ssl) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(peer, EVP_sha256(), md, &len) != 1) return {};
  return hex(md, len);
}

bool isIpAddress(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// TLS alerts a server sends when it does not accept the client's certificate (none sent,
// unknown CA, expired, ...). Under TLS 1.3 they arrive after the client's handshake has
// completed, with the first read.
bool isCertificateRefusal(int reason) {
  switch (reason) {
  case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
  case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
  case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
  // TLS 1.2 servers answer a missing required certificate with a bare handshake_failure.
  case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    return true;
  default:
    return false;
  }
}

} // namespace

// ---- TlsContext ----

TlsContext::~TlsContext() { SSL_CTX_free(static_cast<SSL_CTX*>(ctx_)); }

Result<std::shared_ptr<const TlsContext>> TlsContext::fromPem(const TlsPem& pem) {
  if (pem.ca_pem.empty()) return makeError(ErrorCode::InvalidArgument, "ca.crt: missing (the CA that signed the servers)");
  if (pem.cert_pem.empty() && !pem.key_pem.empty())
    return makeError(ErrorCode::InvalidArgument, "tls.crt: missing (tls.key is set)");
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return makeError(ErrorCode::Internal, "SSL_CTX_new: " + drainErrors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  // Non-blocking writes may be retried with a different buffer position after WANT_WRITE.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (auto t = trustOnly(ctx.get(), pem.ca_pem); !t.ok()) return t.error();
  if (!pem.cert_pem.empty()) {
    if (auto c = useClientCertificate(ctx.get(), pem); !c.ok()) return c.error();
  }
  std::shared_ptr<const TlsContext> out(new TlsContext(ctx.release()));
  return out;
}

Result<std::shared_ptr<const TlsContext>> TlsContext::fromFiles(const TlsFiles& files) {
  TlsPem pem;
  auto ca = readWholeFile(files.ca_file, "ca.crt");
  if (!ca.ok()) return ca.error();
  pem.ca_pem = std::move(*ca);
  if (!files.cert_file.empty()) {
    auto cert = readWholeFile(files.cert_file, "tls.crt");
    if (!cert.ok()) return cert.error();
    pem.cert_pem = std::move(*cert);
    if (files.key_file.empty()) return makeError(ErrorCode::InvalidArgument, "tls.key: no file given (tls.crt is set)");
    auto key = readWholeFile(files.key_file, "tls.key");
    if (!key.ok()) return key.error();
    pem.key_pem = std::move(*key);
  } else if (!files.key_file.empty()) {
    return makeError(ErrorCode::InvalidArgument, "tls.crt: no file given (tls.key is set)");
  }
  return fromPem(pem);
}

// ---- TlsFilesWatcher ----

TlsFilesWatcher::TlsFilesWatcher(TlsFiles files) : files_(std::move(files)) {}

Result<TlsContextPtr> TlsFilesWatcher::current(std::chrono::milliseconds recheck) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  if (ctx_ && now - checked_ < recheck) return ctx_;
  checked_ = now;
  // The content decides, not timestamps: the kubelet swaps a whole directory, and a file
  // rewritten with the same bytes needs no new context.
  std::string content;
  for (const auto* path : {&files_.ca_file, &files_.cert_file, &files_.key_file}) {
    if (path->empty()) continue;
    auto text = readWholeFile(*path, "tls");
    content += text.ok() ? sha256Hex(*text) : "unreadable";
    content += ';';
  }
  std::string fingerprint = sha256Hex(content);
  if (ctx_ && fingerprint == fingerprint_) return ctx_;
  // Files caught mid-rotation (a new tls.crt with the old tls.key) fail to load; the last good
  // context stays in use and the next check, after the swap completed, loads them.
  auto built = TlsContext::fromFiles(files_);
  if (!built.ok()) {
    last_error_ = built.error().message;
    if (ctx_) return ctx_;
    return built.error();
  }
  ctx_ = std::move(*built);
  fingerprint_ = std::move(fingerprint);
  last_error_.reset();
  return ctx_;
}

std::optional<std::string> TlsFilesWatcher::lastError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

// ---- TlsTransport ----

TlsTransport::TlsTransport(int fd, ssl_st* ssl, std::shared_ptr<const TlsContext> ctx)
    : TcpTransport(fd), ssl_(ssl), ctx_(std::move(ctx)) {}

TlsTransport::~TlsTransport() {
  // No close_notify: it would need a write (and a wait) in a destructor; memcached does not
  // need it, and the socket is closed by ~TcpTransport right after.
  SSL_free(ssl_);
}

std::string TlsTransport::protocolVersion() const { return SSL_get_version(ssl_); }

std::string TlsTransport::cipherName() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl_);
  return c ? SSL_CIPHER_get_name(c) : "";
}

template <class Op> Result<int> TlsTransport::drive(Op op, Deadline deadline, const char* what) {
  for (;;) {
    ERR_clear_error();
    int rc = op();
    if (rc > 0) return rc;
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      short events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
      if (auto w = detail::waitFor(fd(), events, deadline, what); !w.ok()) return w.error();
      continue;
    }
    std::string prefix = std::string(what) + (where_.empty() ? "" : " with " + where_) + ": ";
    if (err == SSL_ERROR_ZERO_RETURN) return makeError(ErrorCode::Unavailable, prefix + "connection closed by peer");
    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
      int e = errno;
      return makeError(ErrorCode::Unavailable,
                       prefix + (rc == 0 || e == 0 ? "connection closed by peer" : std::string(std::strerror(e))));
    }
    long verify = SSL_get_verify_result(ssl_);
    int reason = ERR_GET_REASON(ERR_peek_error());
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return makeError(ErrorCode::Unavailable, prefix + "the server's certificate did not verify: " +
                                                   X509_verify_cert_error_string(verify));
    }
    if (isCertificateRefusal(reason)) {
      std::string detail = drainErrors();
      return makeError(ErrorCode::PermissionDenied,
                       prefix + "the server refused this client's certificate (" + detail +
                           "): it requires one signed by its CA");
    }
    // A plaintext memcached answers a ClientHello with "ERROR\r\n", which is no TLS record.
    std::string hint = reason == SSL_R_WRONG_VERSION_NUMBER ? " (does the server speak TLS on this port?)" : "";
    return makeError(ErrorCode::Unavailable, prefix + drainErrors() + hint);
  }
}

Result<std::unique_ptr<TlsTransport>> TlsTransport::handshake(std::unique_ptr<TcpTransport> tcp,
                                                              std::shared_ptr<const TlsContext> ctx,
                                                              const std::string& server_name,
                                                              std::chrono::milliseconds timeout) {
  if (!tcp || !ctx) return makeError(ErrorCode::InvalidArgument, "TLS: no connection or no context");
  auto deadline = Clock::now() + timeout;
  SSL* ssl = SSL_new(static_cast<SSL_CTX*>(ctx->native()));
  if (ssl == nullptr) return makeError(ErrorCode::Internal, "SSL_new: " + drainErrors());
  int fd = tcp->release();
  // From here the transport owns both ssl and fd.
  std::unique_ptr<TlsTransport> t(new TlsTransport(fd, ssl, std::move(ctx)));
  t->where_ = server_name;
  SSL_set_fd(ssl, fd);
  if (!server_name.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (isIpAddress(server_name)) {
      // SNI carries host names only (RFC 6066); an address is checked against IP SANs.
      X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, server_name.c_str());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), server_name.size());
    }
  }
  auto done = t->drive([ssl] { return SSL_connect(ssl); }, deadline, "TLS handshake");
  if (!done.ok()) return done.error();
  t->peer_sha256_ = peerSha256(ssl);
  return t;
}

Result<void> TlsTransport::receiveSome(std::string& out, Deadline deadline) {
  char chunk[16384];
  auto n = drive([&] { return SSL_read(ssl_, chunk, sizeof(chunk)); }, deadline, "read");
  if (!n.ok()) return n.error();
  out.append(chunk, static_cast<size_t>(*n));
  return {};
}

Result<void> TlsTransport::sendAll(std::string_view data, Deadline deadline) {
  if (!wrote_) {
    wrote_ = true;
    // A TLS 1.3 server checks the client's certificate after the client's handshake is done;
    // refusing it, it sends an alert and closes, and a write arriving after that close draws a
    // reset that would hide the alert. When something is already waiting, read it first.
    pollfd p{fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) == 1) {
      char byte;
      auto peek = drive([&] { return SSL_peek(ssl_, &byte, 1); }, Clock::now(), "TLS");
      if (!peek.ok() && peek.error().code != ErrorCode::DeadlineExceeded) return peek.error();
    }
  }
  while (!data.empty()) {
    int len = data.size() > (1 << 30) ? (1 << 30) : static_cast<int>(data.size());
    auto n = drive([&] { return SSL_write(ssl_, data.data(), len); }, deadline, "write");
    if (!n.ok()) return n.error();
    data.remove_prefix(static_cast<size_t>(*n));
  }
  return {};
}

Result<void> TlsTransport::writeCommands(std::string_view data, const std::vector<size_t>& ends) {
  constexpr size_t kRecord = 16384; // TLS's maximum record plaintext
  auto deadline = Clock::now() + writeTimeout();
  size_t group_start = 0, prev_end = 0;
  for (size_t i = 0; i <= ends.size(); ++i) {
    size_t end = i < ends.size() ? std::min(ends[i], data.size()) : data.size();
    if (end <= prev_end && i < ends.size()) continue;
    // Flush the group before a command that would push it past one record.
    if (end - group_start > kRecord && prev_end > group_start) {
      if (auto w = sendAll(data.substr(group_start, prev_end - group_start), deadline); !w.ok()) return w;
      group_start = prev_end;
    }
    prev_end = end;
  }
  if (prev_end > group_start) return sendAll(data.substr(group_start, prev_end - group_start), deadline);
  return {};
}

// ---- authentication ----

Result<Credentials> parseAuthFile(std::string_view text) {
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    // memcached splits an entry at its first ':'; the password may contain more.
    size_t colon = line.find(':');
    std::string where = "auth file line " + std::to_string(line_no) + ": ";
    if (colon == std::string_view::npos)
      return makeError(ErrorCode::InvalidArgument, where + "expected user:password (no ':' found)");
    if (colon == 0) return makeError(ErrorCode::InvalidArgument, where + "empty user name");
    if (colon + 1 == line.size()) return makeError(ErrorCode::InvalidArgument, where + "empty password");
    std::string_view user = line.substr(0, colon);
    if (user.find_first_of(" \t") != std::string_view::npos)
      return makeError(ErrorCode::InvalidArgument, where + "the user name contains whitespace");
    return Credentials{std::string(user), std::string(line.substr(colon + 1))};
  }
  return makeError(ErrorCode::InvalidArgument, "auth file: no user:password entry");
}

AuthFileWatcher::AuthFileWatcher(std::string path) : path_(std::move(path)) {}

Result<Credentials> AuthFileWatcher::current(std::chrono::milliseconds recheck) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  if (credentials_ && now - checked_ < recheck) return *credentials_;
  checked_ = now;
  auto text = readWholeFile(path_, "auth file");
  if (!text.ok()) {
    last_error_ = text.error().message;
    if (credentials_) return *credentials_;
    return text.error();
  }
  std::string fingerprint = sha256Hex(*text);
  if (credentials_ && fingerprint == fingerprint_) return *credentials_;
  auto parsed = parseAuthFile(*text);
  if (!parsed.ok()) {
    last_error_ = path_ + ": " + parsed.error().message;
    if (credentials_) return *credentials_;
    return makeError(parsed.error().code, *last_error_);
  }
  credentials_ = std::move(*parsed);
  fingerprint_ = std::move(fingerprint);
  last_error_.reset();
  return *credentials_;
}

std::optional<std::string> AuthFileWatcher::lastError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

} // namespace clientconfig
