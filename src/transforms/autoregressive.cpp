#include "zflow/transforms/autoregressive.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/functional/affine.h"

namespace zflow {

AutoregressiveTransformImpl::AutoregressiveTransformImpl(std::string type, int64_t features,
                                                         int64_t params_per_feature,
                                                         const Json& made, int64_t context_features,
                                                         bool inverse_autoregressive)
    : TransformImpl(std::move(type)),
      features_(features),
      context_features_(context_features),
      inverse_autoregressive_(inverse_autoregressive) {
  require_positive(this->type() + ": features", features_);
  auto options = nn::made_options_from_spec(made, features_, params_per_feature, context_features_);
  made_spec_ = nn::made_spec(options);
  made_ = register_module("made", nn::MADE(options));
}

Json AutoregressiveTransformImpl::base_spec() const {
  return {{"type", type()},
          {"features", features_},
          {"made", made_spec_},
          {"context_features", context_features_},
          {"inverse_autoregressive", inverse_autoregressive_}};
}

std::string AutoregressiveTransformImpl::describe() const {
  std::ostringstream s;
  s << type()
    << (inverse_autoregressive_ ? " (IAF: one-pass sampling)" : " (MAF: one-pass density)") << ", ";
  made_->pretty_print(s);
  return s.str();
}

TransformOutput AutoregressiveTransformImpl::one_pass(const Tensor& inputs, const Tensor& context) {
  return transformer(inputs, made_->forward(inputs, context), false);
}

TransformOutput AutoregressiveTransformImpl::sequential(const Tensor& inputs,
                                                        const Tensor& context) {
  // After pass k the first k positions of the ordering are exact (their parameters depend
  // only on earlier positions), so D passes solve the triangular system. The logabsdet of
  // the last pass is exact: no parameter depends on the last position.
  Tensor outputs = at::zeros_like(inputs);
  TransformOutput result;
  for (int64_t pass = 0; pass < features_; ++pass) {
    result = transformer(inputs, made_->forward(outputs, context), true);
    outputs = result.outputs;
  }
  return result;
}

TransformOutput AutoregressiveTransformImpl::forward_impl(const Tensor& inputs,
                                                          const Tensor& context) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == features_, type(), ": expected [B, ",
              features_, "], got ", inputs.sizes());
  return inverse_autoregressive_ ? sequential(inputs, context) : one_pass(inputs, context);
}

TransformOutput AutoregressiveTransformImpl::inverse_impl(const Tensor& inputs,
                                                          const Tensor& context) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == features_, type(), ": expected [B, ",
              features_, "], got ", inputs.sizes());
  return inverse_autoregressive_ ? one_pass(inputs, context) : sequential(inputs, context);
}

// ---------------------------------------------------------------------------------------

MaskedAffineAutoregressiveImpl::MaskedAffineAutoregressiveImpl(int64_t features, const Json& made,
                                                               int64_t context_features,
                                                               double scale_bound,
                                                               bool inverse_autoregressive)
    : AutoregressiveTransformImpl("masked_affine_autoregressive", features, 2, made,
                                  context_features, inverse_autoregressive),
      scale_bound_(scale_bound) {
  if (!(scale_bound_ > 0))
    throw ConfigError("masked_affine_autoregressive: scale_bound must be positive");
}

TransformOutput MaskedAffineAutoregressiveImpl::transformer(const Tensor& inputs,
                                                            const Tensor& params, bool inverse) {
  auto r = functional::affine_packed(inputs, params, scale_bound_, inverse);
  return {r.outputs, r.logabsdet};
}

Json MaskedAffineAutoregressiveImpl::spec() const {
  Json s = base_spec();
  s["scale_bound"] = scale_bound_;
  return s;
}

MaskedSplineAutoregressiveImpl::MaskedSplineAutoregressiveImpl(int64_t features, const Json& made,
                                                               int64_t context_features,
                                                               int64_t bins, double tail_bound,
                                                               bool inverse_autoregressive)
    : AutoregressiveTransformImpl("masked_spline_autoregressive", features,
                                  functional::spline_param_count(bins), made, context_features,
                                  inverse_autoregressive),
      bins_(bins) {
  spline_.tail_bound = tail_bound;
  functional::check_spline_settings(type(), bins_, spline_);
}

TransformOutput MaskedSplineAutoregressiveImpl::transformer(const Tensor& inputs,
                                                            const Tensor& params, bool inverse) {
  auto r = functional::rational_quadratic_spline(
      inputs, functional::identity_offset(params, bins_, spline_), inverse, spline_);
  return {r.outputs, r.logabsdet.sum(1)};
}

Json MaskedSplineAutoregressiveImpl::spec() const {
  Json s = base_spec();
  s["bins"] = bins_;
  s["tail_bound"] = spline_.tail_bound;
  return s;
}

}  // namespace zflow
