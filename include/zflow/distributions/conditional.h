#pragma once
/// \file
/// Conditional base distributions: their parameters are functions of the context c, so that
/// a conditional flow models p(x | c) = π(f(x | c) | c) · |det ∂f/∂x| (Papamakarios et al.
/// 2021, https://arxiv.org/abs/1912.02762; conditional MAF, Papamakarios, Pavlakou &
/// Murray 2017, https://arxiv.org/abs/1705.07057). For the diagonal Gaussian below,
///
///     log π(z | c) = −½ Σ_d ((z_d − μ_d(c)) / σ_d(c))² − Σ_d log σ_d(c) − (D/2) log 2π
///
/// Example (D = 2 features, K = 3 context features):
///
///     zflow::ConditionalDiagonalNormal base(std::vector<int64_t>{2}, /*context_features=*/3);
///     torch::Tensor c = torch::randn({4, 3});
///     torch::Tensor x = base->sample(10, c);      // [4, 10, 2]: 10 draws per context row
///     torch::Tensor log_p = base->log_prob(torch::randn({4, 2}), c);  // [4]

#include <cstdint>
#include <ostream>
#include <utility>
#include <vector>

#include "zflow/core/distribution.h"
#include "zflow/nn/mlp.h"

namespace zflow {

/// N(μ(c), diag σ(c)²) over [D] vectors, where an MLP conditioner (registered as
/// "conditioner") maps the context c [B, K] to 2D outputs: μ (first D) and log σ (last D).
/// The conditioner's last layer starts at zero, so the distribution starts as N(0, I) for
/// every context.
///
/// A context is required (TORCH_CHECK otherwise). Shapes:
/// - log_prob(x [B, D], context [B, K]) → [B];
/// - sample(n, context [C, K]) → [C, n, D] (n samples per context row, also for C = 1);
/// - sample_and_log_prob(n, context [C, K]) → {[C, n, D], [C, n]}.
///
/// Spec: {"type": "conditional_diagonal_normal", "shape": [D], "context_features": K,
/// "conditioner": {"type": "mlp"|"resmlp", "hidden", "layers", "activation"}}.
class ConditionalDiagonalNormalImpl : public DistributionImpl {
 public:
  /// `shape` must be {D}; `conditioner` is an MLP spec (null for the defaults).
  ConditionalDiagonalNormalImpl(std::vector<int64_t> shape, int64_t context_features,
                                Json conditioner = Json());
  Tensor log_prob(const Tensor& inputs, const Tensor& context = {}) override;
  Tensor sample(int64_t n, const Tensor& context = {}) override;
  std::pair<Tensor, Tensor> sample_and_log_prob(int64_t n, const Tensor& context = {}) override;
  std::vector<int64_t> event_shape() const override { return shape_; }
  Json spec() const override;
  void pretty_print(std::ostream& stream) const override;

  /// μ(c) and log σ(c), each [C, D], for a context [C, K].
  std::pair<Tensor, Tensor> mean_and_log_scale(const Tensor& context);
  int64_t context_features() const override { return context_features_; }
  nn::MLP conditioner() const { return conditioner_; }

 private:
  std::vector<int64_t> shape_;
  int64_t context_features_;
  nn::MLP conditioner_{nullptr};
};
TORCH_MODULE(ConditionalDiagonalNormal);

}  // namespace zflow
