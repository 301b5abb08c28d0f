#pragma once
/// \file
/// Rational-quadratic spline coupling (Neural Spline Flows, Durkan, Bekasov, Murray &
/// Papamakarios 2019, https://arxiv.org/abs/1906.04032): the transformed features go through
/// a monotonic rational-quadratic spline with K bins on [−B, B] and linear (identity) tails
/// outside,
///
///     z_B = RQS(x_B; c(x_A, context)),   log|det J| = Σ_{i∈B} log RQS'(x_i),
///
/// whose 3K − 1 parameters per feature come from the conditioner (transforms/transformer.h,
/// functional/rational_quadratic.h and docs/splines.md).
///
/// Example:
///
///     auto layer = zflow::SplineCoupling(
///         zflow::SplineCouplingOptions(zflow::half_mask(4, false)).bins(16).tail_bound(5.0));
///     auto [z, logabsdet] = layer->forward(at::randn({16, 4}));

#include <cstdint>
#include <vector>

#include "zflow/transforms/coupling.h"

namespace zflow {

/// Options of SplineCoupling ("spline_coupling").
struct SplineCouplingOptions {
  /// `mask`: 1 for transformed features, 0 for the ones the conditioner reads.
  explicit SplineCouplingOptions(std::vector<int64_t> mask) : mask_(std::move(mask)) {}
  TORCH_ARG(std::vector<int64_t>, mask);
  /// The conditioner network (default: an MLP with MLPOptions' defaults).
  TORCH_ARG(nn::ConditionerFactoryPtr, conditioner) = nn::mlp_conditioner();
  /// Size of the context vector (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
  /// Bins K ≥ 1 (SplineTransformerOptions).
  TORCH_ARG(int64_t, bins) = SplineTransformerOptions().bins();
  /// Half-width B > 0 of the spline's interval (SplineTransformerOptions).
  TORCH_ARG(double, tail_bound) = SplineTransformerOptions().tail_bound();
};

/// Spline coupling layer ("spline_coupling"). The conditioner's last layer starts at zero;
/// the raw inner-knot derivatives are offset by log(exp(1 − min_derivative) − 1) so that a
/// zero conditioner output gives uniform bins and derivatives exactly 1: the layer starts as
/// the identity.
class SplineCouplingImpl : public CouplingTransformImpl {
 public:
  explicit SplineCouplingImpl(const SplineCouplingOptions& options);

  int64_t bins() const { return spline().options().bins(); }
  double tail_bound() const { return spline().options().tail_bound(); }

 private:
  const SplineTransformer& spline() const;
};
TORCH_MODULE(SplineCoupling);

}  // namespace zflow
