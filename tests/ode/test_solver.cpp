// The ODE solvers: orders of convergence, adaptive accuracy and NFE accounting, backwards
// integration, gradients through the steps, and clear errors instead of hangs.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "zflow/core/error.h"
#include "zflow/ode/solver.h"

using namespace zflow;

namespace {

// y' = t·y, y(0) = y0: y(t) = y0 · exp(t²/2). Depends on t, so a method that evaluated the
// field at the wrong times would show it.
ode::State growth(double t, const ode::State& y) { return {y[0] * t}; }

double error_of(const std::string& method, int64_t steps) {
  ode::SolverOptions o;
  o.method = method;
  o.steps = steps;
  const at::Tensor y0 = at::tensor({1.0, -2.0}, at::kDouble);
  const auto solution = ode::integrate(growth, {y0}, 0.0, 1.0, o);
  return (solution.state[0] - y0 * std::exp(0.5)).abs().max().item<double>();
}

TEST(OdeSolver, FixedStepMethodsConvergeAtTheirOrder) {
  for (const auto& [method, order] :
       std::vector<std::pair<std::string, double>>{{"euler", 1}, {"midpoint", 2}, {"rk4", 4}}) {
    const double coarse = error_of(method, 16);
    const double fine = error_of(method, 32);
    // Halving the step divides the error by about 2^order.
    EXPECT_NEAR(std::log2(coarse / fine), order, 0.25) << method;
  }
}

TEST(OdeSolver, FixedStepsCountTheirEvaluations) {
  for (const auto& [method, per_step] :
       std::vector<std::pair<std::string, int64_t>>{{"euler", 1}, {"midpoint", 2}, {"rk4", 4}}) {
    ode::SolverOptions o;
    o.method = method;
    o.steps = 7;
    int64_t calls = 0;
    auto f = [&calls](double t, const ode::State& y) {
      ++calls;
      return growth(t, y);
    };
    const auto s = ode::integrate(f, {at::ones({3}, at::kDouble)}, 0.0, 1.0, o);
    EXPECT_EQ(s.evaluations, 7 * per_step) << method;
    EXPECT_EQ(calls, s.evaluations) << method;
    EXPECT_EQ(s.accepted_steps, 7);
  }
}

TEST(OdeSolver, Dopri5MeetsItsToleranceAndCountsEvaluations) {
  for (double tol : {1e-4, 1e-8, 1e-11}) {
    ode::SolverOptions o;
    o.atol = o.rtol = tol;
    int64_t calls = 0;
    auto f = [&calls](double t, const ode::State& y) {
      ++calls;
      return growth(t, y);
    };
    const at::Tensor y0 = at::tensor({1.0, -2.0, 0.5}, at::kDouble);
    const auto s = ode::integrate(f, {y0}, 0.0, 1.0, o);
    const double error = (s.state[0] - y0 * std::exp(0.5)).abs().max().item<double>();
    EXPECT_LT(error, 100 * tol) << tol;
    EXPECT_EQ(calls, s.evaluations);
    // The first evaluation, one for the starting step, six per attempted step (FSAL).
    EXPECT_EQ(s.evaluations, 2 + 6 * (s.accepted_steps + s.rejected_steps));
  }
  // Tighter tolerances take more steps.
  ode::SolverOptions loose, tight;
  loose.atol = loose.rtol = 1e-3;
  tight.atol = tight.rtol = 1e-9;
  const ode::State y0{at::ones({2}, at::kDouble)};
  EXPECT_LT(ode::integrate(growth, y0, 0, 1, loose).evaluations,
            ode::integrate(growth, y0, 0, 1, tight).evaluations);
}

TEST(OdeSolver, BackwardsIntegrationUndoesForward) {
  for (const std::string method : {"rk4", "dopri5"}) {
    ode::SolverOptions o;
    o.method = method;
    o.steps = 50;
    o.atol = o.rtol = 1e-10;
    const at::Tensor y0 = at::randn({4, 3}, at::kDouble);
    const auto there = ode::integrate(growth, {y0}, 0.0, 1.0, o);
    const auto back = ode::integrate(growth, there.state, 1.0, 0.0, o);
    EXPECT_LT((back.state[0] - y0).abs().max().item<double>(), 1e-8) << method;
  }
}

TEST(OdeSolver, IntegratesSeveralStateTensorsTogether) {
  // x' = −x and l' = sum(x): l(1) = sum(x0)·(1 − 1/e).
  auto f = [](double, const ode::State& y) { return ode::State{-y[0], y[0].sum(1)}; };
  const at::Tensor x0 = at::randn({5, 2}, at::kDouble);
  for (const std::string method : {"rk4", "dopri5"}) {
    ode::SolverOptions o;
    o.method = method;
    o.steps = 40;
    o.atol = o.rtol = 1e-10;
    const auto s = ode::integrate(f, {x0, at::zeros({5}, at::kDouble)}, 0, 1, o);
    EXPECT_LT((s.state[1] - x0.sum(1) * (1 - std::exp(-1.0))).abs().max().item<double>(), 1e-7)
        << method;
  }
}

TEST(OdeSolver, GradientsFlowThroughTheSteps) {
  // y' = −a·y: y(1) = y0·e^{−a}, ∂y(1)/∂a = −y0·e^{−a}.
  for (const std::string method : {"rk4", "dopri5"}) {
    const at::Tensor a = at::tensor({0.7}, at::kDouble).requires_grad_(true);
    auto f = [&a](double, const ode::State& y) { return ode::State{-a * y[0]}; };
    ode::SolverOptions o;
    o.method = method;
    o.steps = 100;
    o.atol = o.rtol = 1e-10;
    const at::Tensor y0 = at::tensor({2.0}, at::kDouble);
    const auto s = ode::integrate(f, {y0}, 0, 1, o);
    const auto grad = torch::autograd::grad({s.state[0].sum()}, {a})[0];
    EXPECT_NEAR(grad.item<double>(), -2.0 * std::exp(-0.7), 1e-7) << method;
  }
}

TEST(OdeSolver, ZeroLengthIntervalReturnsTheStart) {
  const at::Tensor y0 = at::randn({3});
  const auto s = ode::integrate(growth, {y0}, 0.4, 0.4, ode::SolverOptions{});
  EXPECT_TRUE(at::equal(s.state[0], y0));
  EXPECT_EQ(s.evaluations, 0);
}

TEST(OdeSolver, NonFiniteOrStiffFieldsAreErrorsNotHangs) {
  auto nan_field = [](double t, const ode::State& y) {
    return ode::State{t > 0.3 ? at::full_like(y[0], NAN) : y[0]};
  };
  EXPECT_THROW(ode::integrate(nan_field, {at::ones({2})}, 0, 1, ode::SolverOptions{}), Error);
  ode::SolverOptions few;
  few.max_steps = 3;
  few.atol = few.rtol = 1e-12;
  try {
    ode::integrate(growth, {at::ones({2}, at::kDouble)}, 0, 1, few);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did not reach"), std::string::npos) << e.what();
  }
}

TEST(OdeSolver, BadOptionsAreConfigErrors) {
  ode::SolverOptions o;
  o.method = "rk45";
  EXPECT_THROW(ode::check_options(o), ConfigError);
  o.method = "rk4";
  o.steps = 0;
  EXPECT_THROW(ode::check_options(o), ConfigError);
  o = {};
  o.atol = -1;
  EXPECT_THROW(ode::check_options(o), ConfigError);
  o = {};
  o.rtol = NAN;
  EXPECT_THROW(ode::check_options(o), ConfigError);
  EXPECT_EQ(ode::solver_names().size(), 4u);
}

}  // namespace
