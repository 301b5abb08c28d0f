#pragma once
/// \file
/// MADE: masked autoencoder for distribution estimation (Germain, Gregor, Murray &
/// Larochelle 2015, https://arxiv.org/abs/1502.03509). A feed-forward network whose weight
/// masks make output i depend only on the inputs that come before i in an ordering,
///
///     θ_i = MADE(x)_i depends on x_j only for degree(j) < degree(i),
///
/// so a single pass yields the parameters of every autoregressive conditional p(x_i | x_<i)
/// (MAF, Papamakarios et al. 2017, https://arxiv.org/abs/1705.07057). The masks are built
/// once, from integer "degrees", and stored as buffers.
///
/// Example:
///
///     zflow::nn::MADE made(zflow::nn::MADEOptions(4, 2).hidden({64, 64}).ordering("reversed"));
///     at::Tensor theta = made->forward(at::randn({16, 4}));  // [16, 4, 2], zero at first
///     // As an autoregressive layer's conditioner: sizes come from the layer.
///     auto factory = zflow::nn::made_conditioner(zflow::nn::MADEOptions(0, 0).hidden({128}));

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "zflow/core/spec.h"
#include "zflow/nn/conditioner.h"

namespace zflow::nn {

using torch::Tensor;

/// A linear layer y = x (W ⊙ M)ᵀ + b with a fixed 0/1 mask M.
///
/// The mask is applied to the weight once, not on every call: the weight is kept with zeros
/// where the mask is zero (so W ⊙ M = W), and MADE's fused forward masks the weight
/// gradient instead, which keeps those zeros under any element-wise optimizer. A weight
/// changed from outside (a checkpoint loaded, an edit) is noticed through its version
/// counter and masked again before its next use.
class MaskedLinearImpl : public torch::nn::Module {
 public:
  MaskedLinearImpl(const Tensor& mask, bool zero_init = false);
  /// Plain autograd: linear(inputs, W ⊙ M, b).
  Tensor forward(const Tensor& inputs);
  /// The weight, with its masked entries zeroed if it changed since the last call.
  const Tensor& masked_weight();
  Tensor weight;
  Tensor bias;
  Tensor mask;

 private:
  int64_t masked_version_ = -1;
};
TORCH_MODULE(MaskedLinear);

/// Options for MADE.
struct MADEOptions {
  MADEOptions(int64_t features, int64_t params_per_feature)
      : features_(features), params_per_feature_(params_per_feature) {}
  /// Number of autoregressive inputs D.
  TORCH_ARG(int64_t, features);
  /// Outputs per input (e.g. 2 for shift and log-scale).
  TORCH_ARG(int64_t, params_per_feature);
  /// Widths of the hidden layers (residual: all equal, one block per entry).
  TORCH_ARG(std::vector<int64_t>, hidden) = std::vector<int64_t>{64, 64};
  /// "natural" (0, 1, ..., D−1), "reversed" or "random" (from `seed`).
  TORCH_ARG(std::string, ordering) = "natural";
  /// Seed of a random ordering.
  TORCH_ARG(uint64_t, seed) = 0;
  /// Masked residual blocks h + W₂ act(W₁ act(h)) instead of plain layers.
  TORCH_ARG(bool, residual) = false;
  /// relu, gelu, silu, tanh, elu or leaky_relu.
  TORCH_ARG(std::string, activation) = "relu";
  /// Size of a context vector fed, unmasked, to the first hidden layer (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
};

/// The MADE conditioner: inputs [B, D] (+ context [B, K]) → parameters [B, D, P].
class MADEImpl : public ConditionerImpl {
 public:
  explicit MADEImpl(MADEOptions options);
  Tensor forward(const Tensor& inputs, const Tensor& context = {});
  Tensor condition(const Tensor& inputs, const Tensor& context) override {
    return forward(inputs, context);
  }
  void pretty_print(std::ostream& stream) const override;
  /// Position of each input in the autoregressive order (1-based degrees).
  const std::vector<int64_t>& input_degrees() const { return input_degrees_; }

  MADEOptions options;

 private:
  std::vector<int64_t> input_degrees_;
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::ModuleList context_layers_{nullptr};
  MaskedLinear output_{nullptr};
};
TORCH_MODULE(MADE);

/// Options from a spec {"hidden": [..], "ordering", "seed", "residual", "activation"}.
MADEOptions made_options_from_spec(const Json& spec, int64_t features, int64_t params_per_feature,
                                   int64_t context_features);
/// The spec of `options` (without sizes).
Json made_spec(const MADEOptions& options);

/// A factory of MADE conditioners with the settings of `options` (sizes ignored): make(D,
/// D·P, K) builds MADEOptions(D, P) with context K. The default: MADEOptions' defaults.
ConditionerFactoryPtr made_conditioner(const MADEOptions& options = MADEOptions(0, 0));
/// The factory of a MADE spec (made_options_from_spec's; null for the defaults).
ConditionerFactoryPtr made_conditioner_from_spec(const Json& spec);

}  // namespace zflow::nn
