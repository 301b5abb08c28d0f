// Image flows end to end: the builders' specs, exact reconstruction through the
// multi-scale model, the latent parts, the squeeze layout, temperature sampling, the
// bits/dim arithmetic, and a short training run that must lower bits/dim.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "zflow/core/error.h"
#include "zflow/distributions/uniform.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/registry.h"
#include "zflow/train/trainer.h"
#include "zflow/transforms/image.h"
#include "zflow/transforms/multiscale.h"

using namespace zflow;

namespace {

BuilderOptions small_options() {
  BuilderOptions o;
  o.hidden = 8;
  o.steps_per_level = 2;
  return o;
}

// Integer "images" with some structure (a gradient plus noise), values 0..255.
Tensor pixel_images(int64_t n, int64_t c, int64_t h, int64_t w) {
  Tensor ramp = at::linspace(0, 200, h * w).view({1, 1, h, w});
  return (ramp + at::randint(0, 56, {n, c, h, w})).floor().clamp(0, 255);
}

// The builders' layers: dequantize, [logit,] multiscale, log_tails.
constexpr size_t kMultiscaleFromEnd = 2;

MultiscaleImpl& multiscale_of(FlowImpl& flow) {
  auto composite = std::dynamic_pointer_cast<CompositeTransformImpl>(flow.transform());
  EXPECT_NE(composite, nullptr);
  auto ms = std::dynamic_pointer_cast<MultiscaleImpl>(
      composite->layer(composite->size() - kMultiscaleFromEnd));
  EXPECT_NE(ms, nullptr);
  return *ms;
}

TEST(ImageBuilders, GlowOnFashionMnistShapeHasTwoLevels) {
  const Json spec = build_image_flow_spec("glow", {1, 28, 28}, BuilderOptions());
  const Json& layers = spec["transform"]["layers"];
  ASSERT_EQ(layers.size(), 3u);  // dequantize, multiscale, log_tails (no logit for glow)
  EXPECT_EQ(layers[0]["type"], "dequantize");
  EXPECT_EQ(layers[1]["type"], "multiscale");
  EXPECT_EQ(layers[2]["type"], "log_tails");
  EXPECT_EQ(layers[1]["levels"].size(), 2u);
  // Per level: squeeze + 8 steps of 3 layers.
  EXPECT_EQ(layers[1]["levels"][0]["layers"].size(), 1u + 8u * 3u);
  auto flow = make_flow(spec);
  auto& ms = multiscale_of(*flow);
  ASSERT_EQ(ms.latent_shapes().size(), 2u);
  EXPECT_EQ(ms.latent_shapes()[0], (std::vector<int64_t>{2, 14, 14}));
  EXPECT_EQ(ms.latent_shapes()[1], (std::vector<int64_t>{8, 7, 7}));
}

TEST(ImageBuilders, RealNvpImageHasLogitAndCheckerboards) {
  const Json spec = build_image_flow_spec("realnvp-image", {3, 8, 8}, small_options());
  const Json& layers = spec["transform"]["layers"];
  ASSERT_EQ(layers.size(), 4u);
  EXPECT_EQ(layers[1]["type"], "logit");
  // logit(α + (1 − 2α) x) at α = 0.05: x = 0 ↦ logit(0.05).
  auto logit = make_transform(layers[1]);
  auto y = logit->forward(at::zeros({1, 1}, at::kDouble)).outputs.item<double>();
  EXPECT_NEAR(y, std::log(0.05 / 0.95), 1e-9);
  EXPECT_EQ(layers[2]["levels"][0]["layers"][1]["mask"], "checkerboard");
  EXPECT_NO_THROW(make_flow(spec));
}

TEST(ImageBuilders, BadShapesAndOptionsAreConfigErrors) {
  BuilderOptions o = small_options();
  o.levels = 3;
  EXPECT_THROW(build_image_flow_spec("glow", {1, 28, 28}, o), ConfigError);  // 7 is odd
  EXPECT_THROW(build_image_flow_spec("glow", {28, 28}, small_options()), ConfigError);
  EXPECT_THROW(build_image_flow_spec("maf", {1, 8, 8}, small_options()), ConfigError);
  o = small_options();
  o.coupling = "spline";
  EXPECT_THROW(build_image_flow_spec("glow", {1, 8, 8}, o), ConfigError);
  EXPECT_THROW(make_transform({{"type", "conv_coupling"}, {"channels", 1}, {"mask", "channel"}}),
               ConfigError);
}

class ImageFlow : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageFlow, ReconstructsIntegerImagesExactly) {
  torch::manual_seed(3);
  BuilderOptions o = small_options();
  o.coupling = GetParam() == "glow-additive" ? "additive" : "affine";
  const std::string name = GetParam() == "glow-additive" ? "glow" : GetParam();
  auto flow = make_flow(build_image_flow_spec(name, {1, 8, 8}, o));
  flow->to(at::kDouble);
  const Tensor x = pixel_images(5, 1, 8, 8).to(at::kDouble);
  flow->train();
  flow->log_prob(x);  // ActNorm's data-dependent initialisation
  flow->eval();
  {  // random parameters, so that nothing sits at the identity
    torch::NoGradGuard no_grad;
    for (auto& p : flow->parameters()) p.add_(at::randn_like(p) * 0.05);
  }
  c10::AutoGradMode no_grad(false);
  const Tensor z = flow->transform_to_noise(x);
  EXPECT_EQ(z.sizes(), x.sizes());
  EXPECT_TRUE(at::equal(flow->decode(z), x));
  // The latent parts: split then join is the identity, and decoding edited parts works.
  auto& ms = multiscale_of(*flow);
  auto composite = std::dynamic_pointer_cast<CompositeTransformImpl>(flow->transform());
  Tensor inner = composite->forward_steps(x).at(composite->size() - kMultiscaleFromEnd);
  Tensor latent = ms.forward(inner).outputs;
  auto parts = ms.split_latent(latent);
  ASSERT_EQ(parts.size(), ms.latent_shapes().size());
  EXPECT_TRUE(at::equal(ms.join_latent(parts), latent));
  EXPECT_LT((ms.inverse(ms.join_latent(parts)).outputs - inner).abs().max().item<double>(), 1e-9);
  // Samples are valid pixel values of the right shape.
  const Tensor s = flow->sample(4);
  EXPECT_EQ(s.sizes(), (at::IntArrayRef{4, 1, 8, 8}));
  EXPECT_TRUE(at::equal(s, s.floor()));
  EXPECT_GE(s.min().item<double>(), 0.0);
  EXPECT_LE(s.max().item<double>(), 255.0);
}

