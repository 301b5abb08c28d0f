#include "zflow/distributions/uniform.h"

#include <cmath>
#include <limits>
#include <string>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow {

BoxUniformImpl::BoxUniformImpl(std::vector<double> low_, std::vector<double> high_)
    : DistributionImpl("box_uniform"),
      low_values_(std::move(low_)),
      high_values_(std::move(high_)) {
  if (low_values_.empty()) throw ConfigError("box_uniform: 'low' and 'high' must not be empty");
  if (low_values_.size() != high_values_.size()) {
    throw ConfigError("box_uniform: 'low' has " + std::to_string(low_values_.size()) +
                      " values but 'high' has " + std::to_string(high_values_.size()));
  }
  for (size_t i = 0; i < low_values_.size(); ++i) {
    const double lo = low_values_[i], hi = high_values_[i];
    if (!std::isfinite(lo) || !std::isfinite(hi)) {
      throw ConfigError("box_uniform: bounds must be finite (dimension " + std::to_string(i) + ")");
    }
    if (!(lo < hi)) {
      throw ConfigError("box_uniform: low must be < high in every dimension (dimension " +
                        std::to_string(i) + ": low " + std::to_string(lo) + ", high " +
                        std::to_string(hi) + ")");
    }
    log_volume_ += std::log(hi - lo);
  }
  const auto d = static_cast<int64_t>(low_values_.size());
  low = register_buffer("low", at::tensor(low_values_, at::kDouble).to(at::kFloat).view({d}));
  high = register_buffer("high", at::tensor(high_values_, at::kDouble).to(at::kFloat).view({d}));
}

Tensor BoxUniformImpl::log_prob(const Tensor& inputs, const Tensor&) {
  const auto d = static_cast<int64_t>(low_values_.size());
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == d, type(), ": expected inputs [B, ", d,
              "], got ", inputs.sizes());
  Tensor inside = ((inputs >= low) & (inputs <= high)).all(1);  // [B]
  Tensor inside_value = at::full({inputs.size(0)}, -log_volume_, inputs.options());
  Tensor outside_value =
      at::full({inputs.size(0)}, -std::numeric_limits<double>::infinity(), inputs.options());
  return at::where(inside, inside_value, outside_value);
}

Tensor BoxUniformImpl::sample(int64_t n, const Tensor&) {
  TORCH_CHECK(n >= 0, type(), ": number of samples must be >= 0, got ", n);
  const auto d = static_cast<int64_t>(low_values_.size());
  return low + (high - low) * at::rand({n, d}, low.options());
}

Json BoxUniformImpl::spec() const {
  return {{"type", "box_uniform"}, {"low", low_values_}, {"high", high_values_}};
}

void BoxUniformImpl::pretty_print(std::ostream& stream) const {
  stream << "BoxUniform(features=" << low_values_.size() << ")";
}

}  // namespace zflow
