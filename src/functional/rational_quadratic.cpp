// Monotonic rational-quadratic splines: Durkan, Bekasov, Murray & Papamakarios (2019),
// "Neural Spline Flows", §3.1 and Appendix A. Equation numbers below refer to that paper
// (arXiv:1906.04032): eq. 4 is the rational-quadratic map of a bin, eq. 5 its derivative;
// the inverse is the quadratic of Appendix A. docs/splines.md has the derivations.
//
// This file holds the public entry point, the argument checks and the reference
// implementation: plain ATen ops only, differentiable by autograd to any order and on any
// device. The entry point sends CPU float32/float64 tensors to the fused kernel of
// rational_quadratic_fused.cpp, which mirrors the reference's arithmetic step by step
// (same formulas, same order of operations), and everything else here, as it does
// everything while zflow::use_fused_kernels(false) is in effect (core/kernels.h).
//
// Notation (paper): knots (x^(k), y^(k)), k = 0..K, with x^(0) = y^(0) = −B and
// x^(K) = y^(K) = B; bin k has width w_k = x^(k+1) − x^(k), height h_k = y^(k+1) − y^(k),
// slope s_k = h_k / w_k, and derivatives δ_k at its left and δ_{k+1} at its right knot.
//
// Numerics (the contract of rational_quadratic.h):
// - every element, inside or outside [−B, B], is evaluated by the spline on a copy
//   clamped into [−B, B]; the result is then selected with at::where. The spline is smooth
//   and finite on the whole closed interval, so the branch that `where` discards never
//   holds NaN/Inf and its zero gradient cannot become 0 · ∞ = NaN in the backward pass;
// - the bin search compares with the knots 0..K−1 only (the last knot is left out, which
//   is equivalent to nudging it by +eps) and clamps the index into [0, K−1], so a value
//   exactly at +B falls in the last bin and nothing can run off either end;
// - θ is clamped into [0, 1] inside its bin (forward and inverse);
// - each point is computed from the nearer knot of its bin (the bin mirrored when that is
//   the right knot, see `Side`): knots map exactly onto knots, ±B onto ±B, and points
//   next to a knot keep full relative precision;
// - no denominator can vanish and nothing cancels catastrophically: w_k, h_k ≥
//   2B · min_bin_{width,height} > 0; the denominator of eq. 4 is ≥ s_k / 2 > 0; the
//   discriminant of the inverse is evaluated as a sum of squares (> 0 on the whole bin,
//   clamped at 0 all the same) and the root by the formula without cancellation for the
//   sign of b: the stable 2c / (−b − √(b² − 4ac)) for b ≥ 0, (−b + √(b² − 4ac)) / 2a,
//   where a ≥ |b| > 0, for b < 0.

#include "zflow/functional/rational_quadratic.h"

#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "zflow/core/kernels.h"

