// Neural and block neural autoregressive flows (transforms/neural_autoregressive.h): the
// deep sigmoidal map's identity start, its values and slopes far out (no saturation), its
// inverse by root-finding on the exact bracket; B-NAF's triangular Jacobian, its
// normalisation under huge raw weights and its inverse far out; the inverse's implicit
// derivatives; and, the point of zuko issue 55, trained flows that are normalised: they
// integrate to one on a grid and never score held-out data above the true density.

#include "zflow/transforms/neural_autoregressive.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <tuple>

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include "support/expect_error.h"
#include "support/modules.h"
#include "zflow/core/error.h"
#include "zflow/flows/registry.h"

using namespace zflow;
using zflow::testing::expect_error;
using zflow::testing::max_abs;

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

at::Tensor randn64(at::IntArrayRef sizes, double scale = 1.0) {
  return at::randn(sizes, at::kDouble) * scale;
}

// d/dx of a scalar map applied element-wise, by autograd.
at::Tensor autograd_slope(const std::function<at::Tensor(const at::Tensor&)>& f,
                          const at::Tensor& x) {
  at::Tensor input = x.detach().requires_grad_(true);
  return torch::autograd::grad({f(input).sum()}, {input})[0];
}

TEST(DeepSigmoidal, ZeroParametersAreTheIdentity) {
  DeepSigmoidalTransformer tau(8, 100);
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const at::Tensor x = at::randn({5, 3}, at::TensorOptions(dtype)) * 4;
    const auto out = tau.apply(x, at::zeros({5, 3, 24}, x.options()), false);
    EXPECT_LT(max_abs(out.outputs - x), dtype == at::kDouble ? 1e-12 : 2e-5);
    EXPECT_LT(max_abs(out.logabsdet), dtype == at::kDouble ? 1e-12 : 1e-5);
  }
}

TEST(DeepSigmoidal, LogSlopeMatchesAutogradAndStaysFiniteFarOut) {
  torch::manual_seed(3);
  DeepSigmoidalTransformer tau(6, 200);
  const at::Tensor params = randn64({4, 5, 18}, 3.0);
  at::Tensor x = randn64({4, 5}, 3.0);
  // Far out the sigmoids saturate: computed directly, logit(Σ w σ) would be ±Inf and its
  // slope 0; in log space both stay finite.
  x[0] = at::full({5}, 1e4, at::kDouble);
  x[1] = at::full({5}, -3e3, at::kDouble);
  auto values = [&](const at::Tensor& v) { return tau.apply(v, params, false).outputs; };
  const at::Tensor slope = autograd_slope(values, x);
  const auto out = tau.apply(x, params, false);
  EXPECT_TRUE(at::isfinite(out.outputs).all().item<bool>());
  EXPECT_TRUE(at::isfinite(out.logabsdet).all().item<bool>());
  EXPECT_NEAR(out.logabsdet[2].item<double>(), slope[2].log().sum().item<double>(), 1e-10);
  EXPECT_NEAR(out.logabsdet[3].item<double>(), slope[3].log().sum().item<double>(), 1e-10);
  EXPECT_TRUE((slope > 0).all().item<bool>());
  // Strictly increasing along a line through the saturated range.
  const at::Tensor line = at::linspace(-200, 200, 4001, at::kDouble).view({-1, 1});
  const at::Tensor along =
      tau.apply(line, params[2].slice(0, 0, 1).expand({4001, 1, 18}), false).outputs.view({-1});
  EXPECT_TRUE((along.slice(0, 1) > along.slice(0, 0, -1)).all().item<bool>());
  // In float32 as well.
  const auto far32 = tau.apply(x.to(at::kFloat), params.to(at::kFloat), false);
  EXPECT_TRUE(at::isfinite(far32.outputs).all().item<bool>());
  EXPECT_TRUE(at::isfinite(far32.logabsdet).all().item<bool>());
}

TEST(DeepSigmoidal, InverseUndoesForwardForWildParameters) {
  torch::manual_seed(5);
  DeepSigmoidalTransformer tau(8, 200);
  for (double spread : {0.5, 3.0, 10.0}) {
    const at::Tensor params = randn64({64, 3, 24}, spread);
    const at::Tensor x = randn64({64, 3}, 5.0);
    const auto out = tau.apply(x, params, false);
    const auto back = tau.apply(out.outputs, params, true);
    EXPECT_LT(max_abs(back.outputs - x), 1e-8 * (1 + spread)) << "spread " << spread;
    EXPECT_LT(max_abs(back.logabsdet + out.logabsdet), 1e-8) << "spread " << spread;
    // float32: the root is found in float64, then rounded. Wild parameters make τ nearly
    // flat in places (a_k down to 1e-3), where rounding z moves x far: so the check is
    // τ(τ⁻¹(z)) = z, as float32 can tell.
    const at::Tensor params32 = params.to(at::kFloat);
    const at::Tensor z32 = out.outputs.to(at::kFloat);
    const at::Tensor again =
        tau.apply(tau.apply(z32, params32, true).outputs, params32, false).outputs;
    EXPECT_LT(max_abs((again - z32) / (1 + z32.abs())), 1e-5) << "spread " << spread;
  }
}

