// Multiscale (transforms/multiscale.h): the latent parts and their shapes, split and join,
// which channels are factored out, the learned priors' log-determinant against autograd,
// the round trip, and configuration errors.

#include "zflow/transforms/multiscale.h"

#include <gtest/gtest.h>

#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include "support/modules.h"
#include "zflow/core/error.h"
#include "zflow/flows/registry.h"

using namespace zflow;
using zflow::testing::max_abs;

namespace {

// [1, 4, 4] → squeeze → [4, 2, 2], two channels factored out → squeeze → [8, 1, 1].
Json two_squeezes() {
  return {{"type", "multiscale"},
          {"shape", {1, 4, 4}},
          {"levels", {{{"type", "squeeze"}, {"factor", 2}}, {{"type", "squeeze"}, {"factor", 2}}}}};
}

std::shared_ptr<MultiscaleImpl> build(const Json& spec) {
  auto t = std::dynamic_pointer_cast<MultiscaleImpl>(make_transform(spec));
  EXPECT_NE(t, nullptr);
  return t;
}

TEST(Multiscale, LatentPartsHaveTheirShapesAndJoinBack) {
  auto t = build(two_squeezes());
  EXPECT_EQ(t->levels(), 2u);
  EXPECT_EQ(t->latent_shapes(), (std::vector<std::vector<int64_t>>{{2, 2, 2}, {8, 1, 1}}));
  const at::Tensor z = at::randn({3, 1, 4, 4}, at::kDouble);
  const auto parts = t->split_latent(z);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].sizes(), at::IntArrayRef({3, 2, 2, 2}));
  EXPECT_EQ(parts[1].sizes(), at::IntArrayRef({3, 8, 1, 1}));
  EXPECT_TRUE(at::equal(t->join_latent(parts), z));
  EXPECT_THROW(t->join_latent({parts[0]}), c10::Error);
  EXPECT_THROW(t->join_latent({parts[1], parts[0]}), c10::Error);
}

// With the priors at zero (μ = 0, σ = 1) the map only rearranges: the first part is the
// second half of the channels after the first squeeze, the last part the squeezed rest.
TEST(Multiscale, FactorsOutTheSecondHalfOfTheChannels) {
  auto t = build(two_squeezes());
  t->to(at::kDouble);
  auto squeeze = make_transform({{"type", "squeeze"}, {"factor", 2}});
  const at::Tensor x = at::randn({2, 1, 4, 4}, at::kDouble);
  const at::Tensor once = squeeze->forward(x).outputs;  // [2, 4, 2, 2]
  const auto fwd = t->forward(x);
  const auto parts = t->split_latent(fwd.outputs);
  EXPECT_TRUE(at::equal(parts[0], once.narrow(1, 2, 2)));
  EXPECT_TRUE(at::equal(parts[1], squeeze->forward(once.narrow(1, 0, 2).contiguous()).outputs));
  EXPECT_EQ(max_abs(fwd.logabsdet), 0.0);
}

TEST(Multiscale, LearnedPriorLogDeterminantMatchesAutograd) {
  torch::manual_seed(6);
  auto t = build(two_squeezes());
  t->to(at::kDouble);
  zflow::testing::randomize_parameters(*t, 0.3);
  const at::Tensor x = at::randn({3, 1, 4, 4}, at::kDouble);
  const auto fwd = t->forward(x);
  EXPECT_GT(max_abs(fwd.logabsdet), 1e-3);  // the priors now scale the factored part
  for (int64_t b = 0; b < 3; ++b) {
    const at::Tensor xb = x.narrow(0, b, 1).detach().requires_grad_(true);
    const at::Tensor y = t->forward(xb).outputs.reshape({16});
    std::vector<at::Tensor> rows;
    for (int64_t i = 0; i < 16; ++i) {
      rows.push_back(torch::autograd::grad({y[i]}, {xb}, {}, true)[0].reshape({16}));
    }
    const double expected = std::get<1>(at::linalg_slogdet(at::stack(rows))).item<double>();
    EXPECT_NEAR(fwd.logabsdet[b].item<double>(), expected, 1e-9) << b;
  }
  const auto inv = t->inverse(fwd.outputs);
  EXPECT_LT(max_abs(inv.outputs - x), 1e-10);
  EXPECT_LT(max_abs(inv.logabsdet + fwd.logabsdet), 1e-10);
}

