#pragma once
/// \file
/// Invertible residual layer ("iresnet"): z = x + g(x) with Lip(g) ≤ c < 1, on [B, D].
///
/// i-ResNet (Behrmann et al. 2019, "Invertible Residual Networks",
/// https://arxiv.org/abs/1811.00995) and Residual Flows (Chen et al. 2019,
/// https://arxiv.org/abs/1906.02735):
///
/// - g is an MLP D → H → … → H → D whose activations are 1-Lipschitz (LipSwish
///   swish(x)/1.1, Chen et al. §4, whose derivative stays below 1; or ELU) and whose every
///   weight matrix is spectrally normalised with coefficient c (Behrmann et al. §3):
///
///       W_used = W / max(1, σ̂(W)/c),
///
///   so ‖W_used‖₂ ≤ c and Lip(g) ≤ c^(#weights) ≤ c. σ̂ depends on the mode:
///   * training: σ̂ = uᵀ W v by power iteration (Miyato et al. 2018) on persistent unit
///     vectors u, v kept as buffers ("u_i", "v_i", never parameters). Every training-mode
///     forward or inverse first runs at least `power_iterations` steps (default 5) from the
///     stored vectors without gradient, then goes on until σ̂ changes by at most 1e-13
///     relative (at most 1000 steps), and stores the result; σ̂ is then differentiable in W
///     with u, v held fixed. A fixed step count, as in the papers, lags behind the weights:
///     σ̂ ≤ σ always, so a lag lets ‖W_used‖ exceed c (with five steps after Adam steps at
///     learning rate 0.05 the tests measured up to 21% over). Where the top two singular
///     values nearly tie, convergence is slow (the error shrinks by (σ₂/σ₁)² a step) and
///     even 1000 steps leave ‖W_used‖ up to about 1e-5 relative above c in those tests
///     (float64 and float32 alike).
///     The constructor runs 50 steps so that the first forward starts aligned.
///   * evaluation: σ = ‖W‖₂ exactly (the largest singular value) and the buffers are left as
///     they are, so that the bound, and with it the inverse's convergence, holds for any
///     weights (also ones changed since the last training forward).
/// - log|det ∂z/∂x| = log|det(I + J_g(x))| (det > 0 since every eigenvalue of J_g has
///   modulus ≤ c < 1):
///   * evaluation mode with D ≤ `exact_max_features` (default 16): exact. The [B, D, D]
///     Jacobian of g is built from D vector-Jacobian products (create_graph, so it stays
///     differentiable) and slogdet(I + J) taken.
///   * training mode, or D above the limit: the power series of Behrmann et al. (§3)
///
///         log det(I + J) = Σ_{k≥1} (−1)^{k+1} tr(J^k) / k,
///
///     with Hutchinson's trace estimator tr(A) = E[vᵀAv], v ~ N(0, I), and the Russian-
///     roulette truncation of Chen et al. (eq. 6–7): N = `series_terms` + G with
///     G ~ Geometric(`series_p`) on {0, 1, …}, one N per batch, and
///
///         Σ_{k=1}^{N} (−1)^{k+1}/k · vᵀJ^k v / P(N ≥ k),
///
///     P(N ≥ k) = 1 for k ≤ series_terms, (1 − p)^{k − series_terms} beyond. vᵀJ^k is k
///     vector-Jacobian products with create_graph, so the estimate is differentiable in x and
///     in the weights. It is UNBIASED BUT RANDOM: each call draws new v and N (from LibTorch's
///     global generator); with p = 0.5 and 2 exact terms it costs 3 products on average. N
///     is capped at 256 terms (a bias below 2⁻²⁵⁴ at p = 0.5).
/// - inverse (noise → data): the fixed point of x = z − g(x) (Behrmann et al. Algorithm 1)
///   from x₀ = z, a contraction with factor ≤ c, iterated without gradient until
///   max |x_{k+1} − x_k| ≤ tol·(1 + max |x_{k+1}|) (tol 1e-12 in float64, 1e-5 in float32), at
///   most `max_iterations` times; a NaN or no convergence throws c10::Error naming "iresnet".
///   When gradients are wanted the result then takes one Newton step x − (I + J_g)⁻¹(x +
///   g(x) − z) under autograd with the Jacobian held constant: its value stays (x + g(x) = z
///   already) and it carries the implicit function's derivatives ∂x/∂z = (I + J_g)⁻¹,
///   ∂x/∂θ = −(I + J_g)⁻¹ ∂g/∂θ. Above `exact_max_features`, as many fixed-point steps as
///   the solver took are instead repeated under autograd from its result (derivatives then
///   exact to about c^steps). The inverse's log|det| is −log|det(I + J_g(x))| at the
///   recovered x, by the same estimator as forward. Under no_grad or c10::InferenceMode
///   (sampling) the log-determinant still uses autograd, on ordinary copies, and returns
///   plain tensors.
///
/// Example:
///
///     auto layer = zflow::InvertibleResidual(zflow::InvertibleResidualOptions(2).hidden(32));
///     layer->eval();                                     // exact log-determinant
///     auto [z, logabsdet] = layer->forward(at::randn({8, 2}));
///     auto [x, back] = layer->inverse(z);                // x ≈ the inputs, back = −logabsdet