TEST(DeepSigmoidal, NonFiniteInputsAndParametersPassThroughAsNaN) {
  DeepSigmoidalTransformer tau(4, 50);
  at::Tensor z = randn64({3, 2});
  z[0][0] = NAN;
  z[1][1] = INFINITY;
  const auto back = tau.apply(z, randn64({3, 2, 12}), true);
  EXPECT_TRUE(std::isnan(back.outputs[0][0].item<double>()));
  EXPECT_TRUE(std::isfinite(back.outputs[2][0].item<double>()));
  // NaN parameters: what an autoregressive layer's conditioner gives the elements after a
  // NaN input. They come out NaN, the other elements as usual (as in MAF's inverse).
  at::Tensor params = randn64({3, 2, 12});
  params[2][0][0] = NAN;
  const at::Tensor z2 = randn64({3, 2});
  const auto partly = tau.apply(z2, params, true);
  EXPECT_TRUE(std::isnan(partly.outputs[2][0].item<double>()));
  EXPECT_TRUE(at::isfinite(partly.outputs.slice(0, 0, 2)).all().item<bool>());
  EXPECT_TRUE(std::isfinite(partly.outputs[2][1].item<double>()));
}

// A transform from its spec, in float64.
TransformPtr make64(const Json& spec) {
  auto t = make_transform(spec);
  t->to(at::kDouble);
  return t;
}

// The full [B, D, D] Jacobian of forward, by autograd.
at::Tensor jacobian(TransformImpl& t, const at::Tensor& x) {
  at::Tensor input = x.detach().requires_grad_(true);
  const at::Tensor y = t.forward(input).outputs;
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < y.size(1); ++i) {
    rows.push_back(torch::autograd::grad({y.select(1, i).sum()}, {input}, {}, true)[0]);
  }
  return at::stack(rows, 1);
}

TEST(BlockNeuralAutoregressive, JacobianIsLowerTriangularWithAPositiveDiagonal) {
  torch::manual_seed(11);
  auto t = make64({{"type", "block_neural_autoregressive"},
                   {"features", 4},
                   {"hidden_units", 5},
                   {"layers", 3}});
  zflow::testing::randomize_parameters(*t, 1.0);
  const at::Tensor x = randn64({7, 4}, 2.0);
  const at::Tensor j = jacobian(*t, x);
  EXPECT_EQ(max_abs(j.triu(1)), 0.0);
  const at::Tensor diagonal = j.diagonal(0, 1, 2);
  EXPECT_TRUE((diagonal > 0).all().item<bool>());
  // The forward's log-determinant is the diagonal's.
  EXPECT_LT(max_abs(t->forward(x).logabsdet - diagonal.log().sum(1)), 1e-10);
  // And the entries below it are used: output 3 depends on x_0.
  EXPECT_GT(j.select(1, 3).select(1, 0).abs().max().item<double>(), 1e-6);
}

TEST(BlockNeuralAutoregressive, HugeRawWeightsStayFiniteAndInvertible) {
  // exp of the raw diagonal weights, and the rows' squared norms, would overflow: e^(2·400)
  // in float64, e^(2·60) in float32. The normalisation works in log space.
  for (auto [dtype, scale, tolerance] :
       {std::make_tuple(at::kDouble, 400.0, 1e-7), std::make_tuple(at::kFloat, 60.0, 1e-3)}) {
    torch::manual_seed(9);
    auto t = make_transform(
        {{"type", "block_neural_autoregressive"}, {"features", 3}, {"hidden_units", 4}});
    t->to(dtype);
    {
      torch::NoGradGuard no_grad;
      for (auto& item : t->named_parameters()) {
        const bool weight = item.key().rfind("weight", 0) == 0;
        item.value().copy_(at::randn_like(item.value()) * (weight ? scale : 1.0));
      }
    }
    const at::Tensor x = at::randn({16, 3}, at::TensorOptions(dtype)) * 3;
    const auto out = t->forward(x);
    EXPECT_TRUE(at::isfinite(out.outputs).all().item<bool>()) << dtype;
    EXPECT_TRUE(at::isfinite(out.logabsdet).all().item<bool>()) << dtype;
    const auto back = t->inverse(out.outputs);
    EXPECT_LT(max_abs(back.outputs - x), tolerance) << dtype;
    // The same layer in float64 (where the log-Jacobian's matrix products do not underflow)
    // agrees: float32's exact fallback gives the same log-determinant.
    auto wide = make_transform(t->spec());
    wide->to(at::kDouble);
    {
      torch::NoGradGuard no_grad;
      auto from = t->named_parameters();
      for (auto& item : wide->named_parameters()) item.value().copy_(from[item.key()]);
    }
    const auto reference = wide->forward(x.to(at::kDouble));
    EXPECT_LT(max_abs((out.logabsdet.to(at::kDouble) - reference.logabsdet) /
                      (1 + reference.logabsdet.abs())),
              dtype == at::kDouble ? 1e-12 : 1e-4)
        << dtype;
  }
}

