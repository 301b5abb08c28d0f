#pragma once
/// \file
/// Neural autoregressive flows: autoregressive layers whose per-feature maps are small
/// monotonic neural networks instead of affine maps or splines, so that one layer can bend
/// a conditional density into any shape. Neither map has a closed-form inverse; both invert
/// by root-finding on an exact bracket (functional/monotone_root.h: Newton's method
/// safeguarded by bisection, in float64), then take one Newton step under autograd so that
/// the inverse carries the implicit function's derivatives.
///
/// - NAF, "neural_autoregressive" (Huang, Krueger, Lacoste & Courville 2018,
///   https://arxiv.org/abs/1804.00779): a MADE conditioner (nn/made.h) emits, for every
///   feature, the parameters of a deep sigmoidal flow (DSF, the paper's eq. 8) with K units,
///
///       z_i = logit( Σ_k w_k σ(a_k x_i + b_k) ),   a_k > 0, w on the simplex,
///
///   a strictly increasing map of R onto R (its value lies between min_k and max_k of
///   a_k x_i + b_k, which both run from −∞ to +∞). Computed in log space, z = log y − log(1 −
///   y) with log y = logsumexp_k(log w_k + log σ(u_k)), u_k = a_k x + b_k, and
///
///       log z'(x) = logsumexp_k(log w_k + log a_k + log σ(u_k) + log σ(−u_k))
///                   − log y − log(1 − y),
///
///   so that neither the value nor the slope saturates for large |x| (in float32 too). The
///   same bounds bracket the inverse: x ∈ [min_k (z − b_k)/a_k, max_k (z − b_k)/a_k].
///   `forward` (density) is one MADE pass; `inverse` (sampling) D passes, each solving
///   every element; with `inverse_autoregressive` the other way round (IAF style).
/// - B-NAF, "block_neural_autoregressive" (De Cao, Titov & Aziz 2019,
///   https://arxiv.org/abs/1904.04676): one network x → f(x) whose weight matrices are
///   D × D grids of blocks, lower block-triangular, with strictly positive diagonal blocks
///   (exp of the raw weights) and free blocks below, each row weight-normalised (the
///   paper's eq. 9), tanh between layers. Output i depends on x_<i freely and on x_i
///   monotonically; the Jacobian's diagonal ∂f_i/∂x_i is the product of the diagonal blocks
///   and the activations' slopes, accumulated in log space (the paper's eq. 11–12). The
///   last layer is linear on tanh outputs, so f is bounded, |f_i| ≤ Σ_j |W_ij| + |b_i|; to
///   map R^D onto R^D the layer adds a gated residual (as Pyro's "gated" option),
///
///       z = σ(g) f(x) + σ(−g) x,   log ∂z_i/∂x_i = logaddexp(log σ(g) + log f_i', log σ(−g)),
///
///   with one learned gate g. Without it the density would integrate to less than one and
///   the inverse would not exist outside f's range. It starts near the identity: g = 0,
///   rows of norm 1/√a_in (a unit's diagonal inputs are all positive, and would otherwise
///   add up into a saturated tanh), and the last layer scaled so that ∂f_i/∂x_i = 1 at
///   x = 0. `forward` (density) is one pass; `inverse` solves the D features in order,
///   each on the bracket that the bound on f gives, every step a network pass over the
///   samples not yet converged.
///
/// Why the test of these layers is a known density's likelihood (zuko issue 55 reports a
/// NAF whose log-likelihoods exceeded the true density's): by Gibbs' inequality E_p[log q]
/// ≤ E_p[log p] for every normalised q, so a flow that beats the truth is not normalised.
/// tests/transforms/test_neural_autoregressive.cpp checks both: trained flows integrate to
/// one on a grid and their held-out log-likelihood stays below the truth's.
///
/// Example:
///
///     auto naf = zflow::NeuralAutoregressive(zflow::NeuralAutoregressiveOptions(2).units(8));
///     auto [z, logabsdet] = naf->forward(at::randn({16, 2}));  // one MADE pass
///     at::Tensor x = naf->inverse(z).outputs;                  // bisection, two passes
///     auto bnaf = zflow::BlockNeuralAutoregressive(
///         zflow::BlockNeuralAutoregressiveOptions(2).hidden_units(16));

#include <cstdint>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "zflow/core/transform.h"
#include "zflow/nn/made.h"
#include "zflow/transforms/autoregressive.h"
#include "zflow/transforms/transformer.h"

