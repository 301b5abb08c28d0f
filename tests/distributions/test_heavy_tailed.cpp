// Heavy-tailed bases (distributions/heavy_tailed.h): Student-t and Laplace. Densities against
// closed forms and quadrature, samples against the distributions' quantiles, gradients to a
// learned ν, spec round trips through the registry, and the ConfigErrors of bad specs.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/utils.h>

#include <cmath>
#include <string>
#include <vector>

#include "support/expect_error.h"
#include "zflow/core/error.h"
#include "zflow/distributions/heavy_tailed.h"
#include "zflow/distributions/normal.h"
#include "zflow/flows/registry.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

/// log t_ν((x − μ)/σ) − log σ in double, written out from the textbook formula.
double student_t_log_density(double x, double df, double loc = 0, double scale = 1) {
  const double u = (x - loc) / scale;
  return std::lgamma((df + 1) / 2) - std::lgamma(df / 2) - 0.5 * std::log(df * M_PI) -
         std::log(scale) - (df + 1) / 2 * std::log(1 + u * u / df);
}

/// ∫ p over [lo, hi] by the midpoint rule with `steps` cells, for a 1-D distribution.
double integral_1d(DistributionImpl& dist, double lo, double hi, int64_t steps) {
  const double h = (hi - lo) / static_cast<double>(steps);
  Tensor x = (at::arange(steps, at::kDouble) * h + (lo + 0.5 * h)).view({steps, 1});
  torch::NoGradGuard no_grad;
  return (at::exp(dist.log_prob(x)).sum() * h).item<double>();
}

/// The 0.1% critical value 1.95/sqrt(n) of the Kolmogorov–Smirnov statistic for n = 20000
/// draws.
constexpr double kKsCritical = 0.0138;

/// Kolmogorov–Smirnov statistic sup |F_n − F| of 1-D `samples` against the CDF values
/// `cdf` evaluated at the sorted samples.
double ks_statistic(const Tensor& sorted_cdf) {
  const int64_t n = sorted_cdf.size(0);
  Tensor upper = at::arange(1, n + 1, at::kDouble) / n - sorted_cdf;
  Tensor lower = sorted_cdf - at::arange(0, n, at::kDouble) / n;
  return std::max(upper.max().item<double>(), lower.max().item<double>());
}

/// The Cauchy CDF (Student-t with ν = 1), ½ + atan(x)/π.
Tensor cauchy_cdf(const Tensor& x) { return 0.5 + at::atan(x) / M_PI; }

/// The Laplace CDF: ½ e^x for x < 0, 1 − ½ e^−x otherwise.
Tensor laplace_cdf(const Tensor& x) {
  return at::where(x < 0, 0.5 * at::exp(x), 1 - 0.5 * at::exp(-x));
}

StudentT student_t(std::vector<int64_t> shape, double df, bool learn_df = false,
                   bool learn_loc_scale = false) {
  return StudentT(
      StudentTOptions(std::move(shape)).df(df).learn_df(learn_df).learn_loc_scale(learn_loc_scale));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// StudentT

TEST(StudentT, MatchesTheHandComputedDensity) {
  auto dist = student_t({3}, 3.5);
  dist->to(at::kDouble);
  Tensor x = at::tensor({0.3, -1.7, 4.2, 0.0, 12.0, -0.5}, at::kDouble).view({2, 3});
  Tensor lp = dist->log_prob(x);
  ASSERT_EQ(lp.sizes(), at::IntArrayRef({2}));
  for (int64_t b = 0; b < 2; ++b) {
    double expected = 0;
    for (int64_t d = 0; d < 3; ++d) expected += student_t_log_density(x[b][d].item<double>(), 3.5);
    EXPECT_NEAR(lp[b].item<double>(), expected, 1e-12) << b;
  }
  // ν = 1 is the Cauchy density 1 / (π (1 + x²)).
  auto cauchy = student_t({1}, 1.0);
  cauchy->to(at::kDouble);
  EXPECT_NEAR(cauchy->log_prob(at::tensor({2.0}, at::kDouble).view({1, 1})).item<double>(),
              -std::log(M_PI * 5.0), 1e-12);
}

TEST(StudentT, LearnedDfAndLocScaleMatchTheHandComputedDensity) {
  auto dist = student_t({2}, 2.5, /*learn_df=*/true, /*learn_loc_scale=*/true);
  dist->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    dist->loc.copy_(at::tensor({0.5, -1.0}, at::kDouble));
    dist->log_scale.copy_(at::tensor({0.3, -0.4}, at::kDouble));
    // ν = softplus(raw) + floor: ν = 2.5 and 7 for these raws.
    dist->raw_df.copy_(at::tensor({std::log(std::expm1(2.5 - StudentTImpl::kMinDf)),
                                   std::log(std::expm1(7.0 - StudentTImpl::kMinDf))},
                                  at::kDouble));
  }
  const std::vector<double> df = {2.5, 7.0}, loc = {0.5, -1.0},
                            scale = {std::exp(0.3), std::exp(-0.4)};
  EXPECT_TRUE(at::allclose(dist->degrees_of_freedom(), at::tensor(df, at::kDouble)));
  Tensor x = at::tensor({1.9, -3.0, -2.0, 0.25}, at::kDouble).view({2, 2});
  Tensor lp = dist->log_prob(x);
  for (int64_t b = 0; b < 2; ++b) {
    double expected = 0;
    for (size_t d = 0; d < 2; ++d) {
      expected += student_t_log_density(x[b][static_cast<int64_t>(d)].item<double>(), df[d], loc[d],
                                        scale[d]);
    }
    EXPECT_NEAR(lp[b].item<double>(), expected, 1e-12) << b;
  }
}

