// Client against TLS / mTLS / authenticating memcached processes: every operation, the
// server's ring `host` verified as its certificate name, clear errors when the snapshot asks for
// what the options lack, and rotation of mounted certificate and auth files under a workload.
#include "clientconfig/client.h"

#include <atomic>
#include <csignal>
#include <gtest/gtest.h>
#include <thread>

#include "clientconfig/memcached_admin.h"
#include "memcached_process.h"
#include "test_util.h"
#include "tls_certs.h"

namespace clientconfig {
namespace {

using namespace std::chrono_literals;
using testing::KubeletProjection;
using testing::MemcachedProcess;
using testing::PemPair;
using testing::ServerTlsDir;
using testing::TestCa;
using testing::Validity;

// Members m-0, m-1: ring hosts m-I.m.ns.svc (the names in their certificates), address 127.0.0.1.
SnapshotPtr snapshotOf(const std::vector<uint16_t>& ports, ServerSecurity security,
                       const std::string& host_suffix = ".m.ns.svc") {
  std::vector<Server> servers;
  for (size_t i = 0; i < ports.size(); ++i) {
    std::string name = "m-" + std::to_string(i);
    servers.push_back({name, name + host_suffix, "127.0.0.1", ports[i], 1, "active"});
  }
  auto s = makeSnapshot("ns/m", 1, Hashing::KetamaLibmemcached, servers);
  EXPECT_TRUE(s.ok());
  auto copy = std::make_shared<Snapshot>(**s);
  copy->security = security;
  return copy;
}

class SecureCluster : public ::testing::Test {
protected:
  static constexpr int kServers = 2;
  // verify_mode 2: client certificates required. Auth file: alice:s3cret.
  void startServers(bool tls, bool auth) {
    auth_dir_ = testing::makeTempDir("cc-cauth-");
    ::chmod(auth_dir_.c_str(), 0755);
    testing::writeFile(auth_dir_ + "/auth", "alice:s3cret\n");
    ::chmod((auth_dir_ + "/auth").c_str(), 0644);
    for (int i = 0; i < kServers; ++i) {
      std::string host = "m-" + std::to_string(i) + ".m.ns.svc";
      server_certs_.push_back(ca_.issue(host, "DNS:" + host, true));
      dirs_.push_back(std::make_unique<ServerTlsDir>(ca_, server_certs_.back()));
      std::vector<std::string> args;
      if (tls) args = dirs_.back()->memcachedArgs(2);
      if (auth) args.insert(args.end(), {"-Y", auth_dir_ + "/auth"});
      procs_.push_back(std::make_unique<MemcachedProcess>(args));
      ASSERT_TRUE(procs_.back()->running());
      ports_.push_back(procs_.back()->port());
    }
  }
  void TearDown() override {
    procs_.clear();
    if (!auth_dir_.empty()) std::filesystem::remove_all(auth_dir_);
  }
  // The client's mounted Secret and auth file, projected like the kubelet does.
  void mountClientFiles(const PemPair& client_cert, const std::string& auth_line = "alice:s3cret\n") {
    secret_.project({{"ca.crt", ca_.certPem()}, {"tls.crt", client_cert.cert_pem}, {"tls.key", client_cert.key_pem}});
    auth_mount_.project({{"auth", auth_line}});
  }
  ClientOptions options(bool tls, bool auth) {
    ClientOptions o;
    o.connect_timeout = 2000ms;
    o.io_timeout = 2000ms;
    if (tls) o.tls = {secret_.dir() + "/ca.crt", secret_.dir() + "/tls.crt", secret_.dir() + "/tls.key"};
    if (auth) o.auth_file = auth_mount_.dir() + "/auth";
    o.credentials_recheck = 50ms;
    return o;
  }
  MemcachedAdminPtr admin(int i, const PemPair& cert) {
    TlsPem pem{ca_.certPem(), cert.cert_pem, cert.key_pem};
    ConnectOptions o{*TlsContext::fromPem(pem), "m-" + std::to_string(i) + ".m.ns.svc", Credentials{"alice", "s3cret"}};
    auto a = MemcachedAdmin::connect("127.0.0.1", ports_[i], 2000ms, o);
    EXPECT_TRUE(a.ok()) << a.error().toString();
    return a.ok() ? std::move(*a) : nullptr;
  }

