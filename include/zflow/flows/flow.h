#pragma once
/// \file
/// A normalizing flow: a base distribution π and a transform f (data → noise), with
/// log p(x | c) = log π(f(x | c)) + log|det ∂f/∂x|, and sampling x = f⁻¹(z), z ~ π.

#include <cstdint>
#include <utility>

#include "zflow/core/distribution.h"
#include "zflow/core/transform.h"

namespace zflow {

/// A flow is itself a Distribution.
class FlowImpl : public DistributionImpl {
 public:
  FlowImpl(TransformPtr transform, DistributionPtr base);

  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  std::pair<Tensor, Tensor> sample_and_log_prob(int64_t n, const Tensor& context = {}) override;

  /// Encodes data into noise: z = f(x).
  Tensor transform_to_noise(const Tensor& inputs, const Tensor& context = {});
  /// Decodes noise into data: x = f⁻¹(z). decode(transform_to_noise(x)) ≈ x.
  Tensor decode(const Tensor& noise, const Tensor& context = {});

  std::vector<int64_t> event_shape() const override { return base_->event_shape(); }
  /// {"type": "flow", "transform": ..., "base": ...}.
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

  TransformPtr transform() const { return transform_; }
  DistributionPtr base() const { return base_; }

 private:
  TransformPtr transform_;
  DistributionPtr base_;
};
TORCH_MODULE(Flow);

using FlowPtr = std::shared_ptr<FlowImpl>;

/// Total number of scalar parameters (trainable ones only).
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace zflow
