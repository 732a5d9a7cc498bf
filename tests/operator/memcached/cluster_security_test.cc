// The Secrets a cluster references: read by name through the (in-memory) API, validated with
// OpenSSL against certificates made by the test, the last good material kept while a Secret is
// invalid, and no key or password in any problem message.
#include "memcached/cluster_security.h"

#include <gtest/gtest.h>

#include "memcached/conditions.h"
#include "memcached/observe.h"
#include "test_pki.h"
#include "testing/fake_api_client.h"

namespace mcop::memcached {
namespace {

using kube::FakeApiClient;
namespace res = kube::resources;
using std::chrono::hours;
using std::chrono::seconds;
using testpki::Identity;

constexpr char kPassword[] = "s3cr3t-Pa55word";

class ClusterSecurityTest : public testing::Test {
 protected:
  ClusterSecurityTest() : ca_(testpki::newCa()), leaf_(testpki::newLeaf(ca_)) {
    spec_.tls.enabled = true;
    spec_.tls.secret_name = "cache-tls";
  }

  void seedTls(const std::map<std::string, std::string>& data, const std::string& name = "cache-tls") {
    api_->seed(kSecretResource, testpki::secret("shop", name, data));
  }
  void seedAuth(const std::string& file, const std::string& key = "authfile") {
    api_->seed(kSecretResource, testpki::secret("shop", "cache-auth", {{key, file}}));
  }
  void enableAuth() {
    spec_.auth.enabled = true;
    spec_.auth.secret_name = "cache-auth";
  }
  SecretsRead read() {
    return readClusterSecrets(*api_, "shop", spec_, std::chrono::system_clock::now());
  }
  // The one problem of a read, checked to carry no key material.
  std::string problem(const SecretsRead& r, const std::string& reason) {
    EXPECT_EQ(r.problems.size(), 1u);
    if (r.problems.empty()) return "";
    EXPECT_EQ(r.problems[0].reason, reason);
    const std::string& m = r.problems[0].message;
    EXPECT_EQ(m.find("PRIVATE KEY"), std::string::npos) << m;
    EXPECT_EQ(m.find("BEGIN"), std::string::npos) << m;
    EXPECT_EQ(m.find(kPassword), std::string::npos) << m;
    return m;
  }
  static bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }

  std::shared_ptr<FakeApiClient> api_ = std::make_shared<FakeApiClient>();
  ClusterSpec spec_;
  Identity ca_;
  Identity leaf_;
};

TEST_F(ClusterSecurityTest, AValidTlsSecretGivesTheServedCertificateAndItsExpiry) {
  seedTls(testpki::tlsData(leaf_, ca_));
  SecretsRead r = read();
  ASSERT_TRUE(r.problems.empty()) << r.problems[0].message;
  ASSERT_TRUE(r.tls.has_value());
  EXPECT_EQ(r.tls->secret_name, "cache-tls");
  EXPECT_FALSE(r.tls->resource_version.empty());
  EXPECT_EQ(r.tls->ca_pem, ca_.cert_pem());
  // SHA-256 of the leaf's DER, as a TLS peer would hash what it is served.
  unsigned char* der = nullptr;
  const int len = i2d_X509(leaf_.cert.get(), &der);
  const std::string expected = sha256Hex(std::string(reinterpret_cast<char*>(der), len));
  OPENSSL_free(der);
  EXPECT_EQ(r.tls->server.sha256, expected);
  EXPECT_EQ(r.tls->server.sha256.size(), 64u);
  const auto left = r.tls->server.not_after - std::chrono::system_clock::now();
  EXPECT_GT(left, hours(24 * 89));
  EXPECT_LT(left, hours(24 * 91));
  // clientAuth none: the operator presents no certificate.
  EXPECT_TRUE(r.tls->client_cert_pem.empty());
  EXPECT_FALSE(r.auth.has_value());
}

TEST_F(ClusterSecurityTest, NothingIsReadWhenNeitherTlsNorAuthIsOn) {
  spec_.tls.enabled = false;
  SecretsRead r = read();
  EXPECT_TRUE(r.problems.empty());
  EXPECT_FALSE(r.tls || r.auth);
  EXPECT_TRUE(api_->actions().empty());
}

TEST_F(ClusterSecurityTest, AMissingSecretNamesItAndSaysToCreateIt) {
  const std::string m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "Secret shop/cache-tls")) << m;
  EXPECT_TRUE(has(m, "spec.tls.secretName")) << m;
  EXPECT_TRUE(has(m, "does not exist")) << m;
}

TEST_F(ClusterSecurityTest, AnUnreadableSecretIsAProblemWithTheApiError) {
  api_->failNext(kube::Verb::kGet, kSecretResource, absl::PermissionDeniedError("secrets is forbidden"));
  const std::string m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "cannot read Secret shop/cache-tls")) << m;
  EXPECT_TRUE(has(m, "forbidden")) << m;
}

