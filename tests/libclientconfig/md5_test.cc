// The library's MD5 (OpenSSL's one-shot MD5(), or EVP without deprecated APIs) and the ketama
// key hash built on it agree with OpenSSL's EVP digest for every length across the
// one-block/two-block padding boundary and several blocks.
#include "clientconfig/md5.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "md5_openssl.h"

namespace clientconfig {
namespace {

TEST(Md5, MatchesOpenSsl) {
  std::mt19937 rng(9);
  for (size_t len = 0; len <= 300; ++len) {
    for (int round = 0; round < 4; ++round) {
      std::string data(len, '\0');
      for (auto& c : data) c = static_cast<char>(rng());
      ASSERT_EQ(md5(data), testing::md5OpenSslEvp(data)) << "length " << len;
      ASSERT_EQ(ketamaKeyHash(data), ketamaWord(testing::md5OpenSslEvp(data), 0)) << "length " << len;
    }
  }
  EXPECT_EQ(testing::md5OpenSslLowLevel("abc"), testing::md5OpenSslEvp("abc"));
}

} // namespace
} // namespace clientconfig
