// The continuous flow beyond the property suite: the accuracy bars (dopri5 round
// trip, exact trace against the autograd Jacobian), Hutchinson's estimator unbiased, NFE
// counts, paths, solver settings and bad specs.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "zflow/core/error.h"
#include "zflow/flows/registry.h"
#include "zflow/transforms/continuous.h"

using namespace zflow;

namespace {

std::shared_ptr<ContinuousFlowImpl> make_cnf(Json spec) {
  spec["type"] = "cnf";
  auto t = std::dynamic_pointer_cast<ContinuousFlowImpl>(make_transform(spec));
  t->to(at::kDouble);
  // Random weights, so that the field is far from its zero start.
  torch::NoGradGuard no_grad;
  for (auto& p : t->parameters()) p.add_(at::randn_like(p) * 0.5);
  t->eval();
  return t;
}

Json tabular(int64_t features, const Json& solver) {
  return {{"shape", {features}},
          {"velocity", {{"hidden", 32}, {"layers", 2}, {"activation", "tanh"}}},
          {"solver", solver}};
}

// log|det ∂f/∂x| of the autograd Jacobian of forward, per sample.
Tensor jacobian_logabsdet(ContinuousFlowImpl& t, const Tensor& x) {
  Tensor input = x.detach().requires_grad_(true);
  Tensor y = t.forward_outputs(input).reshape({x.size(0), -1});
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < y.size(1); ++i) {
    rows.push_back(torch::autograd::grad({y.select(1, i).sum()}, {input}, {}, true)[0].reshape(
        {x.size(0), -1}));
  }
  return std::get<1>(at::linalg_slogdet(at::stack(rows, 1)));
}

class ContinuousFlow : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(11); }
};

TEST_F(ContinuousFlow, Dopri5RoundTripAtTightToleranceInFloat64) {
  auto t = make_cnf(tabular(3, {{"method", "dopri5"}, {"atol", 1e-10}, {"rtol", 1e-10}}));
  torch::NoGradGuard no_grad;
  const Tensor x = at::randn({64, 3}, at::kDouble) * 2;
  const auto fwd = t->forward(x);
  const auto inv = t->inverse(fwd.outputs);
  EXPECT_LT((inv.outputs - x).abs().max().item<double>(), 1e-6);
  EXPECT_LT((fwd.logabsdet + inv.logabsdet).abs().max().item<double>(), 1e-6);
  // The field is not trivial: the points moved.
  EXPECT_GT((fwd.outputs - x).abs().max().item<double>(), 0.1);
}

TEST_F(ContinuousFlow, ExactTraceMatchesTheAutogradJacobian) {
  for (const std::string method : {"dopri5", "rk4"}) {
    Json solver = {{"method", method}, {"atol", 1e-10}, {"rtol", 1e-10}, {"steps", 400}};
    auto t = make_cnf(tabular(4, solver));
    const Tensor x = at::randn({16, 4}, at::kDouble);
    Tensor logabsdet;
    {
      torch::NoGradGuard no_grad;
      logabsdet = t->forward(x).logabsdet;
    }
    EXPECT_LT((logabsdet - jacobian_logabsdet(*t, x)).abs().max().item<double>(), 1e-6) << method;
    EXPECT_GT(logabsdet.abs().max().item<double>(), 0.05) << "a volume-preserving field";
  }
}

TEST_F(ContinuousFlow, HutchinsonEstimateIsUnbiased) {
  for (const std::string probe : {"rademacher", "gaussian"}) {
    Json spec = tabular(5, {{"method", "rk4"}, {"steps", 10}});
    spec["trace"] = "hutchinson";
    spec["probe"] = probe;
    auto t = make_cnf(spec);
    auto exact_spec = t->options();
    const Tensor x = at::randn({4, 5}, at::kDouble);
    torch::NoGradGuard no_grad;
    // Many probes at once: the same 4 points repeated.
    const int64_t probes = 4000;
    const Tensor estimates = t->forward(x.repeat({probes, 1})).logabsdet.reshape({probes, 4});
    exact_spec.trace = "exact";
    t->set_options(exact_spec);
    const Tensor exact = t->forward(x).logabsdet;
    const Tensor mean = estimates.mean(0);
    const Tensor standard_error = estimates.std(0) / std::sqrt(static_cast<double>(probes));
    EXPECT_GT(standard_error.min().item<double>(), 0) << probe << ": no spread, no estimate";
    EXPECT_TRUE(((mean - exact).abs() < 3 * standard_error).all().item<bool>())
        << probe << ": mean " << mean << " exact " << exact << " se " << standard_error;
  }
}

TEST_F(ContinuousFlow, TrainingUsesTheTrainingTrace) {
  Json spec = tabular(3, {{"method", "rk4"}, {"steps", 8}});
  auto t = make_cnf(spec);
  const Tensor x = at::randn({8, 3}, at::kDouble);
  torch::NoGradGuard no_grad;
  const Tensor exact = t->forward(x).logabsdet;
  t->train();  // Hutchinson: a random estimate, differing from the exact trace
  const Tensor a = t->forward(x).logabsdet;
  const Tensor b = t->forward(x).logabsdet;
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-6);
  EXPECT_GT((a - exact).abs().max().item<double>(), 1e-6);
}

