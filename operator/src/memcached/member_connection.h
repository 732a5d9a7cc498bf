// MemberConnection: how the operator opens its own connections to a cluster's memcached members
// (connection counts for the drain, flush_all, the stale-copy sweep, the warm copy, certificate
// reloads). Every one of them goes through connectMember, so a cluster with spec.tls or
// spec.auth is spoken to with TLS (the members' ca.crt, the client certificate under clientAuth
// Require, the member's published DNS name as the name its certificate must carry) and
// authenticated with the first entry of its auth file, from the validated Secrets
// (cluster_security.h), and a plaintext cluster exactly as before.
// Thread-safety: MemberSecurity is immutable once built and shared by any number of threads;
// the functions are safe to call concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <absl/status/statusor.h>

#include "clientconfig/memcached_admin.h"
#include "clientconfig/security.h"

namespace mcop::memcached {

struct ClusterSecrets;

// The security of one cluster's connections, built from its validated (or last good) Secrets.
struct MemberSecurity {
  clientconfig::TlsContextPtr tls;                       // null: plaintext
  std::optional<clientconfig::Credentials> credentials;  // unset: no authentication
};
using MemberSecurityPtr = std::shared_ptr<const MemberSecurity>;

// Null (plaintext, no authentication) when `secrets` has neither TLS nor auth material; an error
// when the TLS material cannot be loaded into a context (it validated, so that is a bug or an
// OpenSSL the operator was not built for).
absl::StatusOr<MemberSecurityPtr> buildMemberSecurity(const ClusterSecrets& secrets);

// One member as the operator reaches it.
struct MemberEndpoint {
  std::string name;     // pod name, for messages
  std::string address;  // pod IP
  int port = 11211;
  std::string host;            // published DNS name: the TLS server name
  MemberSecurityPtr security;  // null: plaintext

  friend bool operator==(const MemberEndpoint&, const MemberEndpoint&) = default;
};

// The options of a connection to `host` under `security` (null: plaintext).
clientconfig::ConnectOptions connectOptions(const MemberSecurity* security,
                                            const std::string& host);

// Connects to address:port, within `timeout`, as `security` says (the TLS handshake checks that
// the member's certificate is for `host`).
clientconfig::Result<std::unique_ptr<clientconfig::MemcachedAdmin>> connectMember(
    const std::string& address, uint16_t port, const std::string& host,
    std::chrono::milliseconds timeout, const MemberSecurity* security);
inline clientconfig::Result<std::unique_ptr<clientconfig::MemcachedAdmin>> connectMember(
    const MemberEndpoint& m, std::chrono::milliseconds timeout) {
  return connectMember(m.address, static_cast<uint16_t>(m.port), m.host, timeout,
                       m.security.get());
}

}  // namespace mcop::memcached
