#pragma once
/// \file
/// Conditioner networks: a plain MLP and a residual MLP. A conditioner maps the part of
/// the input a layer keeps fixed (plus the optional context) to the parameters of the
/// transformation of the other part:
///
///     plain:     h_l = act(W_l h_{l−1} + b_l),             θ = W_out h_L + b_out
///     residual:  h ← h + W₂ act(W₁ act(h)) per block        (He, Zhang, Ren & Sun 2016,
///                                                            https://arxiv.org/abs/1512.03385)
///
/// with [x, context] as h_0 and W_out, b_out zero at first (the layer starts as the
/// identity). The coupling layers of RealNVP (Dinh et al. 2017,
/// https://arxiv.org/abs/1605.08803) and NSF (Durkan et al. 2019,
/// https://arxiv.org/abs/1906.04032) use these.
///
/// Example:
///
///     zflow::nn::MLP net(zflow::nn::MLPOptions(2, 6).hidden_features(128).activation("gelu"));
///     at::Tensor theta = net->forward(at::randn({16, 2}));  // [16, 6], zero at first
///     // As a coupling's conditioner: sizes come from the layer.
///     auto factory = zflow::nn::mlp_conditioner(zflow::nn::MLPOptions(0, 0).residual(true));

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "zflow/core/spec.h"
#include "zflow/nn/conditioner.h"

namespace zflow::nn {

using torch::Tensor;

/// Options for MLP.
struct MLPOptions {
  MLPOptions(int64_t in_features, int64_t out_features)
      : in_features_(in_features), out_features_(out_features) {}
  /// Size of the input (without the context).
  TORCH_ARG(int64_t, in_features);
  /// Size of the output.
  TORCH_ARG(int64_t, out_features);
  /// Width of every hidden layer.
  TORCH_ARG(int64_t, hidden_features) = 64;
  /// Number of hidden layers (plain MLP) or residual blocks (residual MLP).
  TORCH_ARG(int64_t, num_layers) = 2;
  /// relu, gelu, silu, tanh, elu or leaky_relu.
  TORCH_ARG(std::string, activation) = "relu";
  /// Residual blocks h + W2 act(W1 act(h)) instead of plain layers.
  TORCH_ARG(bool, residual) = false;
  /// Size of the context vector concatenated to the input (0 = none).
  TORCH_ARG(int64_t, context_features) = 0;
  /// Initialise the last layer to zero, so the conditioned transform starts as the identity.
  TORCH_ARG(bool, zero_init_last) = true;
};

/// A multilayer perceptron conditioner.
class MLPImpl : public ConditionerImpl {
 public:
  explicit MLPImpl(MLPOptions options);
  void reset();
  /// inputs [B, in_features], context [B, context_features] or undefined → [B, out_features].
  Tensor forward(const Tensor& inputs, const Tensor& context = {});
  Tensor condition(const Tensor& inputs, const Tensor& context) override {
    return forward(inputs, context);
  }
  void pretty_print(std::ostream& stream) const override;

  MLPOptions options;

 private:
  Tensor activate(const Tensor& x) const;
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::Linear output_{nullptr};
};
TORCH_MODULE(MLP);

/// Builds the options from a conditioner spec {"type": "mlp"|"resmlp", "hidden", "layers",
/// "activation"}; sizes come from the layer that owns the conditioner.
MLPOptions mlp_options_from_spec(const Json& spec, int64_t in_features, int64_t out_features,
                                 int64_t context_features);

/// The spec of `options` (without sizes).
Json mlp_spec(const MLPOptions& options);

/// A factory of MLP conditioners with the settings of `options` (its sizes are ignored:
/// each layer gives its own). The default: MLPOptions' defaults.
ConditionerFactoryPtr mlp_conditioner(const MLPOptions& options = MLPOptions(0, 0));
/// The factory of a conditioner spec (mlp_options_from_spec's; null for the defaults).
ConditionerFactoryPtr mlp_conditioner_from_spec(const Json& spec);

/// Applies a named activation; ConfigError for an unknown name.
Tensor apply_activation(const std::string& name, const Tensor& x);

}  // namespace zflow::nn
