#pragma once
/// \file
/// The convolutional conditioner of image couplings (Glow, Kingma & Dhariwal 2018, §3.3):
/// 3×3 conv → ReLU → 1×1 conv → ReLU → 3×3 conv, the last one zero-initialised so that a
/// coupling layer starts as the identity. Spatial size is kept (padding 1).

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace zflow::nn {

using torch::Tensor;

/// in_channels → hidden → hidden → out_channels, on [B, C, H, W].
class ConvNetImpl : public torch::nn::Module {
 public:
  /// `zero_init_last`: start with zero outputs (identity couplings, unit-variance splits).
  ConvNetImpl(int64_t in_channels, int64_t out_channels, int64_t hidden_channels,
              bool zero_init_last = true);
  Tensor forward(const Tensor& inputs);
  void pretty_print(std::ostream& stream) const override;

  int64_t in_channels() const { return in_channels_; }
  int64_t out_channels() const { return out_channels_; }
  int64_t hidden_channels() const { return hidden_channels_; }

 private:
  int64_t in_channels_;
  int64_t out_channels_;
  int64_t hidden_channels_;
  Tensor weight1_, bias1_, weight2_, bias2_, weight3_, bias3_;
};
TORCH_MODULE(ConvNet);

/// A single zero-initialised 3×3 convolution (Glow's "Conv2dZeros"): the conditioner of the
/// learned prior of factored-out channels, which then starts as N(0, I).
class ZeroConvImpl : public torch::nn::Module {
 public:
  ZeroConvImpl(int64_t in_channels, int64_t out_channels);
  Tensor forward(const Tensor& inputs);

 private:
  Tensor weight_, bias_;
};
TORCH_MODULE(ZeroConv);

}  // namespace zflow::nn
