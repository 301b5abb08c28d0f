#pragma once
/// \file
/// JSON specs: every transform, distribution and flow is described by a JSON object with a
/// "type" field and its options, from which the registry rebuilds it. These helpers read
/// fields with clear ConfigError messages.
///
/// Example (a factory for a hypothetical "scale" transform):
///
///     zflow::Json spec = zflow::Json::parse(R"({"type": "scale", "features": 4})");
///     zflow::reject_unknown_fields(spec, {"features", "factor"});
///     auto features = zflow::spec_required<int64_t>(spec, "features");  // 4
///     auto factor = zflow::spec_optional<double>(spec, "factor", 1.0);   // 1.0 (absent)
///     zflow::require_positive("scale: features", features);

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "zflow/core/error.h"

namespace zflow {

using Json = nlohmann::json;

/// The spec's "type" for messages, or "?" when it has none (or not a string).
inline std::string spec_type(const Json& spec) {
  if (!spec.is_object()) return "?";
  const auto it = spec.find("type");
  return it != spec.end() && it->is_string() ? it->get<std::string>() : "?";
}

namespace detail {

template <typename T>
struct is_vector : std::false_type {};
template <typename U, typename A>
struct is_vector<std::vector<U, A>> : std::true_type {};

/// Whether `value` is a JSON integer that the integral type T holds exactly. nlohmann's
/// get<T>() would also convert 2.7 to 2, and 1e20 with undefined behaviour.
template <typename T>
bool integer_fits(const Json& value) {
  if (!value.is_number_integer()) return false;
  constexpr auto max = static_cast<uint64_t>(std::numeric_limits<T>::max());
  if (value.is_number_unsigned()) return value.get<uint64_t>() <= max;
  const auto v = value.get<int64_t>();
  if (v < 0) return std::is_signed_v<T> && v >= static_cast<int64_t>(std::numeric_limits<T>::min());
  return static_cast<uint64_t>(v) <= max;
}

/// Whether T is an integer type or a (nested) vector of one.
template <typename T>
constexpr bool holds_integers() {
  if constexpr (is_vector<T>::value) {
    return holds_integers<typename T::value_type>();
  } else {
    return std::is_integral_v<T> && !std::is_same_v<T, bool>;
  }
}

/// Whether get<T>() on `value` would be exact: integers (and arrays of them) are checked
/// here, every other type by nlohmann's own type checks.
template <typename T>
bool spec_value_fits(const Json& value) {
  if constexpr (!holds_integers<T>()) {
    return true;
  } else if constexpr (!is_vector<T>::value) {
    return integer_fits<T>(value);
  } else {
    if (!value.is_array()) return false;
    for (const auto& item : value) {
      if (!spec_value_fits<typename T::value_type>(item)) return false;
    }
    return true;
  }
}

}  // namespace detail

/// Reads `spec[key]` as T; ConfigError naming the key and the spec's type if it is
/// missing or has the wrong JSON type. Integer fields (and arrays of them) take only JSON
/// integers that T can hold: 2.7, 1e20 or -1 for an unsigned field are errors.
template <typename T>
T spec_required(const Json& spec, const std::string& key) {
  if (!spec.is_object() || !spec.contains(key)) {
    throw ConfigError("spec of type '" + spec_type(spec) + "' is missing the field '" + key + "'");
  }
  const Json& value = spec.at(key);
  const auto wrong = [&](const std::string& why) {
    return ConfigError("spec of type '" + spec_type(spec) + "': field '" + key + "' " + why +
                       " (got " + value.dump(-1, ' ', false, Json::error_handler_t::replace) + ")");
  };
  if (!detail::spec_value_fits<T>(value)) {
    if constexpr (detail::is_vector<T>::value) {
      throw wrong("must be an array of integers in range");
    }
    if (!value.is_number_integer()) throw wrong("must be an integer");
    throw wrong("is out of range");
  }
  try {
    return value.get<T>();
  } catch (const nlohmann::json::exception&) {
    throw wrong("has the wrong type");
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
