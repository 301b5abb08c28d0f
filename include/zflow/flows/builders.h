#pragma once
/// \file
/// Ready-made architectures, returned as flow specs (so that what is built can be saved,
/// printed and rebuilt): RealNVP, NICE and a tabular Glow.

#include <cstdint>
#include <string>
#include <vector>

#include "zflow/core/spec.h"

namespace zflow {

/// Options shared by the builders. Unset fields take each builder's default.
struct BuilderOptions {
  /// Coupling layers (realnvp, nice) or steps (glow).
  int64_t layers = 8;
  /// Hidden width of the conditioners.
  int64_t hidden = 64;
  /// Hidden layers (or residual blocks) per conditioner.
  int64_t depth = 2;
  /// Conditioner activation.
  std::string activation = "relu";
  /// "mlp" or "resmlp".
  std::string conditioner = "mlp";
  /// Bound b of the affine couplings' soft-clamped log-scale.
  double scale_bound = 3.0;
  /// Size of the context vector (0 = unconditional).
  int64_t context_features = 0;
  /// Seed of random permutations.
  uint64_t seed = 0;
  /// Spline bins (nsf-*).
  int64_t bins = 8;
  /// Half-width B of the splines' interval [−B, B]; identity outside (nsf-*).
  double tail_bound = 3.0;
  /// Base distribution: "standard_normal" or "diagonal_normal".
  std::string base = "standard_normal";
};

/// Names of the ready-made models with a one-line description each.
std::vector<std::pair<std::string, std::string>> builder_names();

/// The spec of model `name` for `features`-dimensional data; ConfigError if unknown.
Json build_flow_spec(const std::string& name, int64_t features, const BuilderOptions& options);

/// Inserts a fixed standardisation (z = (x − mean)/std) as the first layer of a flow spec.
Json with_standardization(const Json& flow_spec, const std::vector<double>& mean,
                          const std::vector<double>& std);

}  // namespace zflow
