#include "zflow/transforms/coupling.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/functional/affine.h"

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
                                             int64_t params_per_feature, const Json& conditioner,
                                             int64_t context_features)
    : TransformImpl(std::move(type)),
      mask_(std::move(mask)),
      params_per_feature_(params_per_feature),
      conditioner_spec_(conditioner),
      context_features_(context_features) {
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
  auto options = nn::mlp_options_from_spec(
      conditioner_spec_, static_cast<int64_t>(identity.size()),
      static_cast<int64_t>(transformed.size()) * params_per_feature_, context_features_);
  conditioner_spec_ = nn::mlp_spec(options);
  conditioner_ = register_module("conditioner", nn::MLP(options));
}

Json CouplingTransformImpl::base_spec() const {
  return {{"type", type()},
          {"mask", mask_},
          {"conditioner", conditioner_spec_},
          {"context_features", context_features_}};
}

std::string CouplingTransformImpl::describe() const {
  std::ostringstream s;
  s << type() << "(mask ";
  for (auto m : mask_) s << m;
  s << ", ";
  conditioner_->pretty_print(s);
  s << ")";
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
    const Tensor params =
        conditioner_->forward(x_id, context).view({batch, x_t.size(1), params_per_feature_});
    auto part = transform_part(x_t, params, inverse);
    if (identity_index_.size() == 0) return part;
    return {
        t_start > id_start ? at::cat({x_id, part.outputs}, 1) : at::cat({part.outputs, x_id}, 1),
        part.logabsdet};
  }
  const Tensor& identity_index = identity_index_.on(inputs.device());
  const Tensor& transform_index = transform_index_.on(inputs.device());
  const Tensor x_id = inputs.index_select(1, identity_index);
  const Tensor x_t = inputs.index_select(1, transform_index);
  const Tensor params =
      conditioner_->forward(x_id, context).view({batch, x_t.size(1), params_per_feature_});
  auto part = transform_part(x_t, params, inverse);
  return {inputs.index_copy(1, transform_index, part.outputs), part.logabsdet};
}

TransformOutput CouplingTransformImpl::forward_impl(const Tensor& inputs, const Tensor& context) {
  return apply(inputs, context, false);
}

TransformOutput CouplingTransformImpl::inverse_impl(const Tensor& inputs, const Tensor& context) {
  return apply(inputs, context, true);
}

// ---------------------------------------------------------------------------------------

AffineCouplingImpl::AffineCouplingImpl(std::vector<int64_t> mask, const Json& conditioner,
                                       int64_t context_features, double scale_bound)
    : CouplingTransformImpl("affine_coupling", std::move(mask), 2, conditioner, context_features),
      scale_bound_(scale_bound) {
  if (!(scale_bound_ > 0)) throw ConfigError("affine_coupling: scale_bound must be positive");
}

TransformOutput AffineCouplingImpl::transform_part(const Tensor& x_t, const Tensor& params,
                                                   bool inverse) {
  auto r = functional::affine_packed(x_t, params, scale_bound_, inverse);
  return {r.outputs, r.logabsdet};
}

Json AffineCouplingImpl::spec() const {
  Json s = base_spec();
  s["scale_bound"] = scale_bound_;
  return s;
}

AdditiveCouplingImpl::AdditiveCouplingImpl(std::vector<int64_t> mask, const Json& conditioner,
                                           int64_t context_features)
    : CouplingTransformImpl("additive_coupling", std::move(mask), 1, conditioner,
                            context_features) {}

TransformOutput AdditiveCouplingImpl::transform_part(const Tensor& x_t, const Tensor& params,
                                                     bool inverse) {
  const Tensor shift = params.select(2, 0);
  Tensor zero = at::zeros({x_t.size(0)}, x_t.options());
  return {inverse ? x_t - shift : x_t + shift, zero};
}

Json AdditiveCouplingImpl::spec() const { return base_spec(); }

}  // namespace zflow
