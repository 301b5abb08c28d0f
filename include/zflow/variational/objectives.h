#pragma once
/// \file
/// Objectives for an unnormalised target p̃ = Z·p (zflow/targets/target.h), with no data:
/// the flow q_θ is fitted by its own samples. They plug into the Trainer like maximum
/// likelihood (uses_data() is false) and are chosen by name (make_variational_objective);
/// docs/variational.md has the formulas, papers and when to use which.
///
/// - "rkl": reverse KL, the negative ELBO (Rezende & Mohamed 2015, arXiv:1505.05770),
///   reparameterised: x = f⁻¹(z), z ~ π,
///       L = E_q[log q_θ(x) − log p̃(x)] = KL(q‖p) − log Z  ≥ −log Z.
///   With `stick_the_landing` (Roeder et al. 2017, arXiv:1703.09194) the score term
///   ∇_θ log q_θ(x)|_x, whose expectation is zero, is left out of the gradient ("stl").
///   Mode-seeking: it may miss modes.
/// - "alpha": Rényi's variational bound (Li & Turner 2016, arXiv:1602.02311, eq. 5),
///       L_α = 1/(1−α) · log E_q[w^{1−α}] ≤ log Z,   w = p̃/q,   0 ≤ α < 1,
///   estimated with the batch (eq. 10) and reparameterised; the loss is −L_α. α → 1 is
///   the ELBO (rkl), α = 0 the importance-weighted bound log (1/B) Σ w_b (IWAE, Burda et al.
///   2016); the smaller α, the more the fit covers mass. Orders α > 1 (FAB's α = 2, which
///   minimises E_q[w²]) are not offered: estimated from q's own samples they are minimised
///   by a q that leaves p or shrinks onto a region where the weights are nearly equal
///   (FAB needs annealed importance sampling towards p²/q for them); see docs/variational.md.
/// - "fkl" and "variance": importance-weighted forward KL and the weights' variance on a
///   buffer of past samples x ~ g with their proposal densities g(x) (MadNIS, Heimel et al.
///   2023, arXiv:2212.06172 and arXiv:2311.01548): every `refresh_every` steps a fresh
///   batch is drawn without gradient and appended to a ring buffer of `buffer_capacity`;
///   every step trains on a minibatch drawn from the buffer, so each expensive target
///   evaluation serves many steps:
///       fkl:      L = −Σ_b ŵ_b log q_θ(x_b),  ŵ = (p̃/g) normalised over the minibatch,
///       variance: L = log( (1/B) Σ_b p̃(x_b)² / (q_θ(x_b) g(x_b)) ) − 2 log Ẑ,
///   the second the logarithm of E_q[w²]/Z² = 1 + var_q(w)/Z², whose minimiser is the
///   variance's and whose scale does not explode while q is poor.
/// - Annealing (any objective): the target is tempered, p̃^β, with β rising geometrically
///   from `anneal_from` to 1 over `anneal_steps` steps, so that early training sees a
///   flatter target and spreads over its modes before they sharpen.
///
/// Every objective keeps the log weights log p̃ − log q of its fresh draws over the last
/// `window` steps and shows their ESS and log Ẑ on the progress line. Validation (what
/// selects the best model) draws `validation_samples` from q with a fixed seed and scores
/// them by the objective's own measure with q as the proposal (validation_score): the
/// negative ELBO mean(log q − log p̃) for rkl and stl (an upper bound on −log Z), the
/// negative Rényi bound for alpha, the self-normalised cross-entropy −Σ ŵ log q for fkl
/// and log(1/ESS) for variance, so that a mass-covering objective does not keep the narrowest
/// model.
///
/// Speed: far from the target the weights span hundreds of orders of magnitude, and the
/// gradients of the samples that carry no weight are subnormal floats, on which CPUs are
/// about a hundred times slower. Flush them to zero in the thread that trains
/// (`at::globalContext().setFlushDenormal(true)`, as `zflow fit-target` does): on the camel
/// in 8-D that made the variance objective six times faster.
///
/// Example:
///
///     zflow::TargetPtr target = zflow::make_builtin_target("u1");
///     zflow::VariationalOptions vo;
///     vo.objective = "rkl";
///     zflow::train::Trainer trainer(*flow, options);
///     trainer.set_objective(zflow::make_variational_objective(target, vo));
///     trainer.fit({});  // no data

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "zflow/targets/target.h"
#include "zflow/train/objective.h"
#include "zflow/variational/importance.h"

