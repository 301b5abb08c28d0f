#pragma once
/// \file
/// Transforms for images [B, C, H, W]: the squeeze that trades space for channels, the
/// couplings with convolutional conditioners of RealNVP (Dinh, Sohl-Dickstein & Bengio 2017,
/// §3.4, https://arxiv.org/abs/1605.08803) and Glow (Kingma & Dhariwal 2018, §3,
/// https://arxiv.org/abs/1807.03039), and uniform dequantisation, the preprocessing that
/// turns 8-bit pixels into a continuous density with the right log-determinant:
///
///     squeeze:       [B, C, H, W] → [B, C·f², H/f, W/f],       log|det J| = 0
///     conv coupling: z_B = τ(x_B; ConvNet(x_A)),                log|det J| = Σ_B log|τ'|
///     dequantize:    y = (x + u) / 2ᵇ, u ~ U[0, 1)^D,           log|det J| = −D·b·ln 2
///
/// The invertible 1×1 convolution of Glow is `lu_linear` (LU-parameterised, applied over
/// the channels of every pixel) and ActNorm is `actnorm`: both accept [B, C, H, W].
///
/// Example:
///
///     auto coupling = zflow::ConvCoupling(zflow::ConvCouplingOptions(4)
///                                             .mask("checkerboard")
///                                             .conditioner(zflow::nn::conv_conditioner(
///                                                 zflow::nn::ConvNetOptions(0,
///                                                 0).hidden_channels(64))));
///     auto [z, logabsdet] = coupling->forward(at::randn({8, 4, 16, 16}));  // logabsdet [8]
///     auto squeezed = zflow::Squeeze(2)->forward(z).outputs;               // [8, 16, 8, 8]

#include <cstdint>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "zflow/core/transform.h"
#include "zflow/nn/conv.h"
#include "zflow/transforms/transformer.h"

namespace zflow {

/// Space to depth (RealNVP §3.6): every f×f block of pixels becomes f² channels,
/// [B, C, H, W] → [B, C·f², H/f, W/f]; a permutation, so log|det J| = 0. Output channel
/// c·f² + i·f + j holds input channel c at offset (i, j) within each block.
struct SqueezeOptions {
  /* implicit */ SqueezeOptions(int64_t factor = 2) : factor_(factor) {}
  /// Block size f ≥ 2.
  TORCH_ARG(int64_t, factor);
};

class SqueezeImpl : public TransformImpl {
 public:
  explicit SqueezeImpl(const SqueezeOptions& options = {});
  Json spec() const override;
  std::string describe() const override;
  std::vector<int64_t> forward_shape(const std::vector<int64_t>& input_shape) const override;
  std::vector<int64_t> inverse_shape(const std::vector<int64_t>& output_shape) const override;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  int64_t factor_;
};
TORCH_MODULE(Squeeze);

/// Options of ConvCoupling ("conv_coupling").
struct ConvCouplingOptions {
  explicit ConvCouplingOptions(int64_t channels) : channels_(channels) {}
  /// Channels C of the images (positive; at least 2 for a channel mask).
  TORCH_ARG(int64_t, channels);
  /// "channel" (keep ⌊C/2⌋ channels, transform the others) or "checkerboard" (keep the
  /// pixels with h + w even in every channel).
  TORCH_ARG(std::string, mask) = "channel";
  /// Keep the other half: the last ⌊C/2⌋ channels, or the pixels with h + w odd.
  TORCH_ARG(bool, flip) = false;
  /// The convolutional conditioner (default: nn::ConvNet with ConvNetOptions' defaults). Its
  /// spec's fields ({"hidden": channels}) are written among the layer's own.
  TORCH_ARG(nn::ConditionerFactoryPtr, conditioner) = nn::conv_conditioner();
  /// The element-wise transformer: "affine" or "additive".
  TORCH_ARG(std::string, transformer) = "affine";
  /// Bound b of the affine transformer's soft-clamped log-scale (AffineTransformerOptions);
  /// kept in the spec with either transformer.
  TORCH_ARG(double, scale_bound) = AffineTransformerOptions().scale_bound();
};

/// A coupling layer on images with a convolutional conditioner.
///
/// Masks (RealNVP §3.4): "channel" keeps half of the channels (the first ⌊C/2⌋, or the
/// last with `flip`) and transforms the others; "checkerboard" keeps the pixels with
/// (h + w) even (odd with `flip`) in every channel. Transformers: "affine",
/// z = x·exp(s) + t with the log-scale softly bounded, s = b·tanh(ŝ/b), as in every zflow
/// affine coupling; or "additive", z = x + t (volume preserving, NICE/Glow's option). The
/// conditioner's outputs are laid out per channel ([B, P·C_B, H, W]:
/// ElementwiseTransformer::apply_image).
class ConvCouplingImpl : public TransformImpl {
 public:
  explicit ConvCouplingImpl(const ConvCouplingOptions& options);
  Json spec() const override;
  std::string describe() const override;
  const ElementwiseTransformer& transformer() const { return *transformer_; }

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  TransformOutput apply(const Tensor& inputs, bool inverse);
  TransformOutput apply_channel(const Tensor& inputs, bool inverse);
  TransformOutput apply_checkerboard(const Tensor& inputs, bool inverse);

