// Base distributions: Gaussian mixture, box uniform and the conditional diagonal normal.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/utils.h>

#include <cmath>
#include <limits>
#include <string>

#include "zflow/core/error.h"
#include "zflow/distributions/conditional.h"
#include "zflow/distributions/mixture.h"
#include "zflow/distributions/normal.h"
#include "zflow/distributions/uniform.h"

using namespace zflow;

namespace {

double normal_log_density(double x, double mean, double scale) {
  const double u = (x - mean) / scale;
  return -0.5 * u * u - std::log(scale) - 0.5 * std::log(2 * M_PI);
}

void set_mixture(GaussianMixtureImpl& mixture, const Tensor& logits, const Tensor& means,
                 const Tensor& log_scales) {
  torch::NoGradGuard no_grad;
  mixture.logits.copy_(logits);
  mixture.means.copy_(means);
  mixture.log_scales.copy_(log_scales);
}

Tensor named_parameter(torch::nn::Module& module, const std::string& name) {
  auto params = module.named_parameters();
  auto* found = params.find(name);
  EXPECT_NE(found, nullptr) << "no parameter " << name;
  return found ? *found : Tensor();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// GaussianMixture

TEST(GaussianMixture, OneComponentEqualsDiagonalNormal) {
  torch::manual_seed(1);
  GaussianMixture mixture(std::vector<int64_t>{3}, 1);
  DiagonalNormal normal(std::vector<int64_t>{3});
  mixture->to(at::kDouble);
  normal->to(at::kDouble);
  Tensor mean = at::tensor({0.5, -1.0, 2.0}, at::kDouble);
  Tensor log_scale = at::tensor({0.3, -0.2, 0.7}, at::kDouble);
  set_mixture(*mixture, at::tensor({1.7}, at::kDouble), mean.view({1, 3}), log_scale.view({1, 3}));
  {
    torch::NoGradGuard no_grad;
    normal->mean.copy_(mean);
    normal->log_scale.copy_(log_scale);
  }
  Tensor x = at::randn({16, 3}, at::kDouble);
  Tensor got = mixture->log_prob(x);
  EXPECT_EQ(got.sizes(), at::IntArrayRef({16}));
  EXPECT_EQ(got.scalar_type(), at::kDouble);
  EXPECT_TRUE(at::allclose(got, normal->log_prob(x), 1e-12, 1e-12));
}

TEST(GaussianMixture, TwoComponentsMatchHandComputedDensity) {
  GaussianMixture mixture(std::vector<int64_t>{1}, 2);
  mixture->to(at::kDouble);
  const double l1 = 0.2, l2 = -0.9, m1 = -1.0, m2 = 1.5, s1 = 0.5, s2 = 2.0;
  set_mixture(*mixture, at::tensor({l1, l2}, at::kDouble),
              at::tensor({m1, m2}, at::kDouble).view({2, 1}),
              at::tensor({std::log(s1), std::log(s2)}, at::kDouble).view({2, 1}));
  const double w1 = std::exp(l1) / (std::exp(l1) + std::exp(l2)), w2 = 1 - w1;
  const std::vector<double> xs{-3.0, -1.0, 0.0, 0.7, 4.0};
  Tensor got = mixture->log_prob(at::tensor(xs, at::kDouble).view({-1, 1}));
  for (size_t i = 0; i < xs.size(); ++i) {
    const double expected = std::log(w1 * std::exp(normal_log_density(xs[i], m1, s1)) +
                                     w2 * std::exp(normal_log_density(xs[i], m2, s2)));
    EXPECT_NEAR(got[static_cast<int64_t>(i)].item<double>(), expected, 1e-12) << "x = " << xs[i];
  }
  EXPECT_NEAR(mixture->weights()[0].item<double>(), w1, 1e-12);
}

TEST(GaussianMixture, IntegratesToOneOnAGrid) {
  GaussianMixture mixture(std::vector<int64_t>{2}, 3);
  mixture->to(at::kDouble);
  set_mixture(*mixture, at::tensor({0.5, -0.3, 0.1}, at::kDouble),
              at::tensor({-2.0, 1.0, 1.5, -1.0, 0.0, 2.0}, at::kDouble).view({3, 2}),
              at::tensor({-0.4, 0.2, 0.0, -0.7, 0.3, 0.1}, at::kDouble).view({3, 2}));
  const double lo = -9.0, hi = 9.0, h = 0.045;
  const auto steps = static_cast<int64_t>(std::lround((hi - lo) / h));
  Tensor axis = at::arange(steps, at::kDouble) * h + (lo + 0.5 * h);  // midpoints
  auto grid = at::meshgrid({axis, axis}, "ij");
  Tensor points = at::stack({grid[0].reshape(-1), grid[1].reshape(-1)}, 1);
  torch::NoGradGuard no_grad;
  const double integral = (at::exp(mixture->log_prob(points)).sum() * h * h).item<double>();
  EXPECT_NEAR(integral, 1.0, 1e-3);
}

TEST(GaussianMixture, SampleStatistics) {
  torch::manual_seed(0);
  GaussianMixture mixture(std::vector<int64_t>{2}, 2);
  mixture->to(at::kDouble);
  // Well-separated components in the first coordinate; weights 0.3 / 0.7.
  set_mixture(*mixture, at::tensor({std::log(0.3), std::log(0.7)}, at::kDouble),
              at::tensor({-5.0, 1.0, 5.0, -2.0}, at::kDouble).view({2, 2}),
              at::tensor({std::log(0.5), 0.0, 0.0, std::log(0.25)}, at::kDouble).view({2, 2}));
  torch::NoGradGuard no_grad;
  Tensor s = mixture->sample(200000);
  ASSERT_EQ(s.sizes(), at::IntArrayRef({200000, 2}));
  EXPECT_EQ(s.scalar_type(), at::kDouble);
  Tensor right = s.select(1, 0) > 0;
  EXPECT_NEAR(right.to(at::kDouble).mean().item<double>(), 0.7, 0.005);
  Tensor a = s.index({right.logical_not()});
  Tensor b = s.index({right});
  EXPECT_NEAR(a.mean(0)[0].item<double>(), -5.0, 0.01);
  EXPECT_NEAR(a.mean(0)[1].item<double>(), 1.0, 0.02);
  EXPECT_NEAR(a.std(0)[0].item<double>(), 0.5, 0.01);
  EXPECT_NEAR(a.std(0)[1].item<double>(), 1.0, 0.01);
  EXPECT_NEAR(b.mean(0)[0].item<double>(), 5.0, 0.01);
  EXPECT_NEAR(b.mean(0)[1].item<double>(), -2.0, 0.01);
  EXPECT_NEAR(b.std(0)[0].item<double>(), 1.0, 0.01);
  EXPECT_NEAR(b.std(0)[1].item<double>(), 0.25, 0.005);
  EXPECT_NEAR(s.mean(0)[0].item<double>(), 0.3 * -5.0 + 0.7 * 5.0, 0.03);
  EXPECT_EQ(mixture->sample(0).sizes(), at::IntArrayRef({0, 2}));
}

TEST(GaussianMixture, Float32GradientsAndSpec) {
  torch::manual_seed(2);
  GaussianMixture mixture(std::vector<int64_t>{2}, 4);
  Tensor x = at::randn({32, 2});
  Tensor lp = mixture->log_prob(x);
  EXPECT_EQ(lp.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(lp).all().item<bool>());
  lp.sum().backward();
  for (const auto& p : mixture->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
  EXPECT_EQ(mixture->sample(5).scalar_type(), at::kFloat);
  // Sampling is reparameterised through the means and scales.
  mixture->zero_grad();
  mixture->sample(8).sum().backward();
  EXPECT_TRUE(mixture->means.grad().defined());
  EXPECT_EQ(mixture->spec(),
            Json({{"type", "gaussian_mixture"}, {"shape", {2}}, {"components", 4}}));
  EXPECT_EQ(mixture->event_shape(), std::vector<int64_t>({2}));
}

TEST(GaussianMixture, RejectsBadOptions) {
  EXPECT_THROW(GaussianMixture(std::vector<int64_t>{2}, 0), ConfigError);
  EXPECT_THROW(GaussianMixture(std::vector<int64_t>{0}, 2), ConfigError);
  EXPECT_THROW(GaussianMixture(std::vector<int64_t>{2, 2}, 2), ConfigError);
  GaussianMixture mixture(std::vector<int64_t>{2}, 2);
  EXPECT_THROW(mixture->log_prob(at::zeros({4, 3})), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// BoxUniform

TEST(BoxUniform, LogProbInsideAndOutside) {
  BoxUniform box(std::vector<double>{-1.0, 0.0}, std::vector<double>{1.0, 0.5});
  box->to(at::kDouble);
  Tensor x = at::tensor({0.0, 0.25, -1.0, 0.5, 1.5, 0.25, 0.0, -0.1}, at::kDouble).view({4, 2});
  Tensor lp = box->log_prob(x);
  ASSERT_EQ(lp.sizes(), at::IntArrayRef({4}));
  EXPECT_EQ(lp.scalar_type(), at::kDouble);
  const double inside = -std::log(2.0 * 0.5);
  EXPECT_NEAR(lp[0].item<double>(), inside, 1e-15);
  EXPECT_NEAR(lp[1].item<double>(), inside, 1e-15);  // on the boundary: inside (closed box)
  EXPECT_EQ(lp[2].item<double>(), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(lp[3].item<double>(), -std::numeric_limits<double>::infinity());
}

TEST(BoxUniform, SamplesLieInsideWithTheRightMean) {
  torch::manual_seed(3);
  BoxUniform box(std::vector<double>{-1.0, 2.0, 0.0}, std::vector<double>{1.0, 6.0, 0.1});
  for (auto dtype : {at::kFloat, at::kDouble}) {
    box->to(dtype);
    Tensor s = box->sample(100000);
    ASSERT_EQ(s.sizes(), at::IntArrayRef({100000, 3}));
    EXPECT_EQ(s.scalar_type(), dtype);
    EXPECT_TRUE(at::isfinite(box->log_prob(s)).all().item<bool>());
    Tensor mean = s.to(at::kDouble).mean(0);
    EXPECT_NEAR(mean[0].item<double>(), 0.0, 0.01);
    EXPECT_NEAR(mean[1].item<double>(), 4.0, 0.02);
    EXPECT_NEAR(mean[2].item<double>(), 0.05, 0.001);
    EXPECT_NEAR(box->log_prob(s)[0].item<double>(), -std::log(2.0 * 4.0 * 0.1), 1e-5);
  }
  EXPECT_EQ(box->spec(),
            Json({{"type", "box_uniform"}, {"low", {-1.0, 2.0, 0.0}}, {"high", {1.0, 6.0, 0.1}}}));
  EXPECT_EQ(box->sample(0).sizes(), at::IntArrayRef({0, 3}));
  EXPECT_EQ(box->parameters().size(), 0u);
  EXPECT_EQ(box->buffers().size(), 2u);
}

TEST(BoxUniform, RejectsBadBounds) {
  using V = std::vector<double>;
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(BoxUniform(V{0.0, 0.0}, V{1.0}), ConfigError);
  EXPECT_THROW(BoxUniform(V{}, V{}), ConfigError);
  EXPECT_THROW(BoxUniform(V{1.0}, V{1.0}), ConfigError);
  EXPECT_THROW(BoxUniform(V{2.0}, V{1.0}), ConfigError);
  EXPECT_THROW(BoxUniform(V{-inf}, V{1.0}), ConfigError);
  EXPECT_THROW(BoxUniform(V{0.0}, V{std::nan("")}), ConfigError);
  BoxUniform box(V{0.0}, V{1.0});
  EXPECT_THROW(box->log_prob(at::zeros({2, 2})), c10::Error);
}

// ---------------------------------------------------------------------------------------------
// ConditionalDiagonalNormal

TEST(ConditionalDiagonalNormal, StartsAsStandardNormalForAnyContext) {
  torch::manual_seed(4);
  ConditionalDiagonalNormal dist(std::vector<int64_t>{3}, 2,
                                 Json{{"type", "mlp"}, {"hidden", 8}, {"layers", 2}});
  dist->to(at::kDouble);
  Tensor x = at::randn({10, 3}, at::kDouble);
  Tensor context = at::randn({10, 2}, at::kDouble) * 5;
  Tensor lp = dist->log_prob(x, context);
  ASSERT_EQ(lp.sizes(), at::IntArrayRef({10}));
  EXPECT_TRUE(at::allclose(lp, standard_normal_log_prob(x), 1e-12, 1e-12));
}

TEST(ConditionalDiagonalNormal, FollowsTheConditionerOutputBias) {
  torch::manual_seed(5);
  ConditionalDiagonalNormal dist(std::vector<int64_t>{2}, 3);
  dist->to(at::kDouble);
  const double m0 = 1.0, m1 = -2.0, s0 = 2.0, s1 = 0.5;
  {
    torch::NoGradGuard no_grad;
    named_parameter(*dist, "conditioner.output.bias")
        .copy_(at::tensor({m0, m1, std::log(s0), std::log(s1)}, at::kDouble));
  }
  Tensor x = at::tensor({0.0, -1.0, 3.0, 0.5}, at::kDouble).view({2, 2});
  Tensor context = at::randn({2, 3}, at::kDouble);
  Tensor lp = dist->log_prob(x, context);
  for (int64_t i = 0; i < 2; ++i) {
    const double expected = normal_log_density(x[i][0].item<double>(), m0, s0) +
                            normal_log_density(x[i][1].item<double>(), m1, s1);
    EXPECT_NEAR(lp[i].item<double>(), expected, 1e-12);
  }
  torch::NoGradGuard no_grad;
  Tensor s = dist->sample(100000, context.slice(0, 0, 1));
  ASSERT_EQ(s.sizes(), at::IntArrayRef({1, 100000, 2}));
  EXPECT_NEAR(s[0].mean(0)[0].item<double>(), m0, 0.02);
  EXPECT_NEAR(s[0].mean(0)[1].item<double>(), m1, 0.01);
  EXPECT_NEAR(s[0].std(0)[0].item<double>(), s0, 0.02);
  EXPECT_NEAR(s[0].std(0)[1].item<double>(), s1, 0.005);
}

TEST(ConditionalDiagonalNormal, SampleShapesAndSampleAndLogProb) {
  torch::manual_seed(6);
  ConditionalDiagonalNormal dist(std::vector<int64_t>{4}, 2);
  dist->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : dist->parameters()) p.add_(at::randn_like(p) * 0.3);
  }
  Tensor context = at::randn({3, 2}, at::kDouble);
  EXPECT_EQ(dist->sample(5, context).sizes(), at::IntArrayRef({3, 5, 4}));
  EXPECT_EQ(dist->sample(5, context.slice(0, 0, 1)).sizes(), at::IntArrayRef({1, 5, 4}));
  EXPECT_EQ(dist->sample(0, context).sizes(), at::IntArrayRef({3, 0, 4}));
  auto [samples, log_prob] = dist->sample_and_log_prob(7, context);
  ASSERT_EQ(samples.sizes(), at::IntArrayRef({3, 7, 4}));
  ASSERT_EQ(log_prob.sizes(), at::IntArrayRef({3, 7}));
  for (int64_t c = 0; c < 3; ++c) {
    Tensor repeated = context.slice(0, c, c + 1).expand({7, 2});
    EXPECT_TRUE(at::allclose(log_prob[c], dist->log_prob(samples[c], repeated), 1e-10, 1e-10));
  }
  // Different contexts give different distributions once the conditioner is not zero.
  Tensor x = at::randn({3, 4}, at::kDouble);
  EXPECT_FALSE(at::allclose(dist->log_prob(x, context), dist->log_prob(x, context.flip(0))));
}

TEST(ConditionalDiagonalNormal, RequiresAContext) {
  ConditionalDiagonalNormal dist(std::vector<int64_t>{2}, 3);
  try {
    dist->sample(4);
    FAIL() << "sample without a context must throw";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("context"), std::string::npos);
  }
  EXPECT_THROW(dist->log_prob(at::zeros({4, 2})), c10::Error);
  EXPECT_THROW(dist->log_prob(at::zeros({4, 2}), at::zeros({4, 2})), c10::Error);  // K = 2 ≠ 3
  EXPECT_THROW(dist->log_prob(at::zeros({4, 2}), at::zeros({5, 3})), c10::Error);  // batch
  EXPECT_THROW(dist->log_prob(at::zeros({4, 3}), at::zeros({4, 3})), c10::Error);  // D
}

TEST(ConditionalDiagonalNormal, GradientsReachTheConditioner) {
  torch::manual_seed(7);
  ConditionalDiagonalNormal dist(std::vector<int64_t>{2}, 3,
                                 Json{{"type", "resmlp"}, {"hidden", 8}, {"layers", 1}});
  {
    torch::NoGradGuard no_grad;
    for (auto& p : dist->parameters()) p.add_(at::randn_like(p) * 0.3);
  }
  Tensor lp = dist->log_prob(at::randn({16, 2}), at::randn({16, 3}));
  lp.sum().backward();
  for (const auto& p : dist->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
  }
}

TEST(ConditionalDiagonalNormal, Float32AndFloat64) {
  torch::manual_seed(8);
  ConditionalDiagonalNormal dist(std::vector<int64_t>{2}, 1);
  for (auto dtype : {at::kFloat, at::kDouble}) {
    dist->to(dtype);
    Tensor context = at::randn({4, 1}, dtype);
    Tensor lp = dist->log_prob(at::randn({4, 2}, dtype), context);
    EXPECT_EQ(lp.scalar_type(), dtype);
    auto [s, slp] = dist->sample_and_log_prob(3, context);
    EXPECT_EQ(s.scalar_type(), dtype);
    EXPECT_EQ(slp.scalar_type(), dtype);
  }
}

TEST(ConditionalDiagonalNormal, SpecAndOptions) {
  ConditionalDiagonalNormal dist(std::vector<int64_t>{3}, 2,
                                 Json{{"type", "mlp"}, {"hidden", 16}, {"activation", "tanh"}});
  const Json spec = dist->spec();
  EXPECT_EQ(spec["type"], "conditional_diagonal_normal");
  EXPECT_EQ(spec["shape"], Json({3}));
  EXPECT_EQ(spec["context_features"], 2);
  EXPECT_EQ(spec["conditioner"],
            Json({{"type", "mlp"}, {"hidden", 16}, {"layers", 2}, {"activation", "tanh"}}));
  // The spec's conditioner rebuilds the same architecture.
  ConditionalDiagonalNormal again(std::vector<int64_t>{3}, 2, spec["conditioner"]);
  EXPECT_EQ(again->spec(), spec);
  EXPECT_THROW(ConditionalDiagonalNormal(std::vector<int64_t>{3}, 0), ConfigError);
  EXPECT_THROW(ConditionalDiagonalNormal(std::vector<int64_t>{3, 1}, 2), ConfigError);
  EXPECT_THROW(ConditionalDiagonalNormal(std::vector<int64_t>{3}, 2, Json{{"hiden", 3}}),
               ConfigError);
}
