// A tiny certificate authority for tests: EC P-256 keys and X.509 certificates made in memory
// with OpenSSL (CAs, leaves signed by them, any validity window), as PEM text and as Secret
// objects in the shape cert-manager writes (tls.crt, tls.key, ca.crt, base64 in `data`).
// Thread-safety: values; each function builds what it returns.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <absl/strings/escaping.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "memcached/json_util.h"

namespace mcop::memcached::testpki {

struct Identity {
  std::shared_ptr<EVP_PKEY> key;
  std::shared_ptr<X509> cert;
  std::string cert_pem() const;
  std::string key_pem() const;
};

inline std::shared_ptr<EVP_PKEY> newKey() {
  return std::shared_ptr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"),
                                   EVP_PKEY_free);
}

inline void addExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `cn`, valid from now + not_before to now + not_after, signed by `issuer`
// (self-signed when null). `ca` marks it a CA. `dns` adds a subjectAltName.
inline Identity issue(const std::string& cn, const Identity* issuer, std::chrono::seconds not_before,
                      std::chrono::seconds not_after, bool ca, const std::string& dns = "") {
  static long serial = 1;
  Identity id;
  id.key = newKey();
  id.cert = std::shared_ptr<X509>(X509_new(), X509_free);
  X509* c = id.cert.get();
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
  X509_gmtime_adj(X509_getm_notBefore(c), static_cast<long>(not_before.count()));
  X509_gmtime_adj(X509_getm_notAfter(c), static_cast<long>(not_after.count()));
  X509_set_pubkey(c, id.key.get());
  X509_NAME* name = X509_get_subject_name(c);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* issuer_cert = issuer ? issuer->cert.get() : c;
  X509_set_issuer_name(c, X509_get_subject_name(issuer_cert));
  addExtension(c, issuer_cert, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (ca) addExtension(c, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  if (!dns.empty()) addExtension(c, issuer_cert, NID_subject_alt_name, ("DNS:" + dns).c_str());
  X509_sign(c, issuer ? issuer->key.get() : id.key.get(), EVP_sha256());
  return id;
}

inline Identity newCa(const std::string& cn = "test-ca") {
  return issue(cn, nullptr, std::chrono::hours(-1), std::chrono::hours(24 * 365), true);
}
inline Identity newLeaf(const Identity& ca, const std::string& cn = "memcached",
                        std::chrono::seconds not_before = std::chrono::hours(-1),
                        std::chrono::seconds not_after = std::chrono::hours(24 * 90)) {
  return issue(cn, &ca, not_before, not_after, false, cn);
}

inline std::string Identity::cert_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert.get());
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

inline std::string Identity::key_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

// A Secret object with `data` (values base64-encoded, as the API server returns them).
inline Json secret(const std::string& ns, const std::string& name,
                   const std::map<std::string, std::string>& data,
                   const std::string& resource_version = "") {
  Json s = Json::object();
  s["apiVersion"] = jsonString("v1");
  s["kind"] = jsonString("Secret");
  s["metadata"] = jsonObject({{"name", jsonString(name)}, {"namespace", jsonString(ns)}});
  if (!resource_version.empty()) {
    s["metadata"]["resourceVersion"] = jsonString(resource_version);
  }
  Json d = Json::object();
  for (const auto& [k, v] : data) d[k] = jsonString(absl::Base64Escape(v));
  s["data"] = d;
  return s;
}

// tls.crt, tls.key and ca.crt of `leaf` and `ca`.
inline std::map<std::string, std::string> tlsData(const Identity& leaf, const Identity& ca) {
  return {{"tls.crt", leaf.cert_pem()}, {"tls.key", leaf.key_pem()}, {"ca.crt", ca.cert_pem()}};
}

}  // namespace mcop::memcached::testpki
