#pragma once
/// \file
/// Planar, radial and Sylvester flows: residual maps x = z + g(z) whose log-determinant
/// follows from the matrix determinant lemma (Papamakarios et al. 2021, §3.3,
/// https://arxiv.org/abs/1912.02762), made for variational inference.
///
///     planar:     x = z + û tanh(wᵀz + b)              (Rezende & Mohamed 2015, eq. 10–12,
///                                                       https://arxiv.org/abs/1505.05770)
///     radial:     x = z + β (z − z0) / (α + ‖z − z0‖)   (same paper, eq. 13–14)
///     sylvester:  x = z + Q R tanh(R̃ Qᵀ z + b)          (van den Berg et al. 2018, eq. 13,
///                                                       https://arxiv.org/abs/1803.05649)
///
/// Direction (docs/conventions.md): the papers' closed-form map runs from noise to data, the
/// direction in which variational inference draws its samples and needs their log q. So it
/// is zflow's `inverse` (noise → data, one pass, with its log-determinant), and `forward`
/// (data → noise, for densities of given points) finds the pre-image numerically:
///
/// - planar: the pre-image reduces to one scalar equation in a = wᵀz,
///   a + (wᵀû) tanh(a + b) = wᵀx, strictly increasing; then z = x − û tanh(a + b);
/// - radial: the pre-image radius r = ‖z − z0‖ solves a quadratic, in closed form;
/// - sylvester: in the rotated coordinates v = Qᵀz the map is upper triangular, so the
///   pre-image is D scalar equations, solved by back-substitution from the last coordinate.
///
/// Every scalar equation has the form y = v + s tanh(t v + c) with 1 + s·t > 0, strictly
/// increasing in v, with the root in [y − |s|, y + |s|]: it is solved by Newton's method
/// safeguarded by bisection on that bracket (in float64, to machine precision), which
/// always converges; if it has not within `max_iterations` steps, forward throws
/// zflow::Error. The root then takes one Newton step of the whole system under autograd,
/// which leaves its value as it is and gives it the derivatives of the implicit function
/// (Jacobian −(∂G/∂v)⁻¹ ∂G/∂θ at the root of G), so that forward's outputs and
/// log-determinant are differentiable in the inputs and in every parameter.
///
/// Invertibility holds for any raw parameters: planar's û makes wᵀû = −1 + softplus(wᵀu)
/// > −1 (the paper's appendix A.1); radial takes α = softplus(α̂) > 0 and β = −α +
/// softplus(β̂) > −α; Sylvester's diagonals are r_ii = tanh(ρ_i), r̃_ii = tanh(ρ̃_i), so
/// r_ii r̃_ii > −1 (the paper's Theorem 2, with h = tanh, 0 < h' ≤ 1). Each takes [B, D].
///
/// Example:
///
///     auto planar = zflow::Planar(2);
///     auto [x, logabsdet] = planar->inverse(at::randn({8, 2}));  // noise → data, closed form
///     auto [z, back] = planar->forward(x);                        // z ≈ the noise, −logabsdet

#include <cstdint>

#include <torch/arg.h>

#include "zflow/core/transform.h"

namespace zflow {

/// Options of Planar ("planar").
struct PlanarOptions {
  /* implicit */ PlanarOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
  /// Steps of forward's root-finding before it gives up (at least 1); about 60 reach
  /// machine precision by bisection alone.
  TORCH_ARG(int64_t, max_iterations) = 100;
};

/// x = z + û tanh(wᵀz + b) from noise z to data x, log|det ∂x/∂z| = log(1 + wᵀû tanh'(wᵀz + b)),
/// with û = u + (m(wᵀu) − wᵀu) w/‖w‖², m(a) = −1 + softplus(a). Parameters u, w [D], b [1];
/// starts as the identity (û = 0, w a random unit vector).
class PlanarImpl : public TransformImpl {
 public:
  explicit PlanarImpl(const PlanarOptions& options);
  Json spec() const override;
  std::string describe() const override;
  Tensor u;
  Tensor w;
  Tensor b;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  /// The constrained û [D].
  Tensor u_hat() const;
  int64_t features_;
  int64_t max_iterations_;
};
TORCH_MODULE(Planar);

/// Options of Radial ("radial").
struct RadialOptions {
  /* implicit */ RadialOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
};

/// x = z + β (z − z0)/(α + r), r = ‖z − z0‖, from noise z to data x; with h = 1/(α + r),
/// log|det ∂x/∂z| = (D − 1) log(1 + βh) + log(1 + βh + βh'r) = (D − 1) log((α + β + r)/(α + r))
/// + log(1 + αβ/(α + r)²). Parameters z0 [D], raw α̂, β̂ [1]; starts as the identity (β = 0,
/// z0 and α̂ from U(−1/√D, 1/√D)).
class RadialImpl : public TransformImpl {
 public:
  explicit RadialImpl(const RadialOptions& options);
  Json spec() const override;
  std::string describe() const override;
  Tensor center;
  Tensor raw_alpha;
  Tensor raw_beta;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  void check(const Tensor& inputs) const;
  /// α > 0 and α + β > 0 (both [1]).
  std::pair<Tensor, Tensor> alpha_and_sum() const;
  /// The log-determinant of the noise → data map at noise radius r [B].
  Tensor logabsdet_at(const Tensor& radius) const;
  int64_t features_;
};
TORCH_MODULE(Radial);

/// Options of Sylvester ("sylvester").
struct SylvesterOptions {
  /* implicit */ SylvesterOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
  /// Householder reflections whose product is Q (H-SNF); D of them reach every orthogonal
  /// matrix. 0 gives Q = I, the triangular variant (T-SNF; alternate it with a reverse
  /// permutation).
  TORCH_ARG(int64_t, num_reflections) = 2;
  /// Steps of forward's root-finding per coordinate before it gives up (at least 1).
  TORCH_ARG(int64_t, max_iterations) = 100;
};

/// x = z + Q R tanh(R̃ Qᵀ z + b) from noise z to data x, Q = H_1 ⋯ H_K orthogonal (Householder
/// reflections H_k = I − 2 v_k v_kᵀ/‖v_k‖²), R and R̃ upper triangular [D, D]. Since Qᵀ Q = I,
/// det(I + Q R diag(h') R̃ Qᵀ) = det(I + diag(h') R̃ R) (Sylvester's determinant identity), a
/// triangular matrix: log|det ∂x/∂z| = Σ_i log(1 + r_ii r̃_ii tanh'((R̃ Qᵀ z + b)_i)). Starts
/// as the identity (R = 0; the reflections, R̃ and b random).
class SylvesterImpl : public TransformImpl {
 public:
  explicit SylvesterImpl(const SylvesterOptions& options);
  Json spec() const override;
  std::string describe() const override;
  /// Q [D, D] (for tests and inspection).
  Tensor orthogonal() const;

  Tensor reflections;           // [K, D], the Householder vectors v_k
  Tensor r_entries;             // [D, D], only the strictly upper part is used
  Tensor r_tilde_entries;       // [D, D], only the strictly upper part is used
  Tensor r_raw_diagonal;        // [D], r_ii = tanh(·)
  Tensor r_tilde_raw_diagonal;  // [D], r̃_ii = tanh(·)
  Tensor bias;                  // [D]

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  void check(const Tensor& inputs) const;
  /// R and R̃ [D, D], upper triangular with their constrained diagonals.
  std::pair<Tensor, Tensor> triangles() const;
  int64_t features_;
  int64_t num_reflections_;
  int64_t max_iterations_;
};
TORCH_MODULE(Sylvester);

}  // namespace zflow