TEST(StudentT, IntegratesToOneOnAGrid) {
  // ν = 3: the mass beyond ±2000 is about 2.4e-10; the grid is fine enough for the peak.
  for (const bool learn_df : {false, true}) {
    auto dist = student_t({1}, 3.0, learn_df);
    dist->to(at::kDouble);
    EXPECT_NEAR(integral_1d(*dist, -2000, 2000, 400000), 1.0, 1e-6) << learn_df;
  }
}

TEST(StudentT, ApproachesTheStandardNormalForLargeDf) {
  // The difference is about (x⁴ − 2x² − 1)/(4ν) per coordinate: below 1e-5 for |x| < 4 at
  // ν = 1e7 (a larger ν would lose the normalising term's digits to lgamma's size).
  auto dist = student_t({4}, 1e7);
  dist->to(at::kDouble);
  StandardNormal normal(std::vector<int64_t>{4});
  normal->to(at::kDouble);
  Tensor x = at::linspace(-4, 4, 64, at::kDouble).view({16, 4});
  EXPECT_TRUE(at::allclose(dist->log_prob(x), normal->log_prob(x), 0, 4e-5));
  auto nearer = student_t({4}, 1e5);
  nearer->to(at::kDouble);
  EXPECT_FALSE(at::allclose(nearer->log_prob(x), normal->log_prob(x), 0, 4e-5));
  // And ν = 5 is clearly not normal in the tails.
  auto five = student_t({4}, 5.0);
  five->to(at::kDouble);
  Tensor far = at::full({1, 4}, 6.0, at::kDouble);
  EXPECT_GT(five->log_prob(far).item<double>(), normal->log_prob(far).item<double>() + 40);
}

TEST(StudentT, CauchySamplesPassAKolmogorovSmirnovTest) {
  // ν = 1 has no moments; the KS statistic of 20000 draws against the Cauchy CDF is below
  // kKsCritical for a right sampler, and a sampler with a wrong scale or ν would be far
  // beyond it (ν = 2 instead of 1 is 0.056 away; a scale 12% off, 0.018).
  for (const bool learn_df : {false, true}) {
    torch::manual_seed(11);
    auto dist = student_t({2}, 1.0, learn_df);
    dist->to(at::kDouble);
    torch::NoGradGuard no_grad;
    Tensor s = dist->sample(20000);
    ASSERT_EQ(s.sizes(), at::IntArrayRef({20000, 2}));
    EXPECT_EQ(s.scalar_type(), at::kDouble);
    for (int64_t d = 0; d < 2; ++d) {
      Tensor sorted = std::get<0>(s.select(1, d).sort());
      EXPECT_LT(ks_statistic(cauchy_cdf(sorted)), kKsCritical) << learn_df << " " << d;
    }
  }
}

TEST(StudentT, SampleMomentsForFiveDegreesOfFreedom) {
  // ν = 5: variance ν/(ν−2) = 5/3; E|ε| = 2 sqrt(ν) Γ((ν+1)/2) / (sqrt(π) (ν−1) Γ(ν/2)).
  torch::manual_seed(5);
  auto dist = student_t({1}, 5.0, false, /*learn_loc_scale=*/true);
  dist->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    dist->loc.fill_(2.0);
    dist->log_scale.fill_(std::log(0.5));
  }
  torch::NoGradGuard no_grad;
  Tensor s = dist->sample(400000).view({-1});
  const double abs_mean =
      2 * std::sqrt(5.0) * std::tgamma(3.0) / (std::sqrt(M_PI) * 4 * std::tgamma(2.5));
  EXPECT_NEAR(s.mean().item<double>(), 2.0, 0.005);
  EXPECT_NEAR((s - 2).abs().mean().item<double>(), 0.5 * abs_mean, 0.004);
  EXPECT_NEAR((s - 2).var().item<double>(), 0.25 * 5.0 / 3.0, 0.01);
  // Tail mass: P(|ε| > 3) = 0.0301 for ν = 5 (vs 0.0027 for a normal).
  EXPECT_NEAR(((s - 2).abs() > 1.5).to(at::kDouble).mean().item<double>(), 0.0301, 0.0015);
}

