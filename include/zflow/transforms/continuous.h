#pragma once
/// \file
/// The continuous normalizing flow (Chen et al. 2018, "Neural Ordinary Differential
/// Equations", https://arxiv.org/abs/1806.07366; Grathwohl et al. 2019, "FFJORD",
/// https://arxiv.org/abs/1810.01367): a transform defined by an ODE
///
///     dx/dt = v_θ(t, x, c),   t from 0 (noise) to 1 (data),
///
/// the time convention of flow matching (Lipman et al. 2023,
/// https://arxiv.org/abs/2210.02747). `forward` (data → noise) integrates from t = 1 back
/// to t = 0, `inverse` (noise → data) from 0 to 1. Along a path the log-determinant obeys
/// the instantaneous change of variables (Chen et al. 2018, Theorem 1),
///
///     d/dt log|det ∂x(t)/∂x(s)| = tr(∂v/∂x (t, x(t))),
///
/// integrated by the same solver beside x: forward returns ∫_1^0 tr dt, inverse ∫_0^1 tr dt.
/// The trace is computed
///   exact        with D vector-Jacobian products e_iᵀ ∂v/∂x (evaluation, small D);
///   hutchinson   as εᵀ (∂v/∂x) ε with one probe ε per sample, fixed along the path
///                (Hutchinson 1989; FFJORD §3.1): one product per evaluation, an unbiased
///                estimate since E[εεᵀ] = I for Rademacher (±1) or Gaussian probes.
/// The trace used while training (`training_trace`, default hutchinson) and in evaluation
/// (`trace`, default exact) are set apart; forward_outputs / inverse_outputs skip it.
/// Solvers and their NFE: ode/solver.h. Any velocity field of nn/velocity.h.
///
/// Spec: {"type": "cnf", "shape": [D] or [C, H, W], "velocity": {...},
///        "context_features": K, "solver": {"method": "dopri5", "steps": 20,
///        "atol": 1e-5, "rtol": 1e-5}, "trace": "exact", "training_trace": "hutchinson",
///        "probe": "rademacher", "time": [0, 1]} ("time": a part of the interval, for the
///        pictures of the path; see segments()).
///
/// Example:
///
///     auto cnf = zflow::make_transform({{"type", "cnf"}, {"shape", {2}},
///                                       {"velocity", {{"hidden", 64}}}});
///     auto [z, logabsdet] = cnf->forward(x);          // exact trace, dopri5
///     auto* layer = dynamic_cast<zflow::ContinuousFlowImpl*>(cnf.get());
///     layer->evaluations();                          // NFE so far

#include <cstdint>
#include <string>
#include <vector>

#include "zflow/core/transform.h"
#include "zflow/nn/velocity.h"
#include "zflow/ode/solver.h"

namespace zflow {

/// How a continuous flow integrates and estimates its trace.
struct ContinuousOptions {
  ode::SolverOptions solver;
  /// The trace in evaluation (eval mode): "exact" or "hutchinson".
  std::string trace = "exact";
  /// The trace while training (train mode).
  std::string training_trace = "hutchinson";
  /// Hutchinson probes: "rademacher" or "gaussian".
  std::string probe = "rademacher";
};

/// Checks a trace or probe name; ConfigError naming the choices.
void check_continuous_options(const ContinuousOptions& options);

class ContinuousFlowImpl : public TransformImpl {
 public:
  explicit ContinuousFlowImpl(const Json& spec);

  Json spec() const override;
  std::string describe() const override;

  /// v_θ(t, x, c) at times t [B].
  Tensor velocity(const Tensor& t, const Tensor& x, const Tensor& context);
  /// v(t, x, c) and tr(∂v/∂x) by `trace` ("exact" or "hutchinson" with `probe`), for an x
  /// that requires grad; with `create_graph` both stay differentiable.
  std::pair<Tensor, Tensor> velocity_and_divergence(double t, const Tensor& x,
                                                    const Tensor& context, const std::string& trace,
                                                    const Tensor& probe, bool create_graph);
  /// The points x(t) of the paths from noise z = x(0) at each of `times` (in [0, 1],
  /// increasing; 0 gives z itself): the distribution at evenly spaced times is the seed's
  /// picture of noise bent into data. No log-determinants.
  std::vector<Tensor> path(const Tensor& noise, const Tensor& context,
                           const std::vector<double>& times);

  /// The flow split in time: `count` continuous layers over [t_k, t_{k+1}] of equal length,
  /// in forward order (the one nearest the data first), sharing this layer's velocity field
  /// (fixed-step solvers share the steps out). Composed, they are this layer; between them
  /// lie the distributions at evenly spaced times.
  std::vector<TransformPtr> segments(int64_t count);
  /// The time interval [begin, end] this layer integrates over ([0, 1] unless a segment).
  double time_begin() const { return time_begin_; }
  double time_end() const { return time_end_; }

  const ContinuousOptions& options() const { return options_; }
  /// Replaces the solver and trace settings (e.g. a tighter tolerance for evaluation).
  void set_options(const ContinuousOptions& options);
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t context_features() const { return context_features_; }
  nn::VelocityFieldPtr velocity_field() const { return velocity_; }

  /// Evaluations of v (NFE) and ODE solves since construction or reset_counts: NFE per
  /// solve is what each sample's path cost.
  int64_t evaluations() const { return evaluations_; }
  int64_t solves() const { return solves_; }
  void reset_counts() { evaluations_ = solves_ = 0; }

 protected:
  TransformOutput forward_impl(const Tensor& inputs, const Tensor& context) override;
  TransformOutput inverse_impl(const Tensor& inputs, const Tensor& context) override;
  Tensor forward_outputs_impl(const Tensor& inputs, const Tensor& context) override;
  Tensor inverse_outputs_impl(const Tensor& inputs, const Tensor& context) override;

 private:
  /// x(t1) and ∫_{t0}^{t1} tr(∂v/∂x) dt from x(t0) = inputs.
  TransformOutput solve(const Tensor& inputs, const Tensor& context, double t0, double t1);
  /// x(t1) alone, by `solver`.
  Tensor solve_outputs(const Tensor& inputs, const Tensor& context, double t0, double t1,
                       const ode::SolverOptions& solver);
  void check_event(const Tensor& inputs) const;

  std::vector<int64_t> shape_;
  int64_t context_features_ = 0;
  double time_begin_ = 0.0;
  double time_end_ = 1.0;
  ContinuousOptions options_;
  nn::VelocityFieldPtr velocity_;
  int64_t evaluations_ = 0;
  int64_t solves_ = 0;
};
TORCH_MODULE(ContinuousFlow);

/// Every continuous layer inside `transform` (itself included), in module order.
std::vector<ContinuousFlowImpl*> continuous_layers(TransformImpl& transform);

/// Reads a ContinuousOptions from spec fields "solver", "trace", "training_trace", "probe"
/// (missing ones take `defaults`'); ConfigError for bad values.
ContinuousOptions continuous_options_from_spec(const Json& spec, const ContinuousOptions& defaults);
/// The spec fields of `options`.
Json continuous_options_spec(const ContinuousOptions& options);

}  // namespace zflow
