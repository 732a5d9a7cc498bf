// Certificate rotation as a table of what the members answered: which certificate status
// records, who is pending, the events (once), the recheck, the expiry warning.
#include "memcached/certificate_rotation.h"

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;

class CertificateRotationTest : public testing::Test {
 protected:
  CertificateRotationTest() {
    tls_.secret_name = "cache-tls";
    tls_.resource_version = "42";
    tls_.server.sha256 = std::string(64, 'b');
    tls_.server.not_after = now_ + hours(24 * 60);
    tls_.server.not_after_text = "2027-02-05T00:00:00Z";
  }
  CertificateInput input() {
    CertificateInput in;
    in.key = "shop/sessions";
    in.tls = &tls_;
    in.recorded = recorded_;
    in.members = {"sessions-0", "sessions-1"};
    in.now = now_;
    return in;
  }
  // A status as a previous pass wrote it: `sha` served by every member.
  static TlsStatus servedEverywhere(const std::string& sha, int64_t members) {
    TlsStatus t;
    t.secret_name = "cache-tls";
    t.secret_resource_version = "41";
    t.certificate_sha256 = sha;
    t.not_after = "2027-01-01T00:00:00Z";
    t.members_serving = members;
    return t;
  }
  static CertificateCheck serving(const std::string& sha) {
    CertificateCheck c;
    c.before = absl::StatusOr<std::string>(sha);
    return c;
  }
  static CertificateCheck reloaded(const std::string& before, const std::string& after) {
    CertificateCheck c;
    c.before = absl::StatusOr<std::string>(before);
    c.reload = absl::OkStatus();
    c.after = absl::StatusOr<std::string>(after);
    return c;
  }
  int events(const CertificateStep& step, const std::string& reason) {
    int n = 0;
    for (const auto& e : step.events) n += e.reason == reason;
    return n;
  }

  std::chrono::system_clock::time_point now_ = std::chrono::system_clock::now();
  TlsMaterial tls_;
  std::optional<TlsStatus> recorded_;
  const std::string old_ = std::string(64, 'a');
  const std::string new_ = std::string(64, 'b');
};

TEST_F(CertificateRotationTest, FirstLookRecordsTheServedCertificateWithoutAnEvent) {
  ASSERT_TRUE(certificatesNeedCheck(input()));
  CertificateStep step =
      planCertificates(input(), {{"sessions-0", serving(new_)}, {"sessions-1", serving(new_)}});
  EXPECT_EQ(step.tls.certificate_sha256, new_);
  EXPECT_EQ(step.tls.secret_resource_version, "42");
  EXPECT_EQ(step.tls.not_after, "2027-02-05T00:00:00Z");
  EXPECT_EQ(step.tls.members_serving, 2);
  EXPECT_TRUE(step.tls.pending.empty());
  EXPECT_TRUE(step.events.empty());
  EXPECT_FALSE(step.requeue.has_value());
}

TEST_F(CertificateRotationTest, NothingToCheckWhileEveryMemberServesTheRecordedCertificate) {
  recorded_ = servedEverywhere(new_, 2);
  EXPECT_FALSE(certificatesNeedCheck(input()));
  CertificateStep step = planCertificates(input(), {});
  EXPECT_EQ(step.tls.members_serving, 2);
  EXPECT_TRUE(step.events.empty());
  // A member more (a scale-up) is looked at.
  CertificateInput in = input();
  in.members.push_back("sessions-2");
  EXPECT_TRUE(certificatesNeedCheck(in));
}

