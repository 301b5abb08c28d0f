#include "zflow/transforms/elementwise.h"

#include <cmath>
#include <cstdio>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

void check_features(const std::string& type, const Tensor& inputs, int64_t features) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == features, type, ": expected [B, ", features,
              "], got ", inputs.sizes());
}

// log σ'(x) = log σ(x) + log σ(−x) = −softplus(−x) − softplus(x), stable for large |x|.
Tensor log_sigmoid_derivative(const Tensor& x) { return -at::softplus(-x) - at::softplus(x); }

void check_interval(const std::string& type, double lower, double upper) {
  if (!(upper > lower) || !std::isfinite(lower) || !std::isfinite(upper)) {
    throw ConfigError(type + ": needs finite lower < upper");
  }
}

// Number of scalars in one sample (D, or C·H·W): a constant log-factor per scalar adds up
// to this many times itself in log|det J|.
double values_per_sample(const Tensor& inputs) {
  double n = 1;
  for (auto s : inputs.sizes().slice(1)) n *= static_cast<double>(s);
  return n;
}

}  // namespace

ElementwiseAffineImpl::ElementwiseAffineImpl(const ElementwiseAffineOptions& options)
    : TransformImpl("elementwise_affine"), features_(options.features()) {
  require_positive("elementwise_affine: features", features_);
  log_scale = register_parameter("log_scale", at::zeros({features_}, at::kFloat));
  shift = register_parameter("shift", at::zeros({features_}, at::kFloat));
}

TransformOutput ElementwiseAffineImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check_features(type(), inputs, features_);
  return {inputs * at::exp(log_scale) + shift, log_scale.sum().expand({inputs.size(0)})};
}

TransformOutput ElementwiseAffineImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check_features(type(), inputs, features_);
  return {(inputs - shift) * at::exp(-log_scale), -log_scale.sum().expand({inputs.size(0)})};
}

Json ElementwiseAffineImpl::spec() const {
  return {{"type", "elementwise_affine"}, {"features", features_}};
}

std::string ElementwiseAffineImpl::describe() const {
  return "elementwise_affine(" + std::to_string(features_) + ")";
}

// ---------------------------------------------------------------------------------------

StandardizeImpl::StandardizeImpl(const StandardizeOptions& options)
    : TransformImpl("standardize"), mean_(options.mean()), std_(options.std()) {
  if (mean_.empty() || mean_.size() != std_.size()) {
    throw ConfigError("standardize: mean and std must be non-empty and of equal length");
  }
  for (size_t i = 0; i < std_.size(); ++i) {
    if (!(std_[i] > 0) || !std::isfinite(std_[i]) || !std::isfinite(mean_[i])) {
      throw ConfigError("standardize: std must be positive and finite, mean finite (feature " +
                        std::to_string(i) + ")");
    }
  }
  mean_buffer_ = register_buffer("mean", at::tensor(mean_, at::kDouble).to(at::kFloat));
  std_buffer_ = register_buffer("std", at::tensor(std_, at::kDouble).to(at::kFloat));
}

std::shared_ptr<StandardizeImpl> StandardizeImpl::fit(const Tensor& data) {
  TORCH_CHECK(data.dim() == 2 && data.size(0) >= 1, "standardize: fit needs data [N, D], got ",
              data.sizes());
  const Tensor d = data.to(at::kDouble);
  const Tensor mean = d.mean(0);
  return from_moments(mean, data.size(0) > 1 ? d.std(0, /*unbiased=*/false) : at::ones_like(mean));
}

std::shared_ptr<StandardizeImpl> StandardizeImpl::from_moments(const Tensor& mean_in,
                                                               const Tensor& std_in) {
  const Tensor mean = mean_in.to(at::kDouble).contiguous();
  Tensor std = std_in.to(at::kDouble);
  const double largest = std.max().item<double>();
  std = at::clamp_min(std, std::max(largest * 1e-12, 1e-300));
  std = at::where(std > 0, std, at::ones_like(std));
  std::vector<double> m(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
  std::vector<double> s(std.data_ptr<double>(), std.data_ptr<double>() + std.numel());
  return std::make_shared<StandardizeImpl>(m, s);
}

TransformOutput StandardizeImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check_features(type(), inputs, static_cast<int64_t>(mean_.size()));
  return {(inputs - mean_buffer_) / std_buffer_,
          (-at::log(std_buffer_).sum()).expand({inputs.size(0)})};
}

TransformOutput StandardizeImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check_features(type(), inputs, static_cast<int64_t>(mean_.size()));
  return {inputs * std_buffer_ + mean_buffer_, at::log(std_buffer_).sum().expand({inputs.size(0)})};
}

