// The objectives for unnormalised targets reach their closed-form optima: on a correlated
// Gaussian target p = N(μ, Σ) and the family of diagonal Gaussians q = N(m, diag(s²)),
// reverse KL is minimised by m = μ, s_i² = 1/Λ_ii (Λ = Σ⁻¹: q matches the conditional
// widths, narrower than the marginals), and forward KL by m = μ, s_i² = Σ_ii (the
// marginals) (Bishop 2006, sec. 10.1.2). Sticking the landing has a zero gradient at an
// exact fit; the mass-covering objectives recover a target inside the family.

#include <cmath>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "zflow/core/error.h"
#include "zflow/flows/registry.h"
#include "zflow/train/trainer.h"
#include "zflow/variational/objectives.h"

namespace {

using zflow::Json;

// μ = (1, −2), Σ = [[1, 0.8], [0.8, 1]] ⇒ Λ_ii = 1/(1 − 0.64), so 1/Λ_ii = 0.36.
constexpr double kMu0 = 1.0, kMu1 = -2.0, kRho = 0.8;

/// log p̃ of the correlated Gaussian times e^3 (log Z = 3 + log 2π + ½ log det Σ).
zflow::TargetPtr correlated_gaussian() {
  return zflow::make_callable_target(
      "correlated", 2,
      [](const at::Tensor& x) {
        const at::Tensor a = x.select(1, 0) - kMu0;
        const at::Tensor b = x.select(1, 1) - kMu1;
        return 3.0 - 0.5 * (a * a - 2 * kRho * a * b + b * b) / (1 - kRho * kRho);
      },
      {}, 3.0 + std::log(2 * M_PI) + 0.5 * std::log(1 - kRho * kRho));
}

/// A diagonal Gaussian: one elementwise affine layer over a standard normal.
zflow::FlowPtr diagonal_gaussian_flow() {
  at::manual_seed(0);
  zflow::FlowPtr flow = zflow::make_flow(
      Json{{"type", "flow"},
           {"transform",
            {{"type", "composite"},
             {"layers", Json::array({{{"type", "elementwise_affine"}, {"features", 2}}})}}},
           {"base", {{"type", "standard_normal"}, {"shape", {2}}}}});
  flow->to(at::kDouble);
  return flow;
}

/// The mean and standard deviation of 200000 samples of the flow.
std::pair<at::Tensor, at::Tensor> moments(zflow::FlowImpl& flow) {
  at::NoGradGuard no_grad;
  at::manual_seed(1);
  const at::Tensor x = flow.sample(200000);
  return {x.mean(0), x.std(0)};
}

zflow::train::TrainResult fit(zflow::FlowImpl& flow, zflow::VariationalOptions v,
                              int64_t steps = 3000) {
  zflow::train::TrainOptions o;
  o.steps = steps;
  o.batch_size = 256;
  o.lr = 5e-2;
  o.eval_every = 250;
  zflow::train::Trainer trainer(flow, o);
  trainer.set_objective(zflow::make_variational_objective(correlated_gaussian(), v));
  return trainer.fit({});
}

TEST(VariationalObjectives, ReverseKLReachesTheConditionalWidths) {
  for (const char* name : {"rkl", "stl"}) {
    zflow::FlowPtr flow = diagonal_gaussian_flow();
    zflow::VariationalOptions v;
    v.objective = name;
    const zflow::train::TrainResult result = fit(*flow, v);
    const auto [mean, std] = moments(*flow);
    EXPECT_NEAR(mean[0].item<double>(), kMu0, 0.02) << name;
    EXPECT_NEAR(mean[1].item<double>(), kMu1, 0.02) << name;
    EXPECT_NEAR(std[0].item<double>(), 0.6, 0.02) << name;  // √(1 − ρ²)
    EXPECT_NEAR(std[1].item<double>(), 0.6, 0.02) << name;
    // At the optimum the negative ELBO is KL(q‖p) − log Z, with the closed-form KL of two
    // Gaussians: ½(tr(Σ⁻¹S) − 2 + log det Σ − log det S) = ½ log(det Σ / det S).
    const double kl = 0.5 * std::log((1 - kRho * kRho) / std::pow(1 - kRho * kRho, 2));
    const double log_z = 3.0 + std::log(2 * M_PI) + 0.5 * std::log(1 - kRho * kRho);
    EXPECT_NEAR(result.best_val_nll, kl - log_z, 0.03) << name;
  }
}

TEST(VariationalObjectives, ForwardKLOnABufferMatchesTheMarginals) {
  zflow::FlowPtr flow = diagonal_gaussian_flow();
  zflow::VariationalOptions v;
  v.objective = "fkl";
  fit(*flow, v, 4000);
  const auto [mean, std] = moments(*flow);
  EXPECT_NEAR(mean[0].item<double>(), kMu0, 0.05);
  EXPECT_NEAR(mean[1].item<double>(), kMu1, 0.05);
  EXPECT_NEAR(std[0].item<double>(), 1.0, 0.05);  // √Σ_ii
  EXPECT_NEAR(std[1].item<double>(), 1.0, 0.05);
}

TEST(VariationalObjectives, MassCoveringObjectivesCoverMoreThanReverseKL) {
  // The importance-weighted bound (alpha with α = 0) and the variance loss penalise q < p:
  // both end wider than reverse KL's 0.6 (the variance loss's optimum, the marginals' 1.0).
  for (const char* name : {"alpha", "variance"}) {
    zflow::FlowPtr flow = diagonal_gaussian_flow();
    zflow::VariationalOptions v;
    v.objective = name;
    v.alpha = 0.0;
    fit(*flow, v, 2000);
    const auto [mean, std] = moments(*flow);
    // The importance-weighted bound of 256 samples is flat around its optimum (the weights
    // correct a shifted q): its mean is looser.
    EXPECT_NEAR(mean[0].item<double>(), kMu0, std::string(name) == "alpha" ? 0.2 : 0.05) << name;
    EXPECT_GT(std[0].item<double>(), 0.65) << name;
    EXPECT_GT(std[1].item<double>(), 0.65) << name;
  }
}

TEST(VariationalObjectives, SticksTheLandingWithAZeroGradientAtAnExactFit) {
  // A target inside the family: q = p exactly once the affine layer is set to it.
  zflow::FlowPtr flow = diagonal_gaussian_flow();
  {
    at::NoGradGuard no_grad;
    for (auto& p : flow->named_parameters()) {
      // x = (z − shift)·e^{−log_scale}: mean 1.5, standard deviation 2.
      if (p.key().find("log_scale") != std::string::npos) p.value().fill_(-std::log(2.0));
      if (p.key().find("shift") != std::string::npos) p.value().fill_(-0.75);
    }
  }
  const zflow::TargetPtr target = zflow::make_callable_target(
      "n", 2, [](const at::Tensor& x) { return -0.125 * (x - 1.5).pow(2).sum(1); });
  auto gradient_norm = [&](const std::string& name) {
    zflow::VariationalOptions v;
    v.objective = name;
    auto objective = zflow::make_variational_objective(target, v);
    flow->zero_grad();
    zflow::train::Batch batch;
    batch.size = 64;
    objective->loss(*flow, batch).backward();
    double norm = 0;
    for (auto& p : flow->parameters()) norm += p.grad().pow(2).sum().item<double>();
    return std::sqrt(norm);
  };
  at::manual_seed(5);
  EXPECT_LT(gradient_norm("stl"), 1e-10);
  at::manual_seed(5);
  EXPECT_GT(gradient_norm("rkl"), 1e-3);  // the score term's noise
}

TEST(VariationalObjectives, AnnealingIsGeometricFromTheStartToOne) {
  zflow::VariationalOptions v;
  v.anneal_from = 0.01;
  v.anneal_steps = 100;
  EXPECT_DOUBLE_EQ(zflow::annealing_beta(v, 0), 0.01);
  EXPECT_NEAR(zflow::annealing_beta(v, 50), 0.1, 1e-12);
  EXPECT_DOUBLE_EQ(zflow::annealing_beta(v, 100), 1.0);
  EXPECT_DOUBLE_EQ(zflow::annealing_beta(v, 1000), 1.0);
  v.anneal_steps = 0;
  EXPECT_DOUBLE_EQ(zflow::annealing_beta(v, 0), 1.0);
}

TEST(VariationalObjectives, AnnealedRunStillEndsAtTheTarget) {
  zflow::FlowPtr flow = diagonal_gaussian_flow();
  zflow::VariationalOptions v;
  v.anneal_from = 0.1;
  v.anneal_steps = 500;
  fit(*flow, v, 1500);
  const auto [mean, std] = moments(*flow);
  EXPECT_NEAR(std[0].item<double>(), 0.6, 0.03);
}

TEST(VariationalObjectives, BadChoicesAreConfigErrors) {
  const zflow::TargetPtr target = correlated_gaussian();
  auto make = [&](auto change) {
    zflow::VariationalOptions v;
    change(v);
    return zflow::make_variational_objective(target, v);
  };
  EXPECT_THROW(make([](auto& v) { v.objective = "elbo"; }), zflow::ConfigError);
  EXPECT_THROW(make([](auto& v) { v.alpha = 1.0; }), zflow::ConfigError);
  EXPECT_THROW(make([](auto& v) { v.alpha = -0.5; }), zflow::ConfigError);
  EXPECT_THROW(make([](auto& v) { v.alpha = 2.0; }), zflow::ConfigError);
  EXPECT_THROW(make([](auto& v) { v.anneal_from = 0.0; }), zflow::ConfigError);
  EXPECT_THROW(make([](auto& v) { v.anneal_from = 1.5; }), zflow::ConfigError);
  EXPECT_THROW(make([](auto& v) { v.refresh_every = 0; }), zflow::ConfigError);
  EXPECT_THROW(zflow::make_variational_objective(nullptr, {}), zflow::ConfigError);
  try {
    make([](auto& v) { v.objective = "elbo"; });
  } catch (const zflow::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("rkl"), std::string::npos) << e.what();
  }
}

