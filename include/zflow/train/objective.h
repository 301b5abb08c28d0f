#pragma once
/// \file
/// The training objective: what the trainer minimises on a minibatch, and how it scores the
/// validation data that selects the best model. Maximum likelihood is zflow's objective
/// today; objectives that need no data (reverse KL on an unnormalised target), weighted
/// losses on buffered samples, or a regression target (flow matching) derive from the same
/// class and plug into the same loop (docs/architecture.md, "Adding an objective").
///
/// Maximum likelihood (Papamakarios et al. 2021, "Normalizing Flows for Probabilistic
/// Modeling and Inference", eq. 14, https://arxiv.org/abs/1912.02762): minimise the mean
/// negative log-likelihood of the minibatch,
///
///     L(θ) = −(1/B) Σ_b log p_θ(x_b | c_b),   log p_θ(x) = log π(f_θ(x)) + log|det J_f(x)|,
///
/// a Monte Carlo estimate of KL(p_data ‖ p_θ) up to the data's entropy.
///
/// Example:
///
///     // A custom objective: maximum likelihood plus an L2 penalty on the latents.
///     struct PenalisedLikelihood : zflow::train::Objective {
///       std::string name() const override { return "penalised-likelihood"; }
///       at::Tensor loss(zflow::FlowImpl& flow, const zflow::train::Batch& batch) override {
///         auto [z, logabsdet] = flow.transform()->forward(batch.data, batch.context);
///         return -flow.log_prob(batch.data, batch.context).mean() + 1e-3 * z.pow(2).mean();
///       }
///     };

#include <cstdint>
#include <memory>
#include <string>

#include "zflow/flows/flow.h"

namespace zflow::train {

/// One minibatch as the trainer hands it to the objective.
struct Batch {
  /// Rows of the training data [B, ...] (undefined for an objective without data).
  Tensor data;
  /// Their contexts [B, K]; undefined for an unconditional flow.
  Tensor context;
  /// The number of rows B (also for an objective that draws its own samples).
  int64_t size = 0;
  /// The optimizer step this batch is for, from 0.
  int64_t step = 0;
};

/// What the trainer minimises. Implementations must be deterministic given torch's
/// generator (the trainer seeds it), so that runs repeat and resume exactly.
class Objective {
 public:
  virtual ~Objective() = default;
  /// A short name for logs and the model card ("likelihood").
  virtual std::string name() const = 0;
  /// The scalar loss of `batch`, differentiable in the flow's parameters.
  virtual Tensor loss(FlowImpl& flow, const Batch& batch) = 0;
  /// The score of held-out data (lower is better) that selects the best model and drives
  /// early stopping; called without autograd. The default is the mean NLL in nats.
  virtual double validation_loss(FlowImpl& flow, const Tensor& data, const Tensor& context);
  /// Whether the objective learns from data rows (false: the trainer passes batches with
  /// only `size` and `step` set, and needs no training data).
  virtual bool uses_data() const { return true; }
  /// What the loss and the validation score are called in the progress line and the
  /// metrics records ("nll": keys train_nll, val_nll, best_val_nll; "loss": train_loss …).
  virtual std::string score_name() const { return "nll"; }
  /// Figures about the recent steps for the progress line, e.g. "ESS 93.1%  log Z -2.31"
  /// (empty: none).
  virtual std::string progress_status() const { return {}; }
  /// The same figures for the metrics records (an object merged into each; empty: none).
  virtual Json progress_metrics() const { return Json::object(); }
};

/// Maximum likelihood: L = −mean log p(x | c) (the formula above).
class MaximumLikelihood : public Objective {
 public:
  std::string name() const override { return "likelihood"; }
  Tensor loss(FlowImpl& flow, const Batch& batch) override;
};

/// The objective for `name` ("likelihood"); ConfigError naming the choices otherwise. The
/// objectives without data (zflow/variational/objectives.h) need a target and are made by
/// make_variational_objective.
std::shared_ptr<Objective> make_objective(const std::string& name);

}  // namespace zflow::train
