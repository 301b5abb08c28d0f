#pragma once
/// \file
/// Masked autoregressive transforms: every feature is transformed element-wise with
/// parameters that depend only on the features before it in an ordering, all of them from
/// one pass of a MADE conditioner (nn/made.h):
///
///     z_i = τ(x_i; θ_i(x_<i, context)),   log|det J| = Σ_i log|τ'(x_i; θ_i)|.
///
/// - MAF (Papamakarios, Pavlakou & Murray 2017, https://arxiv.org/abs/1705.07057):
///   `forward` (density, data → noise) is one MADE pass; `inverse` (sampling) solves for x
///   one ordering position at a time, D passes.
/// - IAF (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016,
///   https://arxiv.org/abs/1606.04934) is the same map used the other way round: its
///   `inverse` (sampling, noise → data) is one pass and its `forward` (density) takes D
///   passes. Use IAF when you sample far more often than you evaluate densities of outside
///   data (e.g. variational inference), MAF for density estimation.
///
/// The element-wise transformer τ (transforms/transformer.h) is affine (soft-clamped
/// log-scale) or a rational-quadratic spline (NSF-AR, Durkan et al. 2019,
/// https://arxiv.org/abs/1906.04032).
///
/// Example:
///
///     auto maf = zflow::MaskedAffineAutoregressive(
///         zflow::MaskedAffineAutoregressiveOptions(4).conditioner(zflow::nn::made_conditioner(
///             zflow::nn::MADEOptions(0, 0).hidden({128, 128}).ordering("reversed"))));
///     auto [z, logabsdet] = maf->forward(at::randn({16, 4}));  // one pass
///     at::Tensor x = maf->inverse(z).outputs;                  // four passes

#include <cstdint>

#include <torch/arg.h>

#include "zflow/core/transform.h"
#include "zflow/nn/made.h"
#include "zflow/transforms/transformer.h"

namespace zflow {

/// An autoregressive layer: a MADE-like conditioner, an element-wise transformer, and the
/// direction that takes one pass.
class AutoregressiveTransformImpl : public TransformImpl {
 public:
  /// `inverse_autoregressive`: false = MAF (fast density), true = IAF (fast sampling). The
  /// conditioner is built by `conditioner` for (features, features · P, context_features)
  /// and registered as "made".
  AutoregressiveTransformImpl(std::string type, int64_t features, TransformerPtr transformer,
                              const nn::ConditionerFactoryPtr& conditioner,
                              int64_t context_features, bool inverse_autoregressive);
  /// {type, features, made, context_features, inverse_autoregressive} and the transformer's
  /// fields.
  Json spec() const override;
  std::string describe() const override;
  const ElementwiseTransformer& transformer() const { return *transformer_; }
  /// The MADE conditioner (for tests of the autoregressive property); empty if the
  /// conditioner is another kind of network.
  nn::MADE made() const;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  /// θ(inputs) as [B, D, P].
  Tensor parameters(const Tensor& inputs, const Tensor& context);
  /// The direction that needs one MADE pass: z = τ(x; θ(x)).
  TransformOutput one_pass(const Tensor& inputs, const Tensor& context);
  /// The direction that needs D passes: x such that τ(x; θ(x)) = z.
  TransformOutput sequential(const Tensor& inputs, const Tensor& context);

  int64_t features_;
  int64_t context_features_;
  bool inverse_autoregressive_;
  TransformerPtr transformer_;
  Json conditioner_spec_;
  nn::ConditionerPtr conditioner_;
};

/// Options of MaskedAffineAutoregressive ("masked_affine_autoregressive", or
/// "inverse_autoregressive" when `inverse_autoregressive`).
struct MaskedAffineAutoregressiveOptions {
  explicit MaskedAffineAutoregressiveOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
  /// The autoregressive conditioner (default: a MADE with MADEOptions' defaults).
  TORCH_ARG(nn::ConditionerFactoryPtr, conditioner) = nn::made_conditioner();
  /// Size of the context vector (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
  /// Bound b of the soft-clamped log-scale (AffineTransformerOptions).
  TORCH_ARG(double, scale_bound) = AffineTransformerOptions().scale_bound();
  /// false = MAF (one-pass density), true = IAF (one-pass sampling).
  TORCH_ARG(bool, inverse_autoregressive) = false;
};

/// MAF layer with the affine transformer (or, with `inverse_autoregressive`, the IAF layer).
class MaskedAffineAutoregressiveImpl : public AutoregressiveTransformImpl {
 public:
  explicit MaskedAffineAutoregressiveImpl(const MaskedAffineAutoregressiveOptions& options);
};
TORCH_MODULE(MaskedAffineAutoregressive);

/// Options of MaskedSplineAutoregressive ("masked_spline_autoregressive").
struct MaskedSplineAutoregressiveOptions {
  explicit MaskedSplineAutoregressiveOptions(int64_t features) : features_(features) {}
  /// Number of features D (positive).
  TORCH_ARG(int64_t, features);
  /// The autoregressive conditioner (default: a MADE with MADEOptions' defaults).
  TORCH_ARG(nn::ConditionerFactoryPtr, conditioner) = nn::made_conditioner();
  /// Size of the context vector (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
  /// Bins K ≥ 1 (SplineTransformerOptions).
  TORCH_ARG(int64_t, bins) = SplineTransformerOptions().bins();
  /// Half-width B > 0 of the spline's interval (SplineTransformerOptions).
  TORCH_ARG(double, tail_bound) = SplineTransformerOptions().tail_bound();
  /// false = one-pass density, true = one-pass sampling.
  TORCH_ARG(bool, inverse_autoregressive) = false;
};

/// Autoregressive layer with the rational-quadratic spline transformer (NSF-AR).
class MaskedSplineAutoregressiveImpl : public AutoregressiveTransformImpl {
 public:
  explicit MaskedSplineAutoregressiveImpl(const MaskedSplineAutoregressiveOptions& options);
};
TORCH_MODULE(MaskedSplineAutoregressive);

}  // namespace zflow
