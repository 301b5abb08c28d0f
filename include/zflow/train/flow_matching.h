#pragma once
/// \file
/// Flow matching: training a continuous flow (transforms/continuous.h) by regression on a
/// velocity, with no ODE solve and no Jacobian during training.
///
/// Conditional flow matching with the optimal-transport path (Lipman et al. 2023, "Flow
/// Matching for Generative Modeling", https://arxiv.org/abs/2210.02747, eqs. 20-23): for
/// noise x₀ ~ π, data x₁ and t ~ U(0, 1),
///
///     x_t = (1 − (1 − σ_min) t) x₀ + t x₁,      u_t = x₁ − (1 − σ_min) x₀,
///     L(θ) = E ‖v_θ(t, x_t, c) − u_t‖² / D,
///
/// whose minimiser generates, from π at t = 0, a path of densities ending at the data
/// (convolved with N(0, σ_min²)) at t = 1. The loss is the mean over the D coordinates.
///
/// Minibatch OT-CFM (Tong et al. 2023, "Improving and Generalizing Flow-Based Generative
/// Models with Minibatch Optimal Transport", https://arxiv.org/abs/2302.00482, Alg. 3):
/// the B noise points of a batch are paired with its B data points by the exact assignment
/// minimising Σ ‖x₀ − x₁‖² (train/assignment.h) before the regression. The paths cross
/// less, so the learned field is straighter and fewer solver steps sample well.
///
/// The flow must hold exactly one continuous layer among the top layers of its transform
/// (a bare cnf, or a composite). The layers before it (data side: standardisation,
/// dequantisation, logit) carry the data into the layer's space, x₁ = pre(x); those after it
/// (noise side) carry base samples back, x₀ = post⁻¹(z), z ~ π. Flow matching trains the
/// velocity field (and the context embedding); any other layer or base with parameters is
/// a ConfigError, since no gradient would reach it.
///
/// Example:
///
///     trainer.set_objective(std::make_shared<zflow::train::FlowMatching>(
///         zflow::train::FlowMatchingOptions{.coupling = "ot"}));

#include <cstdint>
#include <string>

#include "zflow/train/objective.h"

namespace zflow::train {

struct FlowMatchingOptions {
  /// "independent" (x₀ and x₁ drawn independently: CFM) or "ot" (minibatch OT-CFM).
  std::string coupling = "independent";
  /// σ_min of the path: the width of the Gaussian around each data point at t = 1.
  double sigma_min = 1e-4;
  /// Rows scored at a time by validation_loss (and paired at a time under "ot").
  int64_t validation_batch = 256;
};

class FlowMatching : public Objective {
 public:
  explicit FlowMatching(FlowMatchingOptions options = {});
  std::string name() const override;
  Tensor loss(FlowImpl& flow, const Batch& batch) override;
  /// The same regression loss on held-out rows (its noise and times from the trainer's
  /// seeded generator, so every validation draws the same).
  double validation_loss(FlowImpl& flow, const Tensor& data, const Tensor& context) override;
  std::string score_name() const override { return "fm_loss"; }
  const FlowMatchingOptions& options() const { return options_; }

 private:
  FlowMatchingOptions options_;
};

/// ConfigError unless `coupling` is "independent" or "ot" and 0 ≤ σ_min < 1.
void check_flow_matching_options(const FlowMatchingOptions& options);

}  // namespace zflow::train
