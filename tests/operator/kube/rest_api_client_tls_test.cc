// TLS to the API server: RestApiClient trusts exactly the configured CA (never the system's
// roots beside it), checks the server's name (the URL host, or the kubeconfig's
// tls-server-name, which is also sent as SNI). Against local TLS servers whose certificates the
// test makes with OpenSSL, and against the real API server (e2e/cluster) when
// MCOP_TEST_KUBECONFIG is set.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <absl/strings/escaping.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <yaml-cpp/yaml.h>

#include "kube/kubeconfig.h"
#include "kube/rest_api_client.h"

namespace mcop::kube {
namespace {

namespace fs = std::filesystem;

// --- certificates -------------------------------------------------------------------------

struct Issued {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<X509> cert;

  std::string certPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert.get());
    return drain(bio);
  }
  std::string keyPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    return drain(bio);
  }

 private:
  static std::string drain(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
  }
};

void addExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  ASSERT_NE(ext, nullptr) << "extension " << nid << "=" << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A P-256 key and a certificate for it: a self-signed CA when `issuer` is null, otherwise a
// server certificate signed by `issuer` for `sans` ("DNS:x,IP:y").
Issued issue(const std::string& cn, const Issued* issuer, const std::string& sans = "") {
  Issued out;
  out.key.reset(EVP_EC_gen("P-256"), EVP_PKEY_free);
  out.cert.reset(X509_new(), X509_free);
  X509* x = out.cert.get();
  X509_set_version(x, 2);
  static std::atomic<long> serial{1};
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert.get()) : name);
  X509_set_pubkey(x, out.key.get());
  X509* signer = issuer ? issuer->cert.get() : x;
  addExt(x, signer, NID_subject_key_identifier, "hash");
  if (issuer) {
    addExt(x, signer, NID_authority_key_identifier, "keyid");
    addExt(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    addExt(x, signer, NID_key_usage, "critical,digitalSignature");
    addExt(x, signer, NID_ext_key_usage, "serverAuth");
    if (!sans.empty()) addExt(x, signer, NID_subject_alt_name, sans);
  } else {
    addExt(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    addExt(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  X509_sign(x, issuer ? issuer->key.get() : out.key.get(), EVP_sha256());
  return out;
}

// --- a one-request-per-connection HTTPS server --------------------------------------------

class TlsServer {
 public:
  TlsServer(const Issued& serving, const std::string& address = "127.0.0.1") {
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx_, serving.cert.get());
    SSL_CTX_use_PrivateKey(ctx_, serving.key.get());
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 16) != 0) {
      ADD_FAILURE() << "cannot listen on " << address;
    }
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    url_ = "https://" + address + ":" + std::to_string(ntohs(addr.sin_port));
    thread_ = std::thread([this] { loop(); });
  }
  ~TlsServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    SSL_CTX_free(ctx_);
  }
  const std::string& url() const { return url_; }
  // Server names (SNI) of the completed handshakes; "" where the client sent none.
  std::vector<std::string> serverNames() {
    std::lock_guard<std::mutex> lock(mu_);
    return names_;
  }

 private:
  void loop() {
    while (true) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      timeval tv{5, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
        {
          std::lock_guard<std::mutex> lock(mu_);
          names_.push_back(sni ? sni : "");
        }
        std::string head;
        char buf[4096];
        while (head.find("\r\n\r\n") == std::string::npos) {
          int n = SSL_read(ssl, buf, sizeof(buf));
          if (n <= 0) break;
          head.append(buf, static_cast<size_t>(n));
        }
        std::string resp =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            "Content-Length: 2\r\n\r\n{}";
        SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
        SSL_shutdown(ssl);
      }
      ERR_clear_error();
      SSL_free(ssl);
      ::close(c);
    }
  }

  SSL_CTX* ctx_;
  int fd_;
  std::string url_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> names_;  // guarded by mu_
};

// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (old) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1); else unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/mcop-tls-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string write(const std::string& name, const std::string& content) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One GET through a fresh client: OK, or the TLS/transport error.
absl::Status getThrough(const RestConfig& cfg) {
  RestClientOptions opts;
  opts.request_timeout = std::chrono::seconds(10);
  auto client = RestApiClient::create(cfg, opts);
  if (!client.ok()) return client.status();
  return (*client)->get(resources::kNamespace, "", "default").status();
}

