#include "zflow/transforms/coupling.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

std::vector<int64_t> half_mask(int64_t features, bool even) {
  if (features < 2) {
    throw ConfigError("coupling layers need at least 2 features (got " + std::to_string(features) +
                      "); use an autoregressive or elementwise flow for 1-D data");
  }
  std::vector<int64_t> mask(features, 0);
  const int64_t half = features / 2;
  for (int64_t i = 0; i < features; ++i) mask[i] = (i < half) == even ? 1 : 0;
  return mask;
}

CouplingTransformImpl::CouplingTransformImpl(std::string type, std::vector<int64_t> mask,
                                             TransformerPtr transformer,
                                             const nn::ConditionerFactoryPtr& conditioner,
                                             int64_t context_features)
    : TransformImpl(std::move(type)),
      mask_(std::move(mask)),
      transformer_(std::move(transformer)),
      context_features_(context_features) {
  TORCH_CHECK(transformer_ != nullptr && conditioner != nullptr, this->type(),
              ": needs a transformer and a conditioner factory");
  std::vector<int64_t> identity, transformed;
  for (size_t i = 0; i < mask_.size(); ++i) {
    if (mask_[i] != 0 && mask_[i] != 1) {
      throw ConfigError(this->type() + ": mask entries must be 0 or 1");
    }
    (mask_[i] ? transformed : identity).push_back(static_cast<int64_t>(i));
  }
  if (transformed.empty()) throw ConfigError(this->type() + ": mask transforms no feature");
  if (identity.empty() && context_features_ == 0) {
    throw ConfigError(this->type() + ": mask leaves no feature to condition on");
  }
  if (context_features_ < 0) throw ConfigError(this->type() + ": context_features must be >= 0");
  identity_index_ = IndexList(identity);
  transform_index_ = IndexList(transformed);
  auto consecutive = [](const std::vector<int64_t>& v) {
    for (size_t i = 1; i < v.size(); ++i) {
      if (v[i] != v[0] + static_cast<int64_t>(i)) return false;
    }
    return true;
  };
  blocks_ = consecutive(identity) && consecutive(transformed);
  conditioner_spec_ = conditioner->spec();
  conditioner_ =
      register_module("conditioner", conditioner->make(static_cast<int64_t>(identity.size()),
                                                       static_cast<int64_t>(transformed.size()) *
                                                           transformer_->params_per_feature(),
                                                       context_features_));
}

Json CouplingTransformImpl::spec() const {
  Json s = {{"type", type()},
            {"mask", mask_},
            {"conditioner", conditioner_spec_},
            {"context_features", context_features_}};
  s.update(transformer_->spec());
  return s;
}

std::string CouplingTransformImpl::describe() const {
  std::ostringstream s;
  s << type() << "(mask ";
  for (auto m : mask_) s << m;
  s << ", ";
  conditioner_->pretty_print(s);
  s << transformer_->describe() << ")";
  return s.str();
}

TransformOutput CouplingTransformImpl::apply(const Tensor& inputs, const Tensor& context,
                                             bool inverse) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == static_cast<int64_t>(mask_.size()), type(),
              ": expected inputs [B, ", mask_.size(), "], got ", inputs.sizes());
  const int64_t batch = inputs.size(0);
  if (blocks_) {
    const int64_t id_start = identity_index_.size() > 0 ? identity_index_.values()[0] : 0;
    const int64_t t_start = transform_index_.values()[0];
    const Tensor x_id = inputs.narrow(1, id_start, identity_index_.size());
    const Tensor x_t = inputs.narrow(1, t_start, transform_index_.size());
    const Tensor params = conditioner_->condition(x_id, context)
                              .view({batch, x_t.size(1), transformer_->params_per_feature()});
    auto part = transformer_->apply(x_t, params, inverse);
    if (identity_index_.size() == 0) return part;
    return {
        t_start > id_start ? at::cat({x_id, part.outputs}, 1) : at::cat({part.outputs, x_id}, 1),
        part.logabsdet};
  }
  const Tensor& identity_index = identity_index_.on(inputs.device());
  const Tensor& transform_index = transform_index_.on(inputs.device());
  const Tensor x_id = inputs.index_select(1, identity_index);
  const Tensor x_t = inputs.index_select(1, transform_index);
  const Tensor params = conditioner_->condition(x_id, context)
                            .view({batch, x_t.size(1), transformer_->params_per_feature()});
  auto part = transformer_->apply(x_t, params, inverse);
  return {inputs.index_copy(1, transform_index, part.outputs), part.logabsdet};
}

TransformOutput CouplingTransformImpl::forward_impl(const Tensor& inputs, const Tensor& context) {
  return apply(inputs, context, false);
}

TransformOutput CouplingTransformImpl::inverse_impl(const Tensor& inputs, const Tensor& context) {
  return apply(inputs, context, true);
}

// ---------------------------------------------------------------------------------------

AffineCouplingImpl::AffineCouplingImpl(const AffineCouplingOptions& o)
    : CouplingTransformImpl(
          "affine_coupling", o.mask(),
          std::make_shared<AffineTransformer>(
              AffineTransformerOptions().scale_bound(o.scale_bound()), "affine_coupling"),
          o.conditioner(), o.context_features()) {}

AdditiveCouplingImpl::AdditiveCouplingImpl(const AdditiveCouplingOptions& o)
    : CouplingTransformImpl("additive_coupling", o.mask(), std::make_shared<AdditiveTransformer>(),
                            o.conditioner(), o.context_features()) {}

}  // namespace zflow
