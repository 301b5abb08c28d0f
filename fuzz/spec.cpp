// Fuzz target: JSON specs of flows, transforms and distributions, built with make_flow,
// make_transform or make_distribution after the size checks; a spec that builds must
// rebuild from the spec the built object reports.

#include <algorithm>

#include "fuzz_spec.h"
#include "zflow/core/error.h"
#include "zflow/flows/registry.h"

namespace {

using zflow::Json;

/// Builds `spec` with the builder its type calls for and returns what it reports.
Json build(const Json& spec) {
  const std::string type = zflow::spec_type(spec);
  if (type == "flow") return zflow::make_flow(spec)->spec();
  const auto distributions = zflow::registered_distributions();
  if (std::find(distributions.begin(), distributions.end(), type) != distributions.end()) {
    return zflow::make_distribution(spec)->spec();
  }
  return zflow::make_transform(spec)->spec();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Json spec = Json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (spec.is_discarded() || !zflow::fuzz::small_enough(spec)) return 0;
  Json reported;
  try {
    reported = build(spec);
  } catch (const zflow::Error&) {
    return 0;
  }
  // The reported spec describes the same object: it must build without error.
  build(reported);
  return 0;
}
