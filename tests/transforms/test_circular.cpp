// The circular spline coupling and the circle/torus base (transforms/circular.h,
// distributions/uniform.h): a torus flow's density integrates to 1 and is periodic; angles
// anywhere on the real line are the same points of the circle.

#include <gtest/gtest.h>

#include <cmath>

#include <ATen/ATen.h>

#include "zflow/core/error.h"
#include "zflow/flows/registry.h"

using namespace zflow;

namespace {

constexpr double kPi = 3.14159265358979323846;

const Json kConditioner = {{"type", "mlp"}, {"hidden", 16}, {"layers", 2}, {"activation", "tanh"}};

FlowPtr torus_flow() {
  auto flow = make_flow({{"type", "flow"},
                         {"transform",
                          {{"type", "composite"},
                           {"layers",
                            {{{"type", "circular_spline_coupling"},
                              {"mask", {1, 0}},
                              {"conditioner", kConditioner},
                              {"bins", 6}},
                             {{"type", "circular_spline_coupling"},
                              {"mask", {0, 1}},
                              {"conditioner", kConditioner},
                              {"bins", 6}}}}}},
                         {"base", {{"type", "circular_uniform"}, {"shape", {2}}}}});
  flow->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : flow->parameters()) p.add_(at::randn_like(p) * 0.2);
  }
  flow->eval();
  return flow;
}

// A torus flow (two circular couplings over the uniform base): its density on a grid of the
// torus sums to 1 (the periodic trapezoid rule) and agrees at θ = −π and θ = π, for every second
// coordinate.
TEST(CircularSplineCoupling, TorusDensityIntegratesToOneAndIsPeriodic) {
  at::manual_seed(4);
  auto flow = torus_flow();
  const int64_t n = 512;
  const at::Tensor grid = at::arange(n, at::kDouble) * (2 * kPi / n) - kPi;
  const auto mesh = at::meshgrid({grid, grid}, "ij");
  const at::Tensor points = at::stack({mesh[0].reshape(-1), mesh[1].reshape(-1)}, 1);
  at::Tensor log_p;
  {
    torch::NoGradGuard no_grad;
    log_p = flow->log_prob(points);
  }
  const double mass = at::exp(log_p).sum().item<double>() * std::pow(2 * kPi / n, 2);
  // The splines are C¹, not smoother, at their knots: the rule's error falls as 1/n² here
  // (1.8e-5 at n = 256, 1.3e-6 at 1024 for this flow).
  EXPECT_NEAR(mass, 1.0, 2e-5);
  // The density is not uniform (the check above would hold trivially then).
  EXPECT_GT((log_p.max() - log_p.min()).item<double>(), 0.5);
  const at::Tensor seam = at::stack({at::full({n}, -kPi, at::kDouble), grid}, 1);
  const at::Tensor other_side = at::stack({at::full({n}, kPi, at::kDouble), grid}, 1);
  torch::NoGradGuard no_grad;
  EXPECT_LT((flow->log_prob(seam) - flow->log_prob(other_side)).abs().max().item<double>(), 1e-9);
}

TEST(CircularSplineCoupling, AnglesAreTheSameOnEveryTurnAndComeBackInRange) {
  at::manual_seed(5);
  auto flow = torus_flow();
  const at::Tensor x = (at::rand({32, 2}, at::kDouble) * 2 - 1) * kPi;
  torch::NoGradGuard no_grad;
  const at::Tensor turned = x + 2 * kPi * at::randint(-3, 4, {32, 2}, at::kDouble);
  EXPECT_LT((flow->log_prob(turned) - flow->log_prob(x)).abs().max().item<double>(), 1e-9);
  const at::Tensor samples = flow->sample(500);
  EXPECT_LE(samples.abs().max().item<double>(), kPi + 1e-12);
}

TEST(CircularUniform, MixesTheCircleAndTheNormal) {
  auto base =
      make_distribution({{"type", "circular_uniform"}, {"shape", {3}}, {"circular", {1, 0, 1}}});
  base->to(at::kDouble);
  const at::Tensor z = at::tensor({10.0, 0.5, -2.0}, at::kDouble).view({1, 3});
  const double expected = -2 * std::log(2 * kPi) - 0.125 - 0.5 * std::log(2 * kPi);
  EXPECT_NEAR(base->log_prob(z).item<double>(), expected, 1e-12);
  at::manual_seed(6);
  const at::Tensor s = base->sample(20000);
  EXPECT_LT(s.select(1, 0).abs().max().item<double>(), kPi);
  EXPECT_NEAR(s.select(1, 0).var().item<double>(), kPi * kPi / 3, 0.1);  // U[−π, π)
  EXPECT_NEAR(s.select(1, 1).var().item<double>(), 1.0, 0.05);
  EXPECT_GT(s.select(1, 1).abs().max().item<double>(), kPi);  // not an angle
  EXPECT_EQ(base->spec(), make_distribution(base->spec())->spec());
}

TEST(CircularSplineCoupling, BadSpecsAreConfigErrors) {
  EXPECT_THROW(
      make_transform({{"type", "circular_spline_coupling"}, {"mask", {1, 0}}, {"circular", {1}}}),
      ConfigError);
  EXPECT_THROW(make_transform(
                   {{"type", "circular_spline_coupling"}, {"mask", {1, 0}}, {"circular", {2, 0}}}),
               ConfigError);
  EXPECT_THROW(make_transform({{"type", "circular_spline_coupling"}, {"mask", {1, 1}}}),
               ConfigError);
  EXPECT_THROW(
      make_transform({{"type", "circular_spline_coupling"}, {"mask", {1, 0}}, {"bins", 0}}),
      ConfigError);
  EXPECT_THROW(
      make_distribution({{"type", "circular_uniform"}, {"shape", {2}}, {"circular", {1, 0, 1}}}),
      ConfigError);
}

}  // namespace