TEST(VariationalObjectives, ProgressShowsESSAndLogZ) {
  zflow::FlowPtr flow = diagonal_gaussian_flow();
  auto objective = zflow::make_variational_objective(correlated_gaussian(), {});
  EXPECT_EQ(objective->progress_status(), "");
  zflow::train::Batch batch;
  batch.size = 128;
  objective->loss(*flow, batch);
  const std::string status = objective->progress_status();
  EXPECT_NE(status.find("ESS"), std::string::npos) << status;
  EXPECT_NE(status.find("log Z"), std::string::npos) << status;
  EXPECT_TRUE(objective->progress_metrics().contains("ess"));
  EXPECT_FALSE(objective->uses_data());
}

}  // namespace

namespace {

TEST(VariationalObjectives, AlphaIsRenyisVariationalBound) {
  // The loss of a batch against the same batch's weights, recomputed here:
  // −1/(1−α) · log mean w^{1−α}; α → 1 approaches the negative ELBO, α = 0 is −log mean w.
  zflow::FlowPtr flow = diagonal_gaussian_flow();
  const zflow::TargetPtr target = correlated_gaussian();
  for (double alpha : {0.0, 0.5, 0.999999}) {
    zflow::VariationalOptions v;
    v.objective = "alpha";
    v.alpha = alpha;
    auto objective = zflow::make_variational_objective(target, v);
    zflow::train::Batch batch;
    batch.size = 500;
    at::manual_seed(11);
    const double loss = objective->loss(*flow, batch).item<double>();
    at::manual_seed(11);
    at::NoGradGuard no_grad;
    auto [x, log_q] = flow->sample_and_log_prob(500);
    const at::Tensor log_w = target->log_density(x) - log_q;
    const double b = 1.0 - alpha;
    EXPECT_NEAR(loss, -std::log((log_w * b).exp().mean().item<double>()) / b, 1e-6) << alpha;
    if (alpha > 0.9) {
      EXPECT_NEAR(loss, -log_w.mean().item<double>(), 1e-3);
    }
  }
}

}  // namespace
