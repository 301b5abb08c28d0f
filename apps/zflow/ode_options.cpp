// The solver options of continuous flows (ode_options.h).

#include "ode_options.h"

#include <iostream>

#include "zflow/core/error.h"
#include "zflow/ode/solver.h"
#include "zflow/transforms/continuous.h"

namespace zflow::cli {

void add_solver_options(CLI::App* sub, SolverArgs& a) {
  const std::string group = "Continuous flows (docs/continuous.md)";
  sub->add_option("--solver", a.solver,
                  "ODE solver of a continuous flow: euler, midpoint, rk4 (fixed steps) or dopri5 "
                  "(adaptive; default: the model's own)")
      ->check(CLI::IsMember(ode::solver_names()))
      ->group(group);
  sub->add_option("--ode-steps", a.steps, "Steps of the fixed-step solvers")
      ->check(positive())
      ->group(group);
  sub->add_option("--atol", a.atol, "dopri5's absolute tolerance")->check(positive())->group(group);
  sub->add_option("--rtol", a.rtol, "dopri5's relative tolerance")->check(positive())->group(group);
  sub->add_option("--trace", a.trace,
                  "log|det| of a continuous flow: exact (D vector-Jacobian products per "
                  "evaluation) or hutchinson (one, an unbiased estimate)")
      ->check(CLI::IsMember({"exact", "hutchinson"}))
      ->group(group);
}

namespace {

bool any_given(const SolverArgs& a) {
  return !a.solver.empty() || a.steps > 0 || a.atol > 0 || a.rtol > 0 || !a.trace.empty();
}

}  // namespace

void apply_solver_options(const Model& model, const SolverArgs& a) {
  const auto layers = continuous_layers(*model.flow->transform());
  if (layers.empty() && any_given(a)) {
    throw ConfigError(
        "--solver, --ode-steps, --atol, --rtol and --trace are for continuous "
        "flows; " +
        model.path + " has no continuous layer");
  }
  for (ContinuousFlowImpl* layer : layers) {
    ContinuousOptions o = layer->options();
    if (!a.solver.empty()) o.solver.method = a.solver;
    if (a.steps > 0) o.solver.steps = a.steps;
    if (a.atol > 0) o.solver.atol = a.atol;
    if (a.rtol > 0) o.solver.rtol = a.rtol;
    if (!a.trace.empty()) o.trace = a.trace;
    layer->set_options(o);
    layer->reset_counts();
  }
}

void apply_solver_options(BuilderOptions& builder, const SolverArgs& a) {
  if (!a.solver.empty()) builder.solver = a.solver;
  if (a.steps > 0) builder.ode_steps = a.steps;
  if (a.atol > 0) builder.atol = a.atol;
  if (a.rtol > 0) builder.rtol = a.rtol;
  if (!a.trace.empty()) builder.trace = a.trace;
}

double EvaluationCount::per_solve() const {
  return solves == 0 ? 0.0 : static_cast<double>(evaluations) / static_cast<double>(solves);
}

EvaluationCount evaluation_count(const Model& model) {
  EvaluationCount count;
  for (ContinuousFlowImpl* layer : continuous_layers(*model.flow->transform())) {
    count.continuous = true;
    count.evaluations += layer->evaluations();
    count.solves += layer->solves();
  }
  return count;
}

EvaluationCount count_evaluations(const Model& model, const std::function<void()>& work) {
  for (ContinuousFlowImpl* layer : continuous_layers(*model.flow->transform())) {
    layer->reset_counts();
  }
  work();
  return evaluation_count(model);
}

std::string solver_description(const ode::SolverOptions& solver) {
  return ode::is_fixed_step(solver.method)
             ? solver.method + " with " + std::to_string(solver.steps) + " steps"
             : solver.method + " (atol " + fmt(solver.atol, 2) + ", rtol " + fmt(solver.rtol, 2) +
                   ")";
}

std::string nfe_line(const Model& model) {
  const EvaluationCount count = evaluation_count(model);
  if (!count.continuous || count.solves == 0) return {};
  const auto layers = continuous_layers(*model.flow->transform());
  const std::string how = solver_description(layers.front()->options().solver);
  return how + ": " + fmt(count.per_solve(), 4) +
         " evaluations of the velocity field per sample (NFE, over " +
         std::to_string(count.solves) + " solve" + (count.solves == 1 ? "" : "s") + ")";
}

void print_nfe(const Model& model) {
  const std::string nfe = nfe_line(model);
  if (!nfe.empty()) std::cerr << "zflow: " << nfe << "\n";
}

}  // namespace zflow::cli
