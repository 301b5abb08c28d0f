// Flow matching and maximum likelihood for continuous flows: the exact assignment of
// minibatch OT, a 2-D flow trained by flow matching whose density integrates to 1, FFJORD's
// likelihood training lowering the NLL, and the objective's clear errors.

#include "zflow/train/flow_matching.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "zflow/core/error.h"
#include "zflow/data/toy.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"
#include "zflow/train/assignment.h"
#include "zflow/train/trainer.h"
#include "zflow/transforms/continuous.h"

using namespace zflow;

namespace {

TEST(LinearAssignment, FindsTheCheapestPermutation) {
  torch::manual_seed(5);
  for (int64_t n = 1; n <= 6; ++n) {
    for (int trial = 0; trial < 5; ++trial) {
      const at::Tensor cost = at::rand({n, n}, at::kDouble);
      const auto column = train::linear_assignment(cost);
      auto total = [&](const std::vector<int64_t>& c) {
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) sum += cost[i][c[static_cast<size_t>(i)]].item<double>();
        return sum;
      };
      // Brute force over all n! permutations.
      std::vector<int64_t> perm(static_cast<size_t>(n));
      std::iota(perm.begin(), perm.end(), 0);
      double best = total(perm);
      while (std::next_permutation(perm.begin(), perm.end())) best = std::min(best, total(perm));
      std::vector<int64_t> sorted = column;
      std::sort(sorted.begin(), sorted.end());
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
      EXPECT_NEAR(total(column), best, 1e-12) << "n = " << n;
    }
  }
  EXPECT_THROW(train::linear_assignment(at::rand({2, 3})), c10::Error);
  EXPECT_THROW(train::linear_assignment(at::full({2, 2}, NAN)), c10::Error);
}

