// Invertible residual layers (transforms/iresnet.h): the spectral normalisation keeps
// Lip(g) ≤ c through training, the fixed-point inverse undoes forward, the exact
// log-determinant is the Jacobian's and the Russian-roulette estimate is unbiased and
// differentiable.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>

#include "zflow/core/error.h"
#include "zflow/flows/registry.h"
#include "zflow/transforms/iresnet.h"

using namespace zflow;

namespace {

constexpr double kLipschitz = 0.9;

/// Weights N(0, scale²): large enough that every one is shrunk to norm c.
InvertibleResidual make_layer(int64_t features, int64_t hidden, int64_t layers, double scale) {
  InvertibleResidual t(InvertibleResidualOptions(features).hidden(hidden).layers(layers));
  t->to(at::kDouble);
  torch::NoGradGuard no_grad;
  for (auto& p : t->parameters()) p.copy_(at::randn_like(p) * scale);
  return t;
}

/// The largest σ(W_used)/c over the weights g uses now (σ exactly, by SVD).
double largest_norm_ratio(InvertibleResidualImpl& t) {
  double ratio = 0.0;
  for (const auto& w : t.normalized_weights()) {
    ratio = std::max(ratio, at::linalg_matrix_norm(w.detach(), 2.0).item<double>() / kLipschitz);
  }
  return ratio;
}

// log|det| of forward's autograd Jacobian, one backward pass per output column.
Tensor autograd_logabsdet(InvertibleResidualImpl& t, const Tensor& x) {
  Tensor input = x.detach().requires_grad_(true);
  Tensor y = t.forward(input).outputs;
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < y.size(1); ++i) {
    rows.push_back(torch::autograd::grad({y.select(1, i).sum()}, {input}, {}, true)[0]);
  }
  return std::get<1>(at::linalg_slogdet(at::stack(rows, 1)));
}

class IResNetLipschitz : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(IResNetLipschitz, BoundHoldsAtInitialisationAndAfterAdamSteps) {
  const at::ScalarType dtype = GetParam();
  torch::manual_seed(0);
  InvertibleResidual t(InvertibleResidualOptions(3).hidden(32).layers(2));
  t->to(dtype);
  t->train();
  double worst = largest_norm_ratio(*t);
  EXPECT_LE(worst, 1.0 + 1e-6) << "after initialisation";
  torch::optim::Adam adam(t->parameters(), torch::optim::AdamOptions(0.05));
  double largest_raw = 0.0;
  for (int step = 0; step < 30; ++step) {
    const Tensor x = at::randn({64, 3}, at::TensorOptions(dtype)) * 2.0;
    auto out = t->forward(x);
    const Tensor loss = (0.5 * out.outputs.pow(2).sum(1) - out.logabsdet).mean();
    adam.zero_grad();
    loss.backward();
    adam.step();
    // The weights the next training forward will use (it updates u, v the same way).
    const double ratio = largest_norm_ratio(*t);
    // Power iteration's σ̂ ≤ σ, slow where σ₁ ≈ σ₂: measured 1e-5 over, in either dtype.
    EXPECT_LE(ratio, 1.0 + 1e-4) << "after step " << step;
    worst = std::max(worst, ratio);
    for (const auto& w : t->weights) {
      largest_raw = std::max(largest_raw, at::linalg_matrix_norm(w.detach(), 2.0).item<double>());
    }
  }
  // The normalisation was active (some raw weight had norm above c).
  EXPECT_GT(largest_raw, kLipschitz);
  t->eval();
  EXPECT_LE(largest_norm_ratio(*t), 1.0 + (dtype == at::kDouble ? 1e-12 : 1e-6));
  std::cout << "largest sigma(W_used)/c after Adam steps: " << worst
            << ", largest raw sigma: " << largest_raw << "\n";
}

INSTANTIATE_TEST_SUITE_P(IResNet, IResNetLipschitz, ::testing::Values(at::kDouble, at::kFloat));

