// The operator's own connections against real memcached processes with TLS (-Z) and ASCII
// authentication (-Y): connection counts, flush_all and certificate reloads through the
// cluster's validated Secrets, a plaintext or wrongly named connection refused, and a rotation
// picked up by refresh_certs without a restart.
#include "memcached/member_connection.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "libclientconfig/memcached_process.h"
#include "memcached/certificate_rotation.h"
#include "memcached/cluster_security.h"
#include "memcached/connection_counter.h"
#include "memcached/member_flusher.h"
#include "test_pki.h"

namespace mcop::memcached {
namespace {

using clientconfig::testing::MemcachedProcess;
using std::chrono::hours;
using std::chrono::milliseconds;

constexpr char kHost[] = "cache-0.cache.shop.svc.cluster.local";
constexpr char kPassword[] = "op-Passw0rd";

// A directory memcached (running as nobody when the test is root) can read.
class Files {
 public:
  Files() {
    char tmpl[] = "/tmp/mcop-tls-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    ::chmod(dir_.c_str(), 0755);
  }
  ~Files() { std::system(("rm -rf " + dir_).c_str()); }
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    // Written beside and renamed, as the kubelet swaps a projected Secret atomically.
    std::ofstream(path + ".new") << content;
    ::chmod((path + ".new").c_str(), 0644);
    std::rename((path + ".new").c_str(), path.c_str());
    return path;
  }

 private:
  std::string dir_;
};

std::string leafSha(const testpki::Identity& id) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(id.cert.get(), &der);
  std::string out = sha256Hex(std::string(reinterpret_cast<char*>(der), len));
  OPENSSL_free(der);
  return out;
}

class MemberConnectionTest : public testing::Test {
 protected:
  void start(bool require_client_cert) {
    files_.write("tls.crt", leaf_.cert_pem());
    files_.write("tls.key", leaf_.key_pem());
    const std::string ca = files_.write("ca.crt", ca_.cert_pem());
    const std::string auth = files_.write("authfile", std::string("operator:") + kPassword + "\n");
    const std::string dir = ca.substr(0, ca.rfind('/'));
    server_ = std::make_unique<MemcachedProcess>(std::vector<std::string>{
        "-Z", "-o",
        "ssl_chain_cert=" + dir + "/tls.crt,ssl_key=" + dir + "/tls.key,ssl_ca_cert=" + ca +
            ",ssl_verify_mode=" + (require_client_cert ? "2" : "0"),
        "-Y", auth});
    ASSERT_TRUE(server_->running());
  }
  ClusterSecrets secrets(bool client_cert) {
    ClusterSecrets s;
    TlsMaterial tls;
    tls.secret_name = "cache-tls";
    tls.ca_pem = ca_.cert_pem();
    if (client_cert) {
      tls.client_cert_pem = leaf_.cert_pem();
      tls.client_key_pem = leaf_.key_pem();
    }
    s.tls = tls;
    s.auth = AuthMaterial{"cache-auth", "1", "", "operator", kPassword};
    return s;
  }
  MemberEndpoint member(const ClusterSecrets& s, const std::string& host = kHost) {
    auto security = buildMemberSecurity(s);
    EXPECT_TRUE(security.ok()) << security.status();
    return MemberEndpoint{"cache-0", "127.0.0.1", server_->port(), host,
                          security.ok() ? *security : nullptr};
  }

  Files files_;
  testpki::Identity ca_ = testpki::newCa();
  testpki::Identity leaf_ = testpki::newLeaf(ca_, kHost);
  std::unique_ptr<MemcachedProcess> server_;
};

TEST_F(MemberConnectionTest, CountsAndFlushesOverTlsWithAuthentication) {
  start(false);
  const MemberEndpoint m = member(secrets(false));
  auto counted = makeMemcachedConnectionCounter()->currentConnections(m);
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_GE(*counted, 1);
  EXPECT_TRUE(makeMemcachedMemberFlusher()->flushAll(m).ok());

  // Plaintext to the TLS member: refused.
  MemberEndpoint plain = m;
  plain.security = nullptr;
  EXPECT_FALSE(makeMemcachedConnectionCounter(milliseconds(500))->currentConnections(plain).ok());
  // A certificate for another name: refused.
  EXPECT_FALSE(makeMemcachedConnectionCounter()
                   ->currentConnections(member(secrets(false), "other.shop.svc"))
                   .ok());
  // Wrong password: refused.
  ClusterSecrets wrong = secrets(false);
  wrong.auth->password = "wrong";
  EXPECT_FALSE(makeMemcachedMemberFlusher()->flushAll(member(wrong)).ok());
}

TEST_F(MemberConnectionTest, ClientCertificateWhenTheMembersRequireOne) {
  start(true);
  EXPECT_TRUE(makeMemcachedConnectionCounter()->currentConnections(member(secrets(true))).ok());
  EXPECT_FALSE(makeMemcachedConnectionCounter()->currentConnections(member(secrets(false))).ok());
}

TEST_F(MemberConnectionTest, ARotatedCertificateIsServedAfterRefreshCerts) {
  start(false);
  auto reloader = makeMemcachedCertificateReloader();
  const MemberEndpoint m = member(secrets(false));
  auto served = reloader->servedCertificate(m);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(*served, leafSha(leaf_));

  // The kubelet projects the renewed Secret: memcached serves the old one until refresh_certs.
  testpki::Identity renewed = testpki::newLeaf(ca_, kHost);
  files_.write("tls.crt", renewed.cert_pem());
  files_.write("tls.key", renewed.key_pem());
  EXPECT_EQ(*reloader->servedCertificate(m), leafSha(leaf_));
  ASSERT_TRUE(reloader->reloadCertificates(m).ok());
  EXPECT_EQ(*reloader->servedCertificate(m), leafSha(renewed));

  // Files memcached cannot load: refresh_certs fails and the member keeps the renewed one.
  testpki::Identity other = testpki::newLeaf(ca_, kHost);
  files_.write("tls.key", other.key_pem());
  absl::Status failed = reloader->reloadCertificates(m);
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(*reloader->servedCertificate(m), leafSha(renewed));
}

}  // namespace
}  // namespace mcop::memcached
