// Strict JSON reading for endpoints.json (RFC 8259: no comments, no trailing commas, no
// NaN/Infinity, UTF-8 validated) on nlohmann-json's SAX parser, plus what nlohmann accepts and
// endpoints.json must not: duplicate object keys (two "version"s would let two readers see two
// versions) and nesting deeper than kMaxDepth. Internal to libclientconfig; the public entry is
// parseEndpointsJson().
// Thread-safety: pure functions; a parsed Value is an ordinary nlohmann::json.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "clientconfig/result.h"

namespace clientconfig::json {

using Value = nlohmann::json;

constexpr size_t kMaxDepth = 64;

// "null", "boolean", "integer" (no fraction or exponent, fits int64), "number", "string",
// "array", "object": the words field errors use.
const char* kindName(const Value& v);

// The value when it is an integer that fits int64 (nlohmann keeps non-negative literals as
// unsigned); nullopt for anything else, including 1.0.
std::optional<int64_t> asInt64(const Value& v);

// Errors carry "line L column C: what" (1-based; C counts bytes).
Result<Value> parse(std::string_view text);

} // namespace clientconfig::json
