#pragma once
/// \file
/// Masked autoregressive transforms: z_i = τ(x_i; θ_i(x_<i)), with all θ from one MADE pass.
///
/// - MAF (Papamakarios, Pavlakou & Murray 2017): `forward` (density, data → noise) is one
///   MADE pass; `inverse` (sampling) solves for x one ordering position at a time, D passes.
/// - IAF (Kingma et al. 2016) is the same map used the other way round: its `inverse`
///   (sampling, noise → data) is one pass and its `forward` (density) takes D passes. Use
///   IAF when you sample far more often than you evaluate densities of outside data
///   (e.g. variational inference), MAF for density estimation.
///
/// The elementwise transformer τ is affine (soft-clamped log-scale) or a rational-quadratic
/// spline (Durkan et al. 2019).

#include <cstdint>

#include "zflow/core/transform.h"
#include "zflow/functional/rational_quadratic.h"
#include "zflow/nn/made.h"

namespace zflow {

/// Shared machinery: the MADE conditioner and the one-pass / D-pass directions.
class AutoregressiveTransformImpl : public TransformImpl {
 public:
  /// `inverse_autoregressive`: false = MAF (fast density), true = IAF (fast sampling).
  AutoregressiveTransformImpl(std::string type, int64_t features, int64_t params_per_feature,
                              const Json& made, int64_t context_features,
                              bool inverse_autoregressive);
  std::string describe() const override;
  /// The MADE conditioner (for tests of the autoregressive property).
  nn::MADE made() const { return made_; }

 protected:
  Json base_spec() const;
  /// τ (or τ⁻¹ with `inverse`) elementwise, given parameters [B, D, P]; logabsdet [B].
  virtual TransformOutput transformer(const Tensor& inputs, const Tensor& params, bool inverse) = 0;

  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  /// The direction that needs one MADE pass: z = τ(x; θ(x)).
  TransformOutput one_pass(const Tensor& inputs, const Tensor& context);
  /// The direction that needs D passes: x such that τ(x; θ(x)) = z.
  TransformOutput sequential(const Tensor& inputs, const Tensor& context);

  int64_t features_;
  int64_t context_features_;
  bool inverse_autoregressive_;
  Json made_spec_;
  nn::MADE made_{nullptr};
};

/// MAF layer with the affine transformer (or, with `inverse_autoregressive`, the IAF layer).
class MaskedAffineAutoregressiveImpl : public AutoregressiveTransformImpl {
 public:
  MaskedAffineAutoregressiveImpl(int64_t features, const Json& made, int64_t context_features = 0,
                                 double scale_bound = 3.0, bool inverse_autoregressive = false);
  Json spec() const override;

 protected:
  TransformOutput transformer(const Tensor& inputs, const Tensor& params, bool inverse) override;

 private:
  double scale_bound_;
};
TORCH_MODULE(MaskedAffineAutoregressive);

/// Autoregressive layer with the rational-quadratic spline transformer (NSF-AR).
class MaskedSplineAutoregressiveImpl : public AutoregressiveTransformImpl {
 public:
  MaskedSplineAutoregressiveImpl(int64_t features, const Json& made, int64_t context_features = 0,
                                 int64_t bins = 8, double tail_bound = 3.0,
                                 bool inverse_autoregressive = false);
  Json spec() const override;

 protected:
  TransformOutput transformer(const Tensor& inputs, const Tensor& params, bool inverse) override;

 private:
  int64_t bins_;
  functional::SplineOptions spline_;
};
TORCH_MODULE(MaskedSplineAutoregressive);

}  // namespace zflow
