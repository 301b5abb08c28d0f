#include "zflow/distributions/mixture.h"

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

namespace {

constexpr double kHalfLog2Pi = 0.91893853320467274178;  // ½ log(2π)

}  // namespace

GaussianMixtureImpl::GaussianMixtureImpl(std::vector<int64_t> shape, int64_t components)
    : DistributionImpl("gaussian_mixture"), shape_(std::move(shape)), components_(components) {
  if (shape_.size() != 1) {
    throw ConfigError("gaussian_mixture: shape must be [D] (one dimension), got " +
                      Json(shape_).dump());
  }
  require_positive("gaussian_mixture: event size", shape_[0]);
  require_positive("gaussian_mixture: components", components_);
  const int64_t d = shape_[0];
  logits = register_parameter("logits", at::zeros({components_}, at::kFloat));
  means = register_parameter("means", at::randn({components_, d}, at::kFloat));
  log_scales = register_parameter("log_scales", at::zeros({components_, d}, at::kFloat));
}

Tensor GaussianMixtureImpl::weights() const { return at::softmax(logits, 0); }

Tensor GaussianMixtureImpl::log_prob(const Tensor& inputs, const Tensor&) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == shape_[0], type(), ": expected inputs [B, ",
              shape_[0], "], got ", inputs.sizes());
  // [B, 1, D] against [K, D] → [B, K, D].
  Tensor u = (inputs.unsqueeze(1) - means) * at::exp(-log_scales);
  const auto d = static_cast<double>(shape_[0]);
  Tensor component = -0.5 * (u * u).sum(-1) - log_scales.sum(-1) - d * kHalfLog2Pi;  // [B, K]
  return at::logsumexp(component + at::log_softmax(logits, 0), 1);
}

Tensor GaussianMixtureImpl::sample(int64_t n, const Tensor&) {
  TORCH_CHECK(n >= 0, type(), ": number of samples must be >= 0, got ", n);
  if (n == 0) return at::empty({0, shape_[0]}, means.options());
  // The component indices are discrete: no gradient flows through the weights here.
  Tensor index = at::multinomial(weights().detach(), n, /*replacement=*/true);  // [n]
  Tensor eps = at::randn({n, shape_[0]}, means.options());
  return means.index_select(0, index) + at::exp(log_scales.index_select(0, index)) * eps;
}

Json GaussianMixtureImpl::spec() const {
  return {{"type", "gaussian_mixture"}, {"shape", shape_}, {"components", components_}};
}

void GaussianMixtureImpl::pretty_print(std::ostream& stream) const {
  stream << "GaussianMixture(features=" << shape_[0] << ", components=" << components_ << ")";
}

}  // namespace zflow
