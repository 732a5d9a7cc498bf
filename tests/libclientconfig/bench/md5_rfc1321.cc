// The hand-written MD5 (RFC 1321) libclientconfig used before it took OpenSSL's, kept for
// bench_md5 only, so the comparison behind src/md5.cc's choice can be re-run side by side. The
// state is kept in registers and short inputs (< 56 bytes, i.e. nearly all cache keys) are padded
// on the stack in one block.
// Thread-safety: pure functions.
#include "clientconfig/md5.h"

#include <cstring>

namespace clientconfig::bench {
namespace {

// floor(abs(sin(i + 1)) * 2^32), RFC 1321 section 3.4.
constexpr uint32_t kT[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

inline uint32_t rotl(uint32_t x, int c) { return (x << c) | (x >> (32 - c)); }

inline uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

struct State {
  uint32_t a = 0x67452301, b = 0xefcdab89, c = 0x98badcfe, d = 0x10325476;
};

#define CC_MD5_STEP(f, a, b, c, d, x, t, s)                                                                            \
  a += f(b, c, d) + (x) + (t);                                                                                         \
  a = rotl(a, s) + b;

inline uint32_t fF(uint32_t x, uint32_t y, uint32_t z) { return z ^ (x & (y ^ z)); }
inline uint32_t fG(uint32_t x, uint32_t y, uint32_t z) { return y ^ (z & (x ^ y)); }
inline uint32_t fH(uint32_t x, uint32_t y, uint32_t z) { return x ^ y ^ z; }
inline uint32_t fI(uint32_t x, uint32_t y, uint32_t z) { return y ^ (x | ~z); }

void transform(State& st, const uint8_t* block) {
  uint32_t m[16];
  for (int i = 0; i < 16; ++i) m[i] = load32(block + 4 * i);
  uint32_t a = st.a, b = st.b, c = st.c, d = st.d;

  // Round 1: message words in order.
  CC_MD5_STEP(fF, a, b, c, d, m[0], kT[0], 7)
  CC_MD5_STEP(fF, d, a, b, c, m[1], kT[1], 12)
  CC_MD5_STEP(fF, c, d, a, b, m[2], kT[2], 17)
  CC_MD5_STEP(fF, b, c, d, a, m[3], kT[3], 22)
  CC_MD5_STEP(fF, a, b, c, d, m[4], kT[4], 7)
  CC_MD5_STEP(fF, d, a, b, c, m[5], kT[5], 12)
  CC_MD5_STEP(fF, c, d, a, b, m[6], kT[6], 17)
  CC_MD5_STEP(fF, b, c, d, a, m[7], kT[7], 22)
  CC_MD5_STEP(fF, a, b, c, d, m[8], kT[8], 7)
  CC_MD5_STEP(fF, d, a, b, c, m[9], kT[9], 12)
  CC_MD5_STEP(fF, c, d, a, b, m[10], kT[10], 17)
  CC_MD5_STEP(fF, b, c, d, a, m[11], kT[11], 22)
  CC_MD5_STEP(fF, a, b, c, d, m[12], kT[12], 7)
  CC_MD5_STEP(fF, d, a, b, c, m[13], kT[13], 12)
  CC_MD5_STEP(fF, c, d, a, b, m[14], kT[14], 17)
  CC_MD5_STEP(fF, b, c, d, a, m[15], kT[15], 22)

  // Round 2: word (1 + 5i) mod 16.
  CC_MD5_STEP(fG, a, b, c, d, m[1], kT[16], 5)
  CC_MD5_STEP(fG, d, a, b, c, m[6], kT[17], 9)
  CC_MD5_STEP(fG, c, d, a, b, m[11], kT[18], 14)
  CC_MD5_STEP(fG, b, c, d, a, m[0], kT[19], 20)
  CC_MD5_STEP(fG, a, b, c, d, m[5], kT[20], 5)
  CC_MD5_STEP(fG, d, a, b, c, m[10], kT[21], 9)
  CC_MD5_STEP(fG, c, d, a, b, m[15], kT[22], 14)
  CC_MD5_STEP(fG, b, c, d, a, m[4], kT[23], 20)
  CC_MD5_STEP(fG, a, b, c, d, m[9], kT[24], 5)
  CC_MD5_STEP(fG, d, a, b, c, m[14], kT[25], 9)
  CC_MD5_STEP(fG, c, d, a, b, m[3], kT[26], 14)
  CC_MD5_STEP(fG, b, c, d, a, m[8], kT[27], 20)
  CC_MD5_STEP(fG, a, b, c, d, m[13], kT[28], 5)
  CC_MD5_STEP(fG, d, a, b, c, m[2], kT[29], 9)
  CC_MD5_STEP(fG, c, d, a, b, m[7], kT[30], 14)
  CC_MD5_STEP(fG, b, c, d, a, m[12], kT[31], 20)

  // Round 3: word (5 + 3i) mod 16.
  CC_MD5_STEP(fH, a, b, c, d, m[5], kT[32], 4)
  CC_MD5_STEP(fH, d, a, b, c, m[8], kT[33], 11)
  CC_MD5_STEP(fH, c, d, a, b, m[11], kT[34], 16)
  CC_MD5_STEP(fH, b, c, d, a, m[14], kT[35], 23)
  CC_MD5_STEP(fH, a, b, c, d, m[1], kT[36], 4)
  CC_MD5_STEP(fH, d, a, b, c, m[4], kT[37], 11)
  CC_MD5_STEP(fH, c, d, a, b, m[7], kT[38], 16)
  CC_MD5_STEP(fH, b, c, d, a, m[10], kT[39], 23)
  CC_MD5_STEP(fH, a, b, c, d, m[13], kT[40], 4)
  CC_MD5_STEP(fH, d, a, b, c, m[0], kT[41], 11)
  CC_MD5_STEP(fH, c, d, a, b, m[3], kT[42], 16)
  CC_MD5_STEP(fH, b, c, d, a, m[6], kT[43], 23)
  CC_MD5_STEP(fH, a, b, c, d, m[9], kT[44], 4)
  CC_MD5_STEP(fH, d, a, b, c, m[12], kT[45], 11)
  CC_MD5_STEP(fH, c, d, a, b, m[15], kT[46], 16)
  CC_MD5_STEP(fH, b, c, d, a, m[2], kT[47], 23)

  // Round 4: word 7i mod 16.
  CC_MD5_STEP(fI, a, b, c, d, m[0], kT[48], 6)
  CC_MD5_STEP(fI, d, a, b, c, m[7], kT[49], 10)
  CC_MD5_STEP(fI, c, d, a, b, m[14], kT[50], 15)
  CC_MD5_STEP(fI, b, c, d, a, m[5], kT[51], 21)
  CC_MD5_STEP(fI, a, b, c, d, m[12], kT[52], 6)
  CC_MD5_STEP(fI, d, a, b, c, m[3], kT[53], 10)
  CC_MD5_STEP(fI, c, d, a, b, m[10], kT[54], 15)
  CC_MD5_STEP(fI, b, c, d, a, m[1], kT[55], 21)
  CC_MD5_STEP(fI, a, b, c, d, m[8], kT[56], 6)
  CC_MD5_STEP(fI, d, a, b, c, m[15], kT[57], 10)
  CC_MD5_STEP(fI, c, d, a, b, m[6], kT[58], 15)
  CC_MD5_STEP(fI, b, c, d, a, m[13], kT[59], 21)
  CC_MD5_STEP(fI, a, b, c, d, m[4], kT[60], 6)
  CC_MD5_STEP(fI, d, a, b, c, m[11], kT[61], 10)
  CC_MD5_STEP(fI, c, d, a, b, m[2], kT[62], 15)
  CC_MD5_STEP(fI, b, c, d, a, m[9], kT[63], 21)

  st.a += a;
  st.b += b;
  st.c += c;
  st.d += d;
}

#undef CC_MD5_STEP

State digestState(std::string_view data) {
  State st;
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  size_t n = data.size();
  while (n >= 64) {
    transform(st, p);
    p += 64;
    n -= 64;
  }
  // Tail: 0x80, zeros, then the bit length (little-endian) in the last 8 bytes;
  // one block when the tail leaves room for the length, else two.
  uint8_t tail[128];
  std::memcpy(tail, p, n);
  tail[n] = 0x80;
  size_t blocks = n < 56 ? 1 : 2;
  std::memset(tail + n + 1, 0, blocks * 64 - n - 1);
  uint64_t bits = uint64_t(data.size()) * 8;
  for (int i = 0; i < 8; ++i) tail[blocks * 64 - 8 + i] = uint8_t(bits >> (8 * i));
  transform(st, tail);
  if (blocks == 2) transform(st, tail + 64);
  return st;
}

} // namespace

Md5Digest md5Rfc1321(std::string_view data) {
  State st = digestState(data);
  Md5Digest out;
  uint32_t words[4] = {st.a, st.b, st.c, st.d};
  for (int w = 0; w < 4; ++w) {
    for (int i = 0; i < 4; ++i) out[4 * w + i] = uint8_t(words[w] >> (8 * i));
  }
  return out;
}

uint32_t ketamaKeyHashRfc1321(std::string_view key) {
  // The first little-endian word of the digest is exactly state word a.
  return digestState(key).a;
}

} // namespace clientconfig::bench
