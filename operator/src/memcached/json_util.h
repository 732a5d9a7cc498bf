// Small, exception-free accessors over cpprestsdk JSON values, so the domain code reads Kubernetes
// objects without try/catch at every field. Missing fields and wrong types give the fallback.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// cpprestsdk's U() macro collides with GoogleTest's templates; nothing here needs it.
#ifndef _TURN_OFF_PLATFORM_STRING
#define _TURN_OFF_PLATFORM_STRING
#endif
#include <cpprest/json.h>

#include "kube/object_meta.h"

namespace mcop::memcached {

using Json = web::json::value;

// The value at a path of object keys, or nullptr when any step is missing or not an object.
const Json* findPath(const Json& v, std::initializer_list<std::string_view> path);

std::string stringAt(const Json& v, std::initializer_list<std::string_view> path,
                     const std::string& fallback = "");
std::optional<int64_t> intAt(const Json& v, std::initializer_list<std::string_view> path);
std::optional<bool> boolAt(const Json& v, std::initializer_list<std::string_view> path);
// A string-to-string map (labels, nodeSelector); non-string values are skipped.
std::map<std::string, std::string> stringMapAt(const Json& v,
                                               std::initializer_list<std::string_view> path);

Json jsonString(std::string_view s);
Json jsonStringArray(const std::vector<std::string>& items);
Json jsonStringMap(const std::map<std::string, std::string>& m);
// An object from key/value pairs (keys kept sorted by cpprestsdk, so serialization is stable).
Json jsonObject(std::initializer_list<std::pair<std::string, Json>> fields);
Json jsonArray(std::vector<Json> items);

// Semantic equality (numbers by value, objects by key): the right test for "did status change".
using kube::jsonEqual;

// Deterministic 64-bit FNV-1a of the serialized value, as 16 hex digits.
std::string jsonHash(const Json& v);

}  // namespace mcop::memcached
