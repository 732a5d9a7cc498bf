// JSON string escaping through nlohmann-json's serializer: see json_text.h.
#include "util/json_text.h"

#include <nlohmann/json.hpp>

namespace mcop::util {

std::string jsonEscape(std::string_view s) {
  // dump() of a JSON string is its literal: quotes around the escape. ensure_ascii off keeps
  // UTF-8 as is; `replace` turns invalid UTF-8 into U+FFFD instead of throwing, so a log line
  // carrying bytes from the wire is still one valid JSON object.
  std::string literal = nlohmann::json(std::string(s)).dump(
      -1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
  return literal.substr(1, literal.size() - 2);
}

}  // namespace mcop::util
