#pragma once
/// \file
/// Velocity fields v_θ(t, x[, c]) of continuous flows (transforms/continuous.h): the right
/// side of the ODE dx/dt = v_θ(t, x, c) that a continuous normalizing flow integrates
/// (Chen et al. 2018, "Neural Ordinary Differential Equations",
/// https://arxiv.org/abs/1806.07366). Time runs from t = 0 at the noise to t = 1 at the
/// data, the convention of flow matching (Lipman et al. 2023,
/// https://arxiv.org/abs/2210.02747).
///
/// A velocity field must treat the samples of a batch independently (no batch statistics):
/// the log-density integrates the trace of ∂v/∂x per sample, and the trace estimators rely
/// on row b of the output depending on row b of the input only.
///
/// Two fields are built in:
///   "mlp"   tabular [B, D]: an MLP on [x, τ(t), c] (nn/mlp.h), τ the time features below;
///   "unet"  images [B, C, H, W]: a small convolutional U-Net (nn/unet.h).
///
/// Time features τ(t) (spec field "time_embedding"):
///   "linear"       τ(t) = t (one feature);
///   "sinusoidal"   τ(t) = [t, sin(ω_k t), cos(ω_k t)]_{k=1…K}, ω_k geometric from 1 to
///                  32 rad (K = embedding_size / 2): a field that can change quickly in t
///                  where the path needs it (Vaswani et al. 2017's position features, as
///                  diffusion and flow-matching U-Nets use them). Higher frequencies make
///                  the ODE stiffer: an untrained field with ω up to 100 took dopri5 ten
///                  times the steps.
///
/// Example:
///
///     auto v = zflow::nn::make_velocity_field(
///         {{"type", "mlp"}, {"hidden", 64}, {"layers", 3}, {"activation", "silu"}}, {2}, 0);
///     at::Tensor dx = v->forward(at::full({8}, 0.5), at::randn({8, 2}), {});  // [8, 2]

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "zflow/core/spec.h"

namespace zflow::nn {

using torch::Tensor;

/// Base class of velocity fields.
class VelocityFieldImpl : public torch::nn::Module {
 public:
  /// t: [B] times in [0, 1]; x: [B, ...event shape]; context: [B, K] or undefined.
  /// Returns dx/dt with the shape of x.
  virtual Tensor forward(const Tensor& t, const Tensor& x, const Tensor& context) = 0;
  /// The spec from which make_velocity_field rebuilds this field (sizes aside: they come
  /// from the transform that owns it).
  virtual Json spec() const = 0;
};

using VelocityFieldPtr = std::shared_ptr<VelocityFieldImpl>;

/// Names of the time embeddings ("linear", "sinusoidal").
std::vector<std::string> time_embedding_names();
/// The number of time features of `embedding` with `size` (linear: 1; sinusoidal: size + 1,
/// size even and positive); ConfigError for an unknown name or a bad size.
int64_t time_feature_count(const std::string& embedding, int64_t size);
/// τ(t) for t [B] → [B, time_feature_count(embedding, size)], in t's dtype and device.
Tensor time_features(const Tensor& t, const std::string& embedding, int64_t size);

/// An MLP velocity field on [B, D]: v = MLP([x, τ(t), c]).
/// Spec: {"type": "mlp", "hidden": 64, "layers": 3, "activation": "silu",
///        "time_embedding": "linear", "embedding_size": 16} (the defaults).
class VelocityMLPImpl : public VelocityFieldImpl {
 public:
  VelocityMLPImpl(const Json& spec, int64_t features, int64_t context_features);
  Tensor forward(const Tensor& t, const Tensor& x, const Tensor& context) override;
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

 private:
  int64_t features_;
  int64_t context_features_;
  int64_t hidden_;
  int64_t layers_;
  std::string activation_;
  std::string time_embedding_;
  int64_t embedding_size_;
  std::shared_ptr<torch::nn::Module> net_;
};

/// Builds a velocity field from its spec for events of `event_shape` ([D] or [C, H, W])
/// with `context_features` context features; ConfigError for a bad spec (an "mlp" for
/// images, a "unet" for tabular data, unknown fields).
VelocityFieldPtr make_velocity_field(const Json& spec, const std::vector<int64_t>& event_shape,
                                     int64_t context_features);

}  // namespace zflow::nn
