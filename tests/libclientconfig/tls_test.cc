// TLS, mTLS and ASCII authentication against real memcached 1.6.18 processes (-Z, -Y), with
// certificates generated at test time (tls_certs.h).
#include <gtest/gtest.h>

#include <thread>

#include "clientconfig/memcached_admin.h"
#include "clientconfig/security.h"
#include "memcached_process.h"
#include "tls_certs.h"

namespace clientconfig {
namespace {

using namespace std::chrono_literals;
using testing::MemcachedProcess;
using testing::PemPair;
using testing::ServerTlsDir;
using testing::TestCa;
using testing::Validity;

// One CA, a server certificate for localhost/127.0.0.1/a pod DNS name, client certificates.
struct Pki {
  TestCa ca{"test-ca"};
  TestCa other_ca{"other-ca"};
  PemPair server = ca.issue("memcached", "DNS:m-0.m.ns.svc,DNS:localhost,IP:127.0.0.1", true);
  PemPair client = ca.issue("client", "", false);
  PemPair foreign_client = other_ca.issue("client", "", false);
  PemPair expired_client = ca.issue("client", "", false, Validity{-10 * 86400, -86400});
};

Pki& pki() {
  static Pki p;
  return p;
}

TlsContextPtr context(const std::string& ca_pem, const PemPair* client = nullptr) {
  TlsPem pem;
  pem.ca_pem = ca_pem;
  if (client != nullptr) {
    pem.cert_pem = client->cert_pem;
    pem.key_pem = client->key_pem;
  }
  auto c = TlsContext::fromPem(pem);
  EXPECT_TRUE(c.ok()) << c.error().toString();
  return c.ok() ? *c : nullptr;
}

Result<MemcachedAdminPtr> connectTls(uint16_t port, TlsContextPtr ctx, std::string name = "localhost",
                                     std::optional<Credentials> creds = std::nullopt) {
  ConnectOptions o;
  o.tls = std::move(ctx);
  o.server_name = std::move(name);
  o.credentials = std::move(creds);
  return MemcachedAdmin::connect("127.0.0.1", port, 2000ms, o);
}

class TlsServerTest : public ::testing::Test {
protected:
  void start(int verify_mode, std::vector<std::string> more = {}) {
    dir_ = std::make_unique<ServerTlsDir>(pki().ca, pki().server);
    auto args = dir_->memcachedArgs(verify_mode);
    args.insert(args.end(), more.begin(), more.end());
    server_ = std::make_unique<MemcachedProcess>(args);
    ASSERT_TRUE(server_->running());
  }
  std::unique_ptr<ServerTlsDir> dir_;
  std::unique_ptr<MemcachedProcess> server_;
};

TEST_F(TlsServerTest, PlaintextToTlsServerFails) {
  start(0);
  auto a = MemcachedAdmin::connect("127.0.0.1", server_->port(), 2000ms);
  ASSERT_TRUE(a.ok()) << a.error().toString(); // TCP itself connects
  auto v = (*a)->version();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, ErrorCode::Unavailable) << v.error().toString();
}

TEST_F(TlsServerTest, EveryOperationOverTls) {
  start(0);
  auto a = connectTls(server_->port(), context(pki().ca.certPem()));
  ASSERT_TRUE(a.ok()) << a.error().toString();
  MemcachedAdmin& m = **a;
  EXPECT_EQ(m.peerCertificateSha256(), testing::certSha256(pki().server.cert_pem));
  auto v = m.version();
  ASSERT_TRUE(v.ok()) << v.error().toString();
  EXPECT_EQ(*v, "1.6.18");
  // A value larger than one TLS record (16 KiB) crosses record boundaries both ways.
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); i += 7) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(m.metaSet("big", big, 0, 7).ok());
  auto g = m.metaGet("big");
  ASSERT_TRUE(g.ok() && g->has_value()) << (g.ok() ? "miss" : g.error().toString());
  EXPECT_EQ((*g)->value, big);
  EXPECT_EQ((*g)->flags, 7u);
  std::vector<MemcachedAdmin::MetaSetRequest> batch;
  for (int i = 0; i < 200; ++i) batch.push_back({"k" + std::to_string(i), std::string(500, 'v'), 0, 0});
  auto stored = m.metaSetBatch(batch, MetaSetMode::Set);
  ASSERT_TRUE(stored.ok()) << stored.error().toString();
  auto got = m.metaGetBatch({"k0", "k199", "nope"});
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE((*got)[0].has_value());
  EXPECT_TRUE((*got)[1].has_value());
  EXPECT_FALSE((*got)[2].has_value());
  auto touched = m.command("touch k0 100");
  ASSERT_TRUE(touched.ok()) << touched.error().toString();
  EXPECT_EQ(*touched, "TOUCHED");
  auto s = MemcachedAdmin::connect("127.0.0.1", server_->port(), 2000ms,
                                   ConnectOptions{context(pki().ca.certPem()), "localhost", std::nullopt});
  ASSERT_TRUE(s.ok());
  auto st = (*s)->stats();
  ASSERT_TRUE(st.ok()) << st.error().toString();
  EXPECT_EQ(st->at("curr_items"), "201");
  auto items = (*s)->metadumpAll();
  ASSERT_TRUE(items.ok()) << items.error().toString();
  EXPECT_EQ(items->size(), 201u);
  auto conns = (*s)->clientConnections();
  ASSERT_TRUE(conns.ok()) << conns.error().toString();
  EXPECT_GE(*conns, 1);
}

