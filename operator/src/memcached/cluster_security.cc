// ClusterSecurity: see cluster_security.h.
#include "memcached/cluster_security.h"

#include <ctime>
#include <memory>
#include <utility>

#include <absl/strings/escaping.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_join.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "clientconfig/security.h"
#include "util/time.h"

namespace mcop::memcached {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};
struct StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// Never prompts for a passphrase (OpenSSL's default callback would read the terminal): an
// encrypted key is refused, as memcached cannot load one either.
int noPassphrase(char*, int, int, void*) { return 0; }

// Every certificate of a PEM text, in order. InvalidArgument when there is none or a block does
// not parse.
absl::StatusOr<std::vector<X509Ptr>> readCertificates(const std::string& pem,
                                                      const std::string& what) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<X509Ptr> certs;
  ERR_clear_error();
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, noPassphrase, nullptr)) {
    certs.emplace_back(x);
  }
  // The loop ends at the end of the text (no further PEM start line) or at a block that does
  // not parse.
  const unsigned long err = ERR_peek_last_error();
  const bool at_end = ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  ERR_clear_error();
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " holds no PEM certificate"));
  }
  if (!at_end) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has a PEM block that is not a valid certificate"));
  }
  return certs;
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 0xf]);
  }
  return out;
}

std::string derSha256(X509* cert) {
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert, &der);
  if (len <= 0) return {};
  std::string out = sha256Hex(std::string(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  return out;
}

std::optional<std::chrono::system_clock::time_point> asn1Time(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// The leaf is signed, through the intermediates that follow it in tls.crt, by a certificate of
// ca.crt, at `now`. The same check memcached (and libclientconfig) make with ca.crt as the only
// trust anchor.
absl::Status verifyChain(const std::vector<X509Ptr>& chain, const std::vector<X509Ptr>& cas,
                         std::time_t now) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  for (const auto& ca : cas) X509_STORE_add_cert(store.get(), ca.get());
  std::unique_ptr<STACK_OF(X509), StackFree> untrusted(sk_X509_new_null());
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx ||
      X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get()) != 1) {
    return absl::InternalError("cannot set up certificate verification");
  }
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), now);
  if (X509_verify_cert(ctx.get()) == 1) return absl::OkStatus();
  const int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return absl::InvalidArgumentError(
      absl::StrCat("tls.crt is not signed by ca.crt (", X509_verify_cert_error_string(err), ")"));
}

absl::StatusOr<std::unique_ptr<EVP_PKEY, KeyFree>> readKey(const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ERR_clear_error();
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, noPassphrase, nullptr));
  ERR_clear_error();
  if (!key) {
    return absl::InvalidArgumentError(
        "tls.key holds no unencrypted PEM private key that parses");
  }
  return key;
}

}  // namespace

std::string sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return hex(md, len);
}

absl::StatusOr<std::string> secretValue(const Json& secret, const std::string& key) {
  const Json* data = findPath(secret, {"data"});
  const Json* value = nullptr;
  if (data && data->is_object() && data->has_field(key)) value = &data->at(key);
  if (!value || !value->is_string()) {
    return absl::NotFoundError(absl::StrCat("has no key ", key));
  }
  std::string decoded;
  if (!absl::Base64Unescape(value->as_string(), &decoded)) {
    return absl::InvalidArgumentError(absl::StrCat("key ", key, " is not valid base64"));
  }
  return decoded;
}

absl::StatusOr<CertificateInfo> validateCertificate(const std::string& cert_pem,
                                                    const std::string& key_pem,
                                                    const std::string& ca_pem,
                                                    std::chrono::system_clock::time_point now) {
  auto chain = readCertificates(cert_pem, kTlsCertKey);
  if (!chain.ok()) return chain.status();
  auto cas = readCertificates(ca_pem, kTlsCaKey);
  if (!cas.ok()) return cas.status();
  auto key = readKey(key_pem);
  if (!key.ok()) return key.status();
  X509* leaf = (*chain)[0].get();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto not_before = asn1Time(X509_get0_notBefore(leaf));
  auto not_after = asn1Time(X509_get0_notAfter(leaf));
  if (!not_before || !not_after) {
    return absl::InvalidArgumentError("tls.crt has an unreadable validity period");
  }
  if (*not_after <= now) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tls.crt expired at ", util::formatRfc3339(*not_after), ": renew the certificate"));
  }
  if (*not_before > now) {
    return absl::InvalidArgumentError(absl::StrCat("tls.crt is not valid before ",
                                                   util::formatRfc3339(*not_before)));
  }
  if (X509_check_private_key(leaf, key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "tls.key does not match tls.crt (the key of another certificate)");
  }
  if (auto s = verifyChain(*chain, *cas, t); !s.ok()) return s;
  return CertificateInfo{derSha256(leaf), *not_after, util::formatRfc3339(*not_after)};
}

