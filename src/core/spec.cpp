#include "zflow/core/spec.h"

#include <algorithm>

namespace zflow {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void require_positive(const std::string& what, long long value) {
  if (value <= 0) throw ConfigError(what + " must be positive (got " + std::to_string(value) + ")");
}

void reject_unknown_fields(const Json& spec, const std::vector<std::string>& allowed) {
  if (!spec.is_object()) throw ConfigError("a spec must be a JSON object, got " + spec.dump());
  std::string unknown;
  for (const auto& item : spec.items()) {
    if (item.key() == "type") continue;
    if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end()) {
      unknown += (unknown.empty() ? "" : ", ") + item.key();
    }
  }
  if (!unknown.empty()) {
    throw ConfigError("spec of type '" + spec_type(spec) + "' has unknown field(s): " + unknown);
  }
}

}  // namespace zflow
