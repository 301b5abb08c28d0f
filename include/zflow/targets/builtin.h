#pragma once
/// \file
/// The built-in targets, each with its formula, log Z and source in docs/variational.md:
///
/// | name       | D       | domain    | log Z                                               |
/// |------------|---------|-----------|-----------------------------------------------------|
/// | u1 … u4    | 2       | R²        | u1 quadrature, u2…u4 analytic (Rezende & Mohamed 2015)|
/// | gmm40      | 2       | R²        | 0 (40 equal Gaussians, FAB, Midgley 2023)           |
/// | funnel     | 10      | R^D       | 0 (Neal 2003)                                       |
/// | many-well  | 32      | R^D       | 16·(log 11784.5… + ½ log 2π) (FAB)                  |
/// | camel      | 8       | [0, 1]^D  | analytic, erf (VEGAS; i-flow, Gao 2020)             |
///
/// Example:
///
///     zflow::TargetPtr funnel = zflow::make_builtin_target("funnel");      // D = 10
///     zflow::TargetPtr camel = zflow::make_builtin_target("camel", 4);     // [0, 1]^4
///
/// U2, U3 and U4 as printed in Rezende & Mohamed's Table 1 do not decay along z1; zflow adds
/// (z1/4)⁴ to each energy (an envelope exp(−(z1/4)⁴), e^{−1} at |z1| = 4), which makes them
/// normalisable with an analytic log Z. Their plot boxes are [−6, 6]² rather than the
/// paper's [−4, 4]², since the envelope leaves 6.8% of the mass at |z1| > 4 (0.05% beyond 6).

#include <cstdint>
#include <string>
#include <vector>

#include "zflow/targets/target.h"

namespace zflow {

/// One built-in: its name, default dimension, whether another D is allowed, and a line.
struct BuiltinTargetInfo {
  std::string name;
  int64_t default_dim = 2;
  bool any_dim = false;
  std::string summary;
};

/// The built-ins in the order of the table above.
std::vector<BuiltinTargetInfo> builtin_targets();

/// Built-in `name` in dimension `dim` (0: its default). ConfigError naming the choices for
/// an unknown name, and for a D the target does not allow (u1…u4 and gmm40 are 2-D,
/// many-well needs an even D, funnel D ≥ 2).
TargetPtr make_builtin_target(const std::string& name, int64_t dim = 0);

/// A built-in name, or else a TorchScript file (`.pt`, `.pth` or any existing file):
/// what the CLI's --target takes. ConfigError when it is neither.
TargetPtr resolve_target(const std::string& name_or_file, int64_t dim = 0);

}  // namespace zflow
