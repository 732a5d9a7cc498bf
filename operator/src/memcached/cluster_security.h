// ClusterSecurity: the Secrets a MemcachedCluster references (spec.tls.secretName,
// spec.tls.clientSecretName, spec.auth.secretName) read by name and validated before anything is
// built from them, and the material the operator's own memcached connections use.
//
// Why GET by name and no watch: the operator's RBAC grants `get` on secrets only (it must not be
// able to enumerate every Secret of the cluster), so there is no informer on Secrets and a change
// to one wakes nobody. A cluster that references Secrets is therefore looked at again every
// ClusterReconcilerOptions::secret_recheck (the --secret-recheck-interval flag, 30 s by default),
// which bounds how long a rotation or a fix goes unnoticed.
//
// What is checked (with OpenSSL, the library memcached itself loads these files with): the
// Secret exists and has the keys (tls.crt, tls.key, ca.crt; the auth key), every PEM parses, the
// certificate is valid now (not expired, not before its notBefore), the key matches it, it is
// signed by ca.crt (the chain in tls.crt may carry intermediates), and the auth file has at least
// one entry and only lines memcached accepts (a malformed line makes memcached 1.6.18 refuse to
// start: "Authfile ... has a malformed entry"). Problems name the Secret, the key and what to
// fix; they never contain key material or a password.
//
// Last good: SecretTracker keeps, per cluster, the material of the last valid read of each part
// (TLS, auth). While a part is invalid the operator keeps using the last good one for its own
// connections, and the reconciler holds whatever would start, restart or delete a memcached pod
// (a started memcached would load the bad files). The tracker lives in memory: an operator
// started while a Secret is invalid has no last good material for that part.
// Thread-safety: the validate/read functions are pure (read through the ApiClient, which is
// thread-safe); SecretTracker is safe to use from several reconcile workers at once.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <absl/status/statusor.h>

#include "kube/api_client.h"
#include "memcached/cluster_spec.h"
#include "memcached/json_util.h"

namespace mcop::memcached {

// Secrets are read by name only (GET): the operator is granted `get`, never list or watch.
inline const kube::ResourceType kSecretResource{"", "v1", "secrets", "Secret", true};

inline constexpr char kReasonTlsSecretInvalid[] = "TLSSecretInvalid";
inline constexpr char kReasonAuthSecretInvalid[] = "AuthSecretInvalid";

inline constexpr char kTlsCertKey[] = "tls.crt";
inline constexpr char kTlsKeyKey[] = "tls.key";
inline constexpr char kTlsCaKey[] = "ca.crt";

// One thing wrong with a referenced Secret, as Degraded and the Warning event report it.
struct SecretProblem {
  std::string reason;   // kReasonTlsSecretInvalid or kReasonAuthSecretInvalid
  std::string message;  // names the Secret, the key and what to fix; never a key or password

  friend bool operator==(const SecretProblem&, const SecretProblem&) = default;
};

// A validated certificate and key (a kubernetes.io/tls Secret's tls.crt and tls.key).
struct CertificateInfo {
  std::string sha256;  // lower-case hex SHA-256 of the leaf's DER: what a member serves
  std::chrono::system_clock::time_point not_after;
  std::string not_after_text;  // RFC 3339
};

// Validated TLS material of a cluster.
struct TlsMaterial {
  std::string secret_name;
  std::string resource_version;  // of secret_name, as read
  CertificateInfo server;        // secret_name's tls.crt: what every member should serve
  std::string ca_pem;            // secret_name's ca.crt: what the operator trusts
  // What the operator presents when the members require client certificates
  // (clientSecretName's tls.crt/tls.key, else secret_name's); empty under clientAuth none.
  std::string client_cert_pem;
  std::string client_key_pem;

  friend bool operator==(const TlsMaterial&, const TlsMaterial&) = default;
};

// Validated authentication material of a cluster.
struct AuthMaterial {
  std::string secret_name;
  std::string resource_version;
  std::string file_hash;  // SHA-256 hex of the auth file (the pod template carries it)
  std::string username;   // the file's first entry: what the operator authenticates with
  std::string password;

  friend bool operator==(const AuthMaterial&, const AuthMaterial&) = default;
};

// The value of `key` in a Secret object (base64-decoded `data`); NotFound naming the key when it
// is absent, InvalidArgument when it is not base64.
absl::StatusOr<std::string> secretValue(const Json& secret, const std::string& key);

// Parses and checks a certificate chain (leaf first) and its key at `now`, and that the leaf is
// signed (through the chain's intermediates) by a certificate of `ca_pem`. The errors say what
// is wrong, in terms of the keys ("tls.key does not match tls.crt"), with no key material.
absl::StatusOr<CertificateInfo> validateCertificate(const std::string& cert_pem,
                                                    const std::string& key_pem,
                                                    const std::string& ca_pem,
                                                    std::chrono::system_clock::time_point now);

// The first user:password entry of a memcached auth file, checked the way memcached 1.6.18
// reads it: every line "user:password" (both non-empty), newline-terminated. InvalidArgument
// naming the line number (never its content) otherwise, and for a file without any entry.
struct AuthEntry {
  std::string username;
  std::string password;
};
absl::StatusOr<AuthEntry> validateAuthFile(const std::string& text);

// SHA-256 of `data`, lower-case hex.
std::string sha256Hex(const std::string& data);

// One read of a cluster's Secrets: the material of each valid part, and the problems.
struct SecretsRead {
  std::optional<TlsMaterial> tls;
  std::optional<AuthMaterial> auth;
  std::vector<SecretProblem> problems;
  bool tls_invalid = false;   // spec.tls is on and its material did not validate
  bool auth_invalid = false;  // spec.auth is on and its material did not validate
};

// GETs and validates the Secrets `spec` references in namespace `ns` at `now`. Nothing to read
// when neither spec.tls nor spec.auth is on.
SecretsRead readClusterSecrets(kube::ApiClient& api, const std::string& ns,
                               const ClusterSpec& spec, std::chrono::system_clock::time_point now);

// What a pass uses: the fresh material where valid, the last good one where not.
struct ClusterSecrets {
  std::optional<TlsMaterial> tls;
  std::optional<AuthMaterial> auth;
  std::vector<SecretProblem> problems;  // of this read
  // A referenced Secret is invalid: pods must not be started, restarted or deleted.
  bool hold() const { return !problems.empty(); }
};

// Remembers each cluster's last good material (see the file comment).
class SecretTracker {
 public:
  // Merges `read` into the cluster's last good material and returns what to use. `uid` tells a
  // re-created cluster of the same name from the old one (whose material is not carried over).
  ClusterSecrets resolve(const std::string& cluster, const std::string& uid, SecretsRead read);
  void forget(const std::string& cluster);
  // Clusters whose material is held: a cluster with neither TLS nor auth holds nothing.
  size_t size() const;

 private:
  struct Entry {
    std::string uid;
    std::optional<TlsMaterial> tls;
    std::optional<AuthMaterial> auth;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
};

// The Degraded message for `problems` (joined), with what the operator holds meanwhile.
std::string secretProblemsMessage(const std::vector<SecretProblem>& problems);

}  // namespace mcop::memcached
