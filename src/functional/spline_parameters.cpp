#include <cmath>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/functional/rational_quadratic.h"

namespace zflow::functional {

void check_spline_settings(const std::string& owner, int64_t bins, const SplineOptions& options) {
  if (bins < 1) throw ConfigError(owner + ": bins must be >= 1, got " + std::to_string(bins));
  if (!(options.tail_bound > 0) || !std::isfinite(options.tail_bound)) {
    throw ConfigError(owner + ": tail_bound must be positive and finite");
  }
  if (static_cast<double>(bins) * options.min_bin_width > 1.0 ||
      static_cast<double>(bins) * options.min_bin_height > 1.0) {
    throw ConfigError(owner + ": too many bins (" + std::to_string(bins) +
                      ") for the minimum bin size " + std::to_string(options.min_bin_width));
  }
}

at::Tensor identity_offset(const at::Tensor& params, int64_t bins, const SplineOptions& options) {
  // derivative = min_derivative + softplus(raw + c) = 1 at raw = 0  ⇔  c = softplus⁻¹(1 − min).
  const double target = 1.0 - options.min_derivative;
  const double offset = std::log(std::expm1(target));
  const at::Tensor widths_heights = params.narrow(-1, 0, 2 * bins);
  // K − 1 inner derivatives, or K with the circular spline's shared one at the ends.
  const at::Tensor derivatives = params.narrow(-1, 2 * bins, params.size(-1) - 2 * bins) + offset;
  return at::cat({widths_heights, derivatives}, -1);
}

}  // namespace zflow::functional
