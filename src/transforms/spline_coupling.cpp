#include "zflow/transforms/spline_coupling.h"

namespace zflow {

SplineCouplingImpl::SplineCouplingImpl(const SplineCouplingOptions& o)
    : CouplingTransformImpl(
          "spline_coupling", o.mask(),
          std::make_shared<SplineTransformer>(
              SplineTransformerOptions().bins(o.bins()).tail_bound(o.tail_bound()),
              "spline_coupling"),
          o.conditioner(), o.context_features()) {}

const SplineTransformer& SplineCouplingImpl::spline() const {
  return static_cast<const SplineTransformer&>(transformer());
}

}  // namespace zflow
