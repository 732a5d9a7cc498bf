// Escaping text into a JSON string literal, for the places that write JSON by hand (log lines,
// the byte-stable endpoints.json). Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace mcop::util {

// The JSON string escape of s, without the surrounding quotes: `"` and `\` backslashed, control
// characters as \b \f \n \r \t or \u00xx (lowercase hex), everything else, UTF-8 included, as
// is; invalid UTF-8 becomes U+FFFD, so the result is always valid JSON text.
std::string jsonEscape(std::string_view s);

}  // namespace mcop::util
