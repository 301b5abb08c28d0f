#pragma once
/// \file
/// Variational dequantisation (Ho, Chen, Srinivas, Duan & Abbeel 2019, "Flow++", §3.1,
/// https://arxiv.org/abs/1902.00275). Uniform dequantisation (`dequantize`) fills every cell
/// [x, x + 1)^D of the integer pixels x with the same density, which forces the flow p to be
/// flat inside each cell. Here the noise u ∈ [0, 1)^D comes from a learned conditional
/// density q(u | x), trained with the flow, and the flow models y = (x + u) / 2ᵇ. For every
/// q, Jensen's inequality gives the bound that training maximises (docs/conventions.md):
///
///     log P(x) ≥ E_{u~q(·|x)} [ log p(y) − log q(u | x) ] − D·b·ln 2,
///
/// equal to log P(x) when q(u | x) is p's own density inside the cell; with q uniform it is
/// the uniform bound. forward(x) draws u ~ q(·|x) by reparameterisation and returns y with
///
///     log|det J| = −D·b·ln 2 − log q(u | x),
///
/// so a flow's log_prob(x) is a one-sample estimate of the bound, differentiable in q's
/// parameters. inverse quantises, x = clamp(⌊2ᵇ·y⌋, 0, 2ᵇ − 1), as `dequantize` does.
///
/// q(u | x) is a conditional flow on the noise: ε₀ ~ N(0, I); ε₁ = ε₀·exp(a) with a learned
/// per-channel a, starting at ln 1.6 (σ(1.6·ε₀) is then close to uniform, so training starts
/// near the uniform bound); `steps` affine couplings with checkerboard masks of alternating
/// parity, whose conv nets (nn::ConvNet, zero-initialised last layer) see the kept half of ε
/// and x scaled to [−1, 1]; then u = σ(ε), the logistic sigmoid:
///
///     log q(u | x) = log N(ε₀; 0, I) − H·W·Σ_c a_c − Σ_k Σ s_k − Σ log σ'(ε_K).
///
/// Example:
///
///     auto deq = zflow::VariationalDequantize(zflow::VariationalDequantizeOptions(1));
///     auto x = at::randint(0, 256, {8, 1, 28, 28}).to(at::kFloat);
///     auto [y, logabsdet] = deq->forward(x);  // y in [0, 1), logabsdet [8]

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/arg.h>

#include "zflow/core/transform.h"
#include "zflow/nn/conv.h"

namespace zflow {

/// Options of VariationalDequantize ("variational_dequantize").
struct VariationalDequantizeOptions {
  explicit VariationalDequantizeOptions(int64_t channels) : channels_(channels) {}
  /// Channels C of the images [B, C, H, W].
  TORCH_ARG(int64_t, channels);
  /// Bits b per value of the data, 1 … 16.
  TORCH_ARG(int64_t, bits) = 8;
  /// Hidden channels of the couplings' conv nets.
  TORCH_ARG(int64_t, hidden) = 32;
  /// Affine coupling steps of q (at least 1).
  TORCH_ARG(int64_t, steps) = 4;
  /// Bound b of the couplings' log-scales, s = b·tanh(ŝ/b).
  TORCH_ARG(double, scale_bound) = 3.0;
};

class VariationalDequantizeImpl : public TransformImpl {
 public:
  explicit VariationalDequantizeImpl(const VariationalDequantizeOptions& options);
  Json spec() const override;
  std::string describe() const override;
  int64_t bits() const { return options_.bits(); }

  /// u = q's map of ε given x (both [B, C, H, W]) and log q(u | x) [B]: the flow from
  /// standard normal noise ε to the dequantisation noise, made public for tests.
  std::pair<Tensor, Tensor> noise(const Tensor& epsilon, const Tensor& inputs);

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  void check(const Tensor& inputs) const;
  VariationalDequantizeOptions options_;
  Tensor log_scale_;  // a [C]
  std::vector<nn::ConvNet> nets_;
};
TORCH_MODULE(VariationalDequantize);

}  // namespace zflow