TEST(BlockNeuralAutoregressive, InverseReachesFarOutAndPassesNaNThrough) {
  torch::manual_seed(2);
  auto t = make64({{"type", "block_neural_autoregressive"}, {"features", 2}, {"hidden_units", 8}});
  zflow::testing::randomize_parameters(*t, 1.0);
  // The gated residual maps R^2 onto R^2: any z has a pre-image, however far out.
  at::Tensor z = randn64({6, 2}, 1.0);
  z[0] = at::tensor({80.0, -120.0}, at::kDouble);
  z[1] = at::tensor({-1e3, 1e3}, at::kDouble);
  const auto back = t->inverse(z);
  EXPECT_LT(max_abs(t->forward(back.outputs).outputs - z) / 1e3, 1e-12);
  z[2][0] = NAN;
  const auto with_nan = t->inverse(z);
  EXPECT_TRUE(at::isnan(with_nan.outputs[2]).all().item<bool>());
  EXPECT_TRUE(at::isfinite(with_nan.outputs[3]).all().item<bool>());
}

// The inverse is found by root-finding, then one Newton step under autograd gives it the
// implicit function's derivatives: ∂x/∂z = J⁻¹, and ∂x/∂θ as finite differences say.
void expect_implicit_derivatives(const Json& spec) {
  torch::manual_seed(17);
  auto t = make64(spec);
  zflow::testing::randomize_parameters(*t, 0.7);
  const at::Tensor z = randn64({3, 3});
  at::Tensor input = z.clone().requires_grad_(true);
  const at::Tensor x = t->inverse(input).outputs;
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < 3; ++i) {
    rows.push_back(torch::autograd::grad({x.select(1, i).sum()}, {input}, {}, true)[0]);
  }
  const at::Tensor dx_dz = at::stack(rows, 1);
  const at::Tensor expected = at::linalg_inv(jacobian(*t, x.detach()));
  EXPECT_LT(max_abs(dx_dz - expected), 1e-8) << spec.dump();
  // One parameter, by central differences of the whole inverse.
  at::Tensor p = t->parameters().back();
  const at::Tensor analytic = torch::autograd::grad({x.sum()}, {p}, {}, true)[0];
  const double h = 1e-6;
  torch::NoGradGuard no_grad;
  const int64_t k = p.numel() - 1;
  p.view({-1})[k] += h;
  const double up = t->inverse(z).outputs.sum().item<double>();
  p.view({-1})[k] -= 2 * h;
  const double down = t->inverse(z).outputs.sum().item<double>();
  p.view({-1})[k] += h;
  EXPECT_NEAR(analytic.view({-1})[k].item<double>(), (up - down) / (2 * h), 1e-5) << spec.dump();
}

TEST(NeuralAutoregressiveFlows, InverseCarriesTheImplicitDerivatives) {
  expect_implicit_derivatives(
      {{"type", "block_neural_autoregressive"}, {"features", 3}, {"hidden_units", 4}});
  expect_implicit_derivatives({{"type", "neural_autoregressive"},
                               {"features", 3},
                               {"units", 4},
                               {"made", {{"hidden", {16}}}}});
}

// ---- normalisation: the likelihood never beats the truth ------------------------------

