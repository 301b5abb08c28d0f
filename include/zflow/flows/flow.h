#pragma once
/// \file
/// A normalizing flow: a base distribution π and a transform f (data → noise), with
/// log p(x | c) = log π(f(x | c)) + log|det ∂f/∂x|, and sampling x = f⁻¹(z), z ~ π.

#include <cstdint>
#include <utility>

#include "zflow/core/distribution.h"
#include "zflow/core/transform.h"
#include "zflow/nn/mlp.h"

namespace zflow {

/// A flow is itself a Distribution.
///
/// Conditional flows: the context c [B, K] is optionally standardised (fixed statistics),
/// then optionally embedded by an MLP into [B, E]; the result is what every transform and
/// the base receive as their context.
///
/// Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling and Inference",
/// eq. 2-3 (https://arxiv.org/abs/1912.02762); conditional flows as in Winkler et al. 2019,
/// "Learning Likelihoods with Conditional Normalizing Flows" (https://arxiv.org/abs/1912.00042).
///
/// Example:
///
///     zflow::FlowPtr flow = zflow::make_flow(zflow::build_flow_spec("maf", 3, {}));
///     at::Tensor logp = flow->log_prob(x);          // [B], x: [B, 3]
///     at::Tensor samples = flow->sample(1000);      // [1000, 3], noise → data
class FlowImpl : public DistributionImpl {
 public:
  /// `context_features` is K (0: unconditional); `context_standardize` and `embedding`
  /// may be null.
  FlowImpl(TransformPtr transform, DistributionPtr base, int64_t context_features = 0,
           std::shared_ptr<TransformImpl> context_standardize = nullptr,
           std::shared_ptr<nn::MLPImpl> embedding = nullptr);

  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  /// Without a context: [n, D]. With one context [K]: [n, D]. With C contexts [C, K]:
  /// [C, n, D], n samples for each (no loop over contexts needed).
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  /// Same shapes as sample(); log-probabilities [n] or [C, n].
  std::pair<Tensor, Tensor> sample_and_log_prob(int64_t n, const Tensor& context = {}) override;

  /// Samples at a temperature T (Kingma & Dhariwal 2018, §5): z ~ N(0, T²I), x = f⁻¹(z).
  /// T < 1 trades diversity for typical, cleaner samples. Shapes as sample(); needs a
  /// standard normal base (ConfigError otherwise).
  Tensor sample_at_temperature(int64_t n, double temperature, const Tensor& context = {});
  /// Encodes data into noise: z = f(x).
  Tensor transform_to_noise(const Tensor& inputs, const Tensor& context = {});
  /// Decodes noise into data: x = f⁻¹(z). decode(transform_to_noise(x)) ≈ x.
  Tensor decode(const Tensor& noise, const Tensor& context = {});

  /// The context as the layers see it (standardised, embedded); undefined stays undefined.
  Tensor embed_context(const Tensor& context);
  /// Size of the raw context vector (0: unconditional flow).
  int64_t context_features() const override { return context_features_; }

  std::vector<int64_t> event_shape() const override { return base_->event_shape(); }
  /// {"type": "flow", "transform": ..., "base": ..., ["context_standardize", "embedding"]}.
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

  TransformPtr transform() const { return transform_; }
  DistributionPtr base() const { return base_; }

 private:
  /// Base noise scaled by `temperature` through the inverse.
  /// Samples (and their log p(x) when `with_log_prob`; else an undefined tensor).
  std::pair<Tensor, Tensor> draw(int64_t n, const Tensor& context, double temperature,
                                 bool with_log_prob);
  /// Draws z for n samples per context row: [C·n, ...] from embedded contexts [C, E].
  Tensor draw_noise(int64_t n, const Tensor& embedded);
  TransformPtr transform_;
  DistributionPtr base_;
  std::shared_ptr<TransformImpl> context_standardize_;
  std::shared_ptr<nn::MLPImpl> embedding_;
  int64_t context_features_ = 0;
};
TORCH_MODULE(Flow);

using FlowPtr = std::shared_ptr<FlowImpl>;

/// Total number of scalar parameters (trainable ones only).
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace zflow