TEST_F(ContinuousFlow, CountsEvaluationsPerSolve) {
  auto t = make_cnf(tabular(2, {{"method", "rk4"}, {"steps", 5}}));
  torch::NoGradGuard no_grad;
  t->reset_counts();
  t->forward(at::randn({10, 2}, at::kDouble));
  EXPECT_EQ(t->solves(), 1);
  EXPECT_EQ(t->evaluations(), 20);
  t->inverse_outputs(at::randn({10, 2}, at::kDouble));
  EXPECT_EQ(t->solves(), 2);
  EXPECT_EQ(t->evaluations(), 40);
}

TEST_F(ContinuousFlow, PathEndsWhereTheInverseDoes) {
  auto t = make_cnf(tabular(2, {{"method", "rk4"}, {"steps", 40}}));
  torch::NoGradGuard no_grad;
  const Tensor z = at::randn({32, 2}, at::kDouble);
  const auto points = t->path(z, {}, {0.0, 0.25, 0.5, 0.75, 1.0});
  ASSERT_EQ(points.size(), 5u);
  EXPECT_TRUE(at::equal(points[0], z));
  EXPECT_LT((points[4] - t->inverse_outputs(z)).abs().max().item<double>(), 1e-9);
  EXPECT_THROW(t->path(z, {}, {0.5, 0.25}), ConfigError);
}

TEST_F(ContinuousFlow, SegmentsComposeToTheWholeFlow) {
  auto t = make_cnf(tabular(2, {{"method", "rk4"}, {"steps", 40}}));
  torch::NoGradGuard no_grad;
  const Tensor x = at::randn({16, 2}, at::kDouble);
  const auto whole = t->forward(x);
  auto parts = t->segments(4);
  ASSERT_EQ(parts.size(), 4u);
  Tensor y = x;
  Tensor logabsdet = at::zeros({16}, at::kDouble);
  for (const auto& part : parts) {  // forward order: from t = 1 down to t = 0
    auto out = part->forward(y);
    y = out.outputs;
    logabsdet = logabsdet + out.logabsdet;
  }
  EXPECT_LT((y - whole.outputs).abs().max().item<double>(), 1e-9);
  EXPECT_LT((logabsdet - whole.logabsdet).abs().max().item<double>(), 1e-9);
  auto* first = dynamic_cast<ContinuousFlowImpl*>(parts[0].get());
  EXPECT_DOUBLE_EQ(first->time_begin(), 0.75);
  EXPECT_DOUBLE_EQ(first->time_end(), 1.0);
  // The parts share the field: no copies of the weights.
  EXPECT_EQ(first->velocity_field().get(), t->velocity_field().get());
}

TEST_F(ContinuousFlow, ContextChangesTheField) {
  Json spec = tabular(2, {{"method", "rk4"}, {"steps", 10}});
  spec["context_features"] = 3;
  auto t = make_cnf(spec);
  torch::NoGradGuard no_grad;
  const Tensor x = at::randn({6, 2}, at::kDouble);
  const Tensor a = t->forward(x, at::randn({6, 3}, at::kDouble)).outputs;
  const Tensor b = t->forward(x, at::randn({6, 3}, at::kDouble)).outputs;
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-6);
  EXPECT_THROW(t->forward(x), c10::Error);
}

TEST_F(ContinuousFlow, SpecKeepsTheSolverAndContinuousLayersAreFound) {
  Json spec = tabular(2, {{"method", "midpoint"}, {"steps", 7}});
  spec["trace"] = "hutchinson";
  auto t = make_cnf(spec);
  const Json saved = t->spec();
  EXPECT_EQ(saved["solver"]["method"], "midpoint");
  EXPECT_EQ(saved["solver"]["steps"], 7);
  EXPECT_EQ(saved["trace"], "hutchinson");
  auto composite = make_transform(
      {{"type", "composite"},
       {"layers", {{{"type", "permutation"}, {"features", 2}, {"kind", "reverse"}}, saved}}});
  EXPECT_EQ(continuous_layers(*composite).size(), 1u);
}

TEST_F(ContinuousFlow, BadSpecsAreConfigErrors) {
  const Json good = tabular(2, {{"method", "rk4"}});
  auto with = [&](const std::string& key, const Json& value) {
    Json s = good;
    s["type"] = "cnf";
    s[key] = value;
    return s;
  };
  EXPECT_THROW(make_transform(with("solver", {{"method", "rk45"}})), ConfigError);
  EXPECT_THROW(make_transform(with("solver", {{"method", "rk4"}, {"steps", 0}})), ConfigError);
  EXPECT_THROW(make_transform(with("solver", {{"atol", -1.0}})), ConfigError);
  EXPECT_THROW(make_transform(with("solver", {{"methd", "rk4"}})), ConfigError);
  EXPECT_THROW(make_transform(with("trace", "approximate")), ConfigError);
  EXPECT_THROW(make_transform(with("probe", "uniform")), ConfigError);
  EXPECT_THROW(make_transform(with("shape", {2, 3})), ConfigError);
  EXPECT_THROW(make_transform(with("velocity", {{"type", "unet"}})), ConfigError);
  EXPECT_THROW(
      make_transform(with("velocity", {{"time_embedding", "sinusoidal"}, {"embedding_size", 5}})),
      ConfigError);
  EXPECT_THROW(make_transform(with("speed", 3)), ConfigError);
}

}  // namespace