  TestCa ca_{"cluster-ca"};
  PemPair client_cert_ = ca_.issue("app", "", false);
  std::vector<PemPair> server_certs_;
  std::vector<std::unique_ptr<ServerTlsDir>> dirs_;
  std::vector<std::unique_ptr<MemcachedProcess>> procs_;
  std::vector<uint16_t> ports_;
  std::string auth_dir_;
  KubeletProjection secret_{testing::makeTempDir("cc-csecret-")};
  KubeletProjection auth_mount_{testing::makeTempDir("cc-cauthm-")};
};

TEST_F(SecureCluster, EveryOperationOverTlsWithAuth) {
  startServers(true, true);
  mountClientFiles(client_cert_);
  auto snap = snapshotOf(ports_, ServerSecurity{true, true, true});
  auto c = Client::create(snap, options(true, true));
  ASSERT_TRUE(c.ok()) << c.error().toString();
  Client& client = **c;
  std::vector<std::string> keys;
  for (int i = 0; i < 50; ++i) keys.push_back("k" + std::to_string(i));
  for (const auto& k : keys) ASSERT_TRUE(client.set(k, "v-" + k, 0, 3).ok()) << client.set(k, "v", 0, 3).error().toString();
  // Each key is on the server the ring names.
  std::vector<MemcachedAdminPtr> admins;
  for (int i = 0; i < kServers; ++i) admins.push_back(admin(i, client_cert_));
  for (const auto& k : keys) {
    const Server* owner = snap->current.owner(k);
    int idx = owner->port == ports_[0] ? 0 : 1;
    auto there = admins[idx]->metaGet(k);
    ASSERT_TRUE(there.ok() && there->has_value()) << k;
    EXPECT_FALSE(admins[1 - idx]->metaGet(k)->has_value()) << k;
  }
  auto g = client.get("k7");
  ASSERT_TRUE(g.ok() && g->has_value()) << (g.ok() ? "miss" : g.error().toString());
  EXPECT_EQ((*g)->value, "v-k7");
  EXPECT_EQ((*g)->flags, 3u);
  auto multi = client.getMulti({"k1", "k2", "k3", "nope"});
  ASSERT_TRUE(multi.ok()) << multi.error().toString();
  EXPECT_EQ(multi->size(), 3u);
  EXPECT_EQ(multi->at("k2").value, "v-k2");
  EXPECT_FALSE(*client.add("k1", "x"));
  EXPECT_TRUE(*client.add("fresh", "x"));
  EXPECT_TRUE(*client.touch("fresh", 100));
  EXPECT_FALSE(*client.touch("absent", 100));
  ASSERT_TRUE(client.set("n", "41").ok());
  EXPECT_EQ(**client.incr("n", 1), 42u);
  EXPECT_EQ(**client.decr("n", 2), 40u);
  EXPECT_FALSE(client.incr("absent")->has_value());
  auto bad_incr = client.incr("k1");
  ASSERT_FALSE(bad_incr.ok());
  EXPECT_EQ(bad_incr.error().code, ErrorCode::InvalidArgument);
  EXPECT_TRUE(*client.remove("fresh"));
  EXPECT_FALSE(*client.remove("fresh"));
  EXPECT_FALSE(client.get("fresh")->has_value());
  EXPECT_EQ(client.connectionCount(), 2u);
}

TEST_F(SecureCluster, ServerHostIsTheCertificateName) {
  startServers(true, false);
  mountClientFiles(client_cert_);
  // Hosts the certificates do not carry: refused even though the address is right.
  auto wrong = snapshotOf(ports_, ServerSecurity{true, true, false}, ".other.svc");
  auto c = Client::create(wrong, options(true, false));
  ASSERT_TRUE(c.ok());
  auto s = (*c)->set("k", "v");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("hostname mismatch"), std::string::npos) << s.error().message;
  (*c)->update(snapshotOf(ports_, ServerSecurity{true, true, false}));
  EXPECT_TRUE((*c)->set("k", "v").ok());
}

TEST_F(SecureCluster, MissingOptionsAreNamedNotTriedInPlaintext) {
  startServers(true, true);
  mountClientFiles(client_cert_);
  auto total = [&](int i) {
    auto a = admin(i, client_cert_);
    return a ? std::stoll(a->stats()->at("total_connections")) : -1;
  };
  long long before = total(0) + total(1);
  struct Case {
    ServerSecurity security;
    bool tls, auth, cert;
    std::string option;
  };
  std::vector<Case> cases = {
      {{true, false, false}, false, false, false, "ClientOptions::tls"},
      {{true, true, false}, true, false, false, "ClientOptions::tls.cert_file"},
      {{false, false, true}, false, false, false, "ClientOptions::auth_file"},
      {{true, true, true}, true, false, true, "ClientOptions::auth_file"},
  };
  for (const auto& cs : cases) {
    ClientOptions o = options(cs.tls, cs.auth);
    if (cs.tls && !cs.cert) o.tls.cert_file = o.tls.key_file = "";
    auto c = Client::create(snapshotOf(ports_, cs.security), o);
    ASSERT_TRUE(c.ok()) << c.error().toString();
    auto s = (*c)->set("k", "v");
    auto g = (*c)->get("k");
    for (const Result<void>& r : {s, g.ok() ? Result<void>() : Result<void>(g.error())}) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code, ErrorCode::FailedPrecondition) << r.error().toString();
      EXPECT_NE(r.error().message.find(cs.option), std::string::npos) << r.error().message;
    }
  }
  // Each measurement connects once per server (two calls of total() per server, before and
  // after): nothing else reached the servers.
  EXPECT_EQ(total(0) + total(1), before + 2);
}

