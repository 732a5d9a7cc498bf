// CertificateRotation: a rotated TLS Secret reaches the members without a restart. The kubelet
// projects a changed Secret into the running pods (up to a minute or so later, its sync period
// plus its cache), but memcached reads its certificate files only at start and on
// `refresh_certs`. So once the validated Secret's tls.crt differs from what a member serves (the
// SHA-256 of the leaf it presents in the handshake), the operator sends it `refresh_certs`, and
// looks again: a member that still serves the old certificate has not had the new files
// projected yet, and is checked again after `recheck` (10 s). When every member serves the new
// certificate: a Normal event CertificatesReloaded. A `refresh_certs` that fails (memcached keeps
// the files it had, e.g. a key that does not match) is a Warning event and Degraded, retried
// after `recheck`. A certificate that expires within `expiry_warning` gets one Warning event.
// refresh_certs is never sent while the TLS Secret is invalid (the reconciler skips this step):
// it would load the bad files.
// Thread-safety: CertificateReloader implementations must be safe to call from several
// reconcile workers at once; planCertificates is a pure function.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

#include "memcached/cluster_security.h"
#include "memcached/cluster_status.h"
#include "memcached/member_connection.h"
#include "memcached/planned_event.h"

namespace mcop::memcached {

inline constexpr char kReasonCertificateReloadFailed[] = "CertificateReloadFailed";

class CertificateReloader {
 public:
  virtual ~CertificateReloader() = default;
  // SHA-256 (hex) of the leaf certificate `member` presents on a new TLS connection.
  virtual absl::StatusOr<std::string> servedCertificate(const MemberEndpoint& member) = 0;
  // `refresh_certs`: the member reloads its certificate and key files; memcached's error when
  // it cannot (it then keeps serving the old ones).
  virtual absl::Status reloadCertificates(const MemberEndpoint& member) = 0;
};
using CertificateReloaderPtr = std::shared_ptr<CertificateReloader>;

// Over libclientconfig's MemcachedAdmin: one short-lived connection per call, within `timeout`.
CertificateReloaderPtr makeMemcachedCertificateReloader(
    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

// What one member answered in this pass.
struct CertificateCheck {
  std::optional<absl::StatusOr<std::string>> before;  // served before any reload
  std::optional<absl::Status> reload;                 // refresh_certs, when it was sent
  std::optional<absl::StatusOr<std::string>> after;   // served after the reload
};
using CertificateChecks = std::map<std::string, CertificateCheck>;  // by member name

struct CertificateInput {
  std::string key;  // "namespace/name"
  const TlsMaterial* tls = nullptr;
  std::optional<TlsStatus> recorded;
  std::vector<std::string> members;  // published, Ready members with an address (ordinal order)
  std::chrono::system_clock::time_point now;
  std::chrono::milliseconds recheck{10000};
  std::chrono::hours expiry_warning{24 * 7};
};

// Whether this pass must look at the members at all: the certificate, its Secret or the set of
// members differ from what status records as served everywhere.
bool certificatesNeedCheck(const CertificateInput& in);

struct CertificateStep {
  TlsStatus tls;
  std::vector<std::string> failures;  // "member: error" of failed reloads (Degraded)
  std::vector<PlannedEvent> events;
  std::optional<std::chrono::milliseconds> requeue;
};

// Decides status.tls, events and the recheck from the checks made (`checks` is empty when
// certificatesNeedCheck said no).
CertificateStep planCertificates(const CertificateInput& in, const CertificateChecks& checks);

}  // namespace mcop::memcached
