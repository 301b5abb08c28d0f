// Orthogonal linear layers (transforms/orthogonal.h): Q is orthogonal for any parameters,
// with the determinant its parameterisation implies, and the known closed forms in 2-D.

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "zflow/core/error.h"
#include "zflow/flows/registry.h"
#include "zflow/transforms/orthogonal.h"

using namespace zflow;

namespace {

void randomize(torch::nn::Module& module, double scale) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.copy_(at::randn_like(p) * scale);
}

void expect_orthogonal(const at::Tensor& q, double expected_det) {
  const int64_t d = q.size(0);
  EXPECT_LT((at::mm(q.t(), q) - at::eye(d, q.options())).abs().max().item<double>(), 1e-12);
  EXPECT_NEAR(at::linalg_det(q).item<double>(), expected_det, 1e-10);
}

TEST(HouseholderLinear, IsOrthogonalWithDeterminantMinusOneToTheK) {
  at::manual_seed(1);
  for (int64_t k : {1, 2, 5, 7}) {
    HouseholderLinear layer(HouseholderLinearOptions(5).reflections(k));
    layer->to(at::kDouble);
    randomize(*layer, 3.0);
    expect_orthogonal(layer->weight(), k % 2 == 0 ? 1.0 : -1.0);
    // forward is Q x, inverse Qᵀ z.
    const at::Tensor x = at::randn({4, 5}, at::kDouble);
    const at::Tensor z = layer->forward(x).outputs;
    EXPECT_TRUE(at::allclose(z, at::mm(x, layer->weight().t()), 1e-12, 1e-12));
    EXPECT_TRUE(at::allclose(layer->inverse(z).outputs, x, 1e-12, 1e-12));
  }
}

TEST(HouseholderLinear, OneReflectionMirrorsAcrossTheHyperplaneOrthogonalToV) {
  HouseholderLinear layer(HouseholderLinearOptions(2).reflections(1));
  layer->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    layer->vectors.copy_(at::tensor({3.0, 0.0}, at::kDouble).view({1, 2}));
  }
  const at::Tensor z = layer->forward(at::tensor({2.0, 5.0}, at::kDouble).view({1, 2})).outputs;
  EXPECT_TRUE(at::allclose(z, at::tensor({-2.0, 5.0}, at::kDouble).view({1, 2})));
  EXPECT_EQ(layer->spec(), Json({{"type", "householder"}, {"features", 2}, {"reflections", 1}}));
}

TEST(OrthogonalLinear, StartsAsTheIdentityAndStaysARotation) {
  at::manual_seed(2);
  for (const std::string map : {"exp", "cayley"}) {
    OrthogonalLinear layer(OrthogonalLinearOptions(6).map(map));
    layer->to(at::kDouble);
    EXPECT_TRUE(at::allclose(layer->weight(), at::eye(6, at::kDouble)));
    randomize(*layer, 2.0);
    expect_orthogonal(layer->weight(), 1.0);
  }
}

TEST(OrthogonalLinear, TwoDimensionalClosedForms) {
  // S = [[0, θ], [−θ, 0]]: exp(S) is the rotation by −θ, the Cayley map the one with
  // cos φ = (1 − θ²)/(1 + θ²), sin φ = 2θ/(1 + θ²).
  const double theta = 0.7;
  for (const std::string map : {"exp", "cayley"}) {
    OrthogonalLinear layer(OrthogonalLinearOptions(2).map(map));
    layer->to(at::kDouble);
    {
      torch::NoGradGuard no_grad;
      layer->skew_entries.fill_(theta);
    }
    const double c = map == "exp" ? std::cos(theta) : (1 - theta * theta) / (1 + theta * theta);
    const double s = map == "exp" ? std::sin(theta) : 2 * theta / (1 + theta * theta);
    const at::Tensor expected = at::tensor({c, s, -s, c}, at::kDouble).view({2, 2});
    EXPECT_TRUE(at::allclose(layer->weight(), expected, 1e-12, 1e-12)) << map;
  }
}

TEST(OrthogonalLayers, OnImagesActOnTheChannelsOfEveryPixel) {
  at::manual_seed(3);
  for (const Json& spec : {Json{{"type", "householder"}, {"features", 3}},
                           Json{{"type", "orthogonal_linear"}, {"features", 3}}}) {
    auto layer = make_transform(spec);
    layer->to(at::kDouble);
    randomize(*layer, 1.0);
    const at::Tensor x = at::randn({2, 3, 4, 5}, at::kDouble);
    const auto out = layer->forward(x);
    // The pixel (1, 2, 3) of the second image, alone, as a tabular input.
    const at::Tensor pixel = x.index({1, at::indexing::Slice(), 2, 3}).view({1, 3});
    const at::Tensor alone = layer->forward(pixel).outputs.view({3});
    EXPECT_TRUE(at::allclose(out.outputs.index({1, at::indexing::Slice(), 2, 3}), alone));
    EXPECT_TRUE(at::equal(out.logabsdet, at::zeros({2}, at::kDouble)));
  }
}

TEST(OrthogonalLayers, BadSpecsAreConfigErrors) {
  EXPECT_THROW(make_transform({{"type", "householder"}, {"features", 0}}), ConfigError);
  EXPECT_THROW(make_transform({{"type", "householder"}, {"features", 2}, {"reflections", -1}}),
               ConfigError);
  EXPECT_THROW(make_transform({{"type", "orthogonal_linear"}, {"features", 2}, {"map", "qr"}}),
               ConfigError);
  EXPECT_THROW(make_transform({{"type", "orthogonal_linear"}, {"features", 2}, {"seed", 1}}),
               ConfigError);
}

}  // namespace
