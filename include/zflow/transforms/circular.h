#pragma once
/// \file
/// Flows on the circle and the torus: a coupling layer whose angle features go through
/// circular rational-quadratic splines (Rezende, Papamakarios, Racanière, Albergo, Kanwar,
/// Shanahan & Cranmer 2020, "Normalizing Flows on Tori and Spheres", §3.2,
/// https://arxiv.org/abs/2002.02428) followed by a rotation, and whose real features go
/// through ordinary rational-quadratic splines with linear tails:
///
///     angle i:  z_i = wrap(CRQS(x_i; θ_i) + φ_i),   wrap(a) = a − 2π·⌊(a + π)/2π⌋,
///     real i:   z_i = RQS(x_i; θ_i),
///     log|det J| = Σ log CRQS'(x_i) + Σ log RQS'(x_i)   (a rotation has derivative 1),
///
/// with θ and φ from a conditioner that sees the kept real features as they are and the kept
/// angles as (cos x, sin x), so that everything the layer computes is periodic in every angle:
/// the density it gives is continuous, with its derivative, across ±π. Angles may come in
/// any range; transformed angles come out in [−π, π] (the same point of the circle).
///
/// The circular spline maps [−π, π] onto itself with fixed ends and one shared end
/// derivative, so a layer alone keeps ±π fixed; the rotation φ and the next layer's other
/// half remove that restriction. On the torus (all features angles) the base is the uniform
/// density (2π)^−D ("circular_uniform" in distributions/uniform.h).
///
/// Example:
///
///     auto layer = zflow::CircularSplineCoupling(
///         zflow::CircularSplineCouplingOptions({1, 0}).circular({1, 1}).bins(8));
///     auto [z, logabsdet] = layer->forward(at::rand({16, 2}) * 6.28 - 3.14);

#include <cstdint>
#include <vector>

#include <torch/arg.h>

#include "zflow/core/index.h"
#include "zflow/core/transform.h"
#include "zflow/functional/rational_quadratic.h"
#include "zflow/nn/conditioner.h"
#include "zflow/nn/mlp.h"

namespace zflow {

/// Options of CircularSplineCoupling ("circular_spline_coupling").
struct CircularSplineCouplingOptions {
  /// `mask`: 1 for transformed features, 0 for the ones the conditioner reads.
  explicit CircularSplineCouplingOptions(std::vector<int64_t> mask) : mask_(std::move(mask)) {}
  TORCH_ARG(std::vector<int64_t>, mask);
  /// 1 for features that are angles (radians), 0 for real ones; empty: every feature is an
  /// angle.
  TORCH_ARG(std::vector<int64_t>, circular) = {};
  /// The conditioner network (default: an MLP with MLPOptions' defaults).
  TORCH_ARG(nn::ConditionerFactoryPtr, conditioner) = nn::mlp_conditioner();
  /// Size of the context vector (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
  /// Bins K ≥ 1 of every spline.
  TORCH_ARG(int64_t, bins) = 8;
  /// Half-width B of the real features' splines ([−B, B], identity outside).
  TORCH_ARG(double, tail_bound) = functional::SplineOptions{}.tail_bound;
};

/// The layer starts as the identity (up to wrapping the transformed angles): the conditioner's
/// last layer starts at zero, the splines' raw derivatives are offset as in SplineCoupling,
/// and φ = 0.
class CircularSplineCouplingImpl : public TransformImpl {
 public:
  explicit CircularSplineCouplingImpl(const CircularSplineCouplingOptions& options);
  Json spec() const override;
  std::string describe() const override;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  TransformOutput apply(const Tensor& inputs, const Tensor& context, bool inverse);
  /// The conditioner's input: kept real features, then cos and sin of the kept angles.
  Tensor conditioner_inputs(const Tensor& inputs) const;
  CircularSplineCouplingOptions options_;
  Json conditioner_spec_;
  IndexList kept_real_, kept_angles_, real_, angles_;
  functional::SplineOptions real_spline_, circle_spline_;
  nn::ConditionerPtr conditioner_;
};
TORCH_MODULE(CircularSplineCoupling);

}  // namespace zflow
