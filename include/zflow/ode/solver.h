#pragma once
/// \file
/// Ordinary differential equation solvers for continuous flows: y' = f(t, y) from t0 to t1
/// (t1 < t0 runs backwards in time), on a state of several tensors (the points and their
/// accumulated log-determinants), with the number of evaluations of f (NFE) counted.
///
/// Fixed steps, h = (t1 − t0) / steps (Hairer, Nørsett & Wanner, "Solving Ordinary
/// Differential Equations I", §II.1):
///   euler      y ← y + h f(t, y)                                      1 evaluation/step, order 1
///   midpoint   y ← y + h f(t + h/2, y + h/2 f(t, y))                  2 evaluations/step, order 2
///   rk4        the classical Runge-Kutta method                      4 evaluations/step, order 4
/// Adaptive:
///   dopri5     Dormand & Prince 1980, the 5(4) embedded pair with the first-same-as-last
///              property (6 evaluations per step, the seventh reused). A step is accepted
///              when the error estimate e, scaled per element by atol + rtol·max(|y0|,
///              |y1|), has root mean square ≤ 1 over every element of every state tensor;
///              the next step is h·clamp(0.9·rms^(−1/5), 0.2, 10). The first step follows
///              Hairer's starting-step rule (one extra evaluation). The same rules as
///              torchdiffeq, which zuko's CNF and FFJORD use.
///
/// The solvers run in autograd: the result is differentiable through the accepted steps
/// (backpropagation through the solver, "discretise-then-optimise"); the step-size control
/// uses detached values.
///
/// Example:
///
///     zflow::ode::SolverOptions options;          // dopri5, atol = rtol = 1e-5
///     auto solution = zflow::ode::integrate(
///         [](double t, const zflow::ode::State& y) { return zflow::ode::State{-y[0]}; },
///         {at::ones({3})}, 0.0, 1.0, options);
///     // solution.state[0] ≈ e^{-1}; solution.evaluations = NFE

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow::ode {

using State = std::vector<at::Tensor>;
/// The right side f(t, y); returns one tensor per state tensor, of the same shapes.
using Dynamics = std::function<State(double t, const State& y)>;

/// How to integrate.
struct SolverOptions {
  /// "euler", "midpoint", "rk4" (fixed steps) or "dopri5" (adaptive).
  std::string method = "dopri5";
  /// Steps over the interval for the fixed-step methods.
  int64_t steps = 20;
  /// dopri5's absolute and relative tolerances (on a float32 state, at least 2^-20 ≈ 1e-6:
  /// tighter ones cannot be resolved).
  double atol = 1e-5;
  double rtol = 1e-5;
  /// dopri5 gives up (zflow::Error) after this many attempted steps instead of hanging on a
  /// stiff or non-finite field.
  int64_t max_steps = 100000;
};

/// The names of the methods, fixed-step ones first.
std::vector<std::string> solver_names();
/// Whether `method` takes fixed steps (euler, midpoint, rk4).
bool is_fixed_step(const std::string& method);
/// Evaluations of f per step of a fixed-step method (euler 1, midpoint 2, rk4 4).
int64_t evaluations_per_step(const std::string& method);
/// ConfigError naming the problem for an unknown method, steps < 1, or tolerances that are
/// not positive and finite.
void check_options(const SolverOptions& options);

/// What integrate returns.
struct Solution {
  /// y(t1).
  State state;
  /// Evaluations of f (NFE).
  int64_t evaluations = 0;
  /// Accepted and rejected steps (rejected: dopri5 only).
  int64_t accepted_steps = 0;
  int64_t rejected_steps = 0;
};

/// Integrates y' = f(t, y) from t0 to t1 starting at y0. zflow::Error when dopri5 cannot
/// reach t1 (more than max_steps attempts, or a step size that underflows, as a
/// non-finite field makes it).
Solution integrate(const Dynamics& f, const State& y0, double t0, double t1,
                   const SolverOptions& options);

}  // namespace zflow::ode
