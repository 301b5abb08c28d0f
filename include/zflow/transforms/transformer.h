#pragma once
/// \file
/// Element-wise transformers: the invertible scalar maps z_i = τ(x_i; θ_i) that coupling,
/// autoregressive and convolutional coupling layers apply to the features they transform,
/// with parameters θ_i from their conditioner. A layer is a conditioner (nn/conditioner.h),
/// one of these transformers and a split or an ordering of the features. The Jacobian of
/// every such layer is triangular, so
///
///     log|det ∂z/∂x| = Σ_i log|τ'(x_i; θ_i)|.
///
/// - affine (RealNVP, Dinh, Sohl-Dickstein & Bengio 2017, https://arxiv.org/abs/1605.08803):
///   τ(x) = x·exp(s) + t with a softly bounded log-scale s = b·tanh(ŝ/b), so that one layer
///   never scales by more than e^±b and deep stacks cannot blow up; θ = (t, ŝ), P = 2.
/// - additive (NICE, Dinh, Krueger & Bengio 2014, https://arxiv.org/abs/1410.8516):
///   τ(x) = x + t, volume preserving; θ = (t), P = 1.
/// - rational-quadratic spline (Neural Spline Flows, Durkan, Bekasov, Murray & Papamakarios
///   2019, https://arxiv.org/abs/1906.04032): K monotonic rational-quadratic bins on [−B, B],
///   the identity outside; P = 3K − 1 (functional/rational_quadratic.h).
///
/// Convention: all-zero parameters give the identity map (the spline shifts its raw knot
/// derivatives so that they do), and every conditioner's last layer starts at zero, so every
/// layer starts as the identity.
///
/// Example:
///
///     auto tau = std::make_shared<zflow::SplineTransformer>(
///         zflow::SplineTransformerOptions().bins(4).tail_bound(5.0));
///     at::Tensor x = at::randn({16, 3});
///     at::Tensor params = at::randn({16, 3, tau->params_per_feature()});  // [B, D, P]
///     auto [z, logabsdet] = tau->apply(x, params, /*inverse=*/false);    // logabsdet [16]
///     at::Tensor back = tau->apply(z, params, /*inverse=*/true).outputs;  // ≈ x

#include <cstdint>
#include <memory>
#include <string>

#include <torch/arg.h>

#include "zflow/core/transform.h"
#include "zflow/functional/rational_quadratic.h"

namespace zflow {

/// Options of the affine transformer.
struct AffineTransformerOptions {
  /// Bound b of the soft-clamped log-scale s = b·tanh(ŝ/b): positive and finite.
  TORCH_ARG(double, scale_bound) = 3.0;

 public:
  /// ConfigError naming `owner` unless the options are valid.
  void validate(const std::string& owner) const;
};

/// Options of the rational-quadratic spline transformer (defaults of the spline itself from
/// functional::SplineOptions).
struct SplineTransformerOptions {
  /// Number of bins K ≥ 1 (K · min_bin_width ≤ 1).
  TORCH_ARG(int64_t, bins) = 8;
  /// Half-width B > 0 of the interval [−B, B] covered by the bins; identity outside.
  TORCH_ARG(double, tail_bound) = functional::SplineOptions{}.tail_bound;
  /// Smallest bin width, as a fraction of 2B.
  TORCH_ARG(double, min_bin_width) = functional::SplineOptions{}.min_bin_width;
  /// Smallest bin height, as a fraction of 2B.
  TORCH_ARG(double, min_bin_height) = functional::SplineOptions{}.min_bin_height;
  /// Smallest derivative at the inner knots.
  TORCH_ARG(double, min_derivative) = functional::SplineOptions{}.min_derivative;

 public:
  /// The stateless spline's options.
  functional::SplineOptions spline() const;
  /// ConfigError naming `owner` unless the options are valid (bins ≥ 1, B positive and
  /// finite, room for K bins of the minimum size).
  void validate(const std::string& owner) const;
};

/// An invertible element-wise map with P parameters per element. Stateless (no learnable
/// parameters of its own): layers share it freely.
class ElementwiseTransformer {
 public:
  virtual ~ElementwiseTransformer() = default;

  /// "affine", "additive", "rational_quadratic_spline".
  virtual std::string name() const = 0;
  /// P: parameters per transformed element.
  virtual int64_t params_per_feature() const = 0;
  /// τ (or τ⁻¹ with `inverse`) on every element of `inputs` [B, ...] with `params`
  /// [B, ..., P] (parameter p of element i at [i..., p]): the outputs (the inputs' shape) and
  /// log|det J| per sample [B]. All-zero params give the identity.
  virtual TransformOutput apply(const Tensor& inputs, const Tensor& params, bool inverse) const = 0;
  /// `apply` on images [B, C, H, W] with params in the layout of a convolutional
  /// conditioner, [B, P·C, H, W], parameter p of channel c in channel p·C + c. Where `mask`
  /// ([1, 1, H, W], or undefined for none) is 0 the params are zeroed: the identity there.
  TransformOutput apply_image(const Tensor& inputs, const Tensor& params, const Tensor& mask,
                              bool inverse) const;
  /// The fields this transformer adds to its layer's spec: {"scale_bound": b},
  /// {"bins": K, "tail_bound": B}, or none.
  virtual Json spec() const = 0;
  /// Its settings for its layer's describe(): "" or ", bins 8, tail_bound 3".
  virtual std::string describe() const { return ""; }
};

using TransformerPtr = std::shared_ptr<const ElementwiseTransformer>;

/// τ(x) = x·exp(s) + t, s = b·tanh(ŝ/b); params (t, ŝ).
class AffineTransformer : public ElementwiseTransformer {
 public:
  /// ConfigError naming `owner` (the layer type) for invalid options.
  explicit AffineTransformer(AffineTransformerOptions options = {},
                             const std::string& owner = "affine");
  std::string name() const override { return "affine"; }
  int64_t params_per_feature() const override { return 2; }
  TransformOutput apply(const Tensor& inputs, const Tensor& params, bool inverse) const override;
  Json spec() const override;
  const AffineTransformerOptions& options() const { return options_; }

 private:
  AffineTransformerOptions options_;
};

/// τ(x) = x + t; params (t); log|det J| = 0.
class AdditiveTransformer : public ElementwiseTransformer {
 public:
  std::string name() const override { return "additive"; }
  int64_t params_per_feature() const override { return 1; }
  TransformOutput apply(const Tensor& inputs, const Tensor& params, bool inverse) const override;
  Json spec() const override { return Json::object(); }
};

/// Monotonic rational-quadratic spline with K bins on [−B, B] and linear tails; params
/// (K widths, K heights, K − 1 inner derivatives), unnormalised.
class SplineTransformer : public ElementwiseTransformer {
 public:
  /// ConfigError naming `owner` (the layer type) for invalid options.
  explicit SplineTransformer(SplineTransformerOptions options = {},
                             const std::string& owner = "rational_quadratic_spline");
  std::string name() const override { return "rational_quadratic_spline"; }
  int64_t params_per_feature() const override;
  TransformOutput apply(const Tensor& inputs, const Tensor& params, bool inverse) const override;
  Json spec() const override;
  std::string describe() const override;
  const SplineTransformerOptions& options() const { return options_; }

 private:
  SplineTransformerOptions options_;
  functional::SplineOptions spline_;
};

}  // namespace zflow
