#include "zflow/transforms/image.h"

#include <cmath>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/functional/affine.h"

namespace zflow {

namespace {

void check_image(const std::string& type, const Tensor& inputs) {
  TORCH_CHECK(inputs.dim() == 4, type, ": expected images [B, C, H, W], got ", inputs.sizes());
}

Tensor zero_logabsdet(const Tensor& inputs) {
  return at::zeros({inputs.size(0)}, inputs.options());
}

}  // namespace

// ---- squeeze --------------------------------------------------------------------------------

SqueezeImpl::SqueezeImpl(int64_t factor) : TransformImpl("squeeze"), factor_(factor) {
  if (factor_ < 2) throw ConfigError("squeeze: factor must be >= 2, got " + std::to_string(factor));
}

std::vector<int64_t> SqueezeImpl::forward_shape(const std::vector<int64_t>& s) const {
  if (s.size() != 3 || s[1] % factor_ != 0 || s[2] % factor_ != 0) {
    throw ConfigError("squeeze: needs [C, H, W] with H and W divisible by " +
                      std::to_string(factor_) + ", got " + shape_string(s));
  }
  return {s[0] * factor_ * factor_, s[1] / factor_, s[2] / factor_};
}

std::vector<int64_t> SqueezeImpl::inverse_shape(const std::vector<int64_t>& s) const {
  if (s.size() != 3 || s[0] % (factor_ * factor_) != 0) {
    throw ConfigError("squeeze: inverse needs [C, H, W] with C divisible by " +
                      std::to_string(factor_ * factor_) + ", got " + shape_string(s));
  }
  return {s[0] / (factor_ * factor_), s[1] * factor_, s[2] * factor_};
}

TransformOutput SqueezeImpl::forward_impl(const Tensor& x, const Tensor&) {
  check_image("squeeze", x);
  const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3), f = factor_;
  TORCH_CHECK(h % f == 0 && w % f == 0, "squeeze: height and width must be divisible by ", f,
              ", got ", x.sizes());
  Tensor y = x.reshape({b, c, h / f, f, w / f, f})
                 .permute({0, 1, 3, 5, 2, 4})
                 .reshape({b, c * f * f, h / f, w / f});
  return {y, zero_logabsdet(x)};
}

TransformOutput SqueezeImpl::inverse_impl(const Tensor& y, const Tensor&) {
  check_image("squeeze", y);
  const int64_t b = y.size(0), c = y.size(1), h = y.size(2), w = y.size(3), f = factor_;
  TORCH_CHECK(c % (f * f) == 0, "squeeze: inverse needs channels divisible by ", f * f, ", got ",
              y.sizes());
  Tensor x = y.reshape({b, c / (f * f), f, f, h, w})
                 .permute({0, 1, 4, 2, 5, 3})
                 .reshape({b, c / (f * f), h * f, w * f});
  return {x, zero_logabsdet(y)};
}

Json SqueezeImpl::spec() const { return {{"type", "squeeze"}, {"factor", factor_}}; }

std::string SqueezeImpl::describe() const {
  return "squeeze(" + std::to_string(factor_) + "×" + std::to_string(factor_) + ")";
}

// ---- convolutional coupling -------------------------------------------------------------------

ConvCouplingImpl::ConvCouplingImpl(int64_t channels, std::string mask, bool flip,
                                   int64_t hidden_channels, std::string transformer,
                                   double scale_bound)
    : TransformImpl("conv_coupling"),
      channels_(channels),
      mask_(std::move(mask)),
      flip_(flip),
      hidden_(hidden_channels),
      transformer_(std::move(transformer)),
      scale_bound_(scale_bound) {
  require_positive("conv_coupling: channels", channels_);
  require_positive("conv_coupling: hidden", hidden_);
  if (mask_ != "channel" && mask_ != "checkerboard") {
    throw ConfigError("conv_coupling: mask must be 'channel' or 'checkerboard', got '" + mask_ +
                      "'");
  }
  if (transformer_ != "affine" && transformer_ != "additive") {
    throw ConfigError("conv_coupling: transformer must be 'affine' or 'additive', got '" +
                      transformer_ + "'");
  }
  if (!(scale_bound_ > 0) || !std::isfinite(scale_bound_)) {
    throw ConfigError("conv_coupling: scale_bound must be a positive number");
  }
  const int64_t per_feature = transformer_ == "affine" ? 2 : 1;
  if (mask_ == "channel") {
    if (channels_ < 2) {
      throw ConfigError("conv_coupling: a channel mask needs at least 2 channels, got " +
                        std::to_string(channels_) + " (squeeze first, or use 'checkerboard')");
    }
    identity_channels_ = channels_ / 2;
    conditioner_ = register_module(
        "conditioner",
        nn::ConvNet(identity_channels_, (channels_ - identity_channels_) * per_feature, hidden_));
  } else {
    conditioner_ =
        register_module("conditioner", nn::ConvNet(channels_, channels_ * per_feature, hidden_));
  }
}

void ConvCouplingImpl::check(const Tensor& inputs) const {
  TORCH_CHECK(inputs.dim() == 4 && inputs.size(1) == channels_, "conv_coupling: expected [B, ",
              channels_, ", H, W], got ", inputs.sizes());
}