TEST(IResNet, ResidualIsAContractionOnRandomPairs) {
  torch::manual_seed(1);
  auto t = make_layer(4, 32, 2, 1.0);
  for (bool training : {false, true}) {
    t->train(training);
    const Tensor x = at::randn({200, 4}, at::kDouble) * 2.0;
    for (double spread : {1e-3, 0.1, 3.0}) {
      const Tensor y = x + at::randn_like(x) * spread;
      const Tensor both = t->residual(at::cat({x, y}));  // one call: the same weights
      const Tensor gap = (both.slice(0, 0, 200) - both.slice(0, 200)).norm(2, 1);
      const Tensor ratio = gap / (x - y).norm(2, 1);
      EXPECT_LE(ratio.max().item<double>(), kLipschitz * (1.0 + 1e-6))
          << "training " << training << ", spread " << spread;
    }
  }
}

TEST(IResNet, InverseUndoesForwardInFloat64) {
  torch::manual_seed(2);
  for (int64_t exact_max : {16, 0}) {
    InvertibleResidual t(
        InvertibleResidualOptions(3).hidden(64).layers(2).exact_max_features(exact_max));
    t->to(at::kDouble);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : t->parameters()) p.copy_(at::randn_like(p));
    }
    t->eval();
    const Tensor x = at::randn({50, 3}, at::kDouble) * 3.0;
    const Tensor z = t->forward_outputs(x);
    EXPECT_LT((t->inverse_outputs(z) - x).abs().max().item<double>(), 1e-9) << exact_max;
    torch::NoGradGuard no_grad;  // the plain fixed point, as sampling runs it
    EXPECT_LT((t->inverse_outputs(z) - x).abs().max().item<double>(), 1e-9) << exact_max;
  }
}

TEST(IResNet, InverseDerivativesAreTheInverseJacobian) {
  torch::manual_seed(3);
  auto t = make_layer(3, 16, 1, 1.0);
  t->eval();
  const Tensor x = at::randn({4, 3}, at::kDouble);
  Tensor z = t->forward_outputs(x).detach().requires_grad_(true);
  const Tensor back = t->inverse_outputs(z);
  // d x / d z = (I + J_g(x))⁻¹: compare (dx/dz)(dz/dx) with I, row by row.
  Tensor input = x.clone().requires_grad_(true);
  const Tensor forward = t->forward_outputs(input);
  std::vector<Tensor> inverse_rows, forward_rows;
  for (int64_t i = 0; i < 3; ++i) {
    inverse_rows.push_back(torch::autograd::grad({back.select(1, i).sum()}, {z}, {}, true)[0]);
    forward_rows.push_back(
        torch::autograd::grad({forward.select(1, i).sum()}, {input}, {}, true)[0]);
  }
  const Tensor product = at::matmul(at::stack(inverse_rows, 1), at::stack(forward_rows, 1));
  EXPECT_LT((product - at::eye(3, at::kDouble)).abs().max().item<double>(), 1e-9);
}

TEST(IResNet, NonConvergenceIsAClearError) {
  torch::manual_seed(4);
  auto layer = make_transform({{"type", "iresnet"}, {"features", 2}, {"max_iterations", 1}});
  layer->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : layer->parameters()) p.copy_(at::randn_like(p) * 3.0);
  }
  layer->eval();
  try {
    layer->inverse(at::randn({5, 2}, at::kDouble) * 3.0);
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("iresnet"), std::string::npos);
  }
}