namespace zflow {

/// The deep sigmoidal transformer: z = logit(Σ_k w_k σ(a_k x + b_k)) element-wise, with
/// P = 3K raw parameters (â, b̂, ŵ) per element:
///
///     a_k = softplus(â_k + ln(e^(1 − a_min) − 1)) + a_min,   b_k = b̂_k,
///     w = softmax(ŵ + ω),   ω_k = −k / K (fixed).
///
/// All-zero parameters give the identity (a_k = 1 and b_k = 0 for every unit make the sum
/// σ(x) whatever w is). The fixed, unequal ω break the symmetry between units: with equal
/// weights, K units that start equal would receive equal gradients and never part.
/// a_min = 1e-3 keeps the inverse's bracket finite.
class DeepSigmoidalTransformer : public ElementwiseTransformer {
 public:
  /// `units` K ≥ 1; `max_iterations` ≥ 1 bounds the inverse's root-finding.
  DeepSigmoidalTransformer(int64_t units, int64_t max_iterations,
                           const std::string& owner = "deep_sigmoidal");
  std::string name() const override { return "deep_sigmoidal"; }
  int64_t params_per_feature() const override { return 3 * units_; }
  TransformOutput apply(const Tensor& inputs, const Tensor& params, bool inverse) const override;
  /// {"units": K, "max_iterations": n}.
  Json spec() const override;
  std::string describe() const override;
  int64_t units() const { return units_; }

  /// The smallest slope a_k of a unit.
  static constexpr double kMinSlope = 1e-3;

 private:
  /// z and log z' element-wise (no sum), from raw params.
  std::pair<Tensor, Tensor> evaluate(const Tensor& x, const Tensor& params) const;

  int64_t units_;
  int64_t max_iterations_;
};

/// Options of NeuralAutoregressive ("neural_autoregressive").
struct NeuralAutoregressiveOptions {
  /* implicit */ NeuralAutoregressiveOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
  /// The autoregressive conditioner (default: a MADE with MADEOptions' defaults).
  TORCH_ARG(nn::ConditionerFactoryPtr, conditioner) = nn::made_conditioner();
  /// Size of the context vector (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
  /// Sigmoid units K of each feature's deep sigmoidal map (positive).
  TORCH_ARG(int64_t, units) = 8;
  /// Root-finding steps of the direction that has no closed form (at least 1).
  TORCH_ARG(int64_t, max_iterations) = 200;
  /// false = one-pass density (the paper's), true = one-pass sampling.
  TORCH_ARG(bool, inverse_autoregressive) = false;
};

/// NAF layer: MADE + deep sigmoidal transformer (see the file comment).
class NeuralAutoregressiveImpl : public AutoregressiveTransformImpl {
 public:
  explicit NeuralAutoregressiveImpl(const NeuralAutoregressiveOptions& options);
};
TORCH_MODULE(NeuralAutoregressive);

/// Options of BlockNeuralAutoregressive ("block_neural_autoregressive").
struct BlockNeuralAutoregressiveOptions {
  /* implicit */ BlockNeuralAutoregressiveOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
  /// Hidden units per feature a (positive): every hidden layer has D·a units.
  TORCH_ARG(int64_t, hidden_units) = 16;
  /// Number of hidden layers (positive): layers + 1 block matrices.
  TORCH_ARG(int64_t, layers) = 2;
  /// Size of a context vector added, through an unmasked linear map, to the first hidden
  /// layer's pre-activations (0 = none). It does not touch the Jacobian in x.
  TORCH_ARG(int64_t, context_features) = 0;
  /// Root-finding steps per feature of the inverse (at least 1).
  TORCH_ARG(int64_t, max_iterations) = 200;
};

/// B-NAF layer on [B, D] (see the file comment). Parameters: "weight_l" [D·a_out, D·a_in]
/// (raw; the diagonal blocks through exp, entries above the block diagonal unused),
/// "log_scale_l" [D·a_out] (the weight normalisation's log g), "bias_l" [D·a_out],
/// "gate" [1], and with a context "context_weight" [D·a_1, K].
class BlockNeuralAutoregressiveImpl : public TransformImpl {
 public:
  explicit BlockNeuralAutoregressiveImpl(const BlockNeuralAutoregressiveOptions& options);
  Json spec() const override;
  std::string describe() const override;

  std::vector<Tensor> weights;
  std::vector<Tensor> log_scales;
  std::vector<Tensor> biases;
  Tensor gate;
  Tensor context_weight;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  /// The weights a pass uses: per layer the normalised matrix [D·a_out, D·a_in] and the
  /// logs of its diagonal blocks [D, a_out, a_in].
  struct Used {
    std::vector<Tensor> matrix;
    std::vector<Tensor> log_diagonal;
    std::vector<Tensor> bias;
    Tensor context_weight;
    Tensor gate;
  };
  Used used_weights() const;
  /// `used` detached, in float64, for the root-finding (matrices, biases, context weight
  /// and gate; not the log-diagonal blocks, which it does not use).
  static Used solver_copy(const Used& used);
  /// f(x) and log ∂f_i/∂x_i [B, D]: the block network alone.
  std::pair<Tensor, Tensor> network(const Tensor& x, const Tensor& context, const Used& used) const;
  /// z and log ∂z_i/∂x_i [B, D] at x (f and the gated residual).
  std::pair<Tensor, Tensor> evaluate(const Tensor& x, const Tensor& context,
                                     const Used& used) const;
  void check(const Tensor& inputs, const Tensor& context) const;

  BlockNeuralAutoregressiveOptions options_;
};
TORCH_MODULE(BlockNeuralAutoregressive);

}  // namespace zflow
