#include "zflow/transforms/autoregressive.h"

#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

AutoregressiveTransformImpl::AutoregressiveTransformImpl(
    std::string type, int64_t features, TransformerPtr transformer,
    const nn::ConditionerFactoryPtr& conditioner, int64_t context_features,
    bool inverse_autoregressive)
    : TransformImpl(std::move(type)),
      features_(features),
      context_features_(context_features),
      inverse_autoregressive_(inverse_autoregressive),
      transformer_(std::move(transformer)) {
  TORCH_CHECK(transformer_ != nullptr && conditioner != nullptr, this->type(),
              ": needs a transformer and a conditioner factory");
  require_positive(this->type() + ": features", features_);
  conditioner_spec_ = conditioner->spec();
  conditioner_ = register_module(
      "made", conditioner->make(features_, features_ * transformer_->params_per_feature(),
                                context_features_));
}

Json AutoregressiveTransformImpl::spec() const {
  Json s = {{"type", type()},
            {"features", features_},
            {"made", conditioner_spec_},
            {"context_features", context_features_},
            {"inverse_autoregressive", inverse_autoregressive_}};
  s.update(transformer_->spec());
  return s;
}

nn::MADE AutoregressiveTransformImpl::made() const {
  return nn::MADE(std::dynamic_pointer_cast<nn::MADEImpl>(conditioner_));
}

std::string AutoregressiveTransformImpl::describe() const {
  std::ostringstream s;
  s << type()
    << (inverse_autoregressive_ ? " (IAF: one-pass sampling)" : " (MAF: one-pass density)") << ", ";
  conditioner_->pretty_print(s);
  return s.str();
}

Tensor AutoregressiveTransformImpl::parameters(const Tensor& inputs, const Tensor& context) {
  return conditioner_->condition(inputs, context)
      .view({inputs.size(0), features_, transformer_->params_per_feature()});
}

TransformOutput AutoregressiveTransformImpl::one_pass(const Tensor& inputs, const Tensor& context) {
  return transformer_->apply(inputs, parameters(inputs, context), false);
}

TransformOutput AutoregressiveTransformImpl::sequential(const Tensor& inputs,
                                                        const Tensor& context) {
  // After pass k the first k positions of the ordering are exact (their parameters depend
  // only on earlier positions), so D passes solve the triangular system. The logabsdet of
  // the last pass is exact: no parameter depends on the last position.
  Tensor outputs = at::zeros_like(inputs);
  TransformOutput result;
  for (int64_t pass = 0; pass < features_; ++pass) {
    result = transformer_->apply(inputs, parameters(outputs, context), true);
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

MaskedAffineAutoregressiveImpl::MaskedAffineAutoregressiveImpl(
    const MaskedAffineAutoregressiveOptions& o)
    : AutoregressiveTransformImpl("masked_affine_autoregressive", o.features(),
                                  std::make_shared<AffineTransformer>(
                                      AffineTransformerOptions().scale_bound(o.scale_bound()),
                                      "masked_affine_autoregressive"),
                                  o.conditioner(), o.context_features(),
                                  o.inverse_autoregressive()) {}

MaskedSplineAutoregressiveImpl::MaskedSplineAutoregressiveImpl(
    const MaskedSplineAutoregressiveOptions& o)
    : AutoregressiveTransformImpl(
          "masked_spline_autoregressive", o.features(),
          std::make_shared<SplineTransformer>(
              SplineTransformerOptions().bins(o.bins()).tail_bound(o.tail_bound()),
              "masked_spline_autoregressive"),
          o.conditioner(), o.context_features(), o.inverse_autoregressive()) {}

}  // namespace zflow
