#pragma once
// The solver options of continuous flows (docs/continuous.md), shared by train, sample,
// log-prob, eval, encode and decode, and the NFE figures the commands report.

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "common.h"
#include "zflow/flows/builders.h"
#include "zflow/ode/solver.h"

namespace zflow::cli {

/// What the user gave (empty or 0: keep the model's own setting).
struct SolverArgs {
  std::string solver;
  int64_t steps = 0;
  double atol = 0;
  double rtol = 0;
  std::string trace;
};

/// --solver, --ode-steps, --atol, --rtol, --trace in a "Continuous flows" group.
void add_solver_options(CLI::App* sub, SolverArgs& args);
/// Sets the given options on every continuous layer of the model; ConfigError when one is
/// given for a model without continuous layers. Resets their NFE counts.
void apply_solver_options(const Model& model, const SolverArgs& args);
/// The given options written into BuilderOptions (for zflow train's cnf model).
void apply_solver_options(BuilderOptions& builder, const SolverArgs& args);

/// "rk4 with 8 steps" or "dopri5 (atol 1e-05, rtol 1e-05)".
std::string solver_description(const ode::SolverOptions& solver);

/// NFE of the model's continuous layers since the last reset.
struct EvaluationCount {
  int64_t evaluations = 0;
  int64_t solves = 0;
  bool continuous = false;
  /// Evaluations per solve: each sample's path cost (0 without solves).
  double per_solve() const;
};
EvaluationCount evaluation_count(const Model& model);
/// The evaluations that `work` takes: the counts are reset, `work` runs, and they are read.
EvaluationCount count_evaluations(const Model& model, const std::function<void()>& work);
/// "dopri5, 38.5 evaluations of the velocity field per sample (4 solves)"; empty for a
/// model without continuous layers.
std::string nfe_line(const Model& model);
/// "zflow: " + nfe_line on stderr, for a model with continuous layers (else nothing).
void print_nfe(const Model& model);

}  // namespace zflow::cli