INSTANTIATE_TEST_SUITE_P(Models, ImageFlow,
                         ::testing::Values("glow", "glow-additive", "realnvp-image"));

TEST(Squeeze, MovesEachTwoByTwoBlockIntoChannels) {
  // One channel, 4×4, values 0..15 in reading order.
  const Tensor x = at::arange(16, at::kDouble).view({1, 1, 4, 4});
  auto out = SqueezeImpl(2).forward(x).outputs;
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{1, 4, 2, 2}));
  // Channel i·2 + j holds offset (i, j) of each block: channel 0 = top-left pixels.
  EXPECT_TRUE(at::equal(out[0][0], at::tensor({0.0, 2.0, 8.0, 10.0}, at::kDouble).view({2, 2})));
  EXPECT_TRUE(at::equal(out[0][1], at::tensor({1.0, 3.0, 9.0, 11.0}, at::kDouble).view({2, 2})));
  EXPECT_TRUE(at::equal(out[0][3], at::tensor({5.0, 7.0, 13.0, 15.0}, at::kDouble).view({2, 2})));
  EXPECT_THROW(SqueezeImpl(2).forward(at::zeros({1, 1, 3, 4})), c10::Error);
}

TEST(Dequantize, KnownLogDeterminantAndExactInverse) {
  DequantizeImpl dq(8);
  for (auto dtype : {at::kFloat, at::kDouble}) {
    // The worst case for rounding: 255 plus noise near 1.
    const Tensor x = at::full({1000, 3}, 255.0, at::TensorOptions(dtype));
    auto out = dq.forward(x);
    EXPECT_GE(out.outputs.min().item<double>(), 255.0 / 256.0);
    EXPECT_LT(out.outputs.max().item<double>(), 1.0);
    EXPECT_NEAR(out.logabsdet[0].item<double>(), -3 * 8 * std::log(2.0), 1e-4);
    EXPECT_TRUE(at::equal(dq.inverse(out.outputs).outputs, x));
    const Tensor y = at::randint(0, 256, {2000, 4}, at::TensorOptions(dtype));
    EXPECT_TRUE(at::equal(dq.inverse(dq.forward(y).outputs).outputs, y));
  }
}

// A model with uniform density on [0, 1]^D, evaluated on dequantised 8-bit data, puts
// probability exactly 1/256^D on every pixel vector: 8 bits per dimension.
TEST(BitsPerDim, UniformModelOnDequantisedBytesIsEightBits) {
  const int64_t d = 6;
  auto flow = std::make_shared<FlowImpl>(
      std::make_shared<DequantizeImpl>(8),
      std::make_shared<BoxUniformImpl>(std::vector<double>(d, 0.0), std::vector<double>(d, 1.0)));
  flow->to(at::kDouble);
  const Tensor x = at::randint(0, 256, {500, d}, at::kDouble);
  const double nll = train::mean_nll(*flow, x);
  EXPECT_NEAR(train::bits_per_dim(nll, d), 8.0, 1e-12);
  // Four-bit data: 4 bits per dimension.
  auto flow4 = std::make_shared<FlowImpl>(
      std::make_shared<DequantizeImpl>(4),
      std::make_shared<BoxUniformImpl>(std::vector<double>(d, 0.0), std::vector<double>(d, 1.0)));
  flow4->to(at::kDouble);
  EXPECT_NEAR(
      train::bits_per_dim(train::mean_nll(*flow4, at::randint(0, 16, {50, d}, at::kDouble)), d),
      4.0, 1e-12);
}

TEST(ImageTraining, GlowLearnsStructuredImages) {
  torch::manual_seed(0);
  BuilderOptions o = small_options();
  o.hidden = 16;
  auto flow = make_flow(build_image_flow_spec("glow", {1, 8, 8}, o));
  const Tensor train_x = pixel_images(512, 1, 8, 8);
  const Tensor val_x = pixel_images(256, 1, 8, 8);
  const double before = train::bits_per_dim(train::mean_nll(*flow, val_x), 64);
  train::TrainOptions t;
  t.steps = 150;
  t.batch_size = 64;
  t.lr = 2e-3;
  t.eval_every = 50;
  train::train_flow(*flow, train_x, val_x, t);
  const double after = train::bits_per_dim(train::mean_nll(*flow, val_x), 64);
  // Each pixel is a ramp value plus 56 uniform levels: log2(56) = 5.81 bits at best.
  EXPECT_LT(after, before - 0.5) << "before " << before << ", after " << after;
  EXPECT_LT(after, 6.6);
  EXPECT_GT(after, std::log2(56.0) - 0.05);
}

}  // namespace