TEST_F(TlsServerTest, RequiredClientCertificate) {
  start(2);
  const std::string ca = pki().ca.certPem();
  auto none = connectTls(server_->port(), context(ca));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::PermissionDenied) << none.error().toString();
  EXPECT_NE(none.error().message.find("refused this client's certificate"), std::string::npos) << none.error().message;

  auto right = connectTls(server_->port(), context(ca, &pki().client));
  ASSERT_TRUE(right.ok()) << right.error().toString();
  EXPECT_TRUE((*right)->metaSet("k", "v", 0, 0).ok());

  auto foreign = connectTls(server_->port(), context(ca, &pki().foreign_client));
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code, ErrorCode::PermissionDenied) << foreign.error().toString();

  auto expired = connectTls(server_->port(), context(ca, &pki().expired_client));
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.error().code, ErrorCode::PermissionDenied) << expired.error().toString();
}

TEST_F(TlsServerTest, ServerCertificateChecks) {
  start(0);
  const std::string ca = pki().ca.certPem();
  // The names the certificate carries pass, as DNS name and as address.
  EXPECT_TRUE(connectTls(server_->port(), context(ca), "m-0.m.ns.svc").ok());
  EXPECT_TRUE(connectTls(server_->port(), context(ca), "127.0.0.1").ok());
  auto mismatch = connectTls(server_->port(), context(ca), "m-1.m.ns.svc");
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.error().message.find("hostname mismatch"), std::string::npos) << mismatch.error().message;
  auto ip_mismatch = connectTls(server_->port(), context(ca), "127.0.0.2");
  ASSERT_FALSE(ip_mismatch.ok());
  EXPECT_NE(ip_mismatch.error().message.find("IP address mismatch"), std::string::npos) << ip_mismatch.error().message;
  auto wrong_ca = connectTls(server_->port(), context(pki().other_ca.certPem()));
  ASSERT_FALSE(wrong_ca.ok());
  EXPECT_EQ(wrong_ca.error().code, ErrorCode::Unavailable);
  EXPECT_NE(wrong_ca.error().message.find("did not verify"), std::string::npos) << wrong_ca.error().message;
}

TEST_F(TlsServerTest, ExpiredServerCertificateRefused) {
  dir_ = std::make_unique<ServerTlsDir>(pki().ca, pki().ca.issue("memcached", "DNS:localhost", true, Validity{-10 * 86400, -86400}));
  server_ = std::make_unique<MemcachedProcess>(dir_->memcachedArgs(0));
  ASSERT_TRUE(server_->running());
  auto a = connectTls(server_->port(), context(pki().ca.certPem()));
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message.find("certificate has expired"), std::string::npos) << a.error().message;
}