namespace zflow {

/// Options of the objectives above: the single home of their defaults.
struct VariationalOptions {
  /// "rkl", "stl" (rkl with stick_the_landing), "alpha", "fkl" or "variance".
  std::string objective = "rkl";
  /// rkl: drop the score term from the gradient (implied by "stl").
  bool stick_the_landing = false;
  /// alpha: 0 ≤ α < 1.
  double alpha = 0.5;
  /// Annealing: β from `anneal_from` ∈ (0, 1] to 1 over `anneal_steps` (0: none).
  double anneal_from = 1.0;
  int64_t anneal_steps = 0;
  /// fkl/variance: buffer size in samples (0: 10 batches) and how often it gets a fresh
  /// batch (1: every step).
  int64_t buffer_capacity = 0;
  int64_t refresh_every = 1;
  /// Samples of each validation.
  int64_t validation_samples = 4096;
  /// Steps over which the progress line's ESS and log Z are accumulated.
  int64_t window = 100;
  /// Seed of the validation samples (the same at every validation).
  uint64_t validation_seed = 0x5EED;
};

/// The objective names with one line each, for help texts.
std::vector<std::pair<std::string, std::string>> variational_objective_names();

/// The tempering exponent β at `step` (geometric from anneal_from to 1).
double annealing_beta(const VariationalOptions& options, int64_t step);

/// Base class of the objectives for a target: no data, the windowed diagnostics and the
/// validation score above.
class VariationalObjective : public train::Objective {
 public:
  VariationalObjective(TargetPtr target, VariationalOptions options);
  bool uses_data() const override { return false; }
  std::string score_name() const override { return "loss"; }
  double validation_loss(FlowImpl& flow, const Tensor& data, const Tensor& context) override;
  std::string progress_status() const override;
  Json progress_metrics() const override;
  const Target& target() const { return *target_; }
  const VariationalOptions& options() const { return options_; }
  /// The validation measure of samples x ~ q from their log q and (untempered) log p̃
  /// (the list above; lower is better). The default is the negative ELBO.
  virtual double validation_score(const Tensor& log_q, const Tensor& log_p) const;
  /// What validation_score measures, for summaries ("negative ELBO", "log(1/ESS)", …).
  virtual std::string validation_measure() const { return "negative ELBO"; }

 protected:
  /// β·log p̃(x) at `step` (checked), and the untempered log p̃ in `untempered` if given.
  Tensor tempered_log_density(const Tensor& x, int64_t step, Tensor* untempered = nullptr) const;
  /// Records the log weights log p̃ − log q of a fresh draw (detached) for the diagnostics.
  void record(const Tensor& log_weights, int64_t step);

  TargetPtr target_;
  VariationalOptions options_;

 private:
  // The diagnostics' window: the current one and the last full one (shown while the
  // current one is young).
  ImportanceAccumulator current_;
  ImportanceAccumulator last_;
  bool has_last_ = false;
  int64_t window_start_ = 0;
};

/// Reverse KL (with or without sticking the landing).
class ReverseKL : public VariationalObjective {
 public:
  using VariationalObjective::VariationalObjective;
  std::string name() const override;
  Tensor loss(FlowImpl& flow, const train::Batch& batch) override;
};

/// Rényi's variational bound.
class AlphaDivergence : public VariationalObjective {
 public:
  AlphaDivergence(TargetPtr target, VariationalOptions options);
  std::string name() const override { return "alpha"; }
  Tensor loss(FlowImpl& flow, const train::Batch& batch) override;
  double validation_score(const Tensor& log_q, const Tensor& log_p) const override;
  std::string validation_measure() const override { return "negative Renyi bound"; }

 private:
  /// −L_α of log weights (above), differentiable.
  Tensor renyi(const Tensor& log_w) const;
};

/// Forward KL or variance on a buffer of past samples.
class BufferedObjective : public VariationalObjective {
 public:
  /// `kind` "fkl" or "variance".
  BufferedObjective(TargetPtr target, VariationalOptions options, std::string kind);
  std::string name() const override { return kind_; }
  Tensor loss(FlowImpl& flow, const train::Batch& batch) override;
  double validation_score(const Tensor& log_q, const Tensor& log_p) const override;
  std::string validation_measure() const override {
    return kind_ == "fkl" ? "cross-entropy" : "log(1/ESS)";
  }
  /// Samples held now.
  int64_t buffered() const { return size_; }

 private:
  void refill(FlowImpl& flow, int64_t n, int64_t step);
  /// The loss of samples with target, current and proposal log densities.
  Tensor buffered_loss(const Tensor& log_p, const Tensor& log_q, const Tensor& log_g) const;
  std::string kind_;
  Tensor x_, log_g_, log_p_;  // the ring buffer: samples, proposal and target log densities
  int64_t size_ = 0, next_ = 0;
};

/// The objective `options.objective` for `target`; ConfigError naming the choices, or
/// for invalid options (α outside [0, 1), anneal_from outside (0, 1], …).
std::shared_ptr<VariationalObjective> make_variational_objective(TargetPtr target,
                                                                 VariationalOptions options);

}  // namespace zflow
