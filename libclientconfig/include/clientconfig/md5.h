// MD5 for ketama (OpenSSL's libcrypto; src/md5.cc has the measurement behind the choice of
// entry point). Not for security.
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace clientconfig {

using Md5Digest = std::array<uint8_t, 16>;

Md5Digest md5(std::string_view data);

// The ketama word `a` (0..3) of a digest: bytes 4a..4a+3 read little-endian.
inline uint32_t ketamaWord(const Md5Digest& d, unsigned a) {
  return uint32_t(d[3 + 4 * a]) << 24 | uint32_t(d[2 + 4 * a]) << 16 | uint32_t(d[1 + 4 * a]) << 8 | d[4 * a];
}

// The key hash every ketama client uses: the first MD5 word, little-endian.
uint32_t ketamaKeyHash(std::string_view key);

} // namespace clientconfig