// The class prior: zero-initialised, the model is the unconditional one; with weights,
// the last part is (h − μ(c)) / σ(c) per channel, (μ, ŝ) = W c + b, log σ = b_s·tanh(ŝ/b_s),
// and the log-determinant gains −H·W·Σ log σ.
TEST(Multiscale, ClassPriorIsAnAffineMapOfTheLastPart) {
  Json spec = two_squeezes();
  auto plain = build(spec);
  spec["context_features"] = 3;
  auto conditional = build(spec);
  plain->to(at::kDouble);
  conditional->to(at::kDouble);
  const at::Tensor x = at::randn({4, 1, 4, 4}, at::kDouble);
  const at::Tensor labels = at::tensor({0, 2, 1, 2}, at::kLong);
  const at::Tensor c = at::one_hot(labels, 3).to(at::kDouble);
  auto expected = plain->forward(x);
  auto start = conditional->forward(x, c);
  EXPECT_TRUE(at::allclose(start.outputs, expected.outputs));
  EXPECT_TRUE(at::allclose(start.logabsdet, expected.logabsdet));
  EXPECT_THROW(conditional->forward(x), c10::Error);  // the class is required
  // Only the last part (8 channels) has a context term: weights [16, 3] and bias [16].
  at::Tensor weight, bias;
  for (auto& p : conditional->named_parameters()) {
    if (p.key() == "context1_weight") weight = p.value();
    if (p.key() == "context1_bias") bias = p.value();
  }
  ASSERT_TRUE(weight.defined() && bias.defined());
  EXPECT_EQ(weight.sizes(), at::IntArrayRef({16, 3}));
  {
    torch::NoGradGuard no_grad;
    weight.copy_(at::randn({16, 3}, at::kDouble));
    bias.copy_(at::randn({16}, at::kDouble) * 0.5);
  }
  const at::Tensor params = at::linear(c, weight, bias);  // [4, 16]
  const at::Tensor mu = params.narrow(1, 0, 8);
  const double b = 3.0;
  const at::Tensor log_sigma = b * at::tanh(params.narrow(1, 8, 8) / b);
  const auto out = conditional->forward(x, c);
  const auto plain_parts = plain->split_latent(expected.outputs);
  const auto parts = conditional->split_latent(out.outputs);
  EXPECT_LT(max_abs(parts[0] - plain_parts[0]), 1e-12);
  const at::Tensor top = (plain_parts[1].flatten(1) - mu) * at::exp(-log_sigma);
  EXPECT_LT(max_abs(parts[1].flatten(1) - top), 1e-12);
  EXPECT_LT(max_abs(out.logabsdet - (expected.logabsdet - log_sigma.sum(1))), 1e-12);
  // Every image decodes back under its own class.
  EXPECT_LT(max_abs(conditional->inverse(out.outputs, c).outputs - x), 1e-12);
  EXPECT_EQ(conditional->spec()["context_features"], 3);
  EXPECT_EQ(build(conditional->spec())->spec(), conditional->spec());
}

TEST(Multiscale, BadShapesAndLevelsAreErrors) {
  Json spec = two_squeezes();
  spec["shape"] = {4, 4};
  EXPECT_THROW(make_transform(spec), ConfigError);
  spec = two_squeezes();
  spec["levels"] = Json::array();
  EXPECT_THROW(make_transform(spec), ConfigError);
  spec = two_squeezes();
  spec["scale_bound"] = 0.0;
  EXPECT_THROW(make_transform(spec), ConfigError);
  // A first level that leaves one channel has nothing to factor out.
  spec = two_squeezes();
  spec["levels"][0] = {{"type", "actnorm"}, {"features", 1}};
  EXPECT_THROW(make_transform(spec), ConfigError);
  auto t = build(two_squeezes());
  EXPECT_THROW(t->forward(at::randn({2, 1, 8, 8})), c10::Error);
}

}  // namespace
