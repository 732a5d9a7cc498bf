// Quantity parsing.
#include "memcached/quantity.h"

#include <gtest/gtest.h>

namespace mcop::memcached {
namespace {

TEST(ParseQuantityTest, Suffixes) {
  EXPECT_EQ(*parseQuantity("64Mi"), 64.0L * 1024 * 1024);
  EXPECT_NEAR(static_cast<double>(*parseQuantity("100m")), 0.1, 1e-12);
  EXPECT_EQ(*parseQuantity("2k"), 2000.0L);
  EXPECT_EQ(*parseQuantity("1e3"), 1000.0L);
  EXPECT_EQ(*parseQuantity("1.5Gi"), 1.5L * 1024 * 1024 * 1024);
  EXPECT_FALSE(parseQuantity("").has_value());
  EXPECT_FALSE(parseQuantity("Mi").has_value());
  EXPECT_FALSE(parseQuantity("12Xi").has_value());
  EXPECT_FALSE(parseQuantity("memcached").has_value());
}

}  // namespace
}  // namespace mcop::memcached
