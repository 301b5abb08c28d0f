#include "zflow/transforms/transformer.h"

#include <cmath>
#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/functional/affine.h"

namespace zflow {

void AffineTransformerOptions::validate(const std::string& owner) const {
  if (!(scale_bound() > 0) || !std::isfinite(scale_bound())) {
    std::ostringstream s;
    s << owner << ": scale_bound must be a positive number, got " << scale_bound();
    throw ConfigError(s.str());
  }
}

functional::SplineOptions SplineTransformerOptions::spline() const {
  functional::SplineOptions o;
  o.tail_bound = tail_bound();
  o.min_bin_width = min_bin_width();
  o.min_bin_height = min_bin_height();
  o.min_derivative = min_derivative();
  return o;
}

void SplineTransformerOptions::validate(const std::string& owner) const {
  functional::check_spline_settings(owner, bins(), spline());
}

TransformOutput ElementwiseTransformer::apply_image(const Tensor& inputs, const Tensor& params,
                                                    const Tensor& mask, bool inverse) const {
  const int64_t p = params_per_feature();
  TORCH_CHECK(inputs.dim() == 4 && params.dim() == 4 && params.size(0) == inputs.size(0) &&
                  params.size(1) == p * inputs.size(1) &&
                  params.sizes().slice(2) == inputs.sizes().slice(2),
              name(), " transformer: expected images [B, C, H, W] and params [B, ", p,
              "·C, H, W], got ", inputs.sizes(), " and ", params.sizes());
  // [B, P·C, H, W] → [B, C, H, W, P]: a view, parameter p of channel c at [.., c, .., p].
  const Tensor per_element =
      params.view({params.size(0), p, inputs.size(1), inputs.size(2), inputs.size(3)})
          .permute({0, 2, 3, 4, 1});
  return apply(inputs, mask.defined() ? per_element * mask.unsqueeze(-1) : per_element, inverse);
}

// ---- affine -------------------------------------------------------------------------------

AffineTransformer::AffineTransformer(AffineTransformerOptions options, const std::string& owner)
    : options_(options) {
  options_.validate(owner);
}

TransformOutput AffineTransformer::apply(const Tensor& inputs, const Tensor& params,
                                         bool inverse) const {
  if (inputs.dim() == 2) {
    // [B, D] with [B, D, 2]: the fused form.
    auto r = functional::affine_packed(inputs, params, options_.scale_bound(), inverse);
    return {r.outputs, r.logabsdet};
  }
  auto r = functional::affine(inputs, params.select(-1, 0), params.select(-1, 1),
                              options_.scale_bound(), inverse);
  return {r.outputs, sum_except_batch(r.logabsdet)};
}

Json AffineTransformer::spec() const { return {{"scale_bound", options_.scale_bound()}}; }

// ---- additive -----------------------------------------------------------------------------

TransformOutput AdditiveTransformer::apply(const Tensor& inputs, const Tensor& params,
                                           bool inverse) const {
  const Tensor shift = params.select(-1, 0);
  return {inverse ? inputs - shift : inputs + shift, at::zeros({inputs.size(0)}, inputs.options())};
}

// ---- rational-quadratic spline ------------------------------------------------------------

SplineTransformer::SplineTransformer(SplineTransformerOptions options, const std::string& owner)
    : options_(options), spline_(options.spline()) {
  options_.validate(owner);
}

int64_t SplineTransformer::params_per_feature() const {
  return functional::spline_param_count(options_.bins());
}

TransformOutput SplineTransformer::apply(const Tensor& inputs, const Tensor& params,
                                         bool inverse) const {
  // Zero params must give the identity: the raw inner derivatives are offset.
  const Tensor shifted = functional::identity_offset(params, options_.bins(), spline_);
  auto r = functional::rational_quadratic_spline(inputs, shifted, inverse, spline_);
  return {r.outputs, inputs.dim() == 2 ? r.logabsdet.sum(1) : sum_except_batch(r.logabsdet)};
}

Json SplineTransformer::spec() const {
  return {{"bins", options_.bins()}, {"tail_bound", options_.tail_bound()}};
}

std::string SplineTransformer::describe() const {
  std::ostringstream s;
  s << ", bins " << options_.bins() << ", tail_bound " << options_.tail_bound();
  return s.str();
}

}  // namespace zflow