absl::StatusOr<AuthEntry> validateAuthFile(const std::string& text) {
  if (text.empty()) {
    return absl::InvalidArgumentError("the auth file is empty: add a user:password line");
  }
  // memcached drops the last character of the file as if it were the newline: without one,
  // the last password would silently lose its last character.
  if (text.back() != '\n') {
    return absl::InvalidArgumentError(
        "the auth file does not end with a newline (memcached would cut the last password "
        "short): end every user:password line with a newline");
  }
  std::optional<AuthEntry> first;
  size_t line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    const size_t colon = line.find(':');
    // memcached refuses to start on a line without ':' (blank lines and comments included) and
    // on "\r\n" line ends; an empty part or a space cannot be sent in the "user password" token.
    const bool bad = colon == std::string::npos || colon == 0 || colon + 1 == line.size() ||
                     line.find_first_of(" \t\r") != std::string::npos;
    if (bad) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no,
          " of the auth file is not user:password (one entry a line, no blank lines, comments, "
          "spaces or CR; memcached refuses to start with it)"));
    }
    if (!first) first = AuthEntry{line.substr(0, colon), line.substr(colon + 1)};
  }
  return *first;
}

namespace {

// "Secret ns/name": the prefix of every problem about it.
std::string secretLabel(const std::string& ns, const std::string& name) {
  return absl::StrCat("Secret ", ns, "/", name);
}

// GETs a Secret. A problem message when it cannot be read.
absl::StatusOr<Json> getSecret(kube::ApiClient& api, const std::string& ns,
                               const std::string& name, const std::string& field) {
  auto secret = api.get(kSecretResource, ns, name);
  if (secret.ok()) return *secret;
  if (kube::IsNotFound(secret.status())) {
    return absl::NotFoundError(absl::StrCat(secretLabel(ns, name), " (", field,
                                            ") does not exist: create it"));
  }
  return absl::Status(secret.status().code(),
                      absl::StrCat("cannot read ", secretLabel(ns, name), " (", field,
                                   "): ", secret.status().message()));
}

// A key of a Secret, with the problem naming both.
absl::StatusOr<std::string> keyOf(const Json& secret, const std::string& ns,
                                  const std::string& name, const std::string& key) {
  auto value = secretValue(secret, key);
  if (value.ok()) return value;
  return absl::Status(value.status().code(),
                      absl::StrCat(secretLabel(ns, name), " ", value.status().message()));
}

absl::StatusOr<TlsMaterial> readTls(kube::ApiClient& api, const std::string& ns,
                                    const TlsSettings& tls,
                                    std::chrono::system_clock::time_point now) {
  const std::string& name = tls.secret_name;
  auto secret = getSecret(api, ns, name, "spec.tls.secretName");
  if (!secret.ok()) return secret.status();
  TlsMaterial m;
  m.secret_name = name;
  m.resource_version = stringAt(*secret, {"metadata", "resourceVersion"});
  std::string cert, key;
  for (auto [k, out] : {std::pair{kTlsCertKey, &cert}, std::pair{kTlsKeyKey, &key},
                        std::pair{kTlsCaKey, &m.ca_pem}}) {
    auto value = keyOf(*secret, ns, name, k);
    if (!value.ok()) return value.status();
    *out = std::move(*value);
  }
  auto info = validateCertificate(cert, key, m.ca_pem, now);
  if (!info.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(secretLabel(ns, name), ": ", info.status().message()));
  }
  m.server = *info;
  if (tls.client_auth != ClientAuth::kRequire) return m;
  if (tls.client_secret_name.empty() || tls.client_secret_name == name) {
    m.client_cert_pem = cert;
    m.client_key_pem = key;
    return m;
  }
  // The client certificate must be one the members accept: signed by the members' ca.crt.
  const std::string& client = tls.client_secret_name;
  auto csecret = getSecret(api, ns, client, "spec.tls.clientSecretName");
  if (!csecret.ok()) return csecret.status();
  for (auto [k, out] : {std::pair{kTlsCertKey, &m.client_cert_pem},
                        std::pair{kTlsKeyKey, &m.client_key_pem}}) {
    auto value = keyOf(*csecret, ns, client, k);
    if (!value.ok()) return value.status();
    *out = std::move(*value);
  }
  if (auto cinfo = validateCertificate(m.client_cert_pem, m.client_key_pem, m.ca_pem, now);
      !cinfo.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        secretLabel(ns, client), " (spec.tls.clientSecretName): ", cinfo.status().message(),
        " (ca.crt of ", secretLabel(ns, name), ", which the members verify clients with)"));
  }
  return m;
}

