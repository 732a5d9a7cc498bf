// Escaping text into a JSON string literal, for the places that write JSON by hand (log lines,
// the byte-stable endpoints.json). Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace mcop::util {

// The JSON string escape of s, without the surrounding quotes.
std::string jsonEscape(std::string_view s);

}  // namespace mcop::util
