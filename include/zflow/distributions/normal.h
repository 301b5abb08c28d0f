#pragma once
/// \file
/// Gaussian base distributions.

#include <cstdint>
#include <vector>

#include "zflow/core/distribution.h"

namespace zflow {

/// N(0, I) over events of the given shape. Holds no parameters; its dtype and device
/// follow the module (`to()`), through a registered empty buffer.
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