TEST_F(SecureCluster, BadCredentialFilesFailAtCreate) {
  mountClientFiles(PemPair{client_cert_.cert_pem, ca_.issue("x", "", false).key_pem});
  auto snap = snapshotOf({11211}, ServerSecurity{true, true, false});
  auto c = Client::create(snap, options(true, false));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("tls.key does not match tls.crt"), std::string::npos) << c.error().message;
  auth_mount_.project({{"auth", "no-colon\n"}});
  ClientOptions o;
  o.auth_file = auth_mount_.dir() + "/auth";
  auto a = Client::create(snap, o);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message.find("line 1"), std::string::npos) << a.error().message;
}

// A workload runs while the client's certificate is rotated the way the kubelet projects a
// renewed Secret, and the servers are renewed and refreshed: no operation fails. The first
// client certificate expires during the run, so a client still presenting it after the
// rotation would be refused on every new connection; the workload reconnects often (close())
// so that new connections happen all along.
TEST_F(SecureCluster, CertificateRotationUnderLoadHasNoErrors) {
  startServers(true, false);
  PemPair short_lived = ca_.issue("app", "", false, Validity{-60, 4});
  mountClientFiles(short_lived);
  auto c = Client::create(snapshotOf(ports_, ServerSecurity{true, true, false}), options(true, false));
  ASSERT_TRUE(c.ok()) << c.error().toString();
  Client& client = **c;

  std::atomic<bool> stop{false};
  std::atomic<int> ops{0}, errors{0};
  std::string first_error;
  std::thread workload([&] {
    for (int i = 0; !stop; ++i) {
      std::string key = "w" + std::to_string(i % 100);
      auto s = client.set(key, "v" + std::to_string(i));
      auto g = client.get(key);
      ops += 2;
      if (!s.ok() || !g.ok() || !g->has_value()) {
        if (errors++ == 0) first_error = !s.ok() ? s.error().toString() : !g.ok() ? g.error().toString() : "miss";
      }
      if (i % 10 == 0) client.close();
    }
  });
  std::this_thread::sleep_for(1s);
  // Rotation: the client's Secret first (a renewed certificate from the same CA), then each
  // server's files and refresh_certs, as the operator sends it.
  PemPair renewed = ca_.issue("app", "", false);
  secret_.project({{"ca.crt", ca_.certPem()}, {"tls.crt", renewed.cert_pem}, {"tls.key", renewed.key_pem}});
  std::this_thread::sleep_for(500ms);
  std::vector<PemPair> new_server;
  for (int i = 0; i < kServers; ++i) {
    std::string host = "m-" + std::to_string(i) + ".m.ns.svc";
    new_server.push_back(ca_.issue(host, "DNS:" + host, true));
    dirs_[i]->write(new_server.back(), ca_.certPem());
    auto a = admin(i, renewed);
    ASSERT_TRUE(a);
    ASSERT_TRUE(a->refreshCerts().ok());
  }
  // Past the first certificate's expiry.
  std::this_thread::sleep_for(4500ms);
  stop = true;
  workload.join();
  EXPECT_EQ(errors.load(), 0) << first_error;
  EXPECT_GT(ops.load(), 200);
  // The servers present the renewed certificates, and the old client certificate is refused.
  for (int i = 0; i < kServers; ++i) {
    auto a = admin(i, renewed);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->peerCertificateSha256(), testing::certSha256(new_server[i].cert_pem));
  }
  TlsPem old_pem{ca_.certPem(), short_lived.cert_pem, short_lived.key_pem};
  auto old = MemcachedAdmin::connect("127.0.0.1", ports_[0], 2000ms,
                                     ConnectOptions{*TlsContext::fromPem(old_pem), "m-0.m.ns.svc", std::nullopt});
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, ErrorCode::PermissionDenied) << old.error().toString();
  EXPECT_FALSE(client.credentialsError().has_value());
}