TEST(StudentT, GradientsReachALearnedDf) {
  auto dist = student_t({3}, 4.0, /*learn_df=*/true);
  dist->to(at::kDouble);
  torch::manual_seed(2);
  Tensor x = at::randn({64, 3}, at::kDouble) * 3;
  dist->log_prob(x).sum().backward();
  ASSERT_TRUE(dist->raw_df.grad().defined());
  EXPECT_TRUE(at::isfinite(dist->raw_df.grad()).all().item<bool>());
  // Against a central difference in raw_df (d = 0).
  const double h = 1e-6;
  auto value_at = [&](double shift) {
    torch::NoGradGuard no_grad;
    dist->raw_df[0].add_(shift);
    const double v = dist->log_prob(x).sum().item<double>();
    dist->raw_df[0].sub_(shift);
    return v;
  };
  const double numeric = (value_at(h) - value_at(-h)) / (2 * h);
  EXPECT_NEAR(dist->raw_df.grad()[0].item<double>(), numeric,
              1e-5 * std::max(1.0, std::abs(numeric)));
  // Samples are differentiable in ν too (implicit reparameterisation of the Gamma draw).
  dist->zero_grad();
  dist->sample(20000).abs().mean().backward();
  ASSERT_TRUE(dist->raw_df.grad().defined());
  EXPECT_TRUE(at::isfinite(dist->raw_df.grad()).all().item<bool>());
  // A larger ν shrinks E|ε|: the gradient of the mean absolute sample is negative.
  EXPECT_LT(dist->raw_df.grad().sum().item<double>(), 0);
}

TEST(StudentT, Float32AndFloat64) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    for (const bool learn : {false, true}) {
      auto dist = student_t({2, 3, 3}, 4.0, learn, learn);
      dist->to(dtype);
      torch::manual_seed(4);
      Tensor x = at::randn({5, 2, 3, 3}, dtype) * 10;
      Tensor lp = dist->log_prob(x);
      EXPECT_EQ(lp.scalar_type(), dtype);
      EXPECT_EQ(lp.sizes(), at::IntArrayRef({5}));
      EXPECT_TRUE(at::isfinite(lp).all().item<bool>());
      Tensor s = dist->sample(7);
      EXPECT_EQ(s.scalar_type(), dtype);
      EXPECT_EQ(s.sizes(), at::IntArrayRef({7, 2, 3, 3}));
      EXPECT_EQ(dist->sample(0).sizes(), at::IntArrayRef({0, 2, 3, 3}));
      // float32 agrees with float64 (the normalising term is computed in float64).
      auto reference = student_t({2, 3, 3}, 4.0, learn, learn);
      reference->to(at::kDouble);
      EXPECT_TRUE(
          at::allclose(lp.to(at::kDouble), reference->log_prob(x.to(at::kDouble)), 1e-5, 1e-4))
          << dtype << " " << learn;
    }
  }
}

TEST(StudentT, SpecRoundTripsThroughTheRegistry) {
  auto dist = student_t({2, 4, 4}, 2.5, true, true);
  const Json spec = dist->spec();
  EXPECT_EQ(spec, Json({{"type", "student_t"},
                        {"shape", {2, 4, 4}},
                        {"df", 2.5},
                        {"learn_df", true},
                        {"learn_loc_scale", true}}));
  DistributionPtr again = make_distribution(spec);
  EXPECT_EQ(again->spec(), spec);
  EXPECT_EQ(again->type(), "student_t");
  std::vector<std::string> names;
  for (const auto& p : again->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"loc", "log_scale", "raw_df"}));
  // The defaults: ν = 5, fixed, no location or scale, no parameters.
  DistributionPtr plain = make_distribution({{"type", "student_t"}, {"shape", {3}}});
  EXPECT_EQ(plain->spec()["df"], 5.0);
  EXPECT_EQ(plain->spec()["learn_df"], false);
  EXPECT_TRUE(plain->parameters().empty());
  // The same parameters give the same density after the round trip.
  {
    torch::NoGradGuard no_grad;
    for (auto& p : again->parameters()) p.normal_();
  }
  auto copy = make_distribution(again->spec());
  {
    torch::NoGradGuard no_grad;
    auto from = again->named_parameters();
    for (auto& p : copy->named_parameters()) p.value().copy_(from[p.key()]);
  }
  Tensor x = at::randn({3, 2, 4, 4});
  EXPECT_TRUE(at::allclose(copy->log_prob(x), again->log_prob(x)));
}

