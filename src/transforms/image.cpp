#include "zflow/transforms/image.h"

#include <cmath>
#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/batch_shard.h"
#include "zflow/core/error.h"

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

SqueezeImpl::SqueezeImpl(const SqueezeOptions& options)
    : TransformImpl("squeeze"), factor_(options.factor()) {
  if (factor_ < 2)
    throw ConfigError("squeeze: factor must be >= 2, got " + std::to_string(factor_));
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

namespace {

TransformerPtr conv_transformer(const ConvCouplingOptions& o) {
  if (o.transformer() == "affine") {
    return std::make_shared<AffineTransformer>(
        AffineTransformerOptions().scale_bound(o.scale_bound()), "conv_coupling");
  }
  if (o.transformer() == "additive") {
    AffineTransformerOptions().scale_bound(o.scale_bound()).validate("conv_coupling");
    return std::make_shared<AdditiveTransformer>();
  }
  throw ConfigError("conv_coupling: transformer must be 'affine' or 'additive', got '" +
                    o.transformer() + "'");
}

}  // namespace

ConvCouplingImpl::ConvCouplingImpl(const ConvCouplingOptions& options)
    : TransformImpl("conv_coupling"), options_(options) {
  const int64_t channels = options_.channels();
  require_positive("conv_coupling: channels", channels);
  TORCH_CHECK(options_.conditioner() != nullptr, "conv_coupling: needs a conditioner factory");
  if (options_.mask() != "channel" && options_.mask() != "checkerboard") {
    throw ConfigError("conv_coupling: mask must be 'channel' or 'checkerboard', got '" +
                      options_.mask() + "'");
  }
  checkerboard_ = options_.mask() == "checkerboard";
  transformer_ = conv_transformer(options_);
  conditioner_spec_ = options_.conditioner()->spec();
  for (const auto& [key, value] : conditioner_spec_.items()) {
    if (key == "type" || key == "channels" || key == "mask" || key == "flip" ||
        key == "transformer" || key == "scale_bound") {
      throw ConfigError("conv_coupling: the conditioner's spec field '" + key +
                        "' is one of the layer's own");
    }
  }
  const int64_t per_feature = transformer_->params_per_feature();
  if (!checkerboard_) {
    if (channels < 2) {
      throw ConfigError("conv_coupling: a channel mask needs at least 2 channels, got " +
                        std::to_string(channels) + " (squeeze first, or use 'checkerboard')");
    }
    identity_channels_ = channels / 2;
    conditioner_ = register_module(
        "conditioner", options_.conditioner()->make(
                           identity_channels_, (channels - identity_channels_) * per_feature, 0));
  } else {
    conditioner_ = register_module(
        "conditioner", options_.conditioner()->make(channels, channels * per_feature, 0));
  }
}

TransformOutput ConvCouplingImpl::apply_channel(const Tensor& inputs, bool inverse) {
  const int64_t c_id = identity_channels_;
  const int64_t c_t = options_.channels() - c_id;
  // With flip the identity half is the last ⌊C/2⌋ channels.
  const bool flip = options_.flip();
  const Tensor identity = flip ? inputs.narrow(1, c_t, c_id) : inputs.narrow(1, 0, c_id);
  const Tensor part = flip ? inputs.narrow(1, 0, c_t) : inputs.narrow(1, c_id, c_t);
  auto out = transformer_->apply_image(part, conditioner_->condition(identity, Tensor()), Tensor(),
                                       inverse);
  Tensor outputs = flip ? at::cat({out.outputs, identity}, 1) : at::cat({identity, out.outputs}, 1);
  return {outputs, out.logabsdet};
}

TransformOutput ConvCouplingImpl::apply_checkerboard(const Tensor& inputs, bool inverse) {
  // 1 on the transformed pixels: (i + j + flip) odd.
  const Tensor mask =
      checkerboard_mask(inputs.size(2), inputs.size(3), options_.flip() ? 0 : 1, inputs.options());
  return transformer_->apply_image(inputs, conditioner_->condition(inputs * (1 - mask), Tensor()),
                                   mask, inverse);
}

TransformOutput ConvCouplingImpl::apply(const Tensor& inputs, bool inverse) {
  TORCH_CHECK(inputs.dim() == 4 && inputs.size(1) == options_.channels(),
              "conv_coupling: expected [B, ", options_.channels(), ", H, W], got ", inputs.sizes());
  return checkerboard_ ? apply_checkerboard(inputs, inverse) : apply_channel(inputs, inverse);
}

TransformOutput ConvCouplingImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  return apply(inputs, false);
}

