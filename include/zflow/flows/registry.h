#pragma once
/// \file
/// Building transforms, distributions and flows from JSON specs. Every built-in type is
/// registered here explicitly (no static-initialisation tricks, which a static library
/// would drop); applications can add their own types with register_transform.
///
/// Example:
///
///     zflow::FlowPtr flow = zflow::make_flow(zflow::Json::parse(R"({"type": "flow",
///         "transform": {"type": "composite", "layers": [{"type": "permutation", "features": 2}]},
///         "base": {"type": "standard_normal", "shape": [2]}})"));
///     zflow::Json again = flow->spec();   // the same spec: save, print, rebuild

#include <functional>
#include <string>
#include <vector>

#include "zflow/core/distribution.h"
#include "zflow/core/transform.h"
#include "zflow/flows/flow.h"

namespace zflow {

using TransformFactory = std::function<TransformPtr(const Json& spec)>;
using DistributionFactory = std::function<DistributionPtr(const Json& spec)>;

/// Builds a transform from its spec; ConfigError for an unknown type or bad fields.
TransformPtr make_transform(const Json& spec);
/// Builds a distribution from its spec.
DistributionPtr make_distribution(const Json& spec);
/// Builds a flow from {"type": "flow", "transform": ..., "base": ...}.
FlowPtr make_flow(const Json& spec);

/// Adds (or replaces) a transform type.
void register_transform(const std::string& type, TransformFactory factory);
/// Adds (or replaces) a distribution type.
void register_distribution(const std::string& type, DistributionFactory factory);

/// Registered transform types, sorted.
std::vector<std::string> registered_transforms();
/// Registered distribution types, sorted.
std::vector<std::string> registered_distributions();

}  // namespace zflow
