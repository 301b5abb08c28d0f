#pragma once
/// \file
/// A learnable mixture of diagonal Gaussians, a multimodal base density π for flows whose
/// data has separated modes (a flow from a unimodal N(0, I) must stretch space to split
/// its mass). Evaluated in log space with logsumexp:
///
///     log p(x) = logsumexp_k [ log w_k + Σ_d log N(x_d; μ_kd, σ_kd²) ],  w = softmax(logits)
///
/// Example:
///
///     zflow::GaussianMixture base(std::vector<int64_t>{2}, /*components=*/8);
///     torch::Tensor x = base->sample(1000);    // [1000, 2]
///     torch::Tensor log_p = base->log_prob(x); // [1000]
///     torch::Tensor w = base->weights();       // [8], sums to 1

#include <cstdint>
#include <ostream>
#include <vector>

#include "zflow/core/distribution.h"

namespace zflow {

/// p(x) = Σ_k softmax(logits)_k N(x; means_k, diag exp(2 log_scales_k)) over [D] vectors.
///
/// Parameters (registered names): "logits" [K] (0: equal weights), "means" [K, D]
/// (at::randn, so seed torch beforehand for reproducible inits), "log_scales" [K, D] (0).
/// The context is ignored. Spec: {"type": "gaussian_mixture", "shape": [D], "components": K}.
class GaussianMixtureImpl : public DistributionImpl {
 public:
  /// `shape` must be {D}; ConfigError for another rank, a non-positive size or K <= 0.
  GaussianMixtureImpl(std::vector<int64_t> shape, int64_t components);
  /// inputs [B, D] → [B] (logsumexp over the components).
  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  /// [n, D]: component indices by at::multinomial, then one Gaussian draw per sample.
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  std::vector<int64_t> event_shape() const override { return shape_; }
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

  int64_t components() const { return components_; }
  /// The mixture weights softmax(logits), [K].
  Tensor weights() const;

  Tensor logits;
  Tensor means;
  Tensor log_scales;

 private:
  std::vector<int64_t> shape_;
  int64_t components_;
};
TORCH_MODULE(GaussianMixture);

}  // namespace zflow
