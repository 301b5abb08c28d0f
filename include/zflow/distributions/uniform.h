#pragma once
/// \file
/// Uniform bases: the circle/torus base, and the uniform distribution on an axis-aligned box, a
/// base density π for flows whose noise side is bounded: log π(z) = −Σ_i log(high_i − low_i) inside
/// the box, −∞ outside.
///
/// Example (a flow on the unit square ends with {"type": "sigmoid"}):
///
///     zflow::BoxUniform base(std::vector<double>{0.0, 0.0}, std::vector<double>{1.0, 1.0});
///     torch::Tensor z = base->sample(100);      // [100, 2] in [0, 1)²
///     torch::Tensor log_pi = base->log_prob(z); // [100] zeros: the box has volume 1

#include <ostream>
#include <vector>

#include "zflow/core/distribution.h"

namespace zflow {

/// Uniform on the box [low_1, high_1] × … × [low_D, high_D] over [D] vectors.
///
/// log_prob is −Σ_i log(high_i − low_i) for points inside the closed box and −inf outside
/// (samples from at::rand lie in the half-open box [low, high)). A flow with this base
/// needs a transform whose forward direction lands inside the box (e.g. a final `sigmoid`
/// with matching bounds); otherwise its log-likelihood is −inf.
///
/// The bounds are float buffers "low" and "high" (not learnable), so their dtype and device
/// follow `to()`. The context is ignored.
/// Spec: {"type": "box_uniform", "low": [...], "high": [...]}.
class BoxUniformImpl : public DistributionImpl {
 public:
  /// ConfigError unless the lists are non-empty, of equal length, finite and low < high.
  BoxUniformImpl(std::vector<double> low, std::vector<double> high);
  /// inputs [B, D] → [B].
  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  /// [n, D], uniform in [low, high).
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  std::vector<int64_t> event_shape() const override {
    return {static_cast<int64_t>(low_values_.size())};
  }
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

  Tensor low;
  Tensor high;

 private:
  std::vector<double> low_values_;
  std::vector<double> high_values_;
  double log_volume_ = 0;  // Σ log(high − low), computed in double
};
TORCH_MODULE(BoxUniform);

/// The base of flows on the circle and the torus (transforms/circular.h): the uniform
/// density 1/(2π) on the circle for the angle features and N(0, 1) for the others,
/// independent,
///
///     log π(z) = −A·log 2π + Σ_{real i} (−z_i²/2 − ½ log 2π),   A = number of angles.
///
/// An angle is any real number (the point of the circle it names), so the angle part of
/// log π is the same for every input; samples of angles lie in [−π, π). The flags are a
/// float buffer "circular" (dtype and device follow `to()`). The context is ignored.
/// Spec: {"type": "circular_uniform", "shape": [D], "circular": [1, 0, ...]} (circular
/// empty or absent: every feature is an angle).
class CircularUniformImpl : public DistributionImpl {
 public:
  /// ConfigError unless shape is [D] with D ≥ 1 and circular has D entries, each 0 or 1
  /// (or none).
  CircularUniformImpl(std::vector<int64_t> shape, std::vector<int64_t> circular = {});
  /// inputs [B, D] → [B].
  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  /// [n, D].
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  std::vector<int64_t> event_shape() const override { return {features_}; }
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

  Tensor circular;  // [D]: 1 for angles, 0 for real features

 private:
  int64_t features_;
  std::vector<int64_t> flags_;
};
TORCH_MODULE(CircularUniform);

}  // namespace zflow