TEST(IResNet, ExactLogabsdetIsTheJacobians) {
  torch::manual_seed(5);
  auto t = make_layer(5, 32, 2, 1.0);
  t->eval();
  const Tensor x = at::randn({7, 5}, at::kDouble) * 2.0;
  auto out = t->forward(x);
  EXPECT_LT((out.logabsdet - autograd_logabsdet(*t, x)).abs().max().item<double>(), 1e-10);
  // The inverse's is the negative, at the recovered point.
  auto inv = t->inverse(out.outputs);
  EXPECT_LT((inv.logabsdet + out.logabsdet).abs().max().item<double>(), 1e-10);
  // Deterministic, and evaluation leaves the power-iteration buffers as they are.
  const Tensor u = t->named_buffers()["u_0"].clone();
  EXPECT_TRUE(at::equal(t->forward(x).logabsdet, out.logabsdet));
  EXPECT_TRUE(at::equal(t->named_buffers()["u_0"], u));
}

TEST(IResNet, SamplingUnderInferenceModeGivesTheSameResults) {
  torch::manual_seed(9);
  auto t = make_layer(3, 16, 2, 1.0);
  t->eval();
  const Tensor z = at::randn({5, 3}, at::kDouble);
  auto expected = t->inverse(z);
  {
    torch::NoGradGuard no_grad;
    auto plain = t->inverse(z);
    EXPECT_LT((plain.outputs - expected.outputs).abs().max().item<double>(), 1e-12);
    EXPECT_LT((plain.logabsdet - expected.logabsdet).abs().max().item<double>(), 1e-12);
  }
  c10::InferenceMode inference;
  auto x = t->inverse(z);
  EXPECT_LT((x.outputs - expected.outputs).abs().max().item<double>(), 1e-12);
  EXPECT_LT((x.logabsdet - expected.logabsdet).abs().max().item<double>(), 1e-12);
  auto back = t->forward(x.outputs);
  EXPECT_LT((back.outputs - z).abs().max().item<double>(), 1e-9);
  EXPECT_LT((back.logabsdet + x.logabsdet).abs().max().item<double>(), 1e-9);
}