namespace zflow::functional {

namespace {

// Knot positions along one axis from unnormalised bin sizes [..., K]:
// sizes = min + (1 − K·min) · softmax(raw), then cumulative sums scaled onto [−B, B], with
// the first knot set to exactly −B and the last to exactly +B. Returns {knots [..., K+1],
// sizes [..., K]} where sizes are the differences of the knots actually used, so that
// knots[k] + sizes[k] == knots[k+1] up to one rounding.
std::pair<at::Tensor, at::Tensor> make_knots(const at::Tensor& raw, double min_size, double bound) {
  const int64_t bins = raw.size(-1);
  at::Tensor fractions = at::softmax(raw, -1);
  fractions = min_size + (1.0 - min_size * static_cast<double>(bins)) * fractions;
  at::Tensor cumulative = at::cumsum(fractions, -1);
  // Pad with a leading 0: knots [..., K+1] on [0, 1] before scaling.
  std::vector<int64_t> pad_shape(raw.sizes().begin(), raw.sizes().end());
  pad_shape.back() = 1;
  at::Tensor zero = at::zeros(pad_shape, raw.options());
  at::Tensor knots = at::cat({zero, cumulative}, -1) * (2.0 * bound) - bound;
  // Exact ends (the cumulative sum only reaches 1 up to rounding). Built with cat rather
  // than an in-place write so that autograd sees an ordinary graph.
  at::Tensor lower = at::full(pad_shape, -bound, raw.options());
  at::Tensor upper = at::full(pad_shape, bound, raw.options());
  knots = at::cat({lower, knots.narrow(-1, 1, bins - 1), upper}, -1);
  at::Tensor sizes = knots.narrow(-1, 1, bins) - knots.narrow(-1, 0, bins);
  return {knots, sizes};
}

// Index k of the bin holding `values` (already clamped into [−B, B]): the number of knots
// 0..K−1 that are ≤ value, minus 1, clamped into [0, K−1]. Leaving out knot K means that
// +B belongs to the last bin (as if the last knot were nudged up by eps).
at::Tensor search_bins(const at::Tensor& knots, const at::Tensor& values) {
  const int64_t bins = knots.size(-1) - 1;
  at::Tensor inner = knots.narrow(-1, 0, bins);
  at::Tensor count = at::ge(values.unsqueeze(-1), inner).sum(-1);
  return (count - 1).clamp(0, bins - 1);
}

at::Tensor gather_bin(const at::Tensor& table, const at::Tensor& index) {
  return table.gather(-1, index.unsqueeze(-1)).squeeze(-1);
}

}  // namespace

namespace detail {

namespace {

/// The checks both kinds of spline share: `params` [inputs..., count] on the inputs'
/// device and dtype.
void check_tensors(const at::Tensor& inputs, const at::Tensor& params, const char* layout) {
  TORCH_CHECK(inputs.defined() && params.defined(), "rational_quadratic_spline: undefined tensor");
  TORCH_CHECK(inputs.device() == params.device(),
              "rational_quadratic_spline: inputs and params must be on one device, got ",
              inputs.device(), " and ", params.device());
  TORCH_CHECK(
      params.dim() == inputs.dim() + 1 && params.sizes().slice(0, inputs.dim()) == inputs.sizes(),
      "rational_quadratic_spline: params must have shape inputs × (", layout, "); inputs ",
      inputs.sizes(), ", params ", params.sizes());
  TORCH_CHECK(inputs.scalar_type() == params.scalar_type() && inputs.is_floating_point(),
              "rational_quadratic_spline: inputs and params must share a floating dtype, got ",
              inputs.scalar_type(), " and ", params.scalar_type());
}

void check_bins_and_options(int64_t bins, const SplineOptions& options) {
  const double bound = options.tail_bound;
  TORCH_CHECK(bound > 0, "rational_quadratic_spline: tail_bound must be positive, got ", bound);
  TORCH_CHECK(options.min_bin_width > 0 && options.min_bin_width * bins <= 1.0,
              "rational_quadratic_spline: need 0 < min_bin_width ≤ 1/K, got ",
              options.min_bin_width, " with K = ", bins);
  TORCH_CHECK(options.min_bin_height > 0 && options.min_bin_height * bins <= 1.0,
              "rational_quadratic_spline: need 0 < min_bin_height ≤ 1/K, got ",
              options.min_bin_height, " with K = ", bins);
  TORCH_CHECK(options.min_derivative > 0,
              "rational_quadratic_spline: min_derivative must be positive, got ",
              options.min_derivative);
}

}  // namespace

int64_t check_spline_arguments(const at::Tensor& inputs, const at::Tensor& params,
                               const SplineOptions& options) {
  check_tensors(inputs, params, "3K − 1");
  const int64_t count = params.size(-1);
  TORCH_CHECK(count >= 2 && (count + 1) % 3 == 0,
              "rational_quadratic_spline: the last dimension of params must be 3K − 1 for some "
              "K ≥ 1, got ",
              count);
  const int64_t bins = (count + 1) / 3;
  check_bins_and_options(bins, options);
  return bins;
}

int64_t check_circular_spline_arguments(const at::Tensor& inputs, const at::Tensor& params,
                                        const SplineOptions& options) {
  check_tensors(inputs, params, "3K");
  const int64_t count = params.size(-1);
  TORCH_CHECK(count >= 3 && count % 3 == 0,
              "circular_rational_quadratic_spline: the last dimension of params must be 3K for "
              "some K ≥ 1, got ",
              count);
  const int64_t bins = count / 3;
  check_bins_and_options(bins, options);
  return bins;
}

bool fused_spline_applies(const at::Tensor& inputs, const at::Tensor& params) {
  const auto dtype = inputs.scalar_type();
  return inputs.device().is_cpu() && params.device().is_cpu() && inputs.layout() == at::kStrided &&
         params.layout() == at::kStrided && (dtype == at::kFloat || dtype == at::kDouble) &&
         params.scalar_type() == dtype;
}

}  // namespace detail

SplineResult rational_quadratic_spline(const at::Tensor& inputs, const at::Tensor& params,
                                       bool inverse, const SplineOptions& options) {
  detail::check_spline_arguments(inputs, params, options);
  if (fused_kernels() && detail::fused_spline_applies(inputs, params)) {
    return detail::rational_quadratic_spline_fused(inputs, params, inverse, options);
  }
  return rational_quadratic_spline_reference(inputs, params, inverse, options);
}

namespace {

/// A spline's knots (K + 1 per element, [..., K + 1]) and bin sizes ([..., K]), after the
/// softmax and minimums, and the derivatives at every knot ([..., K + 1]).
struct Knots {
  at::Tensor cumwidths, widths, cumheights, heights, derivatives;
};

/// The knots of `params` [..., ≥ 2K]: widths and heights (§3.1) through a softmax and the
/// minimum bin size; the knot derivatives as given.
Knots knots(const at::Tensor& params, int64_t bins, at::Tensor derivatives,
            const SplineOptions& options) {
  auto [cumwidths, widths] =
      make_knots(params.narrow(-1, 0, bins), options.min_bin_width, options.tail_bound);
  auto [cumheights, heights] =
      make_knots(params.narrow(-1, bins, bins), options.min_bin_height, options.tail_bound);
  return {cumwidths, widths, cumheights, heights, std::move(derivatives)};
}

/// The spline given its knots: inputs in [−B, B] go through the bins, the others are the
/// identity (linear tails).
SplineResult spline_on_knots(const at::Tensor& inputs, const Knots& knots, double bound,
                             bool inverse) {
  const at::Tensor& cumwidths = knots.cumwidths;
  const at::Tensor& widths = knots.widths;
  const at::Tensor& cumheights = knots.cumheights;
  const at::Tensor& heights = knots.heights;
  const at::Tensor& derivatives = knots.derivatives;
  // Linear tails: only values in [−B, B] use the spline; the others are the identity.
  // The spline itself always runs on a clamped copy (see the note at the top of the file).
  at::Tensor inside = at::logical_and(inputs >= -bound, inputs <= bound);
  at::Tensor clamped = inputs.clamp(-bound, bound);

  at::Tensor bin = search_bins(inverse ? cumheights : cumwidths, clamped);
  at::Tensor next = bin + 1;
  at::Tensor x_k = gather_bin(cumwidths, bin);      // x^(k)
  at::Tensor x_k1 = gather_bin(cumwidths, next);    // x^(k+1)
  at::Tensor w_k = gather_bin(widths, bin);         // w_k
  at::Tensor y_k = gather_bin(cumheights, bin);     // y^(k)
  at::Tensor y_k1 = gather_bin(cumheights, next);   // y^(k+1)
  at::Tensor h_k = gather_bin(heights, bin);        // h_k
  at::Tensor s_k = h_k / w_k;                       // s_k
  at::Tensor d_k = gather_bin(derivatives, bin);    // δ_k
  at::Tensor d_k1 = gather_bin(derivatives, next);  // δ_{k+1}

  // The bin seen from its nearer knot. Mirroring a bin (θ → 1 − θ, y − y^(k) →
  // y^(k+1) − y, δ_k ↔ δ_{k+1}) maps eqs. 4 and 5 onto themselves, so one set of formulas
  // in the local coordinate t ∈ [0, 1] measured from the near knot serves both halves:
  //   left  (t = θ):     y = y^(k)   + Δy,   x = x^(k)   + t w_k,
  //   right (t = 1 − θ): y = y^(k+1) − Δy,   x = x^(k+1) − t w_k,
  // with Δy = h_k t [s_k t + δ_near (1 − t)] / [s_k + (δ_near + δ_far − 2 s_k) t(1 − t)]
  // (eq. 4, whose numerator s θ² + δ_k θ(1 − θ) = θ [s θ + δ_k (1 − θ)]). Differences from
  // the near knot are small where the point is close to it, so they keep their relative
  // precision, and a knot maps exactly onto a knot.
  at::Tensor right;  // [bool] the point lies in the right half of its bin
  at::Tensor t;      // distance from the near knot, in units of w_k (forward) or h_k (inverse)
  if (!inverse) {
    at::Tensor theta = (clamped - x_k) / w_k;  // ξ of eq. 4
    right = theta > 0.5;
    t = at::where(right, (x_k1 - clamped) / w_k, theta).clamp(0.0, 1.0);
  } else {
    at::Tensor u = (clamped - y_k) / h_k;  // (y − y^(k)) / h_k
    right = u > 0.5;
    t = at::where(right, (y_k1 - clamped) / h_k, u).clamp(0.0, 1.0);
  }
  at::Tensor d_near = at::where(right, d_k1, d_k);
  at::Tensor d_far = at::where(right, d_k, d_k1);
  at::Tensor d_sum = d_near + d_far - 2.0 * s_k;  // δ_{k+1} + δ_k − 2 s_k

  at::Tensor outputs;
  at::Tensor theta;  // local coordinate of the point in x, from the near knot
  if (!inverse) {
    theta = t;
    // Eq. 4 from the near knot.
    at::Tensor delta = h_k * theta * (s_k * theta + d_near * (1.0 - theta)) /
                       (s_k + d_sum * theta * (1.0 - theta));
    outputs = at::where(right, y_k1 - delta, y_k + delta);
  } else {
    // Appendix A: θ solves a θ² + b θ + c = 0 with (in the paper's left-knot frame)
    //   a = h_k (s_k − δ_k) + (y − y^(k)) (δ_{k+1} + δ_k − 2 s_k),
    //   b = h_k δ_k − (y − y^(k)) (δ_{k+1} + δ_k − 2 s_k),
    //   c = −s_k (y − y^(k)).
    // Divided by h_k, with u = (y − y^(k)) / h_k (here: u = t from the near knot, δ_near and
    // δ_far in place of δ_k and δ_{k+1}) and m = δ_near (1 − u) − δ_far u, these are
    //   b = m + 2 s_k u,   c = −s_k u,   a = s_k − b   (a + b = s_k: no cancellation in a),
    //   b² − 4ac = m² + 4 s_k² u (1 − u),
    // the discriminant as a sum of squares: > 0 on the whole bin (δ_near² at u = 0, δ_far²
    // at u = 1), free of the cancellation of b² − 4ac when |b| ≫ √(b² − 4ac) (steep bins in
    // float32), which could round it to ≤ 0 and make the gradient of √· infinite.
    at::Tensor u = t;
    at::Tensor m = d_near * (1.0 - u) - d_far * u;
    at::Tensor b = m + 2.0 * s_k * u;
    at::Tensor c = -s_k * u;
    at::Tensor a = s_k - b;
    at::Tensor root = at::sqrt((m.pow(2) + 4.0 * s_k.pow(2) * u * (1.0 - u)).clamp_min(0.0));
    // The root in [0, 1]. For b ≥ 0 the stable form of Appendix A, θ = 2c / (−b − √·): the
    // denominator is ≤ −√(b² − 4ac) < 0 and it avoids the 0/0 of (−b + √·) / 2a as a → 0.
    // For b < 0 that denominator would cancel (−b ≈ √· when c is small), while
    // (−b + √·) / 2a adds two positive terms and a = s_k − b > |b| > 0. Each branch's
    // denominator is replaced by a harmless 1 where the other branch is used, so that the
    // discarded branch cannot produce NaN/Inf (see the note at the top of the file).
    at::Tensor positive_b = b >= 0;
    at::Tensor stable = (2.0 * c) / at::where(positive_b, -b - root, at::ones_like(b));
    at::Tensor classic = (root - b) / at::where(positive_b, at::ones_like(a), 2.0 * a);
    theta = at::where(positive_b, stable, classic).clamp(0.0, 1.0);
    outputs = at::where(right, x_k1 - theta * w_k, x_k + theta * w_k);
  }

  // Eq. 5: dy/dx = s_k² [δ_{k+1} θ² + 2 s_k θ(1−θ) + δ_k (1−θ)²] / denominator², with the
  // denominator of eq. 4, here from the near knot (δ_{k+1} θ² ↔ δ_far t², δ_k (1−θ)² ↔
  // δ_near (1−t)²); for the inverse at the recovered θ, with the opposite sign.
  at::Tensor theta_one_minus = theta * (1.0 - theta);
  at::Tensor derivative_numerator =
      s_k.pow(2) *
      (d_far * theta.pow(2) + 2.0 * s_k * theta_one_minus + d_near * (1.0 - theta).pow(2));
  at::Tensor denominator = s_k + d_sum * theta_one_minus;
  at::Tensor logabsdet = at::log(derivative_numerator) - 2.0 * at::log(denominator);
  if (inverse) logabsdet = -logabsdet;

  return {at::where(inside, outputs, inputs),
          at::where(inside, logabsdet, at::zeros_like(logabsdet))};
}

}  // namespace

SplineResult rational_quadratic_spline_reference(const at::Tensor& inputs, const at::Tensor& params,
                                                 bool inverse, const SplineOptions& options) {
  const int64_t bins = detail::check_spline_arguments(inputs, params, options);
  const double bound = options.tail_bound;

  // Derivatives (§3.1) δ_k = min_derivative + softplus(raw) at the K − 1 inner knots, and δ = 1
  // at ±B so that the spline matches the identity tails to first order.
  std::vector<int64_t> pad_shape(params.sizes().begin(), params.sizes().end());
  pad_shape.back() = 1;
  at::Tensor one = at::ones(pad_shape, params.options());
  // Contiguous first: on a strided view LibTorch 1.13's softplus falls back to a scalar
  // loop, 8× slower, which was half of the spline's forward time.
  at::Tensor derivatives =
      bins > 1 ? at::cat({one,
                          options.min_derivative +
                              at::softplus(params.narrow(-1, 2 * bins, bins - 1).contiguous()),
                          one},
                         -1)
               : at::cat({one, one}, -1);

  return spline_on_knots(inputs, knots(params, bins, derivatives, options), bound, inverse);
}

SplineResult circular_rational_quadratic_spline(const at::Tensor& inputs, const at::Tensor& params,
                                                bool inverse, const SplineOptions& options) {
  const int64_t bins = detail::check_circular_spline_arguments(inputs, params, options);
  const double bound = options.tail_bound;
  // Rezende et al. 2020, §3.2: the knots at ±B are fixed (the spline maps [−B, B] onto
  // itself) and share one derivative, δ_0 = δ_K, so that the map and its derivative agree
  // at −B and at B, which are the same point of the circle.
  const at::Tensor raw = params.narrow(-1, 2 * bins, bins).contiguous();
  const at::Tensor knot_derivatives = options.min_derivative + at::softplus(raw);
  const at::Tensor boundary = knot_derivatives.narrow(-1, bins - 1, 1);
  const at::Tensor derivatives =
      at::cat({boundary, knot_derivatives.narrow(-1, 0, bins - 1), boundary}, -1);
  // The angle's representative in [−B, B): every input is inside, no tails.
  const at::Tensor wrapped = at::remainder(inputs + bound, 2.0 * bound) - bound;
  return spline_on_knots(wrapped, knots(params, bins, derivatives, options), bound, inverse);
}

}  // namespace zflow::functional
