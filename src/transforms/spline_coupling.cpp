#include "zflow/transforms/spline_coupling.h"

#include <cmath>
#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

int64_t checked_bins(int64_t bins) {
  if (bins < 1) {
    throw ConfigError("spline_coupling: bins must be >= 1, got " + std::to_string(bins));
  }
  return bins;
}

}  // namespace

SplineCouplingImpl::SplineCouplingImpl(std::vector<int64_t> mask, const Json& conditioner,
                                       int64_t context_features, int64_t bins, double tail_bound)
    : CouplingTransformImpl("spline_coupling", std::move(mask),
                            functional::spline_param_count(checked_bins(bins)), conditioner,
                            context_features),
      bins_(bins) {
  options_.tail_bound = tail_bound;
  functional::check_spline_settings(type(), bins_, options_);
}

TransformOutput SplineCouplingImpl::transform_part(const Tensor& x_t, const Tensor& params,
                                                   bool inverse) {
  // params [B, Dt, 3K − 1]; zero conditioner output must give the identity.
  const Tensor shifted = functional::identity_offset(params, bins_, options_);
  auto result = functional::rational_quadratic_spline(x_t, shifted, inverse, options_);
  return {result.outputs, result.logabsdet.sum(1)};
}

Json SplineCouplingImpl::spec() const {
  Json s = base_spec();
  s["bins"] = bins_;
  s["tail_bound"] = options_.tail_bound;
  return s;
}

std::string SplineCouplingImpl::describe() const {
  std::string base = CouplingTransformImpl::describe();
  // "spline_coupling(mask ..., conditioner)" → add the spline's own settings at the end.
  std::ostringstream s;
  s << base.substr(0, base.size() - 1) << ", bins " << bins_ << ", tail_bound "
    << options_.tail_bound << ")";
  return s.str();
}

}  // namespace zflow