TEST(IResNet, RussianRouletteEstimateIsUnbiasedAndDifferentiable) {
  torch::manual_seed(6);
  auto t = make_layer(3, 16, 1, 1.0);
  const Tensor x = at::randn({6, 3}, at::kDouble) * 1.5;
  t->eval();
  const Tensor exact = t->forward(x).logabsdet;
  t->train();
  constexpr int kDraws = 2000;
  std::vector<Tensor> draws;
  {
    torch::NoGradGuard no_grad;
    for (int i = 0; i < kDraws; ++i) draws.push_back(t->forward(x).logabsdet);
  }
  const Tensor all = at::stack(draws);  // [draws, 6]
  const Tensor mean = all.mean(0);
  const Tensor standard_error = all.std(0) / std::sqrt(static_cast<double>(kDraws));
  const Tensor deviation = (mean - exact).abs() / standard_error;
  EXPECT_LT(deviation.max().item<double>(), 4.0)
      << "mean " << mean << "\nexact " << exact << "\nstandard error " << standard_error;
  // The test has power: the standard errors are small against the values.
  EXPECT_LT(standard_error.max().item<double>(), 0.05);
  EXPECT_GT(exact.abs().max().item<double>(), 0.1);
  std::cout << "exact " << exact << "\nmean of " << kDraws << " estimates " << mean
            << "\nstandard error " << standard_error << "\n";
  // Differentiable: gradients reach x and every weight.
  Tensor input = x.clone().requires_grad_(true);
  t->forward(input).logabsdet.sum().backward();
  EXPECT_GT(input.grad().abs().sum().item<double>(), 0.0);
  for (const auto& p : t->named_parameters()) {
    if (p.key().rfind("weight_", 0) != 0) continue;
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
    EXPECT_TRUE(at::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

// Training on the stochastic estimate lowers the exact negative log-likelihood of data with
// correlated features (whose own entropy is the floor).
TEST(IResNet, TrainingOnTheEstimateLowersTheExactNegativeLogLikelihood) {
  torch::manual_seed(8);
  InvertibleResidual t(InvertibleResidualOptions(2).hidden(32).layers(2));
  t->to(at::kDouble);
  const Tensor mix = at::tensor({1.0, 0.0, 0.9, 0.45}, at::kDouble).reshape({2, 2});
  auto data = [&](int64_t n) { return at::mm(at::randn({n, 2}, at::kDouble), mix.t()); };
  auto nll = [&](const Tensor& x) {
    auto out = t->forward(x);
    return (0.5 * out.outputs.pow(2).sum(1) + std::log(2 * M_PI) - out.logabsdet).mean();
  };
  const Tensor test = data(2000);
  t->eval();
  const double before = nll(test).item<double>();
  t->train();
  torch::optim::Adam adam(t->parameters(), torch::optim::AdamOptions(1e-2));
  for (int step = 0; step < 150; ++step) {
    const Tensor loss = nll(data(128));
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  t->eval();
  const double after = nll(test).item<double>();
  // The data's entropy: log(2πe) + log|det mix|.
  const double entropy = std::log(2 * M_PI * M_E) + std::log(0.45);
  std::cout << "exact NLL before " << before << ", after " << after << ", entropy " << entropy
            << "\n";
  EXPECT_LT(after, before - 0.1);
  EXPECT_GT(after, entropy - 0.05);
}

TEST(IResNet, PowerIterationVectorsAreBuffersNotParameters) {
  InvertibleResidual t(InvertibleResidualOptions(2).layers(2));
  EXPECT_EQ(t->named_parameters().size(), 6u);  // weight_i, bias_i for 3 layers
  EXPECT_EQ(t->named_buffers().size(), 6u);     // u_i, v_i
  for (const auto& p : t->named_parameters()) EXPECT_EQ(p.key().find("u_"), std::string::npos);
}

TEST(IResNet, SpecRoundTripAndDescription) {
  auto t = make_transform({{"type", "iresnet"}, {"features", 2}, {"lipschitz", 0.7}});
  const Json spec = t->spec();
  EXPECT_EQ(spec["hidden"], 64);
  EXPECT_EQ(spec["layers"], 2);
  EXPECT_EQ(spec["lipschitz"], 0.7);
  EXPECT_EQ(spec["activation"], "lipswish");
  EXPECT_EQ(make_transform(spec)->spec(), spec);
  EXPECT_NE(t->describe().find("iresnet(2"), std::string::npos);
}

TEST(IResNet, BadSpecsAreConfigErrors) {
  const Json base = {{"type", "iresnet"}, {"features", 2}};
  auto with = [&](const std::string& key, const Json& value) {
    Json spec = base;
    spec[key] = value;
    return spec;
  };
  for (double c : {1.0, 1.5, 0.0, -0.5}) {
    EXPECT_THROW(make_transform(with("lipschitz", c)), ConfigError) << c;
  }
  EXPECT_THROW(make_transform(with("features", 0)), ConfigError);
  EXPECT_THROW(make_transform(with("features", -1)), ConfigError);
  EXPECT_THROW(make_transform(with("hidden", 0)), ConfigError);
  EXPECT_THROW(make_transform(with("layers", 0)), ConfigError);
  EXPECT_THROW(make_transform(with("max_iterations", 0)), ConfigError);
  EXPECT_THROW(make_transform(with("activation", "relu")), ConfigError);
  EXPECT_THROW(make_transform(with("series_p", 0.0)), ConfigError);
  EXPECT_THROW(make_transform(with("series_p", 1.5)), ConfigError);
  EXPECT_THROW(make_transform(with("exact_max_features", -1)), ConfigError);
  EXPECT_THROW(make_transform(with("lipschitzz", 0.5)), ConfigError);
  EXPECT_THROW(make_transform({{"type", "iresnet"}}), ConfigError);
}

TEST(IResNet, WrongWidthIsAClearError) {
  auto t = make_transform({{"type", "iresnet"}, {"features", 3}});
  try {
    t->forward(at::randn({2, 4}));
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("iresnet"), std::string::npos);
  }
}

}  // namespace