RestConfig configFor(const std::string& server, const std::string& ca_pem) {
  RestConfig cfg;
  cfg.server = server;
  cfg.ca_pem = ca_pem;
  cfg.description = "tls test";
  return cfg;
}

// --- against local TLS servers ------------------------------------------------------------

TEST(RestApiClientTls, TrustsTheConfiguredCa) {
  Issued ca = issue("test CA", nullptr);
  TlsServer server(issue("server", &ca, "IP:127.0.0.1"));
  EXPECT_TRUE(getThrough(configFor(server.url(), ca.certPem())).ok());
}

// The system's trust store (found through SSL_CERT_FILE / SSL_CERT_DIR, as OpenSSL's default
// verify paths are) holds the CA that signed the server's certificate; the kubeconfig names
// another CA. A client that added the configured CA to the system roots would connect.
TEST(RestApiClientTls, DoesNotTrustSystemRootsBesideTheConfiguredCa) {
  Issued system_ca = issue("a public CA", nullptr);
  Issued cluster_ca = issue("the cluster CA", nullptr);
  TlsServer server(issue("server", &system_ca, "IP:127.0.0.1"));
  TempDir tmp;
  fs::create_directory(tmp.path() + "/certs");
  ScopedEnv file("SSL_CERT_FILE", tmp.write("roots.pem", system_ca.certPem()));
  ScopedEnv dir("SSL_CERT_DIR", tmp.path() + "/certs");

  absl::Status s = getThrough(configFor(server.url(), cluster_ca.certPem()));
  EXPECT_TRUE(absl::IsUnavailable(s)) << "connected through a system root: " << s;
  // Without a configured CA the system roots are what the client trusts (as client-go does).
  EXPECT_TRUE(getThrough(configFor(server.url(), "")).ok());
}

// Certificates a new context loads from OpenSSL's default verify paths, as cpprestsdk sets up
// every connection before configureTls replaces the store.
int defaultPathCertificates() {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  EXPECT_EQ(SSL_CTX_set_default_verify_paths(ctx.get()), 1);
  return sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx.get())));
}

// With a configured CA, connections stop parsing the system bundle (which they would throw
// away) and still trust exactly that CA; without one, the system bundle stays the trust.
TEST(RestApiClientTls, SystemBundleIsNotLoadedWhenACaIsConfigured) {
  Issued system_ca = issue("a public CA", nullptr);
  Issued cluster_ca = issue("the cluster CA", nullptr);
  TempDir tmp;
  ScopedEnv file("SSL_CERT_FILE", tmp.write("roots.pem", system_ca.certPem()));
  ASSERT_EQ(defaultPathCertificates(), 1);

  skipUnusedSystemTrust(configFor("https://127.0.0.1:1", ""));
  EXPECT_EQ(defaultPathCertificates(), 1) << "no CA configured: the system roots are the trust";

  skipUnusedSystemTrust(configFor("https://127.0.0.1:1", cluster_ca.certPem()));
  EXPECT_EQ(defaultPathCertificates(), 0);
  TlsServer good(issue("server", &cluster_ca, "IP:127.0.0.1"));
  EXPECT_TRUE(getThrough(configFor(good.url(), cluster_ca.certPem())).ok());
  TlsServer other(issue("server", &system_ca, "IP:127.0.0.1"));
  EXPECT_TRUE(absl::IsUnavailable(getThrough(configFor(other.url(), cluster_ca.certPem()))));
}

TEST(RestApiClientTls, RejectsACertificateForAnotherHost) {
  Issued ca = issue("test CA", nullptr);
  TlsServer server(issue("server", &ca, "DNS:api.example.internal,IP:10.0.0.1"));
  absl::Status s = getThrough(configFor(server.url(), ca.certPem()));
  EXPECT_TRUE(absl::IsUnavailable(s)) << "127.0.0.1 is not in the certificate: " << s;
}

// kubeconfig tls-server-name: the certificate is checked against it instead of the URL's host,
// and it is the SNI the server sees.
TEST(RestApiClientTls, TlsServerNameIsVerifiedAndSent) {
  Issued ca = issue("test CA", nullptr);
  TlsServer server(issue("server", &ca, "DNS:api.example.internal"));
  RestConfig cfg = configFor(server.url(), ca.certPem());
  cfg.tls_server_name = "api.example.internal";
  absl::Status s = getThrough(cfg);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(server.serverNames(), ::testing::Contains("api.example.internal"));

  cfg.tls_server_name = "other.example.internal";
  s = getThrough(cfg);
  EXPECT_TRUE(absl::IsUnavailable(s)) << "certificate accepted for a name it does not carry: " << s;
}

