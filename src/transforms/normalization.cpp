#include "zflow/transforms/normalization.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

ActNormImpl::ActNormImpl(const ActNormOptions& options)
    : TransformImpl("actnorm"), features_(options.features()) {
  require_positive("actnorm: features", features_);
  log_scale = register_parameter("log_scale", at::zeros({features_}, at::kFloat));
  shift = register_parameter("shift", at::zeros({features_}, at::kFloat));
  initialized_ = register_buffer("initialized", at::zeros({}, at::kFloat));
}

bool ActNormImpl::initialized() const { return initialized_.item<double>() != 0.0; }

Tensor ActNormImpl::view_params(const Tensor& p, const Tensor& inputs) const {
  TORCH_CHECK((inputs.dim() == 2 || inputs.dim() == 4) && inputs.size(1) == features_,
              "actnorm: expected [B, ", features_, "] or [B, ", features_, ", H, W], got ",
              inputs.sizes());
  return inputs.dim() == 4 ? p.view({1, features_, 1, 1}) : p.view({1, features_});
}

Tensor ActNormImpl::logabsdet(const Tensor& inputs) const {
  const int64_t spatial = inputs.dim() == 4 ? inputs.size(2) * inputs.size(3) : 1;
  return (log_scale.sum() * static_cast<double>(spatial)).expand({inputs.size(0)});
}

void ActNormImpl::initialize(const Tensor& inputs) {
  torch::NoGradGuard no_grad;
  // Per-feature statistics over the batch (and the pixels, for images).
  const Tensor flat =
      inputs.dim() == 4 ? inputs.transpose(0, 1).reshape({features_, -1}) : inputs.t();
  const Tensor mean = flat.mean(1);
  // The floor bounds the initial scale (normalization.h, kMinSpread).
  const Tensor std = flat.std(1, /*unbiased=*/false).clamp_min(kMinSpread);
  log_scale.copy_(-at::log(std));
  shift.copy_(-mean * at::exp(log_scale));
  initialized_.fill_(1.0);
}

TransformOutput ActNormImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  if (is_training() && !initialized() && inputs.size(0) > 1) initialize(inputs);
  Tensor z = inputs * view_params(at::exp(log_scale), inputs) + view_params(shift, inputs);
  return {z, logabsdet(inputs)};
}

TransformOutput ActNormImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  Tensor x = (inputs - view_params(shift, inputs)) * view_params(at::exp(-log_scale), inputs);
  return {x, -logabsdet(inputs)};
}

Json ActNormImpl::spec() const { return {{"type", "actnorm"}, {"features", features_}}; }

std::string ActNormImpl::describe() const { return "actnorm(" + std::to_string(features_) + ")"; }

}  // namespace zflow