TransformOutput ConvCouplingImpl::transform_part(const Tensor& x, const Tensor& params,
                                                 const Tensor& mask, bool inverse) const {
  if (transformer_ == "additive") {
    const Tensor shift = mask.defined() ? params * mask : params;
    return {inverse ? x - shift : x + shift, Tensor()};
  }
  const int64_t c = params.size(1) / 2;
  Tensor shift = params.narrow(1, 0, c);
  Tensor raw_log_scale = params.narrow(1, c, c);
  if (mask.defined()) {
    // Off the mask the shift and log-scale are exactly 0 (tanh(0) = 0): identity there.
    shift = shift * mask;
    raw_log_scale = raw_log_scale * mask;
  }
  auto r = functional::affine(x, shift, raw_log_scale, scale_bound_, inverse);
  return {r.outputs, r.logabsdet};
}

TransformOutput ConvCouplingImpl::apply_channel(const Tensor& inputs, bool inverse) {
  const int64_t c_id = identity_channels_;
  const int64_t c_t = channels_ - c_id;
  // With flip the identity half is the last ⌊C/2⌋ channels.
  const Tensor identity = flip_ ? inputs.narrow(1, c_t, c_id) : inputs.narrow(1, 0, c_id);
  const Tensor part = flip_ ? inputs.narrow(1, 0, c_t) : inputs.narrow(1, c_id, c_t);
  auto out = transform_part(part, conditioner_->forward(identity), Tensor(), inverse);
  Tensor outputs =
      flip_ ? at::cat({out.outputs, identity}, 1) : at::cat({identity, out.outputs}, 1);
  Tensor logabsdet =
      out.logabsdet.defined() ? sum_except_batch(out.logabsdet) : zero_logabsdet(inputs);
  return {outputs, logabsdet};
}

TransformOutput ConvCouplingImpl::apply_checkerboard(const Tensor& inputs, bool inverse) {
  const int64_t h = inputs.size(2), w = inputs.size(3);
  // 1 on the transformed pixels: (i + j + flip) odd.
  const Tensor i = at::arange(h, inputs.options()).view({h, 1});
  const Tensor j = at::arange(w, inputs.options()).view({1, w});
  const Tensor mask = at::remainder(i + j + (flip_ ? 0.0 : 1.0), 2.0).view({1, 1, h, w});
  auto out = transform_part(inputs, conditioner_->forward(inputs * (1 - mask)), mask, inverse);
  Tensor logabsdet =
      out.logabsdet.defined() ? sum_except_batch(out.logabsdet) : zero_logabsdet(inputs);
  return {out.outputs, logabsdet};
}

TransformOutput ConvCouplingImpl::apply(const Tensor& inputs, bool inverse) {
  check(inputs);
  return mask_ == "channel" ? apply_channel(inputs, inverse) : apply_checkerboard(inputs, inverse);
}

TransformOutput ConvCouplingImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  return apply(inputs, false);
}

TransformOutput ConvCouplingImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  return apply(inputs, true);
}

Json ConvCouplingImpl::spec() const {
  return {{"type", "conv_coupling"},
          {"channels", channels_},
          {"mask", mask_},
          {"flip", flip_},
          {"hidden", hidden_},
          {"transformer", transformer_},
          {"scale_bound", scale_bound_}};
}

std::string ConvCouplingImpl::describe() const {
  return "conv_coupling(" + transformer_ + ", " + mask_ + (flip_ ? " flipped" : "") + ", " +
         std::to_string(channels_) + " channels, hidden " + std::to_string(hidden_) + ")";
}

// ---- dequantisation ------------------------------------------------------------------------

DequantizeImpl::DequantizeImpl(int64_t bits) : TransformImpl("dequantize"), bits_(bits) {
  if (bits_ < 1 || bits_ > 16) {
    throw ConfigError("dequantize: bits must be in 1..16, got " + std::to_string(bits));
  }
}

Tensor DequantizeImpl::logabsdet(const Tensor& inputs) const {
  const double d = static_cast<double>(inputs.numel() / std::max<int64_t>(inputs.size(0), 1));
  return at::full({inputs.size(0)}, -d * static_cast<double>(bits_) * std::log(2.0),
                  inputs.options());
}

TransformOutput DequantizeImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  const double levels = std::ldexp(1.0, static_cast<int>(bits_));
  // u < 1 − 2^(b+1−p) (p = mantissa bits), so that x + u never rounds up to x + 1 and
  // inverse(forward(x)) = x exactly; the narrower noise changes the bound by under
  // 4·10⁻⁵ nats per dimension in float32 (10⁻¹³ in float64).
  const int mantissa = inputs.scalar_type() == at::kDouble ? 53 : 24;
  const double width = 1.0 - std::ldexp(1.0, static_cast<int>(bits_) + 1 - mantissa);
  Tensor noise = at::rand_like(inputs) * width;
  return {(inputs + noise) / levels, logabsdet(inputs)};
}

TransformOutput DequantizeImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  const double levels = std::ldexp(1.0, static_cast<int>(bits_));
  Tensor x = at::clamp(at::floor(inputs * levels), 0.0, levels - 1.0);
  return {x, -logabsdet(inputs)};
}

Json DequantizeImpl::spec() const { return {{"type", "dequantize"}, {"bits", bits_}}; }

std::string DequantizeImpl::describe() const {
  return "dequantize(" + std::to_string(bits_) + " bits)";
}

}  // namespace zflow
