#pragma once
/// \file
/// Monotonic rational-quadratic splines (Durkan, Bekasov, Murray & Papamakarios 2019,
/// "Neural Spline Flows", §3.1 and Appendix A, https://arxiv.org/abs/1906.04032; after
/// Gregory & Delbourgo 1982), stateless. K bins on [−B, B]; outside the interval the map
/// is the identity with log-derivative 0 ("linear tails"), and the boundary derivatives
/// are fixed to 1 so the map is continuously differentiable there.
///
/// In bin k, with knots (x⁽ᵏ⁾, y⁽ᵏ⁾), width w_k, height h_k, slope s_k = h_k / w_k, knot
/// derivatives δ_k, δ_{k+1} and θ = (x − x⁽ᵏ⁾) / w_k ∈ [0, 1] (the paper's eq. 4 and 5):
///
///     y = y⁽ᵏ⁾ + h_k [s_k θ² + δ_k θ(1−θ)] / [s_k + (δ_{k+1} + δ_k − 2 s_k) θ(1−θ)]
///     dy/dx = s_k² [δ_{k+1} θ² + 2 s_k θ(1−θ) + δ_k (1−θ)²]
///             / [s_k + (δ_{k+1} + δ_k − 2 s_k) θ(1−θ)]²
///
/// The inverse solves a quadratic in θ (Appendix A). docs/splines.md has the derivations
/// and the numerics.
///
/// Example (x [B, D], K = 8 bins, parameters from a conditioner or random):
///
///     namespace F = zflow::functional;
///     at::Tensor params = torch::randn({B, D, F::spline_param_count(8)});
///     F::SplineResult y = F::rational_quadratic_spline(x, params, /*inverse=*/false);
///     F::SplineResult back = F::rational_quadratic_spline(y.outputs, params, true);
///     // back.outputs ≈ x, back.logabsdet ≈ −y.logabsdet (elementwise, [B, D])

#include <cstdint>
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
///
/// CPU float32/float64 tensors (any shape and strides) go through the fused kernel of
/// rational_quadratic_fused.cpp: one pass over the elements for the values, one for all
/// the gradients (a custom autograd function that saves only `inputs` and `params` and
/// recomputes in its backward pass). Everything else (CUDA tensors, other dtypes), and
/// everything while zflow::use_fused_kernels(false) is in effect (core/kernels.h), uses
/// rational_quadratic_spline_reference. Both evaluate the same formulas in the same order;
/// they agree bit for bit where their exponentials do, otherwise to within each element's
/// conditioning (docs/splines.md, "The fused kernel"). Second derivatives (backward with
/// create_graph = true) are those of the reference.
SplineResult rational_quadratic_spline(const at::Tensor& inputs, const at::Tensor& params,
                                       bool inverse, const SplineOptions& options = {});

/// The same spline as a chain of plain ATen operations (about 60 of them), differentiable
/// by ordinary autograd to any order, on any device and floating dtype. It is the
/// reference the fused kernel is tested against, its fallback for CUDA tensors and other
/// dtypes, and what its double backward differentiates. Same contract and checks as
/// rational_quadratic_spline.
SplineResult rational_quadratic_spline_reference(const at::Tensor& inputs, const at::Tensor& params,
                                                 bool inverse, const SplineOptions& options = {});

/// Number of unconstrained parameters per element of a circular spline with K bins:
/// K widths, K heights, K − 1 inner-knot derivatives and the one shared by the ends.
inline int64_t circular_spline_param_count(int64_t bins) { return 3 * bins; }

/// A circular rational-quadratic spline (Rezende et al. 2020, "Normalizing Flows on Tori
/// and Spheres", §3.2, https://arxiv.org/abs/2002.02428): a diffeomorphism of the circle
/// [−B, B) (B = options.tail_bound, π for angles in radians). Inputs are first wrapped onto
/// [−B, B) (x − 2B·⌊(x + B)/2B⌋); the knots at −B and B are fixed and share the derivative
/// δ_0 = δ_K, so the map and its derivative are continuous across ±B. Outputs lie in
/// [−B, B]. `params` has shape inputs × 3K: [..., 0:K] widths, [..., K:2K] heights,
/// [..., 2K:3K−1] inner derivatives, [..., 3K−1] the ends' derivative (softplus +
/// min_derivative). Computed by plain ATen operations (the fused kernel serves the spline
/// with linear tails only); identity_offset makes all-zero parameters the identity here too.
SplineResult circular_rational_quadratic_spline(const at::Tensor& inputs, const at::Tensor& params,
                                                bool inverse, const SplineOptions& options = {});

namespace detail {

/// The argument checks of circular_rational_quadratic_spline (params inputs × 3K).
int64_t check_circular_spline_arguments(const at::Tensor& inputs, const at::Tensor& params,
                                        const SplineOptions& options);

/// The argument checks of both implementations (c10::Error): defined tensors on one
/// device, params of shape inputs × (3K − 1) with K ≥ 1, one floating dtype, B > 0,
/// 0 < min_bin_width·K ≤ 1 (heights alike) and min_derivative > 0. Returns K.
int64_t check_spline_arguments(const at::Tensor& inputs, const at::Tensor& params,
                               const SplineOptions& options);

/// Whether rational_quadratic_spline uses the fused kernel for these tensors: strided CPU
/// tensors of dtype float32 or float64.
bool fused_spline_applies(const at::Tensor& inputs, const at::Tensor& params);

/// The fused kernel itself (rational_quadratic_fused.cpp), for tensors where
/// fused_spline_applies; rational_quadratic_spline calls it after the checks.
SplineResult rational_quadratic_spline_fused(const at::Tensor& inputs, const at::Tensor& params,
                                             bool inverse, const SplineOptions& options);

}  // namespace detail

/// Checks a layer's spline settings: bins ≥ 1, a positive finite tail bound, and minimum
/// bin sizes that leave room for K bins. Throws ConfigError naming `owner`.
void check_spline_settings(const std::string& owner, int64_t bins, const SplineOptions& options);

/// Shifts the raw derivatives of `params` ([..., 3K − 1], or [..., 3K] for a circular
/// spline) so that all-zero parameters give derivative exactly 1 at every knot: with uniform bins
/// (softmax of zeros) the spline is then exactly the identity. Layers whose conditioner starts at
/// zero use this to start as the identity map.
at::Tensor identity_offset(const at::Tensor& params, int64_t bins, const SplineOptions& options);

}  // namespace zflow::functional