// tls-server-name wins over the URL host: a certificate valid for the URL host but not for the
// configured server name is refused (Go's ServerName semantics).
TEST(RestApiClientTls, TlsServerNameReplacesTheUrlHost) {
  Issued ca = issue("test CA", nullptr);
  TlsServer server(issue("server", &ca, "IP:127.0.0.1"));
  RestConfig cfg = configFor(server.url(), ca.certPem());
  cfg.tls_server_name = "api.example.internal";
  absl::Status s = getThrough(cfg);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
}

TEST(RestApiClientTls, IpAddressTlsServerNameMatchesIpSans) {
  Issued ca = issue("test CA", nullptr);
  TlsServer server(issue("server", &ca, "DNS:localhost,IP:10.96.0.1"));
  RestConfig cfg = configFor(server.url(), ca.certPem());
  cfg.tls_server_name = "10.96.0.1";
  absl::Status s = getThrough(cfg);
  EXPECT_TRUE(s.ok()) << s;
  // An IP address is never sent as SNI (RFC 6066).
  EXPECT_THAT(server.serverNames(), ::testing::Contains(""));
}

TEST(RestApiClientTls, BadTlsServerNameIsAConfigurationError) {
  RestConfig cfg = configFor("https://127.0.0.1:6443", "");
  cfg.description = "kubeconfig x context y";
  for (const char* bad : {"api example", "https://api.example", "api.example:6443", "*.example"}) {
    cfg.tls_server_name = bad;
    auto client = RestApiClient::create(cfg);
    ASSERT_FALSE(client.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(client.status()));
    EXPECT_THAT(client.status().message(),
                ::testing::HasSubstr("tls-server-name \"" + std::string(bad) + "\""));
  }
}

TEST(RestApiClientTls, DnsUrlHostIsVerifiedAndSent) {
  Issued ca = issue("test CA", nullptr);
  TlsServer server(issue("server", &ca, "DNS:localhost"));
  std::string url = server.url();
  url.replace(url.find("127.0.0.1"), 9, "localhost");
  absl::Status s = getThrough(configFor(url, ca.certPem()));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(server.serverNames(), ::testing::Contains("localhost"));
}

// --- against the real API server (e2e/cluster); set MCOP_TEST_KUBECONFIG ------------------

// Forwards TCP connections from 127.0.0.3 (an address the API server's certificate does not
// name) to the API server.
class Relay {
 public:
  explicit Relay(int upstream_port) : upstream_port_(upstream_port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.3", &addr.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 16) != 0) {
      ADD_FAILURE() << "relay cannot listen on 127.0.0.3";
    }
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~Relay() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& t : pumps_) t.join();
  }
  int port() const { return port_; }

 private:
  void loop() {
    while (true) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      int u = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(u, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(u);
        ::close(c);
        continue;
      }
      pumps_.emplace_back([this, c, u] { pump(c, u); });
    }
  }
  void pump(int a, int b) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[16384];
    while (!stop_) {
      if (::poll(fds, 2, 100) <= 0) continue;
      bool done = false;
      for (int i = 0; i < 2 && !done; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::recv(fds[i].fd, buf, sizeof(buf), 0);
        if (n <= 0 || ::send(fds[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) {
          done = true;
        }
      }
      if (done) break;
    }
    ::close(a);
    ::close(b);
  }

  int upstream_port_;
  int fd_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> pumps_;  // touched only by the accept thread until the destructor
};