TEST_F(CertificateRotationTest, ARotationWaitsForTheKubeletThenReportsOnce) {
  recorded_ = servedEverywhere(old_, 2);
  ASSERT_TRUE(certificatesNeedCheck(input()));
  // sessions-0 has the new files and reloads; sessions-1 reloads the old files still.
  CertificateStep step = planCertificates(
      input(), {{"sessions-0", reloaded(old_, new_)}, {"sessions-1", reloaded(old_, old_)}});
  EXPECT_EQ(step.tls.certificate_sha256, new_);
  EXPECT_EQ(step.tls.members_serving, 1);
  EXPECT_EQ(step.tls.pending, std::vector<std::string>{"sessions-1"});
  ASSERT_TRUE(step.requeue.has_value());
  EXPECT_EQ(*step.requeue, milliseconds(10000));
  EXPECT_EQ(events(step, "CertificatesReloaded"), 0);

  // 10 s later the kubelet has projected it.
  recorded_ = step.tls;
  step = planCertificates(
      input(), {{"sessions-0", serving(new_)}, {"sessions-1", reloaded(old_, new_)}});
  EXPECT_EQ(step.tls.members_serving, 2);
  EXPECT_TRUE(step.tls.pending.empty());
  EXPECT_FALSE(step.requeue.has_value());
  ASSERT_EQ(events(step, "CertificatesReloaded"), 1);
  EXPECT_NE(step.events[0].message.find("all 2 members serve the certificate of Secret cache-tls"),
            std::string::npos);

  // And then nothing more.
  recorded_ = step.tls;
  EXPECT_FALSE(certificatesNeedCheck(input()));
  EXPECT_TRUE(planCertificates(input(), {}).events.empty());
}

TEST_F(CertificateRotationTest, AFailedReloadIsAFailureAndRetried) {
  recorded_ = servedEverywhere(old_, 2);
  CertificateCheck failed;
  failed.before = absl::StatusOr<std::string>(old_);
  failed.reload = absl::InternalError("refresh_certs: ERROR failed to refresh SSL settings");
  CertificateStep step =
      planCertificates(input(), {{"sessions-0", reloaded(old_, new_)}, {"sessions-1", failed}});
  ASSERT_EQ(step.failures.size(), 1u);
  EXPECT_NE(step.failures[0].find("sessions-1: refresh_certs: ERROR"), std::string::npos);
  EXPECT_EQ(step.tls.pending, std::vector<std::string>{"sessions-1"});
  EXPECT_TRUE(step.requeue.has_value());
  EXPECT_EQ(events(step, "CertificatesReloaded"), 0);
}

TEST_F(CertificateRotationTest, AnUnreachableOrUncheckedMemberIsPending) {
  CertificateCheck unreachable;
  unreachable.before = absl::StatusOr<std::string>(absl::UnavailableError("connect refused"));
  CertificateStep step = planCertificates(input(), {{"sessions-0", unreachable}});
  EXPECT_EQ(step.tls.members_serving, 0);
  EXPECT_EQ(step.tls.pending, (std::vector<std::string>{"sessions-0", "sessions-1"}));
  EXPECT_TRUE(step.failures.empty());
  EXPECT_TRUE(step.requeue.has_value());
}

TEST_F(CertificateRotationTest, ACertificateNearItsExpiryIsWarnedOnce) {
  tls_.server.not_after = now_ + hours(24 * 3);
  recorded_ = servedEverywhere(new_, 2);
  CertificateStep step = planCertificates(input(), {});
  ASSERT_EQ(events(step, "CertificateExpiringSoon"), 1);
  EXPECT_EQ(step.events[0].severity, kube::EventSeverity::kWarning);
  EXPECT_NE(step.events[0].message.find("renew"), std::string::npos);
  EXPECT_TRUE(step.tls.expiry_warned);
  recorded_ = step.tls;
  step = planCertificates(input(), {});
  EXPECT_EQ(events(step, "CertificateExpiringSoon"), 0);
  EXPECT_TRUE(step.tls.expiry_warned);
  // A renewed certificate starts afresh; one far from expiry is not warned about.
  tls_.server.sha256 = std::string(64, 'c');
  tls_.server.not_after = now_ + hours(24 * 90);
  step = planCertificates(input(), {{"sessions-0", serving(tls_.server.sha256)},
                                    {"sessions-1", serving(tls_.server.sha256)}});
  EXPECT_EQ(events(step, "CertificateExpiringSoon"), 0);
  EXPECT_FALSE(step.tls.expiry_warned);
}

}  // namespace
}  // namespace mcop::memcached