TransformOutput ConvCouplingImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  return apply(inputs, true);
}

Json ConvCouplingImpl::spec() const {
  Json s = {{"type", "conv_coupling"},
            {"channels", options_.channels()},
            {"mask", options_.mask()},
            {"flip", options_.flip()},
            {"transformer", options_.transformer()},
            {"scale_bound", options_.scale_bound()}};
  s.update(conditioner_spec_);
  return s;
}

std::string ConvCouplingImpl::describe() const {
  std::ostringstream s;
  s << "conv_coupling(" << options_.transformer() << ", " << options_.mask()
    << (options_.flip() ? " flipped" : "") << ", " << options_.channels() << " channels, ";
  conditioner_->pretty_print(s);
  s << ")";
  return s.str();
}

// ---- dequantisation ------------------------------------------------------------------------

double dequantization_noise_width(at::ScalarType dtype, int64_t bits) {
  const int mantissa = dtype == at::kDouble ? 53 : 24;
  return 1.0 - std::ldexp(1.0, static_cast<int>(bits) + 1 - mantissa);
}

void check_dequantization_bits(const std::string& type, int64_t bits) {
  if (bits < 1 || bits > 16) {
    throw ConfigError(type + ": bits must be in 1..16, got " + std::to_string(bits));
  }
}

Tensor dequantization_logabsdet(const Tensor& inputs, int64_t bits) {
  const double d = static_cast<double>(inputs.numel() / std::max<int64_t>(inputs.size(0), 1));
  return at::full({inputs.size(0)}, -d * static_cast<double>(bits) * std::log(2.0),
                  inputs.options());
}

Tensor quantize(const Tensor& y, int64_t bits) {
  const double levels = std::ldexp(1.0, static_cast<int>(bits));
  return at::clamp(at::floor(y * levels), 0.0, levels - 1.0);
}

Tensor checkerboard_mask(int64_t height, int64_t width, int64_t offset,
                         const at::TensorOptions& options) {
  const Tensor i = at::arange(height, options).view({height, 1});
  const Tensor j = at::arange(width, options).view({1, width});
  return at::remainder(i + j + static_cast<double>(offset), 2.0).view({1, 1, height, width});
}

DequantizeImpl::DequantizeImpl(const DequantizeOptions& options)
    : TransformImpl("dequantize"), bits_(options.bits()) {
  check_dequantization_bits("dequantize", bits_);
}

TransformOutput DequantizeImpl::forward_impl(const Tensor& inputs, const Tensor&) {
  const double levels = std::ldexp(1.0, static_cast<int>(bits_));
  // One draw per example, the same whichever process of a data-parallel run holds it.
  Tensor noise = rand_per_example(inputs) * dequantization_noise_width(inputs.scalar_type(), bits_);
  return {(inputs + noise) / levels, dequantization_logabsdet(inputs, bits_)};
}

TransformOutput DequantizeImpl::inverse_impl(const Tensor& inputs, const Tensor&) {
  return {quantize(inputs, bits_), -dequantization_logabsdet(inputs, bits_)};
}

Json DequantizeImpl::spec() const { return {{"type", "dequantize"}, {"bits", bits_}}; }

std::string DequantizeImpl::describe() const {
  return "dequantize(" + std::to_string(bits_) + " bits)";
}

}  // namespace zflow
