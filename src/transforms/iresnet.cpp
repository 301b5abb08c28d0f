#include "zflow/transforms/iresnet.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/autograd/autograd.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

// Beyond this many series terms the roulette stops (P(N > 256) = (1 − p)^254 at most).
constexpr int64_t kMaxSeriesTerms = 256;
// Power-iteration steps at construction, so that the first forward starts aligned, and the
// most that one call runs.
constexpr int64_t kInitialPowerIterations = 50;
constexpr int64_t kMaxPowerIterations = 1000;

Tensor unit(const Tensor& vector) { return vector / vector.norm().clamp_min(1e-12); }

/// Power iteration on W's top singular pair (Miyato et al. 2018), in place: at least
/// `steps` steps, then on until σ̂ = uᵀWv changes by at most 1e-13 relative (or
/// kMaxPowerIterations). A fixed count lags behind the weights where σ₁ ≈ σ₂ (the error
/// shrinks by (σ₂/σ₁)² per step), and σ̂ ≤ σ₁ then lets ‖W_used‖ exceed c (see the header).
void power_iteration(const Tensor& weight, Tensor& u, Tensor& v, int64_t steps) {
  c10::NoGradGuard no_grad;
  Tensor uu = u, vv = v;
  // float32 gets there too: its iteration lands on a fixed point of rounded arithmetic.
  constexpr double settled = 1e-13;
  double previous = -1.0;
  for (int64_t k = 0; k < kMaxPowerIterations; ++k) {
    vv = unit(at::mv(weight.t(), uu));
    const Tensor product = at::mv(weight, vv);
    uu = unit(product);
    if (k + 1 < steps) continue;
    const double sigma = at::dot(uu, product).item<double>();
    if (std::abs(sigma - previous) <= settled * std::abs(sigma)) break;
    previous = sigma;
  }
  u.copy_(uu);
  v.copy_(vv);
}

/// One row of every sample's Jacobian (or vᵀJ for [B, D] weights v): a vector-Jacobian
/// product of `outputs` w.r.t. `inputs`.
Tensor vjp(const Tensor& outputs, const Tensor& inputs, const Tensor& weights, bool create_graph) {
  return torch::autograd::grad({outputs}, {inputs}, {weights}, /*retain_graph=*/true,
                               create_graph)[0];
}

/// I + J_g per sample, [B, D, D], from g's `values` at `inputs`: row i of every sample's J_g
/// is the gradient of g_i (samples are independent), so D products give the whole batch's.
Tensor identity_plus_jacobian(const Tensor& values, const Tensor& inputs, bool create_graph) {
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < values.size(1); ++i) {
    const Tensor column = values.select(1, i);
    rows.push_back(vjp(column, inputs, at::ones_like(column), create_graph));
  }
  return at::stack(rows, 1) + at::eye(values.size(1), values.options());
}

}  // namespace

InvertibleResidualImpl::InvertibleResidualImpl(const InvertibleResidualOptions& options)
    : TransformImpl("iresnet"), options_(options) {
  const auto& o = options_;
  require_positive("iresnet: features", o.features());
  require_positive("iresnet: hidden", o.hidden());
  require_positive("iresnet: layers", o.layers());
  require_positive("iresnet: max_iterations", o.max_iterations());
  require_positive("iresnet: power_iterations", o.power_iterations());
  require_positive("iresnet: series_terms", o.series_terms());
  if (!(o.lipschitz() > 0.0 && o.lipschitz() < 1.0)) {
    throw ConfigError("iresnet: lipschitz must lie in (0, 1) for the map to be invertible, got " +
                      std::to_string(o.lipschitz()));
  }
  if (!(o.series_p() > 0.0 && o.series_p() <= 1.0)) {
    throw ConfigError("iresnet: series_p must lie in (0, 1], got " + std::to_string(o.series_p()));
  }
  if (o.exact_max_features() < 0) throw ConfigError("iresnet: exact_max_features must be >= 0");
  if (o.activation() != "lipswish" && o.activation() != "elu") {
    throw ConfigError("iresnet: activation must be lipswish or elu, got '" + o.activation() + "'");
  }
  // Layer i maps in_i → out_i: D → H → … → H → D. LibTorch's Linear initialisation.
  for (int64_t i = 0; i <= o.layers(); ++i) {
    const int64_t in = i == 0 ? o.features() : o.hidden();
    const int64_t out = i == o.layers() ? o.features() : o.hidden();
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    const std::string n = std::to_string(i);
    weights.push_back(register_parameter("weight_" + n,
                                         at::empty({out, in}, at::kFloat).uniform_(-bound, bound)));
    biases.push_back(
        register_parameter("bias_" + n, at::empty({out}, at::kFloat).uniform_(-bound, bound)));
    u_.push_back(register_buffer("u_" + n, unit(at::randn({out}, at::kFloat))));
    v_.push_back(register_buffer("v_" + n, unit(at::randn({in}, at::kFloat))));
    power_iteration(weights.back(), u_.back(), v_.back(), kInitialPowerIterations);
  }
}

