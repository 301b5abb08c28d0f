// The MLP conditioner (nn/mlp.h): its layers evaluated by hand, plain and residual, with and
// without a context; the zero start; its spec; the activations; configuration errors.

#include "zflow/nn/mlp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "support/expect_error.h"
#include "support/modules.h"
#include "zflow/core/error.h"

using namespace zflow;
using zflow::testing::expect_error;
using zflow::testing::max_abs;
using zflow::testing::parameter;
using zflow::testing::parameter_count;
using zflow::testing::randomize_parameters;

namespace {

TEST(Mlp, StartsAtZeroWithTheExpectedParameters) {
  nn::MLP mlp(nn::MLPOptions(3, 4).hidden_features(8).num_layers(2));
  EXPECT_EQ(parameter_count(*mlp), (3 * 8 + 8) + (8 * 8 + 8) + (8 * 4 + 4));
  const at::Tensor out = mlp->forward(at::randn({5, 3}));
  EXPECT_EQ(out.sizes(), at::IntArrayRef({5, 4}));
  EXPECT_EQ(max_abs(out), 0.0);
}

TEST(Mlp, IsItsLayersWithTheContextAppended) {
  torch::manual_seed(1);
  nn::MLP mlp(
      nn::MLPOptions(3, 2).hidden_features(6).num_layers(2).activation("tanh").context_features(2));
  mlp->to(at::kDouble);
  randomize_parameters(*mlp);
  const at::Tensor x = at::randn({4, 3}, at::kDouble), c = at::randn({4, 2}, at::kDouble);
  at::Tensor h = at::cat({x, c}, 1);
  h = at::tanh(at::linear(h, parameter(*mlp, "layers.0.weight"), parameter(*mlp, "layers.0.bias")));
  h = at::tanh(at::linear(h, parameter(*mlp, "layers.1.weight"), parameter(*mlp, "layers.1.bias")));
  const at::Tensor expected =
      at::linear(h, parameter(*mlp, "output.weight"), parameter(*mlp, "output.bias"));
  EXPECT_LT(max_abs(mlp->forward(x, c) - expected), 1e-12);
  // The context matters and is required, of its size.
  EXPECT_GT(max_abs(mlp->forward(x, c) - mlp->forward(x, at::randn({4, 2}, at::kDouble))), 1e-6);
  EXPECT_THROW(mlp->forward(x), c10::Error);
  EXPECT_THROW(mlp->forward(x, at::randn({4, 3}, at::kDouble)), c10::Error);
}

TEST(Mlp, ResidualBlocksAddToTheProjection) {
  torch::manual_seed(2);
  nn::MLP mlp(nn::MLPOptions(2, 3).hidden_features(5).num_layers(2).residual(true));
  EXPECT_EQ(parameter_count(*mlp), (2 * 5 + 5) + 4 * (5 * 5 + 5) + (5 * 3 + 3));
  mlp->to(at::kDouble);
  randomize_parameters(*mlp);
  const at::Tensor x = at::randn({6, 2}, at::kDouble);
  auto linear = [&](int64_t i, const at::Tensor& in) {
    const std::string l = "layers." + std::to_string(i);
    return at::linear(in, parameter(*mlp, l + ".weight"), parameter(*mlp, l + ".bias"));
  };
  at::Tensor h = linear(0, x);
  h = h + linear(2, at::relu(linear(1, at::relu(h))));
  h = h + linear(4, at::relu(linear(3, at::relu(h))));
  const at::Tensor expected =
      at::linear(at::relu(h), parameter(*mlp, "output.weight"), parameter(*mlp, "output.bias"));
  EXPECT_LT(max_abs(mlp->forward(x) - expected), 1e-12);
}

TEST(Mlp, SpecRoundTrip) {
  const Json spec = {{"type", "resmlp"}, {"hidden", 16}, {"layers", 3}, {"activation", "gelu"}};
  const nn::MLPOptions o = nn::mlp_options_from_spec(spec, 2, 5, 1);
  EXPECT_EQ(o.in_features(), 2);
  EXPECT_EQ(o.out_features(), 5);
  EXPECT_EQ(o.context_features(), 1);
  EXPECT_EQ(o.hidden_features(), 16);
  EXPECT_EQ(o.num_layers(), 3);
  EXPECT_EQ(o.activation(), "gelu");
  EXPECT_TRUE(o.residual());
  EXPECT_EQ(nn::mlp_spec(o), spec);
  const nn::MLPOptions defaults = nn::mlp_options_from_spec(Json(), 2, 5, 0);
  EXPECT_EQ(defaults.hidden_features(), 64);
  EXPECT_EQ(defaults.num_layers(), 2);
  EXPECT_EQ(defaults.activation(), "relu");
  EXPECT_FALSE(defaults.residual());
  expect_error<ConfigError>(
      [] {
        nn::mlp_options_from_spec({{"type", "cnn"}}, 2, 5, 0);
      },
      {"'cnn'"});
  expect_error<ConfigError>(
      [] {
        nn::mlp_options_from_spec({{"type", "mlp"}, {"hiden", 8}}, 2, 5, 0);
      },
      {"hiden"});
}

TEST(Mlp, ActivationsAndTheirNames) {
  const at::Tensor x = at::tensor({-1.0, 0.5}, at::kDouble);
  auto at0 = [&](const std::string& name) {
    return nn::apply_activation(name, x)[0].item<double>();
  };
  EXPECT_EQ(at0("relu"), 0.0);
  EXPECT_DOUBLE_EQ(at0("leaky_relu"), -0.01);
  EXPECT_DOUBLE_EQ(at0("tanh"), std::tanh(-1.0));
  EXPECT_NEAR(at0("elu"), std::exp(-1.0) - 1.0, 1e-15);
  EXPECT_NEAR(at0("silu"), -1.0 / (1.0 + std::exp(1.0)), 1e-15);
  EXPECT_NEAR(at0("gelu"), -0.5 * (1.0 + std::erf(-1.0 / std::sqrt(2.0))), 1e-12);
  EXPECT_EQ(nn::apply_activation("relu", x)[1].item<double>(), 0.5);
  expect_error<ConfigError>([&] { nn::apply_activation("swish", x); }, {"'swish'", "relu"});
}

TEST(Mlp, BadOptionsAreConfigErrors) {
  EXPECT_THROW(nn::MLP(nn::MLPOptions(3, 0)), ConfigError);
  EXPECT_THROW(nn::MLP(nn::MLPOptions(3, 2).hidden_features(0)), ConfigError);
  EXPECT_THROW(nn::MLP(nn::MLPOptions(3, 2).num_layers(-1)), ConfigError);
  EXPECT_THROW(nn::MLP(nn::MLPOptions(3, 2).activation("swish")), ConfigError);
  EXPECT_THROW(nn::MLP(nn::MLPOptions(0, 2)), ConfigError);
}

}  // namespace
