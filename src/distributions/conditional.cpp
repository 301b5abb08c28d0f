#include "zflow/distributions/conditional.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

constexpr double kHalfLog2Pi = 0.91893853320467274178;  // ½ log(2π)

}  // namespace

ConditionalDiagonalNormalImpl::ConditionalDiagonalNormalImpl(std::vector<int64_t> shape,
                                                             int64_t context_features,
                                                             Json conditioner)
    : DistributionImpl("conditional_diagonal_normal"),
      shape_(std::move(shape)),
      context_features_(context_features) {
  if (shape_.size() != 1) {
    throw ConfigError("conditional_diagonal_normal: shape must be [D] (one dimension), got " +
                      Json(shape_).dump());
  }
  require_positive("conditional_diagonal_normal: event size", shape_[0]);
  require_positive("conditional_diagonal_normal: context_features", context_features_);
  // The context is the MLP's input; zero_init_last (the default) makes it start as N(0, I).
  auto options = nn::mlp_options_from_spec(conditioner, context_features_, 2 * shape_[0], 0);
  options.zero_init_last(true);
  conditioner_ = register_module("conditioner", nn::MLP(options));
}

std::pair<Tensor, Tensor> ConditionalDiagonalNormalImpl::mean_and_log_scale(const Tensor& context) {
  TORCH_CHECK(context.defined(), type(), ": a context [B, ", context_features_,
              "] is required (got none)");
  TORCH_CHECK(context.dim() == 2 && context.size(1) == context_features_, type(),
              ": expected a context [B, ", context_features_, "], got ", context.sizes());
  Tensor params = conditioner_->forward(context);  // [C, 2D]
  auto halves = params.chunk(2, 1);
  return {halves[0], halves[1]};
}

Tensor ConditionalDiagonalNormalImpl::log_prob(const Tensor& inputs, const Tensor& context) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == shape_[0], type(), ": expected inputs [B, ",
              shape_[0], "], got ", inputs.sizes());
  auto [mean, log_scale] = mean_and_log_scale(context);
  TORCH_CHECK(mean.size(0) == inputs.size(0), type(), ": inputs ", inputs.sizes(), " and context ",
              context.sizes(), " differ in batch size");
  Tensor u = (inputs - mean) * at::exp(-log_scale);
  const auto d = static_cast<double>(shape_[0]);
  return -0.5 * (u * u).sum(1) - log_scale.sum(1) - d * kHalfLog2Pi;
}

Tensor ConditionalDiagonalNormalImpl::sample(int64_t n, const Tensor& context) {
  return sample_and_log_prob(n, context).first;
}

std::pair<Tensor, Tensor> ConditionalDiagonalNormalImpl::sample_and_log_prob(
    int64_t n, const Tensor& context) {
  TORCH_CHECK(n >= 0, type(), ": number of samples must be >= 0, got ", n);
  auto [mean, log_scale] = mean_and_log_scale(context);  // [C, D] each
  const int64_t c = mean.size(0);
  Tensor eps = at::randn({c, n, shape_[0]}, mean.options());
  Tensor samples = mean.unsqueeze(1) + at::exp(log_scale).unsqueeze(1) * eps;  // [C, n, D]
  const auto d = static_cast<double>(shape_[0]);
  Tensor log_prob =
      -0.5 * (eps * eps).sum(2) - log_scale.sum(1, /*keepdim=*/true) - d * kHalfLog2Pi;  // [C, n]
  return {samples, log_prob};
}

Json ConditionalDiagonalNormalImpl::spec() const {
  return {{"type", "conditional_diagonal_normal"},
          {"shape", shape_},
          {"context_features", context_features_},
          {"conditioner", nn::mlp_spec(conditioner_->options)}};
}

void ConditionalDiagonalNormalImpl::pretty_print(std::ostream& stream) const {
  stream << "ConditionalDiagonalNormal(features=" << shape_[0]
         << ", context_features=" << context_features_ << ", conditioner=";
  conditioner_->pretty_print(stream);
  stream << ")";
}

}  // namespace zflow
