#pragma once
/// \file
/// Conditioners and their factories. A conditioner θ = c(x_A, context) maps the features a
/// layer reads (x_A: the identity half of a coupling, every feature of a MADE, the kept
/// channels of an image coupling) and the optional context to the parameters θ of the
/// element-wise transformer z_B = τ(x_B; θ) that the layer applies to the other features
/// (transforms/transformer.h). A layer knows the sizes (how many features it reads, how many
/// parameters it needs); the network's own settings (widths, depth, activation) come from a
/// ConditionerFactory that the layer calls with those sizes, and whose spec() the layer
/// writes into its own spec so that make_transform rebuilds the same network.
///
/// The conditioners: MLP and residual MLP (nn/mlp.h) for coupling layers, MADE (Germain et
/// al. 2015, https://arxiv.org/abs/1502.03509; nn/made.h) for autoregressive layers, the
/// convolutional net of Glow (Kingma & Dhariwal 2018, https://arxiv.org/abs/1807.03039;
/// nn/conv.h) for image couplings.
///
/// Example:
///
///     auto factory = zflow::nn::mlp_conditioner(
///         zflow::nn::MLPOptions(0, 0).hidden_features(128).num_layers(3));
///     zflow::nn::ConditionerPtr net = factory->make(/*in=*/2, /*out=*/4, /*context=*/0);
///     at::Tensor params = net->condition(at::randn({16, 2}), {});  // [16, 4], zero at first
///     zflow::Json spec = factory->spec();  // {"type": "mlp", "hidden": 128, ...}

#include <cstdint>
#include <functional>
#include <memory>

#include <torch/nn/module.h>

#include "zflow/core/spec.h"

namespace zflow::nn {

using torch::Tensor;

/// A conditioner network: a module with one virtual call.
class ConditionerImpl : public torch::nn::Module {
 public:
  /// The parameters for `inputs` and `context` (undefined for none): out_features values per
  /// sample, [B, out_features] or a shape with those elements per sample (MADE: [B, D, P];
  /// convolutional nets: [B, out_channels, H, W]).
  virtual Tensor condition(const Tensor& inputs, const Tensor& context) = 0;
};

using ConditionerPtr = std::shared_ptr<ConditionerImpl>;

/// Builds the conditioner of a layer for the sizes only the layer knows, and describes the
/// rest of it in a spec.
class ConditionerFactory {
 public:
  virtual ~ConditionerFactory() = default;
  /// A new network reading `in_features` features (channels for images) and
  /// `context_features` context features, with `out_features` outputs (channels), its last
  /// layer at zero. Draws its random initial weights from LibTorch's generator.
  virtual ConditionerPtr make(int64_t in_features, int64_t out_features,
                              int64_t context_features) const = 0;
  /// The network's settings without the sizes, as its layer writes them in its spec.
  virtual Json spec() const = 0;
};

using ConditionerFactoryPtr = std::shared_ptr<const ConditionerFactory>;

/// The factory whose make() calls `make` and whose spec() is `spec`: how the factories of
/// nn/ are written, and a quick way to plug in a network of one's own.
ConditionerFactoryPtr conditioner_factory(
    std::function<ConditionerPtr(int64_t in_features, int64_t out_features,
                                 int64_t context_features)>
        make,
    Json spec);

}  // namespace zflow::nn
