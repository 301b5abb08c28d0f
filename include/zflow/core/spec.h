#pragma once
/// \file
/// JSON specs: every transform, distribution and flow is described by a JSON object with a
/// "type" field and its options, from which the registry rebuilds it. These helpers read
/// fields with clear ConfigError messages.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "zflow/core/error.h"

namespace zflow {

using Json = nlohmann::json;

/// Reads `spec[key]` as T; ConfigError naming the key and the spec's type if it is
/// missing or has the wrong JSON type.
template <typename T>
T spec_required(const Json& spec, const std::string& key) {
  if (!spec.is_object() || !spec.contains(key)) {
    throw ConfigError("spec of type '" + spec.value("type", std::string("?")) +
                      "' is missing the field '" + key + "'");
  }
  try {
    return spec.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ConfigError("spec of type '" + spec.value("type", std::string("?")) + "': field '" + key +
                      "' has the wrong type (" + spec.at(key).dump() + ")");
  }
}

/// Reads `spec[key]` as T, or `fallback` when the field is absent.
template <typename T>
T spec_optional(const Json& spec, const std::string& key, const T& fallback) {
  if (!spec.is_object() || !spec.contains(key) || spec.at(key).is_null()) return fallback;
  return spec_required<T>(spec, key);
}

/// "[1, 28, 28]": a shape for messages.
std::string shape_string(const std::vector<int64_t>& shape);

/// Throws ConfigError unless `value > 0`.
void require_positive(const std::string& what, long long value);

/// Throws ConfigError listing the fields of `spec` that are not in `allowed` (typos in a
/// hand-written spec should not be silently ignored). "type" is always allowed.
void reject_unknown_fields(const Json& spec, const std::vector<std::string>& allowed);

}  // namespace zflow
