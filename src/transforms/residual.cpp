#include "zflow/transforms/residual.h"

#include <cmath>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/functional/monotone_root.h"
#include "zflow/transforms/orthogonal.h"

namespace zflow {

namespace {

/// Parameters drawn from U(−bound, bound) (float32, as every module starts).
Tensor uniform(at::IntArrayRef sizes, double bound) {
  return at::rand(sizes, at::kFloat) * (2 * bound) - bound;
}

/// The spread of the random initial parameters, 1/√D (as Pyro's).
double init_bound(int64_t features) { return 1.0 / std::sqrt(static_cast<double>(features)); }

void check_rows(const std::string& type, int64_t features, const Tensor& inputs) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == features, type, ": expected [B, ", features,
              "], got ", inputs.sizes());
}

/// tanh'(a) = 1 − tanh²(a), from th = tanh(a).
Tensor tanh_slope(const Tensor& th) { return 1 - th * th; }

/// Solves y = v + s·tanh(t·v + c) for v, element by element (broadcast tensors, float64,
/// no autograd), where 1 + s·t > 0 makes the right side strictly increasing in v (its slope
/// is 1 + s·t·tanh' ≥ min(1, 1 + s·t)). As |tanh| < 1 the root lies in [y − |s|, y + |s|]:
/// Newton's method from v = y, safeguarded by bisection on that bracket
/// (functional::solve_increasing; at most 16 steps in test_residual.cpp, with raw
/// parameters of up to 30 standard deviations). Error after `max_iterations` steps.
Tensor solve_tanh_equation(const Tensor& y, const Tensor& s, const Tensor& t, const Tensor& c,
                           int64_t max_iterations, const std::string& who) {
  // Broadcast to the target's shape; a non-finite c (from non-finite inputs, in Sylvester's
  // back-substitution) passes through as NaN.
  const Tensor target = y + 0 * c;
  const auto flat = [&](const Tensor& a) { return a.expand_as(target).reshape(-1); };
  const Tensor s_flat = flat(s), t_flat = flat(t), c_flat = flat(c);
  const Tensor spread = s.abs().expand_as(target);
  return functional::solve_increasing(
      [&](const Tensor& v, const Tensor& index) {
        const Tensor si = s_flat.index_select(0, index), ti = t_flat.index_select(0, index);
        const Tensor th = at::tanh(ti * v + c_flat.index_select(0, index));
        return std::make_pair(v + si * th, 1 + si * ti * tanh_slope(th));
      },
      target, target - spread, target + spread, target, max_iterations, who + ": forward");
}

/// Detached float64 copy for the solver.
Tensor solver_copy(const Tensor& t) { return t.detach().to(at::kDouble); }

}  // namespace

// ---- planar ---------------------------------------------------------------------------------

PlanarImpl::PlanarImpl(const PlanarOptions& options)
    : TransformImpl("planar"),
      features_(options.features()),
      max_iterations_(options.max_iterations()) {
  require_positive("planar: features", features_);
  require_positive("planar: max_iterations", max_iterations_);
  // The identity at the start, as zflow's other layers (the flow is then its base, which the
  // builders spread over the target's box): w a random unit vector, and u = a₀ w with
  // m(a₀) = 0, a₀ = ln(e − 1), which makes û = 0.
  Tensor direction = at::randn({features_}, at::kFloat);
  direction = direction / direction.norm();
  u = register_parameter("u", std::log(std::expm1(1.0)) * direction);
  w = register_parameter("w", direction);
  b = register_parameter("b", at::zeros({1}, at::kFloat));
}

// Rezende & Mohamed 2015, appendix A.1: û = u + (m(wᵀu) − wᵀu) w/‖w‖² gives wᵀû = m(wᵀu) =
// −1 + softplus(wᵀu) > −1, so 1 + wᵀû tanh' > 0 and the map is invertible. The 1e-20 keeps
// w = 0 finite (û = u, wᵀû = 0 then).
Tensor PlanarImpl::u_hat() const {
  const Tensor wu = at::dot(w, u);
  return u + (at::softplus(wu) - 1 - wu) * w / (at::dot(w, w) + 1e-20);
}

TransformOutput PlanarImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check_rows("planar", features_, inputs);
  const Tensor uh = u_hat();
  const Tensor th = at::tanh(at::matmul(inputs, w) + b);
  const Tensor x = inputs + th.unsqueeze(1) * uh;
  // Eq. 12: |det(I + û ψ(z)ᵀ)| = |1 + ûᵀψ(z)|, ψ(z) = tanh'(wᵀz + b) w.
  return {x, at::log1p(at::dot(w, uh) * tanh_slope(th))};
}