std::vector<Tensor> InvertibleResidualImpl::normalized_weights() {
  std::vector<Tensor> used;
  for (size_t i = 0; i < weights.size(); ++i) {
    const Tensor& w = weights[i];
    Tensor sigma;
    if (is_training()) {
      power_iteration(w, u_[i], v_[i], options_.power_iterations());
      // Copies: a later call updates the buffers in place while this graph may still need
      // them for its backward pass.
      sigma = at::dot(u_[i].clone(), at::mv(w, v_[i].clone()));
    } else {
      sigma = at::linalg_matrix_norm(w, 2.0);
    }
    // Behrmann et al. §3: shrink only when σ exceeds c, so ‖W_used‖₂ ≤ c.
    used.push_back(w / at::clamp_min(sigma / options_.lipschitz(), 1.0));
  }
  return used;
}

Tensor InvertibleResidualImpl::apply_g(const Tensor& inputs,
                                       const std::vector<Tensor>& used) const {
  Tensor h = inputs;
  for (size_t i = 0; i < used.size(); ++i) {
    h = at::linear(h, used[i], biases[i]);
    if (i + 1 == used.size()) break;
    // LipSwish (Chen et al. §4): max_x d/dx[x·sigmoid(x)] ≈ 1.0998, so /1.1 is 1-Lipschitz.
    h = options_.activation() == "elu" ? at::elu(h) : h * at::sigmoid(h) / 1.1;
  }
  return h;
}

Tensor InvertibleResidualImpl::residual(const Tensor& inputs) {
  check(inputs);
  return apply_g(inputs, normalized_weights());
}

void InvertibleResidualImpl::check(const Tensor& inputs) const {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == options_.features(), "iresnet: expected [B, ",
              options_.features(), "], got ", inputs.sizes());
}

Tensor InvertibleResidualImpl::log_det(const Tensor& inputs, const Tensor& values,
                                       bool create_graph) const {
  const int64_t d = values.size(1);
  if (!is_training() && d <= options_.exact_max_features()) {
    const Tensor jacobian = identity_plus_jacobian(values, inputs, create_graph);
    return std::get<1>(at::linalg_slogdet(jacobian));
  }
  // Russian roulette (Chen et al. 2019, eq. 6–7): N = series_terms + G, G ~ Geometric(p) on
  // {0, 1, …} (geometric_ counts trials, from 1), so P(N ≥ k) = (1 − p)^{k − series_terms}.
  const int64_t exact_terms = options_.series_terms();
  const double p = options_.series_p();
  int64_t terms = exact_terms;
  if (p < 1.0) {
    terms += static_cast<int64_t>(at::empty({1}, at::kDouble).geometric_(p).item<double>()) - 1;
  }
  terms = std::min(terms, kMaxSeriesTerms);
  const Tensor probe = at::randn_like(inputs);  // Hutchinson: tr(A) = E[vᵀAv]
  Tensor row = probe;                           // vᵀJ^k after k products
  Tensor estimate = at::zeros({inputs.size(0)}, inputs.options());
  for (int64_t k = 1; k <= terms; ++k) {
    row = vjp(values, inputs, row, create_graph);
    const double survival = k <= exact_terms ? 1.0 : std::pow(1.0 - p, k - exact_terms);
    const double weight = (k % 2 == 1 ? 1.0 : -1.0) / (static_cast<double>(k) * survival);
    estimate = estimate + (row * probe).sum(1) * weight;
  }
  return estimate;
}

