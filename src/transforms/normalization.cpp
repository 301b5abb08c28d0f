#include "zflow/transforms/normalization.h"

#include <string>
#include <vector>

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

// ---- BatchNorm --------------------------------------------------------------------------------

BatchNormImpl::BatchNormImpl(const BatchNormOptions& options)
    : TransformImpl("batch_norm"), options_(options) {
  require_positive("batch_norm: features", options.features());
  if (!(options.momentum() > 0.0 && options.momentum() <= 1.0)) {
    throw ConfigError("batch_norm: momentum must be in (0, 1], got " +
                      std::to_string(options.momentum()));
  }
  if (!(options.eps() > 0.0)) {
    throw ConfigError("batch_norm: eps must be > 0, got " + std::to_string(options.eps()));
  }
  const int64_t d = options.features();
  log_gamma = register_parameter("log_gamma", at::zeros({d}, at::kFloat));
  beta = register_parameter("beta", at::zeros({d}, at::kFloat));
  running_mean = register_buffer("running_mean", at::zeros({d}, at::kFloat));
  running_var = register_buffer("running_var", at::ones({d}, at::kFloat));
}

Tensor BatchNormImpl::view_params(const Tensor& p, const Tensor& inputs) const {
  const int64_t d = options_.features();
  TORCH_CHECK((inputs.dim() == 2 || inputs.dim() == 4) && inputs.size(1) == d,
              "batch_norm: expected [B, ", d, "] or [B, ", d, ", H, W], got ", inputs.sizes());
  return inputs.dim() == 4 ? p.view({1, d, 1, 1}) : p.view({1, d});
}

Tensor BatchNormImpl::logabsdet(const Tensor& var, const Tensor& inputs) const {
  const int64_t spatial = inputs.dim() == 4 ? inputs.size(2) * inputs.size(3) : 1;
  const Tensor per_feature = log_gamma - 0.5 * at::log(var + options_.eps());
  return (per_feature.sum() * static_cast<double>(spatial)).expand({inputs.size(0)});
}

TransformOutput BatchNormImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  view_params(running_mean, inputs);  // checks the shape
  Tensor mean = running_mean, var = running_var;
  if (is_training() && inputs.size(0) > 1) {
    // Per-feature statistics over the batch (and the pixels, for images); the gradient flows
    // through them, as in the MAF paper's training.
    const std::vector<int64_t> dims =
        inputs.dim() == 4 ? std::vector<int64_t>{0, 2, 3} : std::vector<int64_t>{0};
    mean = inputs.mean(dims);
    var = (inputs - view_params(mean, inputs)).pow(2).mean(dims);
    torch::NoGradGuard no_grad;
    running_mean.mul_(1.0 - options_.momentum()).add_(mean.detach() * options_.momentum());
    running_var.mul_(1.0 - options_.momentum()).add_(var.detach() * options_.momentum());
  }
  const Tensor scale = at::exp(log_gamma) * at::rsqrt(var + options_.eps());
  const Tensor z =
      (inputs - view_params(mean, inputs)) * view_params(scale, inputs) + view_params(beta, inputs);
  return {z, logabsdet(var, inputs)};
}

TransformOutput BatchNormImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  const Tensor scale = at::exp(-log_gamma) * at::sqrt(running_var + options_.eps());
  const Tensor x = (inputs - view_params(beta, inputs)) * view_params(scale, inputs) +
                   view_params(running_mean, inputs);
  return {x, -logabsdet(running_var, inputs)};
}

Json BatchNormImpl::spec() const {
  return {{"type", "batch_norm"},
          {"features", options_.features()},
          {"momentum", options_.momentum()},
          {"eps", options_.eps()}};
}

std::string BatchNormImpl::describe() const {
  return "batch_norm(" + std::to_string(options_.features()) + ")";
}

}  // namespace zflow