TEST_F(ClusterSecurityTest, EachMissingKeyIsNamed) {
  for (const std::string key : {"tls.crt", "tls.key", "ca.crt"}) {
    auto data = testpki::tlsData(leaf_, ca_);
    data.erase(key);
    seedTls(data);
    const std::string m = problem(read(), kReasonTlsSecretInvalid);
    EXPECT_TRUE(has(m, "Secret shop/cache-tls has no key " + key)) << m;
  }
}

TEST_F(ClusterSecurityTest, PemThatDoesNotParseIsNamedByKey) {
  auto data = testpki::tlsData(leaf_, ca_);
  data["tls.crt"] = "not a certificate";
  seedTls(data);
  EXPECT_TRUE(has(problem(read(), kReasonTlsSecretInvalid), "tls.crt holds no PEM certificate"));

  data = testpki::tlsData(leaf_, ca_);
  std::string broken = ca_.cert_pem();
  broken[broken.size() / 2] = '!';  // a PEM block whose base64 is corrupt
  data["ca.crt"] = broken;
  seedTls(data);
  const std::string m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "ca.crt")) << m;

  data = testpki::tlsData(leaf_, ca_);
  data["tls.key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
  seedTls(data);
  EXPECT_TRUE(has(problem(read(), kReasonTlsSecretInvalid), "tls.key holds no"));
}

TEST_F(ClusterSecurityTest, AnExpiredOrNotYetValidCertificateIsRefused) {
  Identity expired = testpki::newLeaf(ca_, "memcached", -hours(48), -hours(1));
  seedTls(testpki::tlsData(expired, ca_));
  std::string m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "tls.crt expired at")) << m;
  EXPECT_TRUE(has(m, "renew")) << m;

  Identity future = testpki::newLeaf(ca_, "memcached", hours(2), hours(48));
  seedTls(testpki::tlsData(future, ca_));
  m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "tls.crt is not valid before")) << m;
}

TEST_F(ClusterSecurityTest, AKeyOfAnotherCertificateIsRefused) {
  Identity other = testpki::newLeaf(ca_);
  auto data = testpki::tlsData(leaf_, ca_);
  data["tls.key"] = other.key_pem();
  seedTls(data);
  const std::string m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "tls.key does not match tls.crt")) << m;
}

TEST_F(ClusterSecurityTest, ACertificateNotSignedByCaCrtIsRefused) {
  Identity other_ca = testpki::newCa("other-ca");
  seedTls(testpki::tlsData(leaf_, other_ca));
  const std::string m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "tls.crt is not signed by ca.crt")) << m;
}

TEST_F(ClusterSecurityTest, AnIntermediateInTlsCrtChainsToCaCrt) {
  Identity intermediate =
      testpki::issue("intermediate", &ca_, -hours(1), hours(24 * 30), true);
  Identity leaf = testpki::newLeaf(intermediate);
  auto data = testpki::tlsData(leaf, ca_);
  data["tls.crt"] = leaf.cert_pem() + intermediate.cert_pem();
  seedTls(data);
  SecretsRead r = read();
  EXPECT_TRUE(r.problems.empty()) << r.problems[0].message;
  // Without the intermediate the leaf does not chain.
  data["tls.crt"] = leaf.cert_pem();
  seedTls(data);
  EXPECT_TRUE(has(problem(read(), kReasonTlsSecretInvalid), "not signed by ca.crt"));
}

TEST_F(ClusterSecurityTest, RequireUsesTheClientSecretVerifiedAgainstTheMembersCa) {
  seedTls(testpki::tlsData(leaf_, ca_));
  spec_.tls.client_auth = ClientAuth::kRequire;
  // No client Secret named: the operator presents the members' own certificate.
  SecretsRead r = read();
  ASSERT_TRUE(r.tls.has_value());
  EXPECT_EQ(r.tls->client_cert_pem, leaf_.cert_pem());
  EXPECT_EQ(r.tls->client_key_pem, leaf_.key_pem());

  spec_.tls.client_secret_name = "operator-client";
  std::string m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "Secret shop/operator-client (spec.tls.clientSecretName) does not exist"))
      << m;

  Identity client = testpki::newLeaf(ca_, "memcached-operator");
  seedTls({{"tls.crt", client.cert_pem()}, {"tls.key", client.key_pem()}}, "operator-client");
  r = read();
  ASSERT_TRUE(r.problems.empty()) << r.problems[0].message;
  EXPECT_EQ(r.tls->client_cert_pem, client.cert_pem());
  EXPECT_EQ(r.tls->server.sha256.size(), 64u);

  // A client certificate of another CA: the members would refuse it.
  Identity other_ca = testpki::newCa("other-ca");
  Identity stranger = testpki::newLeaf(other_ca, "memcached-operator");
  seedTls(testpki::tlsData(stranger, other_ca), "operator-client");
  m = problem(read(), kReasonTlsSecretInvalid);
  EXPECT_TRUE(has(m, "Secret shop/operator-client")) << m;
  EXPECT_TRUE(has(m, "not signed by ca.crt")) << m;
}