TransformOutput InvertibleResidualImpl::with_log_det(const Tensor& x,
                                                     const std::vector<Tensor>& used,
                                                     bool negate) const {
  Tensor values, log_det_value;
  if (at::GradMode::is_enabled()) {
    const Tensor leaf = x.requires_grad() ? x : x.detach().requires_grad_(true);
    values = apply_g(leaf, used);
    log_det_value = log_det(leaf, values, true);
  } else {
    // Under no_grad or c10::InferenceMode (sampling) autograd still serves the vector-
    // Jacobian products, on ordinary copies that it may record (inference tensors may not).
    c10::InferenceMode recordable(false);
    c10::AutoGradMode enable(true);
    std::vector<Tensor> copies;
    for (const auto& w : used) copies.push_back(w.detach().clone());
    const Tensor leaf = x.detach().clone().requires_grad_(true);
    const Tensor recorded = apply_g(leaf, copies);
    log_det_value = log_det(leaf, recorded, false).detach();
    values = recorded.detach();
  }
  if (negate) return {x, -log_det_value};
  return {x + values, log_det_value};
}

Tensor InvertibleResidualImpl::solve(const Tensor& z, const std::vector<Tensor>& used,
                                     int64_t& steps) const {
  c10::NoGradGuard no_grad;
  const double tolerance = z.scalar_type() == at::kDouble ? 1e-12 : 1e-5;
  Tensor x = z.detach();
  steps = 0;
  if (x.numel() == 0) return x;
  double delta = 0.0;
  // Behrmann et al. Algorithm 1: x ↦ z − g(x) contracts with factor ≤ c < 1.
  while (steps < options_.max_iterations()) {
    const Tensor next = z.detach() - apply_g(x, used);
    delta = (next - x).abs().max().item<double>();
    const double scale = 1.0 + next.abs().max().item<double>();
    x = next;
    ++steps;
    TORCH_CHECK(std::isfinite(delta) && std::isfinite(scale),
                "iresnet: the fixed-point inverse produced non-finite values after ", steps,
                " iterations");
    if (delta <= tolerance * scale) return x;
  }
  TORCH_CHECK(false, "iresnet: the fixed-point inverse did not converge in ",
              options_.max_iterations(), " iterations (last max |x_{k+1} - x_k| = ", delta,
              "); raise max_iterations");
  return x;
}

Tensor InvertibleResidualImpl::invert(const Tensor& z, const std::vector<Tensor>& used) const {
  int64_t steps = 0;
  Tensor x = solve(z, used, steps);
  bool wanted = z.requires_grad();
  for (const auto& w : used) wanted = wanted || w.requires_grad();
  for (const auto& b : biases) wanted = wanted || b.requires_grad();
  if (!at::GradMode::is_enabled() || !wanted || x.numel() == 0) return x;
  if (x.size(1) > options_.exact_max_features()) {
    // Repeating the solver's steps under autograd: derivatives exact to about c^steps.
    for (int64_t k = 0; k < steps; ++k) x = z - apply_g(x, used);
    return x;
  }
  // One Newton step with I + J_g(x) held constant: the implicit function's derivatives.
  const Tensor leaf = x.detach().requires_grad_(true);
  const Tensor system = identity_plus_jacobian(apply_g(leaf, used), leaf, false);
  const Tensor residual_value = x + apply_g(x, used) - z;
  return x - at::linalg_solve(system, residual_value.unsqueeze(-1)).squeeze(-1);
}

TransformOutput InvertibleResidualImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  return with_log_det(inputs, normalized_weights(), false);
}

TransformOutput InvertibleResidualImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  const auto used = normalized_weights();
  return with_log_det(invert(inputs, used), used, true);
}

Tensor InvertibleResidualImpl::forward_outputs_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  return inputs + apply_g(inputs, normalized_weights());
}

Tensor InvertibleResidualImpl::inverse_outputs_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  return invert(inputs, normalized_weights());
}

Json InvertibleResidualImpl::spec() const {
  const auto& o = options_;
  return {{"type", "iresnet"},
          {"features", o.features()},
          {"hidden", o.hidden()},
          {"layers", o.layers()},
          {"lipschitz", o.lipschitz()},
          {"activation", o.activation()},
          {"max_iterations", o.max_iterations()},
          {"exact_max_features", o.exact_max_features()},
          {"power_iterations", o.power_iterations()},
          {"series_terms", o.series_terms()},
          {"series_p", o.series_p()}};
}

std::string InvertibleResidualImpl::describe() const {
  std::ostringstream s;
  s << "iresnet(" << options_.features() << ", hidden " << options_.hidden() << " x "
    << options_.layers() << ", " << options_.activation() << ", lipschitz " << options_.lipschitz()
    << ")";
  return s.str();
}

}  // namespace zflow
