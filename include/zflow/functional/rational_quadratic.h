#pragma once
/// \file
/// Monotonic rational-quadratic splines (Durkan, Bekasov, Murray & Papamakarios 2019,
/// "Neural Spline Flows", §3.1 and Appendix A), stateless. K bins on [−B, B]; outside the
/// interval the map is the identity with log-derivative 0 ("linear tails"), and the
/// boundary derivatives are fixed to 1 so the map is continuously differentiable there.

#include <string>

#include <ATen/core/Tensor.h>

namespace zflow::functional {

/// Options of the spline.
struct SplineOptions {
  /// Half-width B of the interval [−B, B] covered by the bins.
  double tail_bound = 3.0;
  /// Smallest bin width and height, as fractions of 2B (keeps bins from collapsing).
  double min_bin_width = 1e-3;
  double min_bin_height = 1e-3;
  /// Smallest derivative at the inner knots.
  double min_derivative = 1e-3;
};

/// Number of unconstrained parameters per element for K bins with linear tails:
/// K widths, K heights and K − 1 inner-knot derivatives.
inline int64_t spline_param_count(int64_t bins) { return 3 * bins - 1; }

/// Result: outputs with the inputs' shape and the elementwise log|dy/dx| (same shape).
struct SplineResult {
  at::Tensor outputs;
  at::Tensor logabsdet;
};

/// Applies the spline elementwise. `inputs` has shape S; `params` has shape S × (3K − 1):
/// [..., 0:K] unnormalised widths, [..., K:2K] unnormalised heights, [..., 2K:3K−1]
/// unconstrained inner derivatives (softplus + min_derivative). Widths and heights go
/// through a softmax and the minimums. With `inverse`, computes x from y (the inverse
/// map) and the log-derivative of the inverse map, −log|dy/dx| at that x.
///
/// Every input gives finite outputs and finite gradients: points on a knot, exactly at
/// ±B, far outside (identity), in float32 and float64. Elements outside [−B, B] never
/// see NaN/Inf intermediates, so nothing leaks through `where` into the gradients.
SplineResult rational_quadratic_spline(const at::Tensor& inputs, const at::Tensor& params,
                                       bool inverse, const SplineOptions& options = {});

/// Checks a layer's spline settings: bins ≥ 1, a positive finite tail bound, and minimum
/// bin sizes that leave room for K bins. Throws ConfigError naming `owner`.
void check_spline_settings(const std::string& owner, int64_t bins, const SplineOptions& options);

/// Shifts the raw inner-knot derivatives of `params` [..., 3K − 1] so that all-zero
/// parameters give derivative exactly 1 at every knot: with uniform bins (softmax of
/// zeros) the spline is then exactly the identity. Layers whose conditioner starts at zero
/// use this to start as the identity map.
at::Tensor identity_offset(const at::Tensor& params, int64_t bins, const SplineOptions& options);

}  // namespace zflow::functional
