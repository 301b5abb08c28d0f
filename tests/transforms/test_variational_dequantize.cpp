// Variational dequantisation (transforms/variational_dequantize.h): log q(u | x) is the
// density of the noise flow's output (checked against the autograd Jacobian), the bound it
// enters is exact in its bookkeeping, inverse(forward(x)) = x, and training starts near the
// uniform bound.

#include "zflow/transforms/variational_dequantize.h"

#include <gtest/gtest.h>

#include <cmath>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include "support/modules.h"
#include "zflow/core/error.h"
#include "zflow/flows/registry.h"

using namespace zflow;
using zflow::testing::randomize_parameters;

namespace {

at::Tensor pixels(int64_t batch, int64_t channels, int64_t height, int64_t width,
                  at::ScalarType dtype) {
  return at::randint(0, 256, {batch, channels, height, width}, at::TensorOptions(dtype));
}

/// log|det ∂u/∂ε| of one example by the autograd Jacobian.
double jacobian_logabsdet(VariationalDequantizeImpl& q, const at::Tensor& epsilon,
                          const at::Tensor& x) {
  const at::Tensor e = epsilon.clone().requires_grad_(true);
  const at::Tensor u = q.noise(e, x).first.flatten();
  const int64_t d = u.numel();
  at::Tensor jacobian = at::zeros({d, d}, epsilon.options());
  for (int64_t i = 0; i < d; ++i) {
    jacobian[i] = torch::autograd::grad({u[i]}, {e}, {}, true)[0].flatten();
  }
  return std::get<1>(at::linalg_slogdet(jacobian)).item<double>();
}

}  // namespace

TEST(VariationalDequantize, LogDensityOfTheNoiseMatchesTheJacobian) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    torch::manual_seed(21);
    VariationalDequantize q(VariationalDequantizeOptions(2).hidden(6).steps(3));
    q->to(dtype);
    // The couplings' last layers start at zero: make them act (gently: a saturated sigmoid
    // has no Jacobian to compare).
    randomize_parameters(*q, 0.1);
    for (int trial = 0; trial < 3; ++trial) {
      const at::Tensor x = pixels(1, 2, 2, 3, dtype);
      const at::Tensor epsilon = at::randn({1, 2, 2, 3}, at::TensorOptions(dtype));
      const auto [u, log_q] = q->noise(epsilon, x);
      EXPECT_EQ(log_q.sizes(), at::IntArrayRef({1}));
      EXPECT_GT(u.min().item<double>(), 0.0);
      EXPECT_LT(u.max().item<double>(), 1.0);
      const double d = static_cast<double>(epsilon.numel());
      const double log_normal =
          (-0.5 * epsilon.square().sum()).item<double>() - 0.5 * d * std::log(2.0 * M_PI);
      const double expected = log_normal - jacobian_logabsdet(*q, epsilon, x);
      const double tol = dtype == at::kDouble ? 1e-9 : 1e-3;
      EXPECT_NEAR(log_q.item<double>(), expected, tol * std::max(1.0, std::abs(expected)));
    }
  }
}

TEST(VariationalDequantize, NoiseDependsOnThePixels) {
  torch::manual_seed(22);
  VariationalDequantize q(VariationalDequantizeOptions(1).hidden(4).steps(2));
  q->to(at::kDouble);
  randomize_parameters(*q);
  const at::Tensor epsilon = at::randn({1, 1, 3, 3}, at::kDouble);
  const at::Tensor dark = at::zeros({1, 1, 3, 3}, at::kDouble);
  const at::Tensor bright = at::full({1, 1, 3, 3}, 255.0, at::kDouble);
  EXPECT_GT(
      (q->noise(epsilon, dark).first - q->noise(epsilon, bright).first).abs().max().item<double>(),
      1e-3);
}

TEST(VariationalDequantize, ForwardGivesTheBoundAndInverseQuantises) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    torch::manual_seed(23);
    VariationalDequantize q(VariationalDequantizeOptions(3).hidden(4).steps(2));
    q->to(dtype);
    randomize_parameters(*q);
    const at::Tensor x = pixels(5, 3, 4, 4, dtype);
    // The same draw of ε twice: forward's log|det| is −D·b·ln 2 − log q(u | x).
    torch::manual_seed(7);
    const TransformOutput out = q->forward(x);
    torch::manual_seed(7);
    const at::Tensor epsilon = at::randn(x.sizes(), x.options());
    const auto [u, log_q] = q->noise(epsilon, x);
    EXPECT_LT((out.outputs - (x + u) / 256.0).abs().max().item<double>(), 1e-6);
    const at::Tensor expected = -log_q - 48.0 * 8.0 * std::log(2.0);
    EXPECT_LT((out.logabsdet - expected).abs().max().item<double>(), 1e-3);
    EXPECT_GE(out.outputs.min().item<double>(), 0.0);
    EXPECT_LT(out.outputs.max().item<double>(), 1.0);
    // Quantising gives the pixels back exactly, with the opposite constant.
    const TransformOutput back = q->inverse(out.outputs);
    EXPECT_TRUE(at::equal(back.outputs, x));
    EXPECT_NEAR(back.logabsdet[0].item<double>(), 48.0 * 8.0 * std::log(2.0), 1e-3);
  }
}

TEST(VariationalDequantize, StartsCloseToUniformNoise) {
  // E_q[−log q(u | x)] is q's entropy: 0 for the uniform density on [0, 1)^D, negative for
  // any other. At initialisation it is within 0.02 nats per dimension of uniform.
  torch::manual_seed(24);
  VariationalDequantize q(VariationalDequantizeOptions(1));
  q->to(at::kDouble);
  const at::Tensor x = pixels(2000, 1, 2, 2, at::kDouble);
  const at::Tensor entropy = -q->noise(at::randn(x.sizes(), x.options()), x).second.mean() / 4.0;
  EXPECT_LT(entropy.item<double>(), 0.0);
  EXPECT_GT(entropy.item<double>(), -0.02);
}

TEST(VariationalDequantize, SpecRoundTripAndErrors) {
  const Json spec = {{"type", "variational_dequantize"},
                     {"channels", 3},
                     {"bits", 5},
                     {"hidden", 8},
                     {"steps", 2},
                     {"scale_bound", 2.0}};
  const TransformPtr t = make_transform(spec);
  EXPECT_EQ(t->spec(), spec);
  EXPECT_THROW(make_transform({{"type", "variational_dequantize"}}), ConfigError);
  EXPECT_THROW(make_transform({{"type", "variational_dequantize"}, {"channels", 1}, {"bits", 17}}),
               ConfigError);
  EXPECT_THROW(make_transform({{"type", "variational_dequantize"}, {"channels", 1}, {"steps", 0}}),
               ConfigError);
  EXPECT_THROW(make_transform({{"type", "variational_dequantize"}, {"channels", 1}, {"colour", 1}}),
               ConfigError);
  VariationalDequantize q(VariationalDequantizeOptions(2));
  EXPECT_THROW(q->forward(at::zeros({2, 3, 4, 4})), c10::Error);
  EXPECT_THROW(q->forward(at::zeros({2, 8})), c10::Error);
}