absl::StatusOr<AuthMaterial> readAuth(kube::ApiClient& api, const std::string& ns,
                                      const AuthSettings& auth) {
  auto secret = getSecret(api, ns, auth.secret_name, "spec.auth.secretName");
  if (!secret.ok()) return secret.status();
  auto file = keyOf(*secret, ns, auth.secret_name, auth.secret_key);
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat(file.status().message(), " (spec.auth.secretKey)"));
  }
  auto entry = validateAuthFile(*file);
  if (!entry.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(secretLabel(ns, auth.secret_name), " key ",
                                                   auth.secret_key, ": ",
                                                   entry.status().message()));
  }
  // The operator authenticates as applications do: with the entry libclientconfig reads (the
  // first; the stricter check above already passed, so this cannot disagree about it).
  auto credentials = clientconfig::parseAuthFile(*file);
  if (!credentials.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(secretLabel(ns, auth.secret_name), " key ",
                                                   auth.secret_key, ": ",
                                                   credentials.error().message));
  }
  return AuthMaterial{auth.secret_name, stringAt(*secret, {"metadata", "resourceVersion"}),
                      sha256Hex(*file), credentials->username, credentials->password};
}

}  // namespace

SecretsRead readClusterSecrets(kube::ApiClient& api, const std::string& ns,
                               const ClusterSpec& spec,
                               std::chrono::system_clock::time_point now) {
  SecretsRead read;
  if (spec.tls.enabled) {
    auto tls = readTls(api, ns, spec.tls, now);
    if (tls.ok()) {
      read.tls = std::move(*tls);
    } else {
      read.tls_invalid = true;
      read.problems.push_back({kReasonTlsSecretInvalid, std::string(tls.status().message())});
    }
  }
  if (spec.auth.enabled) {
    auto auth = readAuth(api, ns, spec.auth);
    if (auth.ok()) {
      read.auth = std::move(*auth);
    } else {
      read.auth_invalid = true;
      read.problems.push_back({kReasonAuthSecretInvalid, std::string(auth.status().message())});
    }
  }
  return read;
}

ClusterSecrets SecretTracker::resolve(const std::string& cluster, const std::string& uid,
                                      SecretsRead read) {
  std::lock_guard lock(mu_);
  Entry& e = entries_[cluster];
  if (e.uid != uid) e = Entry{uid, std::nullopt, std::nullopt};
  // A part that is off is forgotten; a valid one replaces the last good; an invalid one keeps
  // it (the members still run with what was mounted when they started, or last reloaded).
  if (read.tls) {
    e.tls = read.tls;
  } else if (!read.tls_invalid) {
    e.tls.reset();
  }
  if (read.auth) {
    e.auth = read.auth;
  } else if (!read.auth_invalid) {
    e.auth.reset();
  }
  ClusterSecrets out{e.tls, e.auth, std::move(read.problems)};
  // An entry without material says nothing that a fresh one would not (the uid only guards
  // material), and most clusters use neither TLS nor auth: do not keep one per cluster.
  if (!e.tls && !e.auth) entries_.erase(cluster);
  return out;
}

void SecretTracker::forget(const std::string& cluster) {
  std::lock_guard lock(mu_);
  entries_.erase(cluster);
}

size_t SecretTracker::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::string secretProblemsMessage(const std::vector<SecretProblem>& problems) {
  std::vector<std::string> parts;
  for (const auto& p : problems) parts.push_back(p.message);
  return absl::StrCat(absl::StrJoin(parts, "; "),
                      ". Until this is fixed the operator keeps the last valid configuration: "
                      "it starts, restarts and deletes no memcached pod (no scaling, no rolling "
                      "restart), since a memcached started now would load these files");
}

}  // namespace mcop::memcached
