#pragma once
/// \file
/// Transforms for images [B, C, H, W]: the squeeze that trades space for channels, the
/// couplings with convolutional conditioners of RealNVP (Dinh et al. 2017, §3.4) and Glow
/// (Kingma & Dhariwal 2018, §3), and uniform dequantisation, the preprocessing that turns
/// 8-bit pixels into a continuous density with the right log-determinant.
///
/// The invertible 1×1 convolution of Glow is `lu_linear` (LU-parameterised, applied over
/// the channels of every pixel) and ActNorm is `actnorm`: both accept [B, C, H, W].

#include <cstdint>
#include <string>
#include <vector>

#include "zflow/core/transform.h"
#include "zflow/nn/conv.h"

namespace zflow {

/// Space to depth (RealNVP §3.6): every f×f block of pixels becomes f² channels,
/// [B, C, H, W] → [B, C·f², H/f, W/f]; a permutation, so log|det J| = 0. Output channel
/// c·f² + i·f + j holds input channel c at offset (i, j) within each block.
class SqueezeImpl : public TransformImpl {
 public:
  explicit SqueezeImpl(int64_t factor = 2);
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

/// A coupling layer on images with a convolutional conditioner (nn::ConvNet).
///
/// Masks (RealNVP §3.4): "channel" keeps half of the channels (the first ⌊C/2⌋, or the
/// last with `flip`) and transforms the others; "checkerboard" keeps the pixels with
/// (h + w) even (odd with `flip`) in every channel. Transformers: "affine",
/// z = x·exp(s) + t with the log-scale softly bounded, s = b·tanh(ŝ/b), as in every zflow
/// affine coupling; or "additive", z = x + t (volume preserving, NICE/Glow's option).
class ConvCouplingImpl : public TransformImpl {
 public:
  ConvCouplingImpl(int64_t channels, std::string mask, bool flip, int64_t hidden_channels,
                   std::string transformer = "affine", double scale_bound = 3.0);
  Json spec() const override;
  std::string describe() const override;

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  TransformOutput apply(const Tensor& inputs, bool inverse);
  TransformOutput apply_channel(const Tensor& inputs, bool inverse);
  TransformOutput apply_checkerboard(const Tensor& inputs, bool inverse);
  /// z from x (or x from z) given the conditioner's output: {outputs, elementwise log|dz/dx|}.
  TransformOutput transform_part(const Tensor& x, const Tensor& params, const Tensor& mask,
                                 bool inverse) const;
  void check(const Tensor& inputs) const;

  int64_t channels_;
  std::string mask_;
  bool flip_;
  int64_t hidden_;
  std::string transformer_;
  double scale_bound_;
  int64_t identity_channels_ = 0;
  nn::ConvNet conditioner_{nullptr};
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
class DequantizeImpl : public TransformImpl {
 public:
  explicit DequantizeImpl(int64_t bits = 8);
  Json spec() const override;
  std::string describe() const override;
  int64_t bits() const { return bits_; }

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  Tensor logabsdet(const Tensor& inputs) const;
  int64_t bits_;
};
TORCH_MODULE(Dequantize);

}  // namespace zflow
