#include "zflow/transforms/variational_dequantize.h"

#include <cmath>
#include <string>

#include <ATen/ATen.h>

#include "zflow/core/batch_shard.h"
#include "zflow/core/error.h"
#include "zflow/transforms/image.h"

namespace zflow {

namespace {

/// The initial scale of ε: the logistic distribution, whose sigmoid is exactly uniform, has
/// standard deviation π/√3 ≈ 1.81; σ(1.6·ε) with ε ~ N(0, 1) is the closest to uniform.
constexpr double kInitialScale = 1.6;

/// Σ over all but the first dimension.
Tensor per_example_sum(const Tensor& t) { return t.flatten(1).sum(1); }

}  // namespace

VariationalDequantizeImpl::VariationalDequantizeImpl(const VariationalDequantizeOptions& options)
    : TransformImpl("variational_dequantize"), options_(options) {
  const std::string name = "variational_dequantize";
  require_positive(name + ": channels", options_.channels());
  require_positive(name + ": hidden channels", options_.hidden());
  require_positive(name + ": steps", options_.steps());
  check_dequantization_bits(name, options_.bits());
  if (!(options_.scale_bound() > 0) || !std::isfinite(options_.scale_bound())) {
    throw ConfigError(name + ": scale_bound must be positive and finite");
  }
  log_scale_ = register_parameter(
      "log_scale", at::full({options_.channels()}, std::log(kInitialScale), at::kFloat));
  const int64_t c = options_.channels();
  for (int64_t k = 0; k < options_.steps(); ++k) {
    // Input: the kept half of ε and x; output: log-scale and shift for every channel.
    nets_.push_back(
        register_module("net" + std::to_string(k), nn::ConvNet(2 * c, 2 * c, options_.hidden())));
  }
}

void VariationalDequantizeImpl::check(const Tensor& inputs) const {
  TORCH_CHECK(inputs.dim() == 4 && inputs.size(1) == options_.channels(),
              "variational_dequantize: expected [B, ", options_.channels(), ", H, W], got ",
              inputs.sizes());
}

std::pair<Tensor, Tensor> VariationalDequantizeImpl::noise(const Tensor& epsilon,
                                                           const Tensor& inputs) {
  check(inputs);
  TORCH_CHECK(epsilon.sizes() == inputs.sizes(), "variational_dequantize: noise ", epsilon.sizes(),
              " for inputs ", inputs.sizes());
  const double levels = std::ldexp(1.0, static_cast<int>(options_.bits()));
  const int64_t pixels = inputs.size(2) * inputs.size(3);
  // x scaled to [−1, 1]: what the couplings' conv nets condition on.
  const Tensor scaled = inputs * (2.0 / (levels - 1.0)) - 1.0;
  // log N(ε₀; 0, I), then every step's log|det| subtracted.
  Tensor log_q = per_example_sum(-0.5 * epsilon.square()) -
                 0.5 * std::log(2.0 * M_PI) * static_cast<double>(epsilon[0].numel());
  Tensor e = epsilon * at::exp(log_scale_).view({1, -1, 1, 1});
  log_q = log_q - static_cast<double>(pixels) * log_scale_.sum();
  const double bound = options_.scale_bound();
  // Step k transforms the pixels with h + w + k odd and keeps the others.
  const Tensor transformed[2] = {checkerboard_mask(inputs.size(2), inputs.size(3), 0, e.options()),
                                 checkerboard_mask(inputs.size(2), inputs.size(3), 1, e.options())};
  for (size_t k = 0; k < nets_.size(); ++k) {
    const Tensor& changed = transformed[k % 2];
    const Tensor keep = 1.0 - changed;
    const Tensor params = nets_[k]->forward(at::cat({e * keep, scaled}, 1));
    const auto halves = params.chunk(2, 1);
    const Tensor s = bound * at::tanh(halves[0] / bound) * changed;
    const Tensor t = halves[1] * changed;
    e = e * at::exp(s) + t;
    log_q = log_q - per_example_sum(s);
  }
  // u = σ(ε): log σ'(ε) = log σ(ε) + log σ(−ε) = −softplus(−ε) − softplus(ε).
  log_q = log_q + per_example_sum(at::softplus(-e) + at::softplus(e));
  return {at::sigmoid(e), log_q};
}

TransformOutput VariationalDequantizeImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  const double levels = std::ldexp(1.0, static_cast<int>(options_.bits()));
  auto [u, log_q] = noise(randn_per_example(inputs), inputs);
  // As in `dequantize`: x + u must never round up to x + 1.
  u = at::clamp_max(u, dequantization_noise_width(inputs.scalar_type(), options_.bits()));
  return {(inputs + u) / levels, dequantization_logabsdet(inputs, options_.bits()) - log_q};
}

TransformOutput VariationalDequantizeImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  check(inputs);
  return {quantize(inputs, options_.bits()), -dequantization_logabsdet(inputs, options_.bits())};
}

Json VariationalDequantizeImpl::spec() const {
  return {{"type", "variational_dequantize"}, {"channels", options_.channels()},
          {"bits", options_.bits()},          {"hidden", options_.hidden()},
          {"steps", options_.steps()},        {"scale_bound", options_.scale_bound()}};
}

std::string VariationalDequantizeImpl::describe() const {
  return "variational_dequantize(" + std::to_string(options_.bits()) +
         " bits, q: " + std::to_string(options_.steps()) + " couplings of " +
         std::to_string(options_.hidden()) + " hidden channels)";
}

}  // namespace zflow
