// Test-only certificate authority: ECDSA P-256 (or RSA-2048) keys and X.509 certificates generated with the
// OpenSSL API at test time (CAs, server certificates with DNS/IP SANs, client certificates,
// expired ones), and a directory of PEM files a memcached process can read.
// Thread-safety: test-only; one thread.
#pragma once

#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "test_util.h"

namespace clientconfig::testing {

struct PemPair {
  std::string cert_pem;
  std::string key_pem;
};

// Seconds from now.
struct Validity {
  long not_before = -86400;
  long not_after = 30 * 86400;
};

enum class KeyType { EcdsaP256, Rsa2048 };

class TestCa {
public:
  explicit TestCa(const std::string& common_name, KeyType type = KeyType::EcdsaP256) : type_(type) {
    key_.reset(newKey());
    cert_.reset(X509_new());
    X509_set_version(cert_.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert_.get()), nextSerial());
    setValidity(cert_.get(), Validity{});
    X509_NAME* name = X509_get_subject_name(cert_.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                               -1, 0);
    X509_set_issuer_name(cert_.get(), name);
    X509_set_pubkey(cert_.get(), key_.get());
    addExt(cert_.get(), cert_.get(), NID_basic_constraints, "critical,CA:TRUE");
    addExt(cert_.get(), cert_.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
    addExt(cert_.get(), cert_.get(), NID_subject_key_identifier, "hash");
    X509_sign(cert_.get(), key_.get(), EVP_sha256());
  }

  std::string certPem() const { return toPem(cert_.get()); }

  // A leaf for `common_name`; `sans` like "DNS:localhost,IP:127.0.0.1" (empty: none).
  PemPair issue(const std::string& common_name, const std::string& sans, bool server,
                Validity validity = Validity{}) const {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(newKey(), EVP_PKEY_free);
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), nextSerial());
    setValidity(cert.get(), validity);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                               -1, 0);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get()));
    X509_set_pubkey(cert.get(), key.get());
    addExt(cert_.get(), cert.get(), NID_basic_constraints, "critical,CA:FALSE");
    addExt(cert_.get(), cert.get(), NID_key_usage, "critical,digitalSignature");
    addExt(cert_.get(), cert.get(), NID_ext_key_usage, server ? "serverAuth" : "clientAuth");
    if (!sans.empty()) addExt(cert_.get(), cert.get(), NID_subject_alt_name, sans.c_str());
    X509_sign(cert.get(), key_.get(), EVP_sha256());
    PemPair out;
    out.cert_pem = toPem(cert.get());
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    out.key_pem = bioText(bio);
    BIO_free(bio);
    return out;
  }

private:
  static long nextSerial() {
    static long serial = 1000;
    return ++serial;
  }
  EVP_PKEY* newKey() const { return type_ == KeyType::Rsa2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256"); }
  static void setValidity(X509* x, Validity v) {
    X509_gmtime_adj(X509_getm_notBefore(x), v.not_before);
    X509_gmtime_adj(X509_getm_notAfter(x), v.not_after);
  }
  static void addExt(X509* issuer, X509* subject, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, subject, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(subject, ext, -1);
    X509_EXTENSION_free(ext);
  }
  static std::string bioText(BIO* bio) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(n));
  }
  static std::string toPem(X509* x) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    std::string s = bioText(bio);
    BIO_free(bio);
    return s;
  }

  KeyType type_;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key_{nullptr, EVP_PKEY_free};
  std::unique_ptr<X509, decltype(&X509_free)> cert_{nullptr, X509_free};
};

// SHA-256 hex of a PEM certificate's DER: what TlsTransport::peerCertificateSha256 reports.
inline std::string certSha256(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(x, EVP_sha256(), md, &len);
  X509_free(x);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kDigits[md[i] >> 4]);
    out.push_back(kDigits[md[i] & 15]);
  }
  return out;
}

// A directory memcached (possibly running as nobody) can read: tls.crt, tls.key, ca.crt.
class ServerTlsDir {
public:
  ServerTlsDir(const TestCa& ca, const PemPair& server) : dir_(makeTempDir("cc-tls-")) {
    ::chmod(dir_.c_str(), 0755);
    write(server, ca.certPem());
  }
  ~ServerTlsDir() { std::filesystem::remove_all(dir_); }
  void write(const PemPair& server, const std::string& ca_pem) {
    put("tls.crt", server.cert_pem);
    put("tls.key", server.key_pem);
    put("ca.crt", ca_pem);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // memcached's -Z options; verify_mode 0 none, 1 request, 2 require.
  std::vector<std::string> memcachedArgs(int verify_mode) const {
    return {"-Z", "-o",
            "ssl_chain_cert=" + path("tls.crt") + ",ssl_key=" + path("tls.key") + ",ssl_ca_cert=" + path("ca.crt") +
                ",ssl_verify_mode=" + std::to_string(verify_mode)};
  }

private:
  void put(const std::string& name, const std::string& content) {
    // Written beside and renamed, so memcached never reads half a file.
    writeFile(path(name) + ".tmp", content);
    ::chmod((path(name) + ".tmp").c_str(), 0644);
    std::filesystem::rename(path(name) + ".tmp", path(name));
  }
  std::string dir_;
};

} // namespace clientconfig::testing
