#pragma once
/// \file
/// Gaussian base distributions π, the usual choice for the noise side of a flow
/// (Papamakarios et al. 2021, https://arxiv.org/abs/1912.02762). With D the number of
/// elements of one event,
///
///     log N(x; 0, I)        = −½ ‖x‖² − (D/2) log 2π
///     log N(x; μ, diag σ²)  = −½ Σ_d ((x_d − μ_d) / σ_d)² − Σ_d log σ_d − (D/2) log 2π
///
/// Example:
///
///     zflow::DiagonalNormal base(std::vector<int64_t>{2});  // starts as N(0, I)
///     torch::Tensor z = base->sample(256);                  // [256, 2]
///     torch::Tensor log_pi = base->log_prob(z);             // [256], differentiable in μ, σ

#include <cstdint>
#include <vector>

#include "zflow/core/distribution.h"

namespace zflow {

/// N(0, I) over events of the given shape ({D} or {C, H, W}). Holds no parameters; its
/// dtype and device follow the module (`to()`), through a registered empty buffer.
/// Spec: {"type": "standard_normal", "shape": [...]}.
class StandardNormalImpl : public DistributionImpl {
 public:
  explicit StandardNormalImpl(std::vector<int64_t> shape);
  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  std::vector<int64_t> event_shape() const override { return shape_; }
  Json spec() const override;

 private:
  std::vector<int64_t> shape_;
  Tensor anchor_;  // empty buffer that carries dtype and device
};
TORCH_MODULE(StandardNormal);

/// N(μ, diag σ²) with learnable μ ("mean") and log σ ("log_scale"), initialised to N(0, I).
/// Sampling is reparameterised, x = μ + σ ⊙ ε with ε ~ N(0, I).
/// Spec: {"type": "diagonal_normal", "shape": [...]}.
class DiagonalNormalImpl : public DistributionImpl {
 public:
  explicit DiagonalNormalImpl(std::vector<int64_t> shape);
  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  std::vector<int64_t> event_shape() const override { return shape_; }
  Json spec() const override;

  Tensor mean;
  Tensor log_scale;

 private:
  std::vector<int64_t> shape_;
};
TORCH_MODULE(DiagonalNormal);

/// log N(x; 0, I) summed over all but the batch dimension.
Tensor standard_normal_log_prob(const Tensor& x);

}  // namespace zflow
