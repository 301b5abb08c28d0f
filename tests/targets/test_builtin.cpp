// The built-in targets: their formulas at hand-computed points, their log Z against
// independent quadratures, dtypes, gradients and the rules for names and dimensions.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "zflow/core/error.h"
#include "zflow/targets/builtin.h"
#include "zflow/targets/target.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

const std::vector<std::string> kNames = {"u1",    "u2",     "u3",        "u4",
                                         "gmm40", "funnel", "many-well", "camel"};

/// log ∫ p̃ over the box [x0, x1] × [y0, y1] by the midpoint rule with spacing h, in
/// float64: for smooth integrands that vanish (to rounding) at the edges this is the
/// trapezoid rule, whose error decays faster than any power of h.
double grid_log_integral(const Target& target, double x0, double x1, double y0, double y1,
                         double h) {
  const auto nx = static_cast<int64_t>(std::llround((x1 - x0) / h));
  const auto ny = static_cast<int64_t>(std::llround((y1 - y0) / h));
  const at::Tensor xs = x0 + h * (at::arange(nx, at::kDouble) + 0.5);
  const at::Tensor ys = y0 + h * (at::arange(ny, at::kDouble) + 0.5);
  std::vector<at::Tensor> parts;
  const int64_t chunk = std::max<int64_t>(1, (1 << 20) / ny);
  for (int64_t i = 0; i < nx; i += chunk) {
    const at::Tensor xi = xs.narrow(0, i, std::min(chunk, nx - i));
    const at::Tensor grid =
        at::stack({xi.repeat_interleave(ny), ys.repeat(xi.size(0))}, 1);  // [n·ny, 2]
    parts.push_back(at::logsumexp(target.log_density(grid), 0));
  }
  return at::logsumexp(at::stack(parts), 0).item<double>() + 2 * std::log(h);
}

/// The energies of Rezende & Mohamed 2015, Table 1, as printed (scalar, double).
double w1(double z1) { return std::sin(2 * M_PI * z1 / 4); }
double w2(double z1) { return 3 * std::exp(-0.5 * std::pow((z1 - 1) / 0.6, 2)); }
double w3(double z1) { return 3 / (1 + std::exp(-(z1 - 1) / 0.3)); }
double gauss_energy(double t, double s) { return 0.5 * (t / s) * (t / s); }
double U1(double a, double b) {
  return gauss_energy(std::hypot(a, b) - 2, 0.4) -
         std::log(std::exp(-gauss_energy(a - 2, 0.6)) + std::exp(-gauss_energy(a + 2, 0.6)));
}
double U2(double a, double b) { return gauss_energy(b - w1(a), 0.4); }
double U3(double a, double b) {
  return -std::log(std::exp(-gauss_energy(b - w1(a), 0.35)) +
                   std::exp(-gauss_energy(b - w1(a) + w2(a), 0.35)));
}
double U4(double a, double b) {
  return -std::log(std::exp(-gauss_energy(b - w1(a), 0.4)) +
                   std::exp(-gauss_energy(b - w1(a) + w3(a), 0.35)));
}

double log_density_at(const Target& target, const std::vector<double>& x) {
  return target.log_density(at::tensor(x, at::kDouble).view({1, -1})).item<double>();
}