TransformOutput PlanarImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check_rows("planar", features_, inputs);
  const Tensor uh = u_hat();
  const Tensor s = at::dot(w, uh);
  // wᵀx = a + s tanh(a + b) for a = wᵀz: one increasing scalar equation per sample.
  const Tensor projection = at::matmul(inputs, w);
  Tensor a = solve_tanh_equation(solver_copy(projection), solver_copy(s),
                                 at::ones({}, at::kDouble).to(inputs.device()), solver_copy(b),
                                 max_iterations_, "planar")
                 .to(inputs.scalar_type());
  // One Newton step under autograd: the same root, with the implicit function's derivatives.
  const Tensor th_root = at::tanh(a + b);
  a = a - (a + s * th_root - projection) / (1 + s * tanh_slope(th_root)).detach();
  const Tensor th = at::tanh(a + b);
  const Tensor z = inputs - th.unsqueeze(1) * uh;
  return {z, -at::log1p(s * tanh_slope(th))};
}

Json PlanarImpl::spec() const {
  return {{"type", "planar"}, {"features", features_}, {"max_iterations", max_iterations_}};
}

std::string PlanarImpl::describe() const { return "planar(" + std::to_string(features_) + ")"; }

// ---- radial ---------------------------------------------------------------------------------

RadialImpl::RadialImpl(const RadialOptions& options)
    : TransformImpl("radial"), features_(options.features()) {
  require_positive("radial: features", features_);
  // The identity at the start: β = 0, i.e. β̂ = α̂.
  const double bound = init_bound(features_);
  center = register_parameter("center", uniform({features_}, bound));
  raw_alpha = register_parameter("raw_alpha", uniform({1}, bound));
  raw_beta = register_parameter("raw_beta", raw_alpha.detach().clone());
}

void RadialImpl::check(const Tensor& inputs) const { check_rows("radial", features_, inputs); }

// Rezende & Mohamed 2015, appendix A.2: β ≥ −α keeps the map invertible; here α = softplus(α̂)
// and α + β = softplus(β̂), both positive.
std::pair<Tensor, Tensor> RadialImpl::alpha_and_sum() const {
  return {at::softplus(raw_alpha), at::softplus(raw_beta)};
}

// Eq. 14 with h = 1/(α + r), h' = −h²: 1 + βh = (α + β + r)/(α + r) and 1 + βh + βh'r =
// (α(α + β) + r(2α + r))/(α + r)², written so that no term cancels.
Tensor RadialImpl::logabsdet_at(const Tensor& radius) const {
  const auto [alpha, sum] = alpha_and_sum();
  const Tensor shifted = at::log(alpha + radius);
  return static_cast<double>(features_ - 1) * (at::log(sum + radius) - shifted) +
         at::log(alpha * sum + radius * (2 * alpha + radius)) - 2 * shifted;
}

TransformOutput RadialImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  const auto [alpha, sum] = alpha_and_sum();
  const Tensor offset = inputs - center;
  const Tensor r = at::linalg_vector_norm(offset, 2, at::IntArrayRef{1}, /*keepdim=*/true);
  const Tensor x = inputs + (sum - alpha) * offset / (alpha + r);
  return {x, logabsdet_at(r.squeeze(1))};
}

// x − z0 = (z − z0)(α + β + r)/(α + r), so ρ = ‖x − z0‖ = r(α + β + r)/(α + r), the quadratic
// r² + p r − αρ = 0 with p = α + β − ρ. Its one positive root, written without cancellation:
// r = 2αρ/q for p ≥ 0 and q/2 for p < 0, q = |p| + √(p² + 4αρ) > 0. Then
// z = z0 + (x − z0)(α + r)/(α + β + r).
TransformOutput RadialImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  const auto [alpha, sum] = alpha_and_sum();
  const Tensor offset = inputs - center;
  const Tensor rho = at::linalg_vector_norm(offset, 2, at::IntArrayRef{1}, /*keepdim=*/true);
  const Tensor p = sum - rho;
  const Tensor q = p.abs() + at::sqrt(p * p + 4 * alpha * rho);
  const Tensor r = at::where(p >= 0, 2 * alpha * rho / q, q / 2);
  const Tensor z = center + offset * (alpha + r) / (sum + r);
  return {z, -logabsdet_at(r.squeeze(1))};
}

Json RadialImpl::spec() const { return {{"type", "radial"}, {"features", features_}}; }

std::string RadialImpl::describe() const { return "radial(" + std::to_string(features_) + ")"; }

// ---- sylvester ------------------------------------------------------------------------------

SylvesterImpl::SylvesterImpl(const SylvesterOptions& options)
    : TransformImpl("sylvester"),
      features_(options.features()),
      num_reflections_(options.num_reflections()),
      max_iterations_(options.max_iterations()) {
  require_positive("sylvester: features", features_);
  if (num_reflections_ < 0) throw ConfigError("sylvester: num_reflections must be >= 0");
  require_positive("sylvester: max_iterations", max_iterations_);
  const double bound = init_bound(features_);
  // Without reflections Q = I and there is nothing to register (an empty parameter would
  // get no gradient).
  if (num_reflections_ > 0) {
    reflections = register_parameter("reflections", at::randn({num_reflections_, features_}));
  }
  // The identity at the start: R = 0 (R̃ and b random, so that the layers differ).
  r_entries = register_parameter("r", at::zeros({features_, features_}, at::kFloat));
  r_tilde_entries = register_parameter("r_tilde", uniform({features_, features_}, bound));
  r_raw_diagonal = register_parameter("r_raw_diagonal", at::zeros({features_}, at::kFloat));
  r_tilde_raw_diagonal = register_parameter("r_tilde_raw_diagonal", uniform({features_}, bound));
  bias = register_parameter("bias", uniform({features_}, bound));
}

