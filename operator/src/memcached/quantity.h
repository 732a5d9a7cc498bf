// Kubernetes resource.Quantity strings as numbers, so that the drift check can compare "1Gi"
// with the server's "1024Mi" by amount.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string_view>

namespace mcop::memcached {

// A Kubernetes resource.Quantity string as a number ("64Mi" -> 67108864, "100m" -> 0.1);
// nullopt when `s` is not a quantity.
std::optional<long double> parseQuantity(std::string_view s);

}  // namespace mcop::memcached
