#pragma once
/// \file
/// Coupling layers (NICE, Dinh, Krueger & Bengio 2014, https://arxiv.org/abs/1410.8516;
/// RealNVP, Dinh, Sohl-Dickstein & Bengio 2017, https://arxiv.org/abs/1605.08803). A binary
/// mask splits the features into an identity part x_A (mask 0) and a transformed part x_B
/// (mask 1):
///
///     z_A = x_A,   z_B = τ(x_B; c(x_A, context)),   log|det J| = Σ_{i∈B} log|τ'(x_i; θ_i)|,
///
/// with c a conditioner (nn/conditioner.h: an MLP by default) and τ an element-wise
/// transformer (transforms/transformer.h): affine, additive or a rational-quadratic spline
/// (transforms/spline_coupling.h). The Jacobian is triangular; both directions take one
/// conditioner pass. The conditioner's last layer starts at zero: every layer starts as the
/// identity.
///
/// Example:
///
///     auto layer = zflow::AffineCoupling(
///         zflow::AffineCouplingOptions(zflow::half_mask(4, true))
///             .conditioner(zflow::nn::mlp_conditioner(
///                 zflow::nn::MLPOptions(0, 0).hidden_features(128).residual(true)))
///             .scale_bound(2.0));
///     auto [z, logabsdet] = layer->forward(at::randn({16, 4}));  // logabsdet [16]
///     zflow::Json spec = layer->spec();  // make_transform(spec) rebuilds it

#include <cstdint>
#include <vector>

#include <torch/arg.h>

#include "zflow/core/index.h"
#include "zflow/core/transform.h"
#include "zflow/nn/mlp.h"
#include "zflow/transforms/transformer.h"

namespace zflow {

/// A coupling layer: a mask, a conditioner and an element-wise transformer. The concrete
/// layers below fix the transformer and the registry type.
class CouplingTransformImpl : public TransformImpl {
 public:
  /// `mask[i]` is 1 for transformed features, 0 for identity features; it transforms at
  /// least one feature and keeps one (or there is a context). The conditioner is built by
  /// `conditioner` for (identity features, transformed features · P, context_features).
  CouplingTransformImpl(std::string type, std::vector<int64_t> mask, TransformerPtr transformer,
                        const nn::ConditionerFactoryPtr& conditioner, int64_t context_features);

  const std::vector<int64_t>& mask() const { return mask_; }
  const ElementwiseTransformer& transformer() const { return *transformer_; }
  /// {type, mask, conditioner, context_features} and the transformer's fields.
  Json spec() const override;
  std::string describe() const override;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  TransformOutput apply(const Tensor& inputs, const Tensor& context, bool inverse);
  std::vector<int64_t> mask_;
  TransformerPtr transformer_;
  Json conditioner_spec_;
  int64_t context_features_;
  IndexList identity_index_;
  IndexList transform_index_;
  /// Both index lists are consecutive runs (half masks): the parts are then taken with
  /// narrow and joined with cat, cheaper forward and backward than index_select/index_copy.
  bool blocks_ = false;
  nn::ConditionerPtr conditioner_;
};

/// Options of AffineCoupling ("affine_coupling").
struct AffineCouplingOptions {
  /// `mask`: 1 for transformed features, 0 for the ones the conditioner reads.
  explicit AffineCouplingOptions(std::vector<int64_t> mask) : mask_(std::move(mask)) {}
  TORCH_ARG(std::vector<int64_t>, mask);
  /// The conditioner network (default: an MLP with MLPOptions' defaults).
  TORCH_ARG(nn::ConditionerFactoryPtr, conditioner) = nn::mlp_conditioner();
  /// Size of the context vector (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
  /// Bound b of the soft-clamped log-scale (AffineTransformerOptions).
  TORCH_ARG(double, scale_bound) = AffineTransformerOptions().scale_bound();
};

/// Affine coupling (RealNVP): z_B = x_B · exp(s) + t, s = b · tanh(ŝ / b), so that no layer
/// can scale by more than e^±b and deep stacks cannot blow up.
class AffineCouplingImpl : public CouplingTransformImpl {
 public:
  explicit AffineCouplingImpl(const AffineCouplingOptions& options);
};
TORCH_MODULE(AffineCoupling);

/// Options of AdditiveCoupling ("additive_coupling").
struct AdditiveCouplingOptions {
  /// `mask`: 1 for transformed features, 0 for the ones the conditioner reads.
  explicit AdditiveCouplingOptions(std::vector<int64_t> mask) : mask_(std::move(mask)) {}
  TORCH_ARG(std::vector<int64_t>, mask);
  /// The conditioner network (default: an MLP with MLPOptions' defaults).
  TORCH_ARG(nn::ConditionerFactoryPtr, conditioner) = nn::mlp_conditioner();
  /// Size of the context vector (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
};

/// Additive coupling (NICE): z_B = x_B + t; volume preserving (log|det J| = 0).
class AdditiveCouplingImpl : public CouplingTransformImpl {
 public:
  explicit AdditiveCouplingImpl(const AdditiveCouplingOptions& options);
};
TORCH_MODULE(AdditiveCoupling);

/// The alternating masks used by the builders: features [0, D/2) or [D/2, D) transformed,
/// depending on `even`; for D = 1 the single feature is... not splittable (ConfigError).
std::vector<int64_t> half_mask(int64_t features, bool even);

}  // namespace zflow