TEST_F(ClusterSecurityTest, AValidAuthFileGivesItsFirstEntryAndHash) {
  spec_.tls.enabled = false;
  enableAuth();
  const std::string file = std::string("app:") + kPassword + "\nother:pw:with:colons\n";
  seedAuth(file);
  SecretsRead r = read();
  ASSERT_TRUE(r.problems.empty()) << r.problems[0].message;
  ASSERT_TRUE(r.auth.has_value());
  EXPECT_EQ(r.auth->username, "app");
  EXPECT_EQ(r.auth->password, kPassword);
  EXPECT_EQ(r.auth->file_hash, sha256Hex(file));
  EXPECT_EQ(r.auth->file_hash,
            sha256Hex(std::string("app:") + kPassword + "\nother:pw:with:colons\n"));
  EXPECT_NE(r.auth->file_hash, sha256Hex("app:other\n"));
}

TEST_F(ClusterSecurityTest, AuthFilesMemcachedWouldRefuseOrMisreadAreProblems) {
  spec_.tls.enabled = false;
  enableAuth();
  struct Row {
    std::string file;
    std::string says;
  };
  const std::string pw = kPassword;
  const std::vector<Row> rows = {
      {"", "the auth file is empty"},
      {"app:" + pw, "does not end with a newline"},
      {"app:" + pw + "\n\n", "line 2 of the auth file is not user:password"},
      {"# users\napp:" + pw + "\n", "line 1 of the auth file"},
      {"app:" + pw + "\r\n", "line 1"},
      {"app" + pw + "\n", "line 1"},
      {"app:\n", "line 1"},
      {":" + pw + "\n", "line 1"},
      {"app:pass word\n", "line 1"},
      {"app:" + pw + "\nbroken\n", "line 2"},
  };
  for (const auto& row : rows) {
    seedAuth(row.file);
    const std::string m = problem(read(), kReasonAuthSecretInvalid);
    EXPECT_TRUE(has(m, "Secret shop/cache-auth key authfile")) << m;
    EXPECT_TRUE(has(m, row.says)) << "file " << testing::PrintToString(row.file) << ": " << m;
  }
  seedAuth("app:" + pw + "\n", "other-key");
  const std::string m = problem(read(), kReasonAuthSecretInvalid);
  EXPECT_TRUE(has(m, "has no key authfile")) << m;
}

TEST_F(ClusterSecurityTest, TlsAndAuthProblemsAreReportedSeparately) {
  enableAuth();
  seedAuth("");
  SecretsRead r = read();
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].reason, kReasonTlsSecretInvalid);
  EXPECT_EQ(r.problems[1].reason, kReasonAuthSecretInvalid);
  EXPECT_TRUE(r.tls_invalid && r.auth_invalid);
}

TEST_F(ClusterSecurityTest, TheTrackerKeepsTheLastGoodMaterialOfEachPart) {
  enableAuth();
  seedTls(testpki::tlsData(leaf_, ca_));
  seedAuth(std::string("app:") + kPassword + "\n");
  SecretTracker tracker;
  ClusterSecrets good = tracker.resolve("shop/sessions", "uid-1", read());
  ASSERT_FALSE(good.hold());
  ASSERT_TRUE(good.tls && good.auth);

  // The TLS Secret turns bad: its last good material is used, the fresh auth is taken.
  Identity expired = testpki::newLeaf(ca_, "memcached", -hours(48), -hours(1));
  seedTls(testpki::tlsData(expired, ca_));
  seedAuth("app:rotated\n");
  ClusterSecrets now = tracker.resolve("shop/sessions", "uid-1", read());
  EXPECT_TRUE(now.hold());
  ASSERT_EQ(now.problems.size(), 1u);
  ASSERT_TRUE(now.tls.has_value());
  EXPECT_EQ(now.tls->server.sha256, good.tls->server.sha256);
  ASSERT_TRUE(now.auth.has_value());
  EXPECT_EQ(now.auth->password, "rotated");

  // Auth turns bad too: the rotated file stays the last good one.
  seedAuth("");
  now = tracker.resolve("shop/sessions", "uid-1", read());
  EXPECT_EQ(now.problems.size(), 2u);
  ASSERT_TRUE(now.auth.has_value());
  EXPECT_EQ(now.auth->password, "rotated");

  // A cluster re-created under the same name starts with nothing.
  now = tracker.resolve("shop/sessions", "uid-2", read());
  EXPECT_FALSE(now.tls || now.auth);

  // Fixed: the fresh material, no hold.
  seedTls(testpki::tlsData(leaf_, ca_));
  seedAuth("app:again\n");
  now = tracker.resolve("shop/sessions", "uid-2", read());
  EXPECT_FALSE(now.hold());
  EXPECT_EQ(now.auth->password, "again");

  // A part turned off is forgotten.
  spec_.auth.enabled = false;
  now = tracker.resolve("shop/sessions", "uid-2", read());
  EXPECT_FALSE(now.auth.has_value());
  EXPECT_TRUE(now.tls.has_value());
}

