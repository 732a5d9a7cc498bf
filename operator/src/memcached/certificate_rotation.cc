// CertificateRotation: see certificate_rotation.h.
#include "memcached/certificate_rotation.h"

#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>

#include "memcached/admin_status.h"

namespace mcop::memcached {
namespace {

class MemcachedCertificateReloader : public CertificateReloader {
 public:
  explicit MemcachedCertificateReloader(std::chrono::milliseconds timeout) : timeout_(timeout) {}

  absl::StatusOr<std::string> servedCertificate(const MemberEndpoint& member) override {
    auto admin = connectMember(member, timeout_);
    if (!admin.ok()) return adminStatus(admin.error(), absl::StrCat("connect to ", member.name));
    std::string sha = (*admin)->peerCertificateSha256();
    if (sha.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(member.name, " presented no certificate (not a TLS connection)"));
    }
    return sha;
  }

  absl::Status reloadCertificates(const MemberEndpoint& member) override {
    auto admin = connectMember(member, timeout_);
    if (!admin.ok()) return adminStatus(admin.error(), absl::StrCat("connect to ", member.name));
    auto reloaded = (*admin)->refreshCerts();
    if (!reloaded.ok()) return adminStatus(reloaded.error(), "refresh_certs");
    return absl::OkStatus();
  }

 private:
  std::chrono::milliseconds timeout_;
};

// "ab12cd34…": enough of a hash to tell certificates apart in a message.
std::string shortHash(const std::string& sha) { return sha.substr(0, 16); }

// Where each member stands after this pass's checks: serving the certificate, or not (yet), or
// failing to reload.
void tallyMembers(const CertificateInput& in, const CertificateChecks& checks,
                  CertificateStep& step) {
  const std::string& want = in.tls->server.sha256;
  step.tls.members_serving = 0;
  step.tls.pending.clear();
  for (const auto& name : in.members) {
    auto it = checks.find(name);
    if (it == checks.end()) {  // not reached in this pass (its deadline passed)
      step.tls.pending.push_back(name);
      continue;
    }
    const CertificateCheck& c = it->second;
    if (c.reload && !c.reload->ok()) {
      step.failures.push_back(absl::StrCat(name, ": ", c.reload->message()));
      step.tls.pending.push_back(name);
      continue;
    }
    const auto& served = c.after ? c.after : c.before;
    if (served && served->ok() && **served == want) {
      ++step.tls.members_serving;
    } else {
      step.tls.pending.push_back(name);
    }
  }
}

}  // namespace

CertificateReloaderPtr makeMemcachedCertificateReloader(std::chrono::milliseconds timeout) {
  return std::make_shared<MemcachedCertificateReloader>(timeout);
}

bool certificatesNeedCheck(const CertificateInput& in) {
  if (!in.tls) return false;
  if (!in.recorded) return true;
  const TlsStatus& r = *in.recorded;
  return r.certificate_sha256 != in.tls->server.sha256 || !r.pending.empty() ||
         r.members_serving != static_cast<int64_t>(in.members.size());
}

CertificateStep planCertificates(const CertificateInput& in, const CertificateChecks& checks) {
  CertificateStep step;
  if (!in.tls) return step;
  const TlsMaterial& tls = *in.tls;
  const bool same_certificate =
      in.recorded && in.recorded->certificate_sha256 == tls.server.sha256;
  if (in.recorded) step.tls = *in.recorded;
  step.tls.secret_name = tls.secret_name;
  step.tls.secret_resource_version = tls.resource_version;
  step.tls.certificate_sha256 = tls.server.sha256;
  step.tls.not_after = tls.server.not_after_text;
  step.tls.expiry_warned = same_certificate && in.recorded->expiry_warned;
  if (certificatesNeedCheck(in)) {
    tallyMembers(in, checks, step);
    if (!step.tls.pending.empty()) keepShorter(step.requeue, in.recheck);
    // A rotation (a certificate was recorded before, or members were still pending) that is
    // now served everywhere.
    const bool rotating =
        in.recorded && (!same_certificate || !in.recorded->pending.empty());
    if (step.tls.pending.empty() && rotating && !in.members.empty()) {
      step.events.push_back(
          {kube::EventSeverity::kNormal, "CertificatesReloaded",
           absl::StrCat("all ", in.members.size(), " members serve the certificate of Secret ",
                        tls.secret_name, " (SHA-256 ", shortHash(tls.server.sha256),
                        "…, expires ", tls.server.not_after_text, ")")});
    }
  }
  const auto left = tls.server.not_after - in.now;
  if (left < in.expiry_warning && !step.tls.expiry_warned) {
    step.tls.expiry_warned = true;
    step.events.push_back(
        {kube::EventSeverity::kWarning, "CertificateExpiringSoon",
         absl::StrCat("the certificate of Secret ", tls.secret_name, " expires at ",
                      tls.server.not_after_text, " (in ",
                      std::chrono::duration_cast<std::chrono::hours>(left).count(),
                      " h): renew it; the members pick the renewed Secret up without a restart")});
  }
  return step;
}

}  // namespace mcop::memcached
