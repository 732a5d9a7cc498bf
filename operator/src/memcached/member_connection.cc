// MemberConnection: see member_connection.h.
#include "memcached/member_connection.h"

#include <absl/strings/str_cat.h>

#include "memcached/cluster_security.h"

namespace mcop::memcached {

absl::StatusOr<MemberSecurityPtr> buildMemberSecurity(const ClusterSecrets& secrets) {
  if (!secrets.tls && !secrets.auth) return MemberSecurityPtr{};
  auto security = std::make_shared<MemberSecurity>();
  if (secrets.tls) {
    const TlsMaterial& m = *secrets.tls;
    auto ctx = clientconfig::TlsContext::fromPem(
        clientconfig::TlsPem{m.ca_pem, m.client_cert_pem, m.client_key_pem});
    if (!ctx.ok()) {
      return absl::InternalError(absl::StrCat("cannot load the TLS material of Secret ",
                                              m.secret_name, ": ", ctx.error().message));
    }
    security->tls = *ctx;
  }
  if (secrets.auth) {
    security->credentials = clientconfig::Credentials{secrets.auth->username,
                                                      secrets.auth->password};
  }
  return MemberSecurityPtr(std::move(security));
}

clientconfig::ConnectOptions connectOptions(const MemberSecurity* security,
                                            const std::string& host) {
  clientconfig::ConnectOptions options;
  if (!security) return options;
  options.tls = security->tls;
  if (security->tls) options.server_name = host;
  options.credentials = security->credentials;
  return options;
}

clientconfig::Result<std::unique_ptr<clientconfig::MemcachedAdmin>> connectMember(
    const std::string& address, uint16_t port, const std::string& host,
    std::chrono::milliseconds timeout, const MemberSecurity* security) {
  if (!security || (!security->tls && !security->credentials)) {
    return clientconfig::MemcachedAdmin::connect(address, port, timeout);
  }
  return clientconfig::MemcachedAdmin::connect(address, port, timeout,
                                               connectOptions(security, host));
}

}  // namespace mcop::memcached