#include <cstdint>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "zflow/core/transform.h"

namespace zflow {

/// Options of InvertibleResidual ("iresnet").
struct InvertibleResidualOptions {
  /* implicit */ InvertibleResidualOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
  /// Width H of g's hidden layers (positive).
  TORCH_ARG(int64_t, hidden) = 64;
  /// Number of hidden layers of g (positive): layers + 1 weight matrices.
  TORCH_ARG(int64_t, layers) = 2;
  /// The bound c on every weight's spectral norm, hence on Lip(g); 0 < c < 1.
  TORCH_ARG(double, lipschitz) = 0.9;
  /// g's activation: "lipswish" (swish(x)/1.1) or "elu"; both 1-Lipschitz.
  TORCH_ARG(std::string, activation) = "lipswish";
  /// Fixed-point steps of inverse before it gives up (positive); c = 0.9 needs at most
  /// about 270 to reach 1e-12 from any start, most layers far fewer.
  TORCH_ARG(int64_t, max_iterations) = 500;
  /// Largest D whose log-determinant evaluation mode computes exactly (≥ 0; 0: never).
  TORCH_ARG(int64_t, exact_max_features) = 16;
  /// The fewest power-iteration steps per training-mode call (positive); more run until σ̂
  /// settles, 1000 at the most in all.
  TORCH_ARG(int64_t, power_iterations) = 5;
  /// Terms of the log-determinant series always taken (positive).
  TORCH_ARG(int64_t, series_terms) = 2;
  /// The Russian roulette's geometric parameter p, 0 < p ≤ 1: series_terms + (1 − p)/p
  /// terms on average. p = 1 stops at series_terms always: the truncated series of
  /// Behrmann et al. (biased), not the unbiased estimate.
  TORCH_ARG(double, series_p) = 0.5;
};

class InvertibleResidualImpl : public TransformImpl {
 public:
  explicit InvertibleResidualImpl(const InvertibleResidualOptions& options);
  Json spec() const override;
  std::string describe() const override;

  /// The weights g uses in the current mode (in training mode this runs the power
  /// iteration and updates the buffers, as a forward would).
  std::vector<Tensor> normalized_weights();
  /// g(x) for [B, D] inputs with the weights of normalized_weights().
  Tensor residual(const Tensor& inputs);

  std::vector<Tensor> weights;  // raw W_i [out, in], "weight_i"
  std::vector<Tensor> biases;   // "bias_i"

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;
  Tensor forward_outputs_impl(const Tensor& inputs, const Tensor& context) override;
  Tensor inverse_outputs_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  Tensor apply_g(const Tensor& inputs, const std::vector<Tensor>& used) const;
  /// log|det(I + J_g)| at `inputs` (which require grad), g's values there being `values`.
  Tensor log_det(const Tensor& inputs, const Tensor& values, bool create_graph) const;
  /// The fixed point x of x = z − g(x), without gradient; `steps` gets the count.
  Tensor solve(const Tensor& z, const std::vector<Tensor>& used, int64_t& steps) const;
  /// The inverse, differentiable when gradients are wanted.
  Tensor invert(const Tensor& z, const std::vector<Tensor>& used) const;
  TransformOutput with_log_det(const Tensor& x, const std::vector<Tensor>& used, bool negate) const;
  void check(const Tensor& inputs) const;

  InvertibleResidualOptions options_;
  std::vector<Tensor> u_, v_;  // power-iteration buffers "u_i" [out], "v_i" [in]
};
TORCH_MODULE(InvertibleResidual);

}  // namespace zflow