Json StandardizeImpl::spec() const {
  return {{"type", "standardize"}, {"mean", mean_}, {"std", std_}};
}

std::string StandardizeImpl::describe() const {
  return "standardize(" + std::to_string(mean_.size()) + " features, fixed)";
}

// ---------------------------------------------------------------------------------------

SigmoidImpl::SigmoidImpl(const SigmoidOptions& options)
    : TransformImpl("sigmoid"), lower_(options.lower()), upper_(options.upper()) {
  check_interval(type(), lower_, upper_);
}

TransformOutput SigmoidImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  const double width = upper_ - lower_;
  Tensor z = lower_ + width * at::sigmoid(inputs);
  const double log_width = std::log(width) * values_per_sample(inputs);
  return {z, sum_except_batch(log_sigmoid_derivative(inputs)) + log_width};
}

TransformOutput SigmoidImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  const double width = upper_ - lower_;
  // Clamp strictly inside the interval so that the bounds themselves give finite values.
  const double eps = inputs.scalar_type() == at::kDouble ? 1e-15 : 1e-7;
  Tensor u = at::clamp((inputs - lower_) / width, eps, 1.0 - eps);
  Tensor x = at::log(u) - at::log1p(-u);
  const double log_width = std::log(width) * values_per_sample(inputs);
  return {x, -sum_except_batch(log_sigmoid_derivative(x)) - log_width};
}

Json SigmoidImpl::spec() const {
  return {{"type", "sigmoid"}, {"lower", lower_}, {"upper", upper_}};
}

std::string SigmoidImpl::describe() const {
  return "sigmoid onto (" + std::to_string(lower_) + ", " + std::to_string(upper_) + ")";
}

LogTailsImpl::LogTailsImpl(const LogTailsOptions& options)
    : TransformImpl("log_tails"), bound_(options.bound()) {
  if (!(bound_ > 0) || !std::isfinite(bound_)) {
    throw ConfigError("log_tails: bound must be a positive number");
  }
}

TransformOutput LogTailsImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  const Tensor size = inputs.abs();
  // t = ln(|y| / b) beyond the bound, 0 within: z = sign(y) (min(|y|, b) + b t).
  const Tensor t = at::log(size.clamp_min(bound_) * (1.0 / bound_));
  const Tensor z = at::sign(inputs) * (size.clamp_max(bound_) + bound_ * t);
  return {z, -sum_except_batch(t)};
}

TransformOutput LogTailsImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  const Tensor size = inputs.abs();
  // u = |z| / b − 1 beyond the bound, 0 within: y = sign(z) (min(|z|, b) + b (e^u − 1)).
  const Tensor u = size.clamp_min(bound_) * (1.0 / bound_) - 1.0;
  const Tensor y = at::sign(inputs) * (size.clamp_max(bound_) + bound_ * at::expm1(u));
  return {y, sum_except_batch(u)};
}

Json LogTailsImpl::spec() const { return {{"type", "log_tails"}, {"bound", bound_}}; }

std::string LogTailsImpl::describe() const {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", bound_);
  return std::string("log_tails(beyond ±") + buf + ")";
}

LogitImpl::LogitImpl(const LogitOptions& options)
    : TransformImpl("logit"),
      lower_(options.lower()),
      upper_(options.upper()),
      eps_(options.eps()) {
  check_interval(type(), lower_, upper_);
  if (!(eps_ >= 0 && eps_ < 0.5)) throw ConfigError("logit: eps must be in [0, 0.5)");
}

TransformOutput LogitImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  const double width = upper_ - lower_;
  Tensor u = at::clamp((inputs - lower_) / width, eps_, 1.0 - eps_);
  Tensor z = at::log(u) - at::log1p(-u);
  // dz/dx = 1 / (width · u (1 − u)).
  Tensor lad =
      -sum_except_batch(at::log(u) + at::log1p(-u)) - std::log(width) * values_per_sample(inputs);
  return {z, lad};
}

TransformOutput LogitImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  const double width = upper_ - lower_;
  Tensor x = lower_ + width * at::sigmoid(inputs);
  Tensor lad = sum_except_batch(log_sigmoid_derivative(inputs)) +
               std::log(width) * values_per_sample(inputs);
  return {x, lad};
}

Json LogitImpl::spec() const {
  return {{"type", "logit"}, {"lower", lower_}, {"upper", upper_}, {"eps", eps_}};
}

std::string LogitImpl::describe() const {
  return "logit from (" + std::to_string(lower_) + ", " + std::to_string(upper_) + ")";
}

}  // namespace zflow