// Password rotation: memcached re-reads its -Y file on SIGHUP (measured on 1.6.18), so the
// server file carries both entries while clients move to the new one.
TEST_F(SecureCluster, AuthFileRotation) {
  startServers(false, true);
  mountClientFiles(client_cert_, "alice:s3cret\n");
  auto c = Client::create(snapshotOf(ports_, ServerSecurity{false, false, true}), options(false, true));
  ASSERT_TRUE(c.ok()) << c.error().toString();
  Client& client = **c;
  ASSERT_TRUE(client.set("k", "v").ok());
  auto hup = [&] {
    for (auto& p : procs_) ::kill(p->pid(), SIGHUP);
    std::this_thread::sleep_for(1000ms); // measured in effect after 0.3 s
  };
  testing::writeFile(auth_dir_ + "/auth", "alice:s3cret\nalice2:n3w\n");
  hup();
  auth_mount_.project({{"auth", "alice2:n3w\n"}});
  std::this_thread::sleep_for(100ms);
  client.close(); // new connections: the new credentials
  ASSERT_TRUE(client.set("k", "v2").ok());
  testing::writeFile(auth_dir_ + "/auth", "alice2:n3w\n");
  hup();
  client.close();
  auto g = client.get("k");
  ASSERT_TRUE(g.ok()) << g.error().toString();
  EXPECT_EQ((*g)->value, "v2");
  // A broken file keeps the last good credentials, and says why.
  auth_mount_.project({{"auth", "garbage\n"}});
  std::this_thread::sleep_for(100ms);
  client.close();
  EXPECT_TRUE(client.get("k").ok());
  ASSERT_TRUE(client.credentialsError().has_value());
  EXPECT_NE(client.credentialsError()->find("line 1"), std::string::npos);
  // Wrong credentials: PermissionDenied from the operations.
  auth_mount_.project({{"auth", "alice2:wrong\n"}});
  std::this_thread::sleep_for(100ms);
  client.close();
  auto denied = client.get("k");
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code, ErrorCode::PermissionDenied) << denied.error().toString();
}

} // namespace
} // namespace clientconfig