TEST(LinearAssignment, PairsShiftedCopiesWithEachOther) {
  torch::manual_seed(6);
  const at::Tensor x = at::randn({200, 2}, at::kDouble) * 5;
  const at::Tensor perm = at::randperm(200, at::kLong);
  const at::Tensor y = x.index_select(0, perm) + 0.01;
  // cost[i, j] = |x_i − y_j|²: row i goes to the copy of itself.
  const auto column = train::linear_assignment((x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(2));
  for (int64_t i = 0; i < 200; ++i) {
    EXPECT_EQ(perm[column[static_cast<size_t>(i)]].item<int64_t>(), i);
  }
}

FlowPtr cnf_flow(const Tensor& data, const std::string& solver = "dopri5") {
  BuilderOptions o;
  o.hidden = 64;
  o.depth = 3;
  o.solver = solver;
  o.ode_steps = 10;
  const Tensor mean = data.mean(0), std = data.std(0);
  std::vector<double> m(mean.data_ptr<float>(), mean.data_ptr<float>() + 2);
  std::vector<double> s(std.data_ptr<float>(), std.data_ptr<float>() + 2);
  return make_flow(with_standardization(build_flow_spec("cnf", 2, o), m, s));
}

train::TrainOptions options(int64_t steps) {
  train::TrainOptions o;
  o.steps = steps;
  o.batch_size = 256;
  o.lr = 3e-3;
  o.eval_every = 100;
  o.seed = 1;
  return o;
}

// A 2-D continuous flow trained by flow matching is a density: its integral over a grid
// that holds the data is 1 within 1%, and it fits the data far better than its start.
TEST(FlowMatching, TrainedDensityIntegratesToOne) {
  torch::manual_seed(2);
  const Tensor data = data::sample_toy("moons", 6000, 1).to(at::kFloat);
  FlowPtr flow = cnf_flow(data);
  const Tensor test = data::sample_toy("moons", 2000, 2).to(at::kFloat);
  double before = 0;
  {
    torch::NoGradGuard no_grad;
    flow->eval();
    before = -flow->log_prob(test).mean().item<double>();
  }
  train::Trainer trainer(*flow, options(600));
  trainer.set_objective(std::make_shared<train::FlowMatching>());
  const auto result = trainer.fit(data.narrow(0, 0, 5000), data.narrow(0, 5000, 1000));
  EXPECT_GT(result.steps_done, 0);
  torch::NoGradGuard no_grad;
  flow->eval();
  const double after = -flow->log_prob(test).mean().item<double>();
  EXPECT_LT(after, before - 0.5) << "before " << before << " after " << after;
  // Midpoint rule on [-6, 7] × [-6, 6.5], cells of 0.05 (the moons lie in [-1, 2] ×
  // [-0.5, 1]; the flow's tails reach further).
  const int64_t nx = 260, ny = 250;
  const double x0 = -6, y0 = -6, h = 0.05;
  const Tensor xs = at::arange(nx, at::kFloat) * h + (x0 + h / 2);
  const Tensor ys = at::arange(ny, at::kFloat) * h + (y0 + h / 2);
  const auto grid = at::meshgrid({xs, ys}, "ij");
  const Tensor points = at::stack({grid[0].reshape(-1), grid[1].reshape(-1)}, 1);
  const double mass = flow->log_prob(points).exp().sum().item<double>() * h * h;
  const Tensor samples = flow->sample(20000);
  const double inside = ((samples.select(1, 0) > x0) & (samples.select(1, 0) < x0 + nx * h) &
                         (samples.select(1, 1) > y0) & (samples.select(1, 1) < y0 + ny * h))
                            .to(at::kDouble)
                            .mean()
                            .item<double>();
  // The density integrates to 1, and over the grid to the share of the flow's own samples
  // that fall in it (log_prob agrees with sampling).
  EXPECT_NEAR(mass, 1.0, 0.01) << "samples inside " << inside;
  EXPECT_NEAR(mass, inside, 0.01);
}

TEST(FlowMatching, OptimalTransportCouplingTrains) {
  torch::manual_seed(3);
  const Tensor data = data::sample_toy("8gaussians", 3000, 1).to(at::kFloat);
  FlowPtr flow = cnf_flow(data, "rk4");
  train::FlowMatchingOptions fm;
  fm.coupling = "ot";
  auto objective = std::make_shared<train::FlowMatching>(fm);
  EXPECT_EQ(objective->score_name(), "fm_loss");
  train::Trainer trainer(*flow, options(200));
  trainer.set_objective(objective);
  const auto result = trainer.fit(data);
  EXPECT_TRUE(std::isfinite(result.best_val_nll));
  torch::NoGradGuard no_grad;
  flow->eval();
  const Tensor samples = flow->sample(500);
  EXPECT_EQ(samples.sizes(), at::IntArrayRef({500, 2}));
  EXPECT_TRUE(at::isfinite(samples).all().item<bool>());
}

// FFJORD: maximum likelihood through the solver, with Hutchinson's trace in training.
TEST(FlowMatching, LikelihoodTrainingThroughTheSolverLowersTheNll) {
  torch::manual_seed(4);
  const Tensor data = data::sample_toy("moons", 2000, 3).to(at::kFloat);
  FlowPtr flow = cnf_flow(data, "rk4");
  auto nll = [&] {
    torch::NoGradGuard no_grad;
    flow->eval();
    return -flow->log_prob(data).mean().item<double>();
  };
  const double before = nll();
  train::Trainer trainer(*flow, options(60));
  trainer.fit(data);
  EXPECT_LT(nll(), before - 0.2);
}

TEST(FlowMatching, NeedsOneContinuousLayerAndNoOtherParameters) {
  train::FlowMatching objective;
  train::Batch batch;
  batch.data = at::randn({8, 2});
  batch.size = 8;
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 8;
  FlowPtr coupling = make_flow(build_flow_spec("realnvp", 2, o));
  EXPECT_THROW(objective.loss(*coupling, batch), ConfigError);
  Json spec = build_flow_spec("cnf", 2, o);
  auto& layers = spec["transform"]["layers"];
  layers.insert(layers.begin(), Json{{"type", "actnorm"}, {"features", 2}});
  EXPECT_THROW(objective.loss(*make_flow(spec), batch), ConfigError);
  layers.erase(layers.begin());
  layers.push_back(layers[0]);
  EXPECT_THROW(objective.loss(*make_flow(spec), batch), ConfigError);
  // Minibatch OT with a context would bias the conditional flow.
  o.context_features = 1;
  FlowPtr conditional = make_flow(build_flow_spec("cnf", 2, o));
  train::FlowMatchingOptions ot;
  ot.coupling = "ot";
  batch.context = at::randn({8, 1});
  EXPECT_THROW(train::FlowMatching(ot).loss(*conditional, batch), ConfigError);
  EXPECT_NO_THROW(objective.loss(*conditional, batch));
  ot.coupling = "sinkhorn";
  EXPECT_THROW(train::FlowMatching{ot}, ConfigError);
}

}  // namespace