// The real kubeconfig with its cluster entry changed, written to `dir`, then loaded as the
// operator loads it. `edit` gets the cluster mapping.
absl::StatusOr<RestConfig> editedKubeconfig(const TempDir& dir,
                                            const std::function<void(YAML::Node)>& edit) {
  const char* kc = std::getenv("MCOP_TEST_KUBECONFIG");
  YAML::Node root = YAML::LoadFile(kc);
  // Inline every file the kubeconfig names, since the copy lives elsewhere.
  std::string base = fs::path(kc).parent_path();
  auto inline_file = [&](YAML::Node m, const std::string& key) {
    if (!m[key]) return;
    std::string p = m[key].as<std::string>();
    if (p[0] != '/') p = base + "/" + p;
    std::ifstream in(p);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string b64;
    absl::Base64Escape(content, &b64);
    m[key + "-data"] = b64;
    m.remove(key);
  };
  for (auto c : root["clusters"]) {
    inline_file(c["cluster"], "certificate-authority");
    edit(c["cluster"]);
  }
  for (auto u : root["users"]) {
    inline_file(u["user"], "client-certificate");
    inline_file(u["user"], "client-key");
  }
  YAML::Emitter out;
  out << root;
  return loadKubeconfig(dir.write("kubeconfig", out.c_str()), "");
}

std::string base64(const std::string& s) {
  std::string out;
  absl::Base64Escape(s, &out);
  return out;
}

int portOf(const std::string& server) { return std::stoi(server.substr(server.rfind(':') + 1)); }

TEST(RestApiClientTlsIntegration, OnlyTheClusterCaIsTrusted) {
  const char* kc = std::getenv("MCOP_TEST_KUBECONFIG");
  if (!kc || !*kc) GTEST_SKIP() << "MCOP_TEST_KUBECONFIG not set";
  TempDir tmp;
  auto real = loadKubeconfig(kc, "");
  ASSERT_TRUE(real.ok()) << real.status();
  absl::Status s = getThrough(*real);
  EXPECT_TRUE(s.ok()) << "the cluster's own CA: " << s;

  // A kubeconfig naming a freshly made CA must not reach the API server, even with the real
  // cluster CA among the system's roots.
  Issued other_ca = issue("not the cluster CA", nullptr);
  auto wrong = editedKubeconfig(tmp, [&](YAML::Node c) {
    c["certificate-authority-data"] = base64(other_ca.certPem());
  });
  ASSERT_TRUE(wrong.ok()) << wrong.status();
  fs::create_directory(tmp.path() + "/certs");
  ScopedEnv file("SSL_CERT_FILE", tmp.write("roots.pem", real->ca_pem));
  ScopedEnv dir("SSL_CERT_DIR", tmp.path() + "/certs");
  s = getThrough(*wrong);
  EXPECT_TRUE(absl::IsUnavailable(s)) << "connected although the configured CA did not sign the "
                                         "server's certificate: " << s;
}

// The API server's certificate names 127.0.0.1, localhost and kubernetes.default.svc, not
// 127.0.0.3: through a relay on 127.0.0.3 the connection fails unless the kubeconfig's
// tls-server-name names one of the certificate's names.
TEST(RestApiClientTlsIntegration, TlsServerNameForAnAddressOutsideTheCertificate) {
  const char* kc = std::getenv("MCOP_TEST_KUBECONFIG");
  if (!kc || !*kc) GTEST_SKIP() << "MCOP_TEST_KUBECONFIG not set";
  auto real = loadKubeconfig(kc, "");
  ASSERT_TRUE(real.ok()) << real.status();
  Relay relay(portOf(real->server));
  std::string relayed = "https://127.0.0.3:" + std::to_string(relay.port());
  TempDir tmp;

  auto plain = editedKubeconfig(tmp, [&](YAML::Node c) { c["server"] = relayed; });
  ASSERT_TRUE(plain.ok()) << plain.status();
  absl::Status s = getThrough(*plain);
  EXPECT_TRUE(absl::IsUnavailable(s)) << "127.0.0.3 accepted though not in the certificate: " << s;

  auto named = editedKubeconfig(tmp, [&](YAML::Node c) {
    c["server"] = relayed;
    c["tls-server-name"] = "kubernetes.default.svc";
  });
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->tls_server_name, "kubernetes.default.svc");
  s = getThrough(*named);
  EXPECT_TRUE(s.ok()) << "tls-server-name kubernetes.default.svc: " << s;

  auto wrong = editedKubeconfig(tmp, [&](YAML::Node c) {
    c["server"] = relayed;
    c["tls-server-name"] = "not-the-api-server.example";
  });
  ASSERT_TRUE(wrong.ok()) << wrong.status();
  s = getThrough(*wrong);
  EXPECT_TRUE(absl::IsUnavailable(s)) << "a tls-server-name the certificate does not carry: " << s;
}

}  // namespace
}  // namespace mcop::kube