TEST(StudentT, BadSpecsAreConfigErrors) {
  auto make = [](Json spec) {
    spec["type"] = "student_t";
    return make_distribution(spec);
  };
  expect_error<ConfigError>([&] { make({{"shape", {2}}, {"df", 0.0}}); }, {"df", "positive"});
  expect_error<ConfigError>([&] { make({{"shape", {2}}, {"df", -3}}); }, {"df"});
  expect_error<ConfigError>(
      [&] {
        make({{"shape", {2}}, {"df", 0.005}, {"learn_df", true}});
      },
      {"floor"});
  expect_error<ConfigError>([&] { make({{"shape", {2}}, {"df", "five"}}); }, {"df"});
  expect_error<ConfigError>([&] { make({{"shape", Json::array()}}); }, {"shape"});
  expect_error<ConfigError>([&] { make({{"shape", {2, 0}}}); }, {"event size"});
  expect_error<ConfigError>([&] { make({{"df", 3.0}}); }, {"shape"});
  expect_error<ConfigError>([&] { make({{"shape", {2}}, {"nu", 3.0}}); }, {"nu"});
  EXPECT_THROW(StudentT(StudentTOptions({2}).df(std::nan(""))), ConfigError);
  EXPECT_THROW(StudentT(StudentTOptions({2}).df(INFINITY)), ConfigError);
  // Inputs of the wrong shape are tensor-contract errors.
  auto dist = student_t({2}, 3.0);
  EXPECT_THROW(dist->log_prob(at::zeros({4, 3})), c10::Error);
  EXPECT_THROW(dist->log_prob(at::zeros({4})), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// Laplace

TEST(Laplace, MatchesTheHandComputedDensityAndIntegratesToOne) {
  Laplace dist(std::vector<int64_t>{2}, /*learn_loc_scale=*/true);
  dist->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    dist->loc.copy_(at::tensor({1.0, -2.0}, at::kDouble));
    dist->log_scale.copy_(at::tensor({std::log(2.0), std::log(0.5)}, at::kDouble));
  }
  Tensor x = at::tensor({4.0, -2.25}, at::kDouble).view({1, 2});
  // −|4 − 1|/2 − log 4 − |−2.25 + 2|/0.5 − log 1.
  EXPECT_NEAR(dist->log_prob(x).item<double>(), -1.5 - std::log(4.0) - 0.5, 1e-12);
  Laplace one(std::vector<int64_t>{1});
  one->to(at::kDouble);
  EXPECT_NEAR(integral_1d(*one, -40, 40, 200000), 1.0, 1e-8);
}

TEST(Laplace, SamplesPassAKolmogorovSmirnovTestAndHaveItsMoments) {
  torch::manual_seed(7);
  Laplace dist(std::vector<int64_t>{3});
  dist->to(at::kDouble);
  Tensor s = dist->sample(20000);
  ASSERT_EQ(s.sizes(), at::IntArrayRef({20000, 3}));
  for (int64_t d = 0; d < 3; ++d) {
    Tensor sorted = std::get<0>(s.select(1, d).sort());
    EXPECT_LT(ks_statistic(laplace_cdf(sorted)), kKsCritical) << d;
  }
  EXPECT_NEAR(s.mean().item<double>(), 0.0, 0.02);
  EXPECT_NEAR(s.var().item<double>(), 2.0, 0.05);  // variance 2b²
  EXPECT_NEAR(s.abs().mean().item<double>(), 1.0, 0.015);
}

TEST(Laplace, Float32GradientsSpecAndErrors) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    Laplace dist(std::vector<int64_t>{3, 2, 2}, true);
    dist->to(dtype);
    Tensor x = at::randn({4, 3, 2, 2}, dtype);
    Tensor lp = dist->log_prob(x);
    EXPECT_EQ(lp.scalar_type(), dtype);
    EXPECT_EQ(dist->sample(5).scalar_type(), dtype);
    lp.sum().backward();
    EXPECT_TRUE(dist->loc.grad().defined());
    EXPECT_TRUE(dist->log_scale.grad().defined());
  }
  const Json spec = {{"type", "laplace"}, {"shape", {3}}, {"learn_loc_scale", false}};
  EXPECT_EQ(make_distribution(spec)->spec(), spec);
  EXPECT_TRUE(make_distribution(spec)->parameters().empty());
  expect_error<ConfigError>(
      [] {
        make_distribution({{"type", "laplace"}, {"shape", {3}}, {"df", 2}});
      },
      {"df"});
  expect_error<ConfigError>(
      [] {
        make_distribution({{"type", "laplace"}, {"shape", {-1}}});
      },
      {"event size"});
}
