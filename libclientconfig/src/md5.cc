// MD5 for ketama from OpenSSL's libcrypto.
//
// Why the one-shot MD5() and not EVP: build/bin/bench_md5 runs the three side by side (CPU time,
// RelWithDebInfo, two runs on a busy 2-core VM), EVP with the algorithm fetched once and one
// context reused per thread, and the hand-written RFC 1321 code this replaced:
//   key lookup, 16-server ring:   hand-written 146-157 ns, MD5() 140-143 ns (0.89-0.98x),
//                                 EVP 183-192 ns (1.22-1.25x)
//   digests of a 100-server ring: hand-written 534-555 us, MD5() 487 us (0.88-0.91x),
//                                 EVP 630-674 us (1.18-1.22x)
// Keys and ring labels are short (one 64-byte block), where EVP's per-call provider dispatch
// costs more than the digest; MD5() goes straight to OpenSSL's assembly. MD5() is deprecated in
// OpenSSL 3 but present in every 3.x; a libcrypto built without deprecated APIs gets EVP.
// Thread-safety: pure functions (EVP: the fetched algorithm is shared read-only, the context is
// per thread).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "clientconfig/md5.h"

#include <cstdlib>
#include <memory>

#include <openssl/evp.h>
#include <openssl/md5.h>

namespace clientconfig {

#ifndef OPENSSL_NO_DEPRECATED_3_0

Md5Digest md5(std::string_view data) {
  Md5Digest out;
  MD5(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

#else

Md5Digest md5(std::string_view data) {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "MD5", nullptr);
  struct CtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  Md5Digest out{};
  unsigned int len = 0;
  // Only a libcrypto without MD5 (a FIPS-only configuration) fails here; a ring built from
  // zeroed digests would silently route every key differently from every other client.
  if (md == nullptr || ctx == nullptr || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size())
    std::abort();
  return out;
}

#endif

uint32_t ketamaKeyHash(std::string_view key) { return ketamaWord(md5(key), 0); }

} // namespace clientconfig