// A known 2-D density: an equal mixture of N((−1.5, 0), diag(0.5², 1.2²)) and a
// correlated Gaussian at (1.5, 1) (L = [[0.8, 0], [0.6, 0.4]]).
struct Mixture {
  at::Tensor sample(int64_t n) const {
    const at::Tensor eps = randn64({n, 2});
    const at::Tensor first =
        eps * at::tensor({0.5, 1.2}, at::kDouble) + at::tensor({-1.5, 0.0}, at::kDouble);
    const at::Tensor l = at::tensor({0.8, 0.0, 0.6, 0.4}, at::kDouble).view({2, 2});
    const at::Tensor second = at::matmul(eps, l.t()) + at::tensor({1.5, 1.0}, at::kDouble);
    const at::Tensor pick = (at::rand({n, 1}, at::kDouble) < 0.5);
    return at::where(pick, first, second);
  }
  at::Tensor log_prob(const at::Tensor& x) const {
    const at::Tensor u =
        (x - at::tensor({-1.5, 0.0}, at::kDouble)) / at::tensor({0.5, 1.2}, at::kDouble);
    const at::Tensor first = -0.5 * (u * u).sum(1) - kLog2Pi - std::log(0.5) - std::log(1.2);
    const at::Tensor d = x - at::tensor({1.5, 1.0}, at::kDouble);
    const at::Tensor v0 = d.select(1, 0) / 0.8;
    const at::Tensor v1 = (d.select(1, 1) - 0.6 * v0) / 0.4;
    const at::Tensor second = -0.5 * (v0 * v0 + v1 * v1) - kLog2Pi - std::log(0.8 * 0.4);
    return at::logaddexp(first, second) - std::log(2.0);
  }
};

// log q(x) = log N(f(x); 0, I) + log|det ∂f/∂x|.
at::Tensor flow_log_prob(TransformImpl& t, const at::Tensor& x) {
  const auto out = t.forward(x);
  return -0.5 * (out.outputs * out.outputs).sum(1) - kLog2Pi + out.logabsdet;
}

void expect_normalised_and_below_the_truth(const Json& layer) {
  torch::manual_seed(2024);
  const Json spec = {
      {"type", "composite"},
      {"layers", {layer, {{"type", "permutation"}, {"features", 2}, {"kind", "reverse"}}, layer}}};
  auto t = make64(spec);
  const Mixture truth;
  torch::optim::Adam adam(t->parameters(), torch::optim::AdamOptions(5e-3));
  for (int step = 0; step < 400; ++step) {
    const at::Tensor loss = -flow_log_prob(*t, truth.sample(256)).mean();
    adam.zero_grad();
    loss.backward();
    adam.step();
  }
  torch::NoGradGuard no_grad;
  // ∫ q = 1: the midpoint rule on [−9, 9]² (the truth puts < 1e-12 of its mass outside, and
  // the flow, trained on it, little more).
  const int64_t n = 600;
  const double width = 18.0 / n;
  const at::Tensor centers = at::linspace(-9 + width / 2, 9 - width / 2, n, at::kDouble);
  const auto grid = at::meshgrid({centers, centers}, "ij");
  const at::Tensor points = at::stack({grid[0].reshape(-1), grid[1].reshape(-1)}, 1);
  double mass = 0;
  for (const auto& chunk : points.split(20000)) {
    mass += flow_log_prob(*t, chunk).exp().sum().item<double>() * width * width;
  }
  EXPECT_NEAR(mass, 1.0, 5e-3) << layer.dump();
  // Gibbs' inequality: E_p[log q − log p] = −KL(p‖q) ≤ 0, on held-out samples, to within
  // three standard errors of the mean.
  const at::Tensor x = truth.sample(20000);
  const at::Tensor gap = flow_log_prob(*t, x) - truth.log_prob(x);
  const double mean = gap.mean().item<double>();
  const double standard_error = gap.std().item<double>() / std::sqrt(20000.0);
  EXPECT_LE(mean, 3 * standard_error) << layer.dump();
  // And it learned: within 0.15 nats of the truth.
  EXPECT_GT(mean, -0.15) << layer.dump();
}

TEST(NeuralAutoregressiveFlows, TrainedNAFIsNormalisedAndNeverBeatsTheTruth) {
  expect_normalised_and_below_the_truth({{"type", "neural_autoregressive"},
                                         {"features", 2},
                                         {"units", 8},
                                         {"made", {{"hidden", {32, 32}}}}});
}

TEST(NeuralAutoregressiveFlows, TrainedBNAFIsNormalisedAndNeverBeatsTheTruth) {
  expect_normalised_and_below_the_truth(
      {{"type", "block_neural_autoregressive"}, {"features", 2}, {"hidden_units", 16}});
}

TEST(NeuralAutoregressiveFlows, BadSpecsAreConfigErrors) {
  expect_error<ConfigError>(
      [] {
        make_transform({{"type", "neural_autoregressive"}, {"features", 2}, {"units", 0}});
      },
      {"neural_autoregressive: units"});
  expect_error<ConfigError>(
      [] {
        make_transform({{"type", "block_neural_autoregressive"}, {"features", 2}, {"layers", 0}});
      },
      {"block_neural_autoregressive: layers"});
  expect_error<ConfigError>(
      [] {
        make_transform(
            {{"type", "block_neural_autoregressive"}, {"features", 2}, {"hidden_units", -3}});
      },
      {"block_neural_autoregressive: hidden_units"});
}

}  // namespace