TEST_F(TlsServerTest, TlsToPlaintextServerFailsFast) {
  MemcachedProcess plain;
  ASSERT_TRUE(plain.running());
  auto t0 = std::chrono::steady_clock::now();
  auto a = connectTls(plain.port(), context(pki().ca.certPem()));
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, ErrorCode::Unavailable) << a.error().toString();
  EXPECT_NE(a.error().message.find("does the server speak TLS"), std::string::npos) << a.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
}

TEST_F(TlsServerTest, HandshakeBoundedByTimeout) {
  start(0);
  server_->pause();
  ConnectOptions o{context(pki().ca.certPem()), "localhost", std::nullopt};
  auto t0 = std::chrono::steady_clock::now();
  auto a = MemcachedAdmin::connect("127.0.0.1", server_->port(), 300ms, o);
  auto took = std::chrono::steady_clock::now() - t0;
  server_->resume();
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code, ErrorCode::DeadlineExceeded) << a.error().toString();
  EXPECT_LT(took, 1000ms);
}

TEST_F(TlsServerTest, RefreshCertsServesTheNewCertificate) {
  start(0);
  auto ctx = context(pki().ca.certPem());
  auto before = connectTls(server_->port(), ctx);
  ASSERT_TRUE(before.ok()) << before.error().toString();
  std::string old_sha = (*before)->peerCertificateSha256();
  ASSERT_EQ(old_sha, testing::certSha256(pki().server.cert_pem));

  PemPair renewed = pki().ca.issue("memcached", "DNS:localhost", true);
  dir_->write(renewed, pki().ca.certPem());
  // Until told, memcached keeps serving what it loaded.
  auto still = connectTls(server_->port(), ctx);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ((*still)->peerCertificateSha256(), old_sha);

  ASSERT_TRUE((*before)->refreshCerts().ok());
  auto after = connectTls(server_->port(), ctx);
  ASSERT_TRUE(after.ok()) << after.error().toString();
  EXPECT_EQ((*after)->peerCertificateSha256(), testing::certSha256(renewed.cert_pem));
  EXPECT_NE((*after)->peerCertificateSha256(), old_sha);
  // The connection made before the refresh keeps working.
  EXPECT_TRUE((*before)->version().ok());

  // Files that do not load: refresh_certs says so, and the server keeps the renewed certificate.
  dir_->write(PemPair{renewed.cert_pem, pki().client.key_pem}, pki().ca.certPem());
  auto bad = (*after)->refreshCerts();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::FailedPrecondition) << bad.error().toString();
  auto again = connectTls(server_->port(), ctx);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->peerCertificateSha256(), testing::certSha256(renewed.cert_pem));
}

TEST(RefreshCerts, PlaintextServerSaysTlsIsOff) {
  MemcachedProcess plain;
  auto a = MemcachedAdmin::connect("127.0.0.1", plain.port(), 2000ms);
  ASSERT_TRUE(a.ok());
  auto r = (*a)->refreshCerts();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("TLS not enabled"), std::string::npos) << r.error().message;
  EXPECT_TRUE((*a)->version().ok());
}

// ---- authentication ----

class AuthServerTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = testing::makeTempDir("cc-auth-");
    ::chmod(dir_.c_str(), 0755);
    file_ = dir_ + "/auth";
    testing::writeFile(file_, "alice:s3cret\nbob:other:pw\n");
    ::chmod(file_.c_str(), 0644);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, file_;
};