TEST_F(ClusterSecurityTest, TheTrackerHoldsNothingForClustersWithoutMaterial) {
  SecretTracker tracker;
  spec_.tls.enabled = false;
  ClusterSecrets none = tracker.resolve("shop/plain", "uid-1", read());
  EXPECT_FALSE(none.tls || none.auth);
  EXPECT_EQ(tracker.size(), 0u);

  enableAuth();
  seedAuth("app:first\n");
  EXPECT_TRUE(tracker.resolve("shop/plain", "uid-1", read()).auth.has_value());
  EXPECT_EQ(tracker.size(), 1u);
  // Invalid: the last good file is still held (and still used).
  seedAuth("");
  ClusterSecrets held = tracker.resolve("shop/plain", "uid-1", read());
  ASSERT_TRUE(held.auth.has_value());
  EXPECT_EQ(held.auth->password, "first");
  EXPECT_EQ(tracker.size(), 1u);
  // Turned off: nothing left to hold, and no entry either.
  spec_.auth.enabled = false;
  EXPECT_FALSE(tracker.resolve("shop/plain", "uid-1", read()).auth.has_value());
  EXPECT_EQ(tracker.size(), 0u);
  // Back on with a bad file: nothing good was kept, so there is nothing to use.
  enableAuth();
  EXPECT_FALSE(tracker.resolve("shop/plain", "uid-1", read()).auth.has_value());
  EXPECT_EQ(tracker.size(), 0u);
}

TEST_F(ClusterSecurityTest, ThePodTemplateGetsTheHashOfTheAuthFileInUse) {
  spec_.tls.enabled = false;
  enableAuth();
  SecretTracker tracker;
  auto snapshot = [&] {
    ClusterSnapshot snap;
    snap.ref = ClusterRef{"shop", "sessions", "uid-1", 1};
    snap.key = "shop/sessions";
    snap.parsed.spec = spec_;
    return snap;
  };
  const std::string file = std::string("app:") + kPassword + "\n";
  seedAuth(file);
  ClusterSnapshot snap = snapshot();
  observeSecrets(*api_, tracker, snap, std::chrono::system_clock::now());
  EXPECT_EQ(snap.parsed.spec.auth.file_hash, sha256Hex(file));
  // Invalid now: the hash of the last good file stays, so the template does not change.
  seedAuth("");
  snap = snapshot();
  ClusterSecrets secrets = observeSecrets(*api_, tracker, snap, std::chrono::system_clock::now());
  EXPECT_TRUE(secrets.hold());
  EXPECT_EQ(snap.parsed.spec.auth.file_hash, sha256Hex(file));
  // Another valid file: its hash.
  seedAuth("app:next\n");
  snap = snapshot();
  observeSecrets(*api_, tracker, snap, std::chrono::system_clock::now());
  EXPECT_EQ(snap.parsed.spec.auth.file_hash, sha256Hex("app:next\n"));
}

TEST(SecretConditionsTest, AnInvalidSecretIsDegradedFirstAndSaysWhatIsHeld) {
  ConditionsInput in;
  in.generation = 3;
  in.spec_replicas = 1;
  in.measure_failures = {"sessions-0: connect refused"};
  in.secret_problems = {{kReasonAuthSecretInvalid, "Secret shop/a key authfile: empty"},
                        {kReasonTlsSecretInvalid, "Secret shop/t has no key tls.key"}};
  const Condition d = degradedCondition(in);
  EXPECT_EQ(d.status, "True");
  EXPECT_EQ(d.reason, kReasonAuthSecretInvalid);
  EXPECT_NE(d.message.find("Secret shop/a key authfile: empty; Secret shop/t has no key tls.key"),
            std::string::npos);
  EXPECT_NE(d.message.find("no memcached pod"), std::string::npos) << d.message;
  in.secret_problems.clear();
  EXPECT_EQ(degradedCondition(in).reason, "StatsUnavailable");
}

}  // namespace
}  // namespace mcop::memcached
