// OpenSSL's two MD5 entry points, for the test and the benchmark that hold the library's md5()
// against them (src/md5.cc says which one the library uses, with the figure).
// Thread-safety: the fetched algorithm is shared read-only; each thread has its own context.
#pragma once

// MD5() is deprecated in OpenSSL 3 in favour of EVP; it is measured here because it skips the
// provider dispatch that makes EVP slower for short inputs.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/evp.h>
#include <openssl/md5.h>

#include <cstdlib>
#include <memory>
#include <string_view>

#include "clientconfig/md5.h"

namespace clientconfig::testing {

// EVP, the algorithm fetched once (an implicit fetch per call would look the provider up each
// time) and one context reused per thread (allocating one per digest costs more than the digest).
inline Md5Digest md5OpenSslEvp(std::string_view data) {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "MD5", nullptr);
  struct CtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  thread_local std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  Md5Digest out{};
  unsigned int len = 0;
  if (md == nullptr || ctx == nullptr || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 || EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 ||
      len != out.size())
    std::abort();
  return out;
}

// The one-shot low-level function (deprecated in OpenSSL 3).
inline Md5Digest md5OpenSslLowLevel(std::string_view data) {
  Md5Digest out{};
  MD5(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data());
  return out;
}

} // namespace clientconfig::testing
