#include "zflow/transforms/circular.h"

#include <cmath>
#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

constexpr double kPi = 3.14159265358979323846;

/// The representative of angle a in [−π, π).
Tensor wrap(const Tensor& a) { return at::remainder(a + kPi, 2.0 * kPi) - kPi; }

/// The columns of `inputs` [B, D] at `index`, or an empty [B, 0] when there are none.
Tensor columns(const Tensor& inputs, const IndexList& index) {
  return inputs.index_select(1, index.on(inputs.device()));
}

void check_flags(const std::string& what, const std::vector<int64_t>& flags) {
  for (int64_t f : flags) {
    if (f != 0 && f != 1)
      throw ConfigError("circular_spline_coupling: " + what + " entries must be 0 or 1");
  }
}

}  // namespace

CircularSplineCouplingImpl::CircularSplineCouplingImpl(const CircularSplineCouplingOptions& o)
    : TransformImpl("circular_spline_coupling"), options_(o) {
  const auto& mask = o.mask();
  if (options_.circular().empty()) options_.circular(std::vector<int64_t>(mask.size(), 1));
  const auto& circular = options_.circular();
  if (circular.size() != mask.size()) {
    throw ConfigError("circular_spline_coupling: circular has " + std::to_string(circular.size()) +
                      " entries for a mask of " + std::to_string(mask.size()));
  }
  check_flags("mask", mask);
  check_flags("circular", circular);
  if (o.context_features() < 0) {
    throw ConfigError("circular_spline_coupling: context_features must be >= 0");
  }
  std::vector<int64_t> kept_real, kept_angles, real, angles;
  for (size_t i = 0; i < mask.size(); ++i) {
    const auto index = static_cast<int64_t>(i);
    if (mask[i]) {
      (circular[i] ? angles : real).push_back(index);
    } else {
      (circular[i] ? kept_angles : kept_real).push_back(index);
    }
  }
  if (real.empty() && angles.empty()) {
    throw ConfigError("circular_spline_coupling: mask transforms no feature");
  }
  if (kept_real.empty() && kept_angles.empty() && o.context_features() == 0) {
    throw ConfigError("circular_spline_coupling: mask leaves no feature to condition on");
  }
  kept_real_ = IndexList(kept_real);
  kept_angles_ = IndexList(kept_angles);
  real_ = IndexList(real);
  angles_ = IndexList(angles);
  real_spline_.tail_bound = o.tail_bound();
  circle_spline_.tail_bound = kPi;
  functional::check_spline_settings("circular_spline_coupling", o.bins(), real_spline_);
  // Per real feature 3K − 1 spline parameters; per angle 3K and the rotation φ.
  const int64_t outputs = real_.size() * functional::spline_param_count(o.bins()) +
                          angles_.size() * (functional::circular_spline_param_count(o.bins()) + 1);
  conditioner_spec_ = o.conditioner()->spec();
  conditioner_ = register_module(
      "conditioner", o.conditioner()->make(kept_real_.size() + 2 * kept_angles_.size(), outputs,
                                           o.context_features()));
}

Tensor CircularSplineCouplingImpl::conditioner_inputs(const Tensor& inputs) const {
  const Tensor kept = columns(inputs, kept_angles_);
  return at::cat({columns(inputs, kept_real_), at::cos(kept), at::sin(kept)}, 1);
}

TransformOutput CircularSplineCouplingImpl::apply(const Tensor& inputs, const Tensor& context,
                                                  bool inverse) {
  const auto& mask = options_.mask();
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == static_cast<int64_t>(mask.size()),
              "circular_spline_coupling: expected inputs [B, ", mask.size(), "], got ",
              inputs.sizes());
  const int64_t batch = inputs.size(0), bins = options_.bins();
  const Tensor params = conditioner_->condition(conditioner_inputs(inputs), context);
  const int64_t real_count = functional::spline_param_count(bins);
  const int64_t angle_count = functional::circular_spline_param_count(bins) + 1;
  Tensor outputs = inputs;
  Tensor logabsdet = at::zeros({batch}, inputs.options());
  if (real_.size() > 0) {
    const Tensor p = functional::identity_offset(
        params.narrow(1, 0, real_.size() * real_count).view({batch, real_.size(), real_count}),
        bins, real_spline_);
    const auto part =
        functional::rational_quadratic_spline(columns(inputs, real_), p, inverse, real_spline_);
    outputs = outputs.index_copy(1, real_.on(inputs.device()), part.outputs);
    logabsdet = logabsdet + part.logabsdet.sum(1);
  }
  if (angles_.size() > 0) {
    const Tensor p = params.narrow(1, real_.size() * real_count, angles_.size() * angle_count)
                         .view({batch, angles_.size(), angle_count});
    const Tensor spline_params =
        functional::identity_offset(p.narrow(2, 0, angle_count - 1), bins, circle_spline_);
    const Tensor rotation = p.select(2, angle_count - 1);
    const Tensor x = columns(inputs, angles_);
    // z = wrap(CRQS(x) + φ); the inverse undoes the rotation first.
    const auto part = functional::circular_rational_quadratic_spline(
        inverse ? wrap(x - rotation) : x, spline_params, inverse, circle_spline_);
    const Tensor z = inverse ? part.outputs : wrap(part.outputs + rotation);
    outputs = outputs.index_copy(1, angles_.on(inputs.device()), z);
    logabsdet = logabsdet + part.logabsdet.sum(1);
  }
  return {outputs, logabsdet};
}

TransformOutput CircularSplineCouplingImpl::forward_impl(const Tensor& inputs,
                                                         const Tensor& context) {
  return apply(inputs, context, false);
}

TransformOutput CircularSplineCouplingImpl::inverse_impl(const Tensor& inputs,
                                                         const Tensor& context) {
  return apply(inputs, context, true);
}

Json CircularSplineCouplingImpl::spec() const {
  return {{"type", "circular_spline_coupling"},
          {"mask", options_.mask()},
          {"circular", options_.circular()},
          {"conditioner", conditioner_spec_},
          {"context_features", options_.context_features()},
          {"bins", options_.bins()},
          {"tail_bound", options_.tail_bound()}};
}

std::string CircularSplineCouplingImpl::describe() const {
  std::ostringstream s;
  s << "circular_spline_coupling(mask ";
  for (auto m : options_.mask()) s << m;
  s << ", circular ";
  for (auto c : options_.circular()) s << c;
  s << ", ";
  conditioner_->pretty_print(s);
  s << ", bins " << options_.bins() << ")";
  return s.str();
}

}  // namespace zflow
