#pragma once
/// \file
/// The convolutional conditioner of image couplings (Glow, Kingma & Dhariwal 2018, §3.3,
/// https://arxiv.org/abs/1807.03039): 3×3 conv → ReLU → 1×1 conv → ReLU → 3×3 conv,
///
///     θ = W₃ ⋆ relu(W₂ ⋆ relu(W₁ ⋆ x + b₁) + b₂) + b₃,
///
/// the last one zero-initialised so that a coupling layer starts as the identity. Spatial
/// size is kept (padding 1); each output sees a 5×5 window of the input.
///
/// Example:
///
///     zflow::nn::ConvNet net(zflow::nn::ConvNetOptions(3, 12).hidden_channels(64));
///     at::Tensor params = net->forward(at::randn({8, 3, 16, 16}));  // [8, 12, 16, 16], zero
///     auto factory = zflow::nn::conv_conditioner(zflow::nn::ConvNetOptions(0, 0));
///     // factory->spec() == {"hidden": 512}: conv couplings write it among their own fields.

#include <cstdint>

#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "zflow/nn/conditioner.h"

namespace zflow::nn {

using torch::Tensor;

/// Options for ConvNet.
struct ConvNetOptions {
  ConvNetOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  /// Input channels (positive).
  TORCH_ARG(int64_t, in_channels);
  /// Output channels (positive).
  TORCH_ARG(int64_t, out_channels);
  /// Channels of both hidden layers (positive).
  TORCH_ARG(int64_t, hidden_channels) = 512;
  /// Start with zero outputs (identity couplings, unit-variance splits).
  TORCH_ARG(bool, zero_init_last) = true;
};

/// in_channels → hidden → hidden → out_channels, on [B, C, H, W].
class ConvNetImpl : public ConditionerImpl {
 public:
  explicit ConvNetImpl(const ConvNetOptions& options);
  /// Shorthand for ConvNetOptions(in_channels, out_channels).hidden_channels(...)...
  ConvNetImpl(int64_t in_channels, int64_t out_channels, int64_t hidden_channels,
              bool zero_init_last = true);
  Tensor forward(const Tensor& inputs);
  /// forward(inputs); image conditioners take no context.
  Tensor condition(const Tensor& inputs, const Tensor& context) override;
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

/// A factory of ConvNet conditioners with the hidden channels of `options` (sizes ignored).
/// Its spec is {"hidden": channels}, which conv couplings write among their own fields.
ConditionerFactoryPtr conv_conditioner(const ConvNetOptions& options = ConvNetOptions(0, 0));
/// The factory of a conv coupling's spec: its "hidden" field (ConvNetOptions' default when
/// absent); the spec's other fields are its layer's.
ConditionerFactoryPtr conv_conditioner_from_spec(const Json& spec);

}  // namespace zflow::nn
