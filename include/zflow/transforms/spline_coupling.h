#pragma once
/// \file
/// Rational-quadratic spline coupling (Neural Spline Flows, Durkan et al. 2019): the
/// transformed features go through a monotonic rational-quadratic spline with K bins on
/// [−B, B] and linear (identity) tails outside, whose 3K − 1 parameters per feature come
/// from the conditioner (see functional/rational_quadratic.h and docs/splines.md).

#include <cstdint>
#include <vector>

#include "zflow/functional/rational_quadratic.h"
#include "zflow/transforms/coupling.h"

namespace zflow {

/// Spline coupling layer ("spline_coupling"). The conditioner's last layer starts at zero;
/// the raw inner-knot derivatives are offset by log(exp(1 − min_derivative) − 1) so that a
/// zero conditioner output gives uniform bins and derivatives exactly 1: the layer starts as
/// the identity.
class SplineCouplingImpl : public CouplingTransformImpl {
 public:
  /// `bins` K ≥ 1 (K · min_bin_width must stay ≤ 1), `tail_bound` B > 0.
  SplineCouplingImpl(std::vector<int64_t> mask, const Json& conditioner,
                     int64_t context_features = 0, int64_t bins = 8, double tail_bound = 3.0);
  Json spec() const override;
  std::string describe() const override;

  int64_t bins() const { return bins_; }
  double tail_bound() const { return options_.tail_bound; }

 protected:
  TransformOutput transform_part(const Tensor& x_t, const Tensor& params, bool inverse) override;

 private:
  int64_t bins_;
  functional::SplineOptions options_;
};
TORCH_MODULE(SplineCoupling);

}  // namespace zflow