void SylvesterImpl::check(const Tensor& inputs) const {
  check_rows("sylvester", features_, inputs);
}

// Q = H_1 ⋯ H_K (van den Berg et al. 2018, §3.2, H-SNF); Q = I without reflections.
Tensor SylvesterImpl::orthogonal() const {
  return num_reflections_ > 0 ? householder_product(reflections, features_)
                              : at::eye(features_, r_entries.options());
}

// The paper's diagonals, r_ii = tanh(ρ_i) and r̃_ii = tanh(ρ̃_i): r_ii r̃_ii > −1, with
// 0 < tanh' ≤ 1 the condition of its Theorem 2 for an invertible map.
std::pair<Tensor, Tensor> SylvesterImpl::triangles() const {
  return {at::triu(r_entries, 1) + at::diag(at::tanh(r_raw_diagonal)),
          at::triu(r_tilde_entries, 1) + at::diag(at::tanh(r_tilde_raw_diagonal))};
}

namespace {

/// Σ_i log(1 + r_ii r̃_ii tanh'(a_i)) per sample, from th = tanh(a) [B, D].
Tensor sylvester_logabsdet(const Tensor& r, const Tensor& r_tilde, const Tensor& th) {
  return at::log1p(at::diagonal(r) * at::diagonal(r_tilde) * tanh_slope(th)).sum(1);
}

}  // namespace

TransformOutput SylvesterImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  const Tensor q = orthogonal();
  const auto [r, r_tilde] = triangles();
  // Rows: z Q = (Qᵀ z)ᵀ, and Q R h = (h Rᵀ Qᵀ)ᵀ.
  const Tensor th = at::tanh(at::matmul(at::matmul(inputs, q), r_tilde.t()) + bias);
  const Tensor x = inputs + at::matmul(at::matmul(th, r.t()), q.t());
  return {x, sylvester_logabsdet(r, r_tilde, th)};
}

// With v = Qᵀz and y = Qᵀx the map reads y = v + R tanh(R̃ v + b), upper triangular: y_i
// depends on v_i, …, v_D only. Back-substitution from i = D solves one increasing equation
// per coordinate, y_i − Σ_{j>i} r_ij tanh(a_j) = v_i + r_ii tanh(r̃_ii v_i + c_i) with
// c_i = b_i + Σ_{k>i} r̃_ik v_k (1 + r_ii r̃_ii > 0, as solve_tanh_equation needs).
TransformOutput SylvesterImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  const Tensor q = orthogonal();
  const auto [r, r_tilde] = triangles();
  const Tensor y = at::matmul(inputs, q);
  const Tensor rd = solver_copy(r), rtd = solver_copy(r_tilde), bd = solver_copy(bias);
  const Tensor yd = solver_copy(y);
  Tensor v = at::zeros_like(yd);
  Tensor th = at::zeros_like(yd);
  for (int64_t i = features_ - 1; i >= 0; --i) {
    const int64_t later = features_ - 1 - i;
    const Tensor rest = yd.select(1, i) - at::matmul(th.narrow(1, i + 1, later),
                                                     rd.select(0, i).narrow(0, i + 1, later));
    const Tensor c =
        bd[i] + at::matmul(v.narrow(1, i + 1, later), rtd.select(0, i).narrow(0, i + 1, later));
    const Tensor vi =
        solve_tanh_equation(rest, rd[i][i], rtd[i][i], c, max_iterations_, "sylvester");
    v.select(1, i).copy_(vi);
    th.select(1, i).copy_(at::tanh(rtd[i][i] * vi + c));
  }
  // One Newton step of G(v) = v + R tanh(R̃ v + b) − y under autograd, with the (upper
  // triangular) Jacobian ∂G/∂v = I + R diag(tanh') R̃ held fixed: the same root, with the
  // implicit function's derivatives.
  Tensor root = v.to(inputs.scalar_type());
  const Tensor th_root = at::tanh(at::matmul(root, r_tilde.t()) + bias);
  const Tensor residual = root + at::matmul(th_root, r.t()) - y;
  const Tensor jacobian = (at::matmul(r * tanh_slope(th_root).unsqueeze(1), r_tilde) +
                           at::eye(features_, inputs.options()))
                              .detach();
  root = root -
         at::linalg_solve_triangular(jacobian, residual.unsqueeze(2), /*upper=*/true).squeeze(2);
  const Tensor th_final = at::tanh(at::matmul(root, r_tilde.t()) + bias);
  return {at::matmul(root, q.t()), -sylvester_logabsdet(r, r_tilde, th_final)};
}

Json SylvesterImpl::spec() const {
  return {{"type", "sylvester"},
          {"features", features_},
          {"num_reflections", num_reflections_},
          {"max_iterations", max_iterations_}};
}

std::string SylvesterImpl::describe() const {
  return "sylvester(" + std::to_string(features_) + ", " + std::to_string(num_reflections_) +
         " reflections)";
}

}  // namespace zflow