TEST_F(AuthServerTest, CredentialsDecide) {
  MemcachedProcess server({"-Y", file_});
  ASSERT_TRUE(server.running());
  // No credentials: memcached answers every command with CLIENT_ERROR unauthenticated.
  auto anon = MemcachedAdmin::connect("127.0.0.1", server.port(), 2000ms);
  ASSERT_TRUE(anon.ok());
  auto v = (*anon)->version();
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code, ErrorCode::PermissionDenied) << v.error().toString();
  EXPECT_NE(v.error().message.find("requires authentication"), std::string::npos);

  ConnectOptions wrong;
  wrong.credentials = Credentials{"alice", "wrong"};
  auto w = MemcachedAdmin::connect("127.0.0.1", server.port(), 2000ms, wrong);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code, ErrorCode::PermissionDenied) << w.error().toString();
  EXPECT_NE(w.error().message.find("\"alice\""), std::string::npos);
  EXPECT_EQ(w.error().message.find("wrong"), std::string::npos) << "the password must not be echoed";

  ConnectOptions right;
  right.credentials = Credentials{"alice", "s3cret"};
  auto r = MemcachedAdmin::connect("127.0.0.1", server.port(), 2000ms, right);
  ASSERT_TRUE(r.ok()) << r.error().toString();
  ASSERT_TRUE((*r)->metaSet("k", "v", 0, 0).ok());
  EXPECT_EQ((**(*r)->metaGet("k")).value, "v");
  // The authentication `set` left no item behind.
  auto items = (*r)->metadumpAll();
  ASSERT_TRUE(items.ok());
  EXPECT_EQ(items->size(), 1u);

  // A password with a ':' (memcached splits entries at the first one).
  auto creds = parseAuthFile("bob:other:pw\n");
  ASSERT_TRUE(creds.ok());
  ConnectOptions bob;
  bob.credentials = *creds;
  EXPECT_TRUE(MemcachedAdmin::connect("127.0.0.1", server.port(), 2000ms, bob).ok());
}

TEST_F(AuthServerTest, AuthenticationWithoutAuthServerLeavesNothing) {
  MemcachedProcess server;
  ConnectOptions o;
  o.credentials = Credentials{"alice", "s3cret"};
  auto a = MemcachedAdmin::connect("127.0.0.1", server.port(), 2000ms, o);
  ASSERT_TRUE(a.ok()) << a.error().toString();
  auto items = (*a)->metadumpAll();
  ASSERT_TRUE(items.ok());
  EXPECT_TRUE(items->empty());
}