  ConvCouplingOptions options_;
  bool checkerboard_ = false;
  int64_t identity_channels_ = 0;
  TransformerPtr transformer_;
  Json conditioner_spec_;
  nn::ConditionerPtr conditioner_;
};
TORCH_MODULE(ConvCoupling);

/// Uniform dequantisation (Theis et al. 2016; RealNVP §4.1): for integer pixel values
/// x ∈ {0, …, 2ᵇ − 1}, forward draws u ~ U[0, 1)^D and returns y = (x + u) / 2ᵇ ∈ [0, 1)^D
/// with log|det J| = −D·b·ln 2. Because of that term, a flow whose first layer is this one
/// gives log p(x) of the *discrete* data (a lower bound, exact for a density constant on
/// each cell), and bits/dim = −log p(x) / (D ln 2). inverse quantises:
/// x = clamp(⌊2ᵇ·y⌋, 0, 2ᵇ − 1) with log|det| = +D·b·ln 2, so inverse(forward(x)) = x
/// exactly and samples are valid pixel values. Forward is random in training and
/// evaluation alike (the noise is part of the model's bound); u stays below
/// 1 − 2^(b+1−p) (p the dtype's mantissa bits) so that x + u never rounds to x + 1.
struct DequantizeOptions {
  /* implicit */ DequantizeOptions(int64_t bits = 8) : bits_(bits) {}
  /// Bits b per value of the data, 1 … 16.
  TORCH_ARG(int64_t, bits);
};

/// What `dequantize` and `variational_dequantize` share. The noise u must stay below
/// 1 − 2^(b+1−p) (p the dtype's mantissa bits) so that x + u never rounds up to x + 1 and
/// inverse(forward(x)) = x exactly; the narrower noise changes the bound by under 4·10⁻⁵
/// nats per dimension in float32 (10⁻¹³ in float64).
double dequantization_noise_width(at::ScalarType dtype, int64_t bits);
/// ConfigError unless 1 ≤ bits ≤ 16 ("TYPE: bits must be in 1..16").
void check_dequantization_bits(const std::string& type, int64_t bits);
/// −D·b·ln 2 for every example of `inputs` [B, ...]: the log-determinant of y = (x + u)/2ᵇ.
Tensor dequantization_logabsdet(const Tensor& inputs, int64_t bits);
/// The pixels x = clamp(⌊2ᵇ·y⌋, 0, 2ᵇ − 1) of dequantised values y.
Tensor quantize(const Tensor& y, int64_t bits);

/// [1, 1, H, W]: 1 where h + w + offset is odd, 0 elsewhere (the checkerboard masks).
Tensor checkerboard_mask(int64_t height, int64_t width, int64_t offset,
                         const at::TensorOptions& options);

class DequantizeImpl : public TransformImpl {
 public:
  explicit DequantizeImpl(const DequantizeOptions& options = {});
  Json spec() const override;
  std::string describe() const override;
  int64_t bits() const { return bits_; }

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  int64_t bits_;
};
TORCH_MODULE(Dequantize);

}  // namespace zflow