/// Points spread over the target's plot box (uniform), in float64.
at::Tensor points_in_plot_box(const Target& target, int64_t n, uint64_t seed) {
  const Domain box = target.plot_box();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor u = at::rand({n, target.dim()}, gen, at::kDouble);
  const at::Tensor low = at::tensor(box.low, at::kDouble);
  const at::Tensor high = at::tensor(box.high, at::kDouble);
  return low + (high - low) * u;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Formulas

TEST(Rezende, EnergiesAtHandComputedPoints) {
  // U at these points from a separate Python evaluation of Table 1 (no envelope).
  const std::vector<std::pair<double, double>> points = {
      {0.0, 0.0}, {1.0, 1.0}, {-1.5, 0.5}, {2.0, -2.0}, {0.3, -1.2}};
  const std::vector<std::vector<double>> printed = {
      {17.36240837499561, 2.461204413998356, 0.8954867883923676, 2.144660940449261,
       5.7984403767432},
      {0.0, 0.0, 4.55345869120796, 12.5, 8.549014291339612},
      {-0.09701079000802837, 0.0, 5.256735447921877, 6.397348046265191, 0.07435449928192431},
      {-0.6715922809171395, -0.0001026972910723173, 4.333243385037202, 3.2815623098814384,
       7.4614036283435174}};
  const std::vector<std::function<double(double, double)>> energy = {U1, U2, U3, U4};
  for (int k = 0; k < 4; ++k) {
    const auto target = make_builtin_target("u" + std::to_string(k + 1));
    for (size_t i = 0; i < points.size(); ++i) {
      const auto [a, b] = points[i];
      // zflow's envelope exp(−(z1/4)⁴) on U2…U4.
      const double envelope = k == 0 ? 0.0 : std::pow(a / 4, 4);
      EXPECT_NEAR(energy[k](a, b), printed[k][i], 1e-12) << "U" << k + 1 << " at " << i;
      EXPECT_NEAR(log_density_at(*target, {a, b}), -(printed[k][i] + envelope), 1e-12)
          << target->name() << " at (" << a << ", " << b << ")";
    }
  }
}

TEST(Rezende, EnergiesMatchTableOneOnRandomPoints) {
  const std::vector<std::function<double(double, double)>> energy = {U1, U2, U3, U4};
  for (int k = 0; k < 4; ++k) {
    const auto target = make_builtin_target("u" + std::to_string(k + 1));
    const at::Tensor x = points_in_plot_box(*target, 50, 7 + k);
    const at::Tensor log_p = target->log_density(x);
    for (int64_t i = 0; i < x.size(0); ++i) {
      const double a = x[i][0].item<double>();
      const double b = x[i][1].item<double>();
      const double envelope = k == 0 ? 0.0 : std::pow(a / 4, 4);
      EXPECT_NEAR(log_p[i].item<double>(), -(energy[k](a, b) + envelope), 1e-9)
          << target->name() << " at (" << a << ", " << b << ")";
    }
  }
}

TEST(Funnel, LogDensityEqualsItsExactSampler) {
  // Neal's funnel sampled exactly (v ~ N(0, 9), x_i ~ N(0, e^v)): log p̃ must equal the
  // normalised density of the sampler at every sample, so log Z = 0 pointwise.
  for (int64_t d : {2, 5, 10}) {
    const auto target = make_builtin_target("funnel", d);
    ASSERT_EQ(target->dim(), d);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    const int64_t n = 2000;
    const at::Tensor v = 3 * at::randn({n}, gen, at::kDouble);
    const at::Tensor rest = at::randn({n, d - 1}, gen, at::kDouble) * at::exp(v / 2).unsqueeze(1);
    const at::Tensor x = at::cat({v.unsqueeze(1), rest}, 1);
    const at::Tensor log_p = target->log_density(x);
    for (int64_t i = 0; i < n; i += 97) {
      double expected =
          -0.5 * std::pow(v[i].item<double>() / 3, 2) - std::log(3.0) - 0.5 * std::log(2 * M_PI);
      const double s = std::exp(v[i].item<double>() / 2);
      for (int64_t j = 0; j < d - 1; ++j) {
        const double xj = rest[i][j].item<double>();
        expected += -0.5 * (xj / s) * (xj / s) - std::log(s) - 0.5 * std::log(2 * M_PI);
      }
      EXPECT_NEAR(log_p[i].item<double>(), expected, 1e-9 * std::max(1.0, std::abs(expected)));
    }
    // Importance sampling with the exact sampler as proposal: every weight is 1.
    ASSERT_TRUE(target->log_normalizer().has_value());
    EXPECT_EQ(*target->log_normalizer(), 0.0);
  }
}

TEST(ManyWell, FactorsIntoDoubleWellsAndGaussians) {
  const auto target = make_builtin_target("many-well", 4);
  const std::vector<double> x = {1.2, -0.3, -1.7, 2.0};
  double expected = 0;
  for (int k = 0; k < 2; ++k) {
    const double a = x[2 * k], b = x[2 * k + 1];
    expected += -std::pow(a, 4) + 6 * a * a + 0.5 * a - 0.5 * b * b;
  }
  EXPECT_NEAR(log_density_at(*target, x), expected, 1e-12);
}

TEST(Camel, TwoPeaksOnTheDiagonal) {
  const auto target = make_builtin_target("camel", 3);
  const double a = 0.1;
  const std::vector<double> x = {0.3, 0.4, 0.7};
  double first = 0, second = 0;
  for (double xi : x) {
    first += std::pow(xi - 1.0 / 3, 2);
    second += std::pow(xi - 2.0 / 3, 2);
  }
  const double f = 0.5 * std::pow(a * std::sqrt(M_PI), -3) *
                   (std::exp(-first / (a * a)) + std::exp(-second / (a * a)));
  EXPECT_NEAR(log_density_at(*target, x), std::log(f), 1e-12);
  // The peak value at ⅓·1 in D = 3 (the other peak is e^{−3/(9a²)} smaller).
  const double peak =
      std::log(0.5 * std::pow(a * std::sqrt(M_PI), -3) * (1 + std::exp(-3.0 / 9 / (a * a))));
  EXPECT_NEAR(log_density_at(*target, {1.0 / 3, 1.0 / 3, 1.0 / 3}), peak, 1e-12);
}

TEST(Gmm40, EqualModesInTheBoxSameEveryTime) {
  const auto target = make_builtin_target("gmm40");
  const auto again = make_builtin_target("gmm40");
  const at::Tensor x = points_in_plot_box(*target, 500, 3);
  EXPECT_TRUE(at::equal(target->log_density(x), again->log_density(x)));
  // Mean shift (z ← z + σ²∇log p̃, the weighted mean of the component means) climbs from a
  // grid of starts to the modes. Each mode is at or near a mean μ_k, where the mixture is at
  // least its own component, (1/40)·N(0; 0, σ²I): equal weights and σ = softplus(1).
  const double sigma = std::log1p(std::exp(1.0));
  const double own_peak = -std::log(40.0) - std::log(2 * M_PI * sigma * sigma);
  const at::Tensor axis = at::linspace(-40, 40, 21, at::kDouble);
  at::Tensor z = at::stack(at::meshgrid({axis, axis}, "ij"), 2).view({-1, 2});
  for (int step = 0; step < 300; ++step) {
    z.requires_grad_(true);
    const at::Tensor g = torch::autograd::grad({target->log_density(z).sum()}, {z})[0];
    z = (z + sigma * sigma * g).detach();
  }
  const at::Tensor peaks = target->log_density(z);
  EXPECT_GE(peaks.min().item<double>(), own_peak - 1e-9);
  // No mode gets much more than its own component (40 equal weights, not fewer).
  EXPECT_LE(peaks.max().item<double>(), own_peak + std::log(2.0));
  EXPECT_LE(z.abs().max().item<double>(), 40.0);
}

// ---------------------------------------------------------------------------------------------
// log Z against independent quadratures

TEST(LogNormalizer, RezendeByGridQuadrature) {
  for (int k = 1; k <= 4; ++k) {
    const auto target = make_builtin_target("u" + std::to_string(k));
    ASSERT_TRUE(target->log_normalizer().has_value());
    // Wide enough that the integrand is below 1e-20 of its peak outside: the envelope
    // exp(−(z1/4)⁴) is e^{−256} at |z1| = 16.
    const double reach = k == 1 ? 8 : 16;
    const double log_z = grid_log_integral(*target, -reach, reach, -10, 10, 0.02);
    EXPECT_NEAR(*target->log_normalizer(), log_z, 1e-6) << target->name();
  }
}

TEST(LogNormalizer, Gmm40ByGridQuadrature) {
  const auto target = make_builtin_target("gmm40");
  const double log_z = grid_log_integral(*target, -50, 50, -50, 50, 0.1);
  EXPECT_NEAR(log_z, 0.0, 1e-6);
  EXPECT_EQ(*target->log_normalizer(), 0.0);
}

TEST(LogNormalizer, ManyWellByFactorQuadrature) {
  // I = ∫ exp(−x⁴ + 6x² + 0.5x) dx by the trapezoid rule on [−8, 8], h = 1e-4 (a different
  // rule and range than the library's Simpson on [−6, 6]).
  const double h = 1e-4;
  double integral = 0;
  for (int64_t i = 0; i <= 160000; ++i) {
    const double x = -8 + h * static_cast<double>(i);
    const double f = std::exp(-std::pow(x, 4) + 6 * x * x + 0.5 * x);
    integral += (i == 0 || i == 160000) ? 0.5 * f : f;
  }
  integral *= h;
  EXPECT_NEAR(integral, 11784.509, 1e-3);
  for (int64_t d : {2, 8, 32}) {
    const auto target = make_builtin_target("many-well", d);
    const double expected =
        static_cast<double>(d / 2) * (std::log(integral) + 0.5 * std::log(2 * M_PI));
    EXPECT_NEAR(*target->log_normalizer(), expected, 1e-9 * std::abs(expected)) << d;
  }
  // And in 2-D through the target itself, over (x, y).
  const auto pair = make_builtin_target("many-well", 2);
  EXPECT_NEAR(grid_log_integral(*pair, -4, 4, -10, 10, 0.005), *pair->log_normalizer(), 1e-6);
  EXPECT_EQ(make_builtin_target("many-well")->dim(), 32);
}

TEST(LogNormalizer, CamelByProductAndQuadrature) {
  // One peak's factor c = ∫_0^1 e^{−(x−⅓)²/a²}/(a√π) dx by Simpson's rule: both peaks give
  // the same, so Z = c^D (the ½ of each peak sums to 1).
  const double a = 0.1;
  const int64_t n = 100000;
  double c = 0;
  for (int64_t i = 0; i <= n; ++i) {
    const double x = static_cast<double>(i) / static_cast<double>(n);
    const double f = std::exp(-std::pow(x - 1.0 / 3, 2) / (a * a)) / (a * std::sqrt(M_PI));
    c += (i == 0 || i == n) ? f : (i % 2 == 1 ? 4 * f : 2 * f);
  }
  c /= 3.0 * static_cast<double>(n);
  for (int64_t d = 1; d <= 8; ++d) {
    const auto target = make_builtin_target("camel", d);
    EXPECT_NEAR(*target->log_normalizer(), static_cast<double>(d) * std::log(c), 1e-10) << d;
    EXPECT_TRUE(target->domain().bounded());
    EXPECT_EQ(target->domain().low, std::vector<double>(d, 0.0));
    EXPECT_EQ(target->domain().high, std::vector<double>(d, 1.0));
  }
  // In 2-D through the target itself. The integrand is e^{−11} of its peak at the box's
  // edges, where the midpoint rule's O(h²) end corrections are then far below 1e-5.
  const auto plane = make_builtin_target("camel", 2);
  EXPECT_NEAR(grid_log_integral(*plane, 0, 1, 0, 1, 1e-3), *plane->log_normalizer(), 1e-5);
  EXPECT_EQ(make_builtin_target("camel")->dim(), 8);
}

// ---------------------------------------------------------------------------------------------
// Every built-in: dtypes, gradients, metadata

TEST(Builtins, Float32AgreesWithFloat64) {
  for (const auto& name : kNames) {
    const auto target = make_builtin_target(name);
    const at::Tensor x = points_in_plot_box(*target, 256, 5);
    const at::Tensor exact = target->log_density(x);
    const at::Tensor single = target->log_density(x.to(at::kFloat));
    ASSERT_EQ(single.scalar_type(), at::kFloat) << name;
    ASSERT_EQ(exact.scalar_type(), at::kDouble) << name;
    ASSERT_EQ(single.sizes(), exact.sizes()) << name;
    // float32 rounding of x alone moves log p̃ by |∇ log p̃|·|x|·6e-8.
    const at::Tensor xf = x.to(at::kFloat).to(at::kDouble);
    const at::Tensor rounded = target->log_density(xf);
    const at::Tensor error = (single.to(at::kDouble) - rounded).abs() / rounded.abs().clamp_min(1);
    EXPECT_LE(error.max().item<double>(), 1e-5) << name;
    EXPECT_TRUE(at::isfinite(exact).all().item<bool>()) << name;
  }
}

TEST(Builtins, GradientsAreFiniteAndMatchFiniteDifferences) {
  for (const auto& name : kNames) {
    const auto target = make_builtin_target(name);
    at::Tensor x = points_in_plot_box(*target, 16, 9);
    if (name == "u1") x[0].zero_();  // ‖z‖ at the origin
    x.requires_grad_(true);
    const at::Tensor g = torch::autograd::grad({target->log_density(x).sum()}, {x})[0];
    ASSERT_TRUE(g.defined()) << name;
    EXPECT_TRUE(at::isfinite(g).all().item<bool>()) << name;
    // Central differences in one coordinate per row (skip u1's origin, a kink).
    const double eps = 1e-6;
    for (int64_t i = name == "u1" ? 1 : 0; i < 16; ++i) {
      const int64_t j = i % target->dim();
      at::Tensor up = x.detach().narrow(0, i, 1).clone();
      at::Tensor down = up.clone();
      up[0][j] += eps;
      down[0][j] -= eps;
      const double fd =
          (target->log_density(up) - target->log_density(down)).item<double>() / (2 * eps);
      const double ad = g[i][j].item<double>();
      EXPECT_NEAR(ad, fd, 1e-5 * std::max(1.0, std::abs(fd))) << name << " row " << i;
    }
  }
}

TEST(Builtins, MetadataIsConsistent) {
  const auto infos = builtin_targets();
  ASSERT_EQ(infos.size(), kNames.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    EXPECT_EQ(infos[i].name, kNames[i]);
    const auto target = make_builtin_target(infos[i].name);
    EXPECT_EQ(target->name(), infos[i].name);
    EXPECT_EQ(target->dim(), infos[i].default_dim);
    EXPECT_FALSE(target->description().empty());
    EXPECT_EQ(target->description().find('\n'), std::string::npos);
    EXPECT_FALSE(infos[i].summary.empty());
    EXPECT_TRUE(target->log_normalizer().has_value());
    const Domain box = target->plot_box();
    ASSERT_EQ(box.low.size(), static_cast<size_t>(target->dim()));
    ASSERT_EQ(box.high.size(), static_cast<size_t>(target->dim()));
    for (size_t k = 0; k < box.low.size(); ++k) EXPECT_LT(box.low[k], box.high[k]);
  }
  EXPECT_NE(make_builtin_target("funnel")->description().find("Neal"), std::string::npos);
}

TEST(Builtins, PlotBoxesOfTwoDimensionalTargetsHoldNearlyAllTheMass) {
  for (const std::string name : {"u1", "u2", "u3", "u4", "gmm40"}) {
    const auto target = make_builtin_target(name);
    const Domain box = target->plot_box();
    const double h = (box.high[0] - box.low[0]) / 1000;
    const double inside =
        grid_log_integral(*target, box.low[0], box.high[0], box.low[1], box.high[1], h);
    EXPECT_GT(inside - *target->log_normalizer(), std::log(1 - 1e-3)) << name;
  }
}

TEST(Builtins, CamelIsMinusInfinityOutsideTheUnitBox) {
  const auto target = make_builtin_target("camel", 2);
  const at::Tensor x = at::tensor({0.5, 0.5, 1.2, 0.5, 0.3, -0.01}, at::kDouble).view({3, 2});
  const at::Tensor log_p = checked_log_density(*target, x);
  EXPECT_TRUE(std::isfinite(log_p[0].item<double>()));
  EXPECT_EQ(log_p[1].item<double>(), -INFINITY);
  EXPECT_EQ(log_p[2].item<double>(), -INFINITY);
}

// ---------------------------------------------------------------------------------------------
// Names and dimensions

TEST(MakeBuiltin, DimensionRules) {
  EXPECT_EQ(make_builtin_target("funnel", 3)->dim(), 3);
  EXPECT_EQ(make_builtin_target("many-well", 6)->dim(), 6);
  EXPECT_EQ(make_builtin_target("camel", 1)->dim(), 1);
  EXPECT_EQ(make_builtin_target("u3", 2)->dim(), 2);
  expect_error<ConfigError>([] { make_builtin_target("u1", 3); }, {"target u1 is 2-D", "--dim 3"});
  expect_error<ConfigError>([] { make_builtin_target("gmm40", 4); }, {"gmm40", "2-D", "4"});
  expect_error<ConfigError>([] { make_builtin_target("many-well", 5); },
                            {"many-well", "even", "5"});
  expect_error<ConfigError>([] { make_builtin_target("funnel", 1); }, {"funnel", "2", "1"});
  expect_error<ConfigError>([] { make_builtin_target("camel", -1); }, {"camel", "-1"});
}

TEST(MakeBuiltin, UnknownNameListsTheChoices) {
  expect_error<ConfigError>([] { make_builtin_target("banana"); },
                            {"banana", "u1", "u4", "gmm40", "funnel", "many-well", "camel"});
}

TEST(ResolveTarget, BuiltinNameOrElseAFile) {
  EXPECT_EQ(resolve_target("funnel", 4)->dim(), 4);
  EXPECT_EQ(resolve_target("u2")->name(), "u2");
  expect_error<ConfigError>(
      [] { resolve_target("banana"); },
      {"unknown target 'banana'", "not a built-in", "u1", "camel", "no such file"});
  // A name that looks like a TorchScript file goes to the loader, which says it is missing.
  expect_error<ConfigError>([] { resolve_target("/nonexistent/zflow_target.pt"); },
                            {"/nonexistent/zflow_target.pt", "no such file"});
}
