// ActNorm's data-dependent initialisation: unit variance for real spreads, a bounded scale
// for (nearly) constant features. BatchNorm's batch and running statistics.

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "zflow/core/error.h"
#include "zflow/flows/registry.h"
#include "zflow/transforms/normalization.h"

using namespace zflow;

namespace {

constexpr double kFloor = ActNormImpl::kMinSpread;

/// An ActNorm initialised (training mode) on `batch`, then switched to evaluation.
ActNorm initialised_on(const at::Tensor& batch) {
  ActNorm norm(batch.size(1));
  norm->to(at::kDouble);
  norm->train();
  norm->forward(batch);
  norm->eval();
  return norm;
}

TEST(ActNorm, InitialisationStandardisesFeaturesWithARealSpread) {
  at::manual_seed(3);
  const at::Tensor batch =
      at::randn({256, 3}, at::kDouble) * at::tensor({2.0, 0.5, 30.0}, at::kDouble) +
      at::tensor({1.0, -4.0, 100.0}, at::kDouble);
  ActNorm norm = initialised_on(batch);
  const at::Tensor z = norm->forward(batch).outputs;
  EXPECT_TRUE(at::allclose(z.mean(0), at::zeros({3}, at::kDouble), 0, 1e-9));
  EXPECT_TRUE(at::allclose(z.std(0, /*unbiased=*/false), at::ones({3}, at::kDouble), 1e-9, 0));
}

TEST(ActNorm, NearConstantFeatureDoesNotExplode) {
  // Column 1 is constant up to 1e-7 in the initialising batch (a border pixel that is
  // always 0, a column with one repeated value); the others are spread normally.
  at::manual_seed(5);
  at::Tensor batch = at::randn({64, 3}, at::kDouble);
  batch.select(1, 1).copy_(0.5 + 1e-7 * at::randn({64}, at::kDouble));
  ActNorm norm = initialised_on(batch);

  // A plausible unseen value: one unit away from the constant.
  at::Tensor unseen = at::zeros({1, 3}, at::kDouble);
  unseen[0][1] = 1.5;
  const auto out = norm->forward(unseen);
  const double z = out.outputs[0][1].item<double>();
  // Without the floor the batch's spread (1e-7) would put it at 10^7 standard deviations.
  EXPECT_LE(std::abs(z), 1.0 / kFloor + 1e-6) << "z = " << z;
  EXPECT_GE(std::abs(z), 0.5 / kFloor) << "the floor is a floor, not a cap on every scale";
  EXPECT_LE(norm->log_scale[1].item<double>(), -std::log(kFloor) + 1e-12);
  // The constant itself still maps to about 0, and the log-determinant is finite.
  EXPECT_NEAR(norm->forward(batch).outputs.select(1, 1).abs().max().item<double>(), 0.0, 1e-4);
  EXPECT_TRUE(std::isfinite(out.logabsdet[0].item<double>()));
  // The columns with a real spread are standardised as before.
  EXPECT_NEAR(norm->forward(batch).outputs.select(1, 0).std(0, false).item<double>(), 1.0, 1e-9);
}

TEST(ActNorm, ImageChannelsGetTheSameFloor) {
  // [B, C, H, W]: channel 0 is constant over the batch and every pixel.
  at::manual_seed(7);
  at::Tensor batch = at::rand({16, 2, 4, 4}, at::kDouble);
  batch.select(1, 0).fill_(0.0);
  ActNorm norm = initialised_on(batch);
  at::Tensor unseen = at::zeros({1, 2, 4, 4}, at::kDouble);
  unseen[0][0][1][2] = 1.0;
  const double z = norm->forward(unseen).outputs[0][0][1][2].item<double>();
  EXPECT_LE(std::abs(z), 1.0 / kFloor + 1e-6) << "z = " << z;
}

TEST(ActNorm, FloorAppliesAtInitialisationOnly) {
  // A trained (or loaded) scale above 1 / kMinSpread is kept: the floor does not clamp it.
  at::manual_seed(9);
  ActNorm norm = initialised_on(at::randn({32, 2}, at::kDouble));
  {
    at::NoGradGuard no_grad;
    norm->log_scale.fill_(12.0);
  }
  norm->train();
  const auto out = norm->forward(at::full({8, 2}, 0.25, at::kDouble));
  norm->eval();
  EXPECT_DOUBLE_EQ(norm->log_scale[0].item<double>(), 12.0);
  EXPECT_DOUBLE_EQ(out.logabsdet[0].item<double>(), 24.0);
}

// ---- BatchNorm --------------------------------------------------------------------------------

BatchNorm batch_norm(int64_t features, double momentum = 0.1) {
  BatchNorm norm(BatchNormOptions(features).momentum(momentum));
  norm->to(at::kDouble);
  return norm;
}

TEST(BatchNorm, TrainingStandardisesTheBatchAndUpdatesTheRunningAverages) {
  at::manual_seed(5);
  const at::Tensor scale = at::tensor({3.0, 0.2}, at::kDouble);
  const at::Tensor shift = at::tensor({-1.0, 7.0}, at::kDouble);
  const at::Tensor batch = at::randn({512, 2}, at::kDouble) * scale + shift;
  BatchNorm norm = batch_norm(2, 0.25);
  norm->train();
  const auto [z, logabsdet] = norm->forward(batch);
  // γ = β = 0 at the start: mean 0 and variance v/(v + ε) per feature.
  const at::Tensor var = batch.var(0, /*unbiased=*/false);
  EXPECT_TRUE(at::allclose(z.mean(0), at::zeros({2}, at::kDouble), 0, 1e-12));
  EXPECT_TRUE(at::allclose(z.var(0, false), var / (var + 1e-5), 1e-12, 0));
  // log|det| with the statistics held fixed: −½ Σ log(v + ε), the same for every example.
  const double expected = -0.5 * at::log(var + 1e-5).sum().item<double>();
  EXPECT_NEAR(logabsdet[0].item<double>(), expected, 1e-12);
  EXPECT_NEAR((logabsdet - expected).abs().max().item<double>(), 0.0, 1e-12);
  // m̄ = 0.75·0 + 0.25·m, v̄ = 0.75·1 + 0.25·v.
  EXPECT_TRUE(at::allclose(norm->running_mean, 0.25 * batch.mean(0), 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(norm->running_var, 0.75 + 0.25 * var, 1e-12, 1e-12));
}

TEST(BatchNorm, EvaluationAndTheInverseUseTheRunningAverages) {
  at::manual_seed(6);
  BatchNorm norm = batch_norm(3, 1.0);  // momentum 1: the running averages are the last batch's
  norm->train();
  const at::Tensor batch = at::randn({256, 3}, at::kDouble) * 2 + 5;
  norm->forward(batch);
  norm->eval();
  {
    torch::NoGradGuard no_grad;
    norm->log_gamma.copy_(at::tensor({0.3, -0.2, 0.1}, at::kDouble));
    norm->beta.copy_(at::tensor({1.0, 0.0, -2.0}, at::kDouble));
  }
  const at::Tensor x = at::randn({7, 3}, at::kDouble);
  const at::Tensor expected =
      (x - batch.mean(0)) / at::sqrt(batch.var(0, false) + 1e-5) * at::exp(norm->log_gamma) +
      norm->beta;
  const auto forward = norm->forward(x);
  EXPECT_TRUE(at::allclose(forward.outputs, expected, 1e-12, 1e-12));
  const auto inverse = norm->inverse(forward.outputs);
  EXPECT_TRUE(at::allclose(inverse.outputs, x, 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(inverse.logabsdet, -forward.logabsdet, 1e-12, 1e-12));
  // Evaluation leaves the running averages alone.
  const at::Tensor before = norm->running_mean.clone();
  norm->forward(at::randn({64, 3}, at::kDouble) * 10);
  EXPECT_TRUE(at::equal(norm->running_mean, before));
}

TEST(BatchNorm, ASingleExampleInTrainingUsesTheRunningAverages) {
  BatchNorm norm = batch_norm(2);
  norm->train();
  const at::Tensor x = at::tensor({3.0, -4.0}, at::kDouble).view({1, 2});
  const auto out = norm->forward(x);
  // m̄ = 0, v̄ = 1: z = x / √(1 + ε), and nothing is updated (no variance from one example).
  EXPECT_TRUE(at::allclose(out.outputs, x / std::sqrt(1.0 + 1e-5), 1e-12, 0));
  EXPECT_TRUE(at::equal(norm->running_var, at::ones({2}, at::kDouble)));
}

TEST(BatchNorm, ImagesUseStatisticsPerChannelOverThePixels) {
  at::manual_seed(7);
  BatchNorm norm = batch_norm(2);
  norm->train();
  const at::Tensor images = at::randn({16, 2, 3, 5}, at::kDouble) *
                                at::tensor({4.0, 0.5}, at::kDouble).view({1, 2, 1, 1}) +
                            1.5;
  const auto [z, logabsdet] = norm->forward(images);
  const at::Tensor per_channel = z.transpose(0, 1).reshape({2, -1});
  EXPECT_TRUE(at::allclose(per_channel.mean(1), at::zeros({2}, at::kDouble), 0, 1e-12));
  const at::Tensor var = images.transpose(0, 1).reshape({2, -1}).var(1, false);
  // Each of the H·W = 15 pixels of a channel contributes −½ log(v + ε).
  EXPECT_NEAR(logabsdet[0].item<double>(), -7.5 * at::log(var + 1e-5).sum().item<double>(), 1e-10);
}

TEST(BatchNorm, BadSpecsAndInputsAreErrors) {
  EXPECT_THROW(make_transform({{"type", "batch_norm"}, {"features", 0}}), ConfigError);
  EXPECT_THROW(make_transform({{"type", "batch_norm"}, {"features", 2}, {"momentum", 0.0}}),
               ConfigError);
  EXPECT_THROW(make_transform({{"type", "batch_norm"}, {"features", 2}, {"momentum", 1.5}}),
               ConfigError);
  EXPECT_THROW(make_transform({{"type", "batch_norm"}, {"features", 2}, {"eps", 0.0}}),
               ConfigError);
  BatchNorm norm = batch_norm(2);
  EXPECT_THROW(norm->forward(at::randn({4, 3}, at::kDouble)), c10::Error);
}

}  // namespace
