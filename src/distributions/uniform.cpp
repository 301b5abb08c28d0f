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

// ---- circular_uniform ----------------------------------------------------------------------

namespace {
constexpr double kTwoPi = 6.28318530717958647692;
}  // namespace

CircularUniformImpl::CircularUniformImpl(std::vector<int64_t> shape, std::vector<int64_t> flags)
    : DistributionImpl("circular_uniform"), flags_(std::move(flags)) {
  if (shape.size() != 1 || shape[0] < 1) {
    throw ConfigError("circular_uniform: shape must be [D] with D >= 1");
  }
  features_ = shape[0];
  if (flags_.empty()) flags_.assign(static_cast<size_t>(features_), 1);
  if (static_cast<int64_t>(flags_.size()) != features_) {
    throw ConfigError("circular_uniform: circular has " + std::to_string(flags_.size()) +
                      " entries for " + std::to_string(features_) + " features");
  }
  std::vector<double> values;
  for (int64_t f : flags_) {
    if (f != 0 && f != 1) throw ConfigError("circular_uniform: circular entries must be 0 or 1");
    values.push_back(static_cast<double>(f));
  }
  circular = register_buffer("circular", at::tensor(values, at::kDouble).to(at::kFloat));
}

Tensor CircularUniformImpl::log_prob(const Tensor& inputs, const Tensor&) {
  TORCH_CHECK(inputs.dim() == 2 && inputs.size(1) == features_, type(), ": expected inputs [B, ",
              features_, "], got ", inputs.sizes());
  const Tensor per_feature =
      at::where(circular > 0.5, at::full({}, -std::log(kTwoPi), inputs.options()),
                -0.5 * inputs.pow(2) - 0.5 * std::log(kTwoPi));
  return per_feature.sum(1);
}

Tensor CircularUniformImpl::sample(int64_t n, const Tensor&) {
  TORCH_CHECK(n >= 0, type(), ": number of samples must be >= 0, got ", n);
  const Tensor angles = (at::rand({n, features_}, circular.options()) - 0.5) * kTwoPi;
  return at::where(circular > 0.5, angles, at::randn({n, features_}, circular.options()));
}

Json CircularUniformImpl::spec() const {
  return {{"type", "circular_uniform"}, {"shape", {features_}}, {"circular", flags_}};
}

void CircularUniformImpl::pretty_print(std::ostream& stream) const {
  int64_t angles = 0;
  for (int64_t f : flags_) angles += f;
  stream << "CircularUniform(features=" << features_ << ", angles=" << angles << ")";
}

}  // namespace zflow
