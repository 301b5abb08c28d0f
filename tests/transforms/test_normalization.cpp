// ActNorm's data-dependent initialisation: unit variance for real spreads, a bounded scale
// for (nearly) constant features.

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

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

}  // namespace