TEST_F(AuthServerTest, TlsAndAuthTogether) {
  ServerTlsDir tls(pki().ca, pki().server);
  auto args = tls.memcachedArgs(2);
  args.push_back("-Y");
  args.push_back(file_);
  MemcachedProcess server(args);
  ASSERT_TRUE(server.running());
  auto ctx = context(pki().ca.certPem(), &pki().client);
  auto bad = connectTls(server.port(), ctx, "localhost", Credentials{"alice", "nope"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::PermissionDenied);
  EXPECT_NE(bad.error().message.find("authentication"), std::string::npos) << bad.error().message;
  auto no_cert = connectTls(server.port(), context(pki().ca.certPem()), "localhost", Credentials{"alice", "s3cret"});
  ASSERT_FALSE(no_cert.ok());
  EXPECT_EQ(no_cert.error().code, ErrorCode::PermissionDenied);
  EXPECT_NE(no_cert.error().message.find("certificate"), std::string::npos) << no_cert.error().message;
  auto ok = connectTls(server.port(), ctx, "localhost", Credentials{"alice", "s3cret"});
  ASSERT_TRUE(ok.ok()) << ok.error().toString();
  EXPECT_TRUE((*ok)->metaSet("k", "v", 0, 0).ok());
  EXPECT_TRUE((*ok)->stats().ok());
}

// ---- material ----

TEST(TlsContextTest, ErrorsNameTheProblem) {
  auto err = [](TlsPem pem) {
    auto c = TlsContext::fromPem(pem);
    EXPECT_FALSE(c.ok());
    return c.ok() ? std::string() : c.error().message;
  };
  const std::string ca = pki().ca.certPem();
  EXPECT_NE(err({"", "", ""}).find("ca.crt: missing"), std::string::npos);
  EXPECT_NE(err({"not pem", "", ""}).find("ca.crt: no certificate in PEM"), std::string::npos);
  std::string mismatch = err({ca, pki().client.cert_pem, pki().server.key_pem});
  EXPECT_EQ(mismatch, "tls.key does not match tls.crt");
  EXPECT_NE(err({ca, pki().client.cert_pem, ""}).find("tls.key: missing"), std::string::npos);
  EXPECT_NE(err({ca, "", pki().client.key_pem}).find("tls.crt: missing"), std::string::npos);
  std::string garbage_key = err({ca, pki().client.cert_pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"});
  EXPECT_NE(garbage_key.find("tls.key: no usable private key"), std::string::npos) << garbage_key;
  // Never key material in a message.
  for (const auto& m : {mismatch, garbage_key}) EXPECT_EQ(m.find("PRIVATE KEY"), std::string::npos) << m;
  EXPECT_TRUE(TlsContext::fromPem({ca, pki().client.cert_pem, pki().client.key_pem}).ok());
}

TEST(TlsContextTest, FromFiles) {
  std::string dir = testing::makeTempDir("cc-tlsf-");
  testing::writeFile(dir + "/ca.crt", pki().ca.certPem());
  testing::writeFile(dir + "/tls.crt", pki().client.cert_pem);
  testing::writeFile(dir + "/tls.key", pki().client.key_pem);
  EXPECT_TRUE(TlsContext::fromFiles({dir + "/ca.crt", dir + "/tls.crt", dir + "/tls.key"}).ok());
  EXPECT_TRUE(TlsContext::fromFiles({dir + "/ca.crt", "", ""}).ok());
  auto missing = TlsContext::fromFiles({dir + "/nope.crt", "", ""});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::NotFound);
  EXPECT_NE(missing.error().message.find("nope.crt"), std::string::npos);
  auto no_key = TlsContext::fromFiles({dir + "/ca.crt", dir + "/tls.crt", ""});
  ASSERT_FALSE(no_key.ok());
  std::filesystem::remove_all(dir);
}

TEST(TlsFilesWatcherTest, FollowsAKubeletSwapAndKeepsTheLastGood) {
  testing::KubeletProjection secret(testing::makeTempDir("cc-tlsw-"));
  secret.project({{"ca.crt", pki().ca.certPem()}, {"tls.crt", pki().client.cert_pem}, {"tls.key", pki().client.key_pem}});
  TlsFilesWatcher w({secret.dir() + "/ca.crt", secret.dir() + "/tls.crt", secret.dir() + "/tls.key"});
  auto first = w.current(0ms);
  ASSERT_TRUE(first.ok()) << first.error().toString();
  EXPECT_EQ(*w.current(0ms), *first) << "same content: same context";

  // A broken rotation (key of another certificate): the last good context stays.
  secret.project({{"ca.crt", pki().ca.certPem()}, {"tls.crt", pki().client.cert_pem}, {"tls.key", pki().server.key_pem}});
  auto kept = w.current(0ms);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, *first);
  ASSERT_TRUE(w.lastError().has_value());
  EXPECT_EQ(*w.lastError(), "tls.key does not match tls.crt");

  PemPair renewed = pki().ca.issue("client", "", false);
  secret.project({{"ca.crt", pki().ca.certPem()}, {"tls.crt", renewed.cert_pem}, {"tls.key", renewed.key_pem}});
  // Within `recheck` of the last look nothing is read.
  EXPECT_EQ(*w.current(1h), *first);
  auto next = w.current(0ms);
  ASSERT_TRUE(next.ok());
  EXPECT_NE(*next, *first);
  EXPECT_FALSE(w.lastError().has_value());
}

TEST(TlsFilesWatcherTest, NeverLoadedIsAnError) {
  TlsFilesWatcher w({"/nonexistent/ca.crt", "", ""});
  auto c = w.current();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::NotFound);
}

TEST(ParseAuthFileTest, Entries) {
  auto c = parseAuthFile("\nalice:pw:with:colons\r\nbob:x\n");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->password, "pw:with:colons");
  for (std::string_view bad : {"", "\n\n", "nocolon-secretvalue\n", ":pw\n", "user:\n", "us er:pw\n"}) {
    auto r = parseAuthFile(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::InvalidArgument);
    EXPECT_EQ(r.error().message.find("secretvalue"), std::string::npos) << r.error().message;
  }
  EXPECT_NE(parseAuthFile("a:b\n").ok(), false);
  EXPECT_NE(parseAuthFile("x\n").error().message.find("line 1"), std::string::npos);
}

} // namespace
} // namespace clientconfig
