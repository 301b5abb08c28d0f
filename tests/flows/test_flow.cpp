// Flows, base distributions, builders and checkpoints.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "zflow/distributions/normal.h"
#include "zflow/flows/builders.h"
#include "zflow/flows/checkpoint.h"
#include "zflow/flows/registry.h"
#include "zflow/io/safetensors.h"
#include "zflow/transforms/elementwise.h"

using namespace zflow;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("zflow_flow_test_" + name)).string();
}

void randomize(torch::nn::Module& module, double scale = 0.3) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.add_(at::randn_like(p) * scale);
}

FlowPtr random_flow(const std::string& model, int64_t features) {
  BuilderOptions o;
  o.layers = 4;
  o.hidden = 16;
  auto flow = make_flow(build_flow_spec(model, features, o));
  flow->to(at::kDouble);
  flow->train();
  flow->log_prob(at::randn({32, features}, at::kDouble));  // ActNorm initialisation
  flow->eval();
  randomize(*flow);
  return flow;
}

TEST(Distributions, StandardNormalClosedForm) {
  StandardNormal normal(std::vector<int64_t>{3});
  normal->to(at::kDouble);
  Tensor x = at::tensor({0.5, -1.0, 2.0}, at::kDouble).view({1, 3});
  const double expected = -0.5 * (0.25 + 1.0 + 4.0) - 1.5 * std::log(2 * M_PI);
  EXPECT_NEAR(normal->log_prob(x).item<double>(), expected, 1e-12);
  EXPECT_EQ(normal->sample(7).sizes(), at::IntArrayRef({7, 3}));
  EXPECT_EQ(normal->sample(7).scalar_type(), at::kDouble);
}

TEST(Distributions, DiagonalNormalClosedForm) {
  DiagonalNormal normal(std::vector<int64_t>{2});
  normal->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    normal->mean.copy_(at::tensor({1.0, -2.0}, at::kDouble));
    normal->log_scale.copy_(at::tensor({std::log(2.0), std::log(0.5)}, at::kDouble));
  }
  Tensor x = at::tensor({0.0, -1.0}, at::kDouble).view({1, 2});
  const double expected = -0.5 * (0.25 + 4.0) - std::log(2.0) - std::log(0.5) - std::log(2 * M_PI);
  EXPECT_NEAR(normal->log_prob(x).item<double>(), expected, 1e-12);
  torch::manual_seed(0);
  Tensor s = normal->sample(200000);
  EXPECT_NEAR(s.mean(0)[0].item<double>(), 1.0, 0.02);
  EXPECT_NEAR(s.std(0)[1].item<double>(), 0.5, 0.01);
}

// A Gaussian through an affine map: z = x·e^s + t with z ~ N(0, 1) means
// x ~ N(−t e^{−s}, e^{−2s}).
TEST(Flow, AffineFlowMatchesGaussianClosedForm) {
  auto affine = std::make_shared<ElementwiseAffineImpl>(2);
  auto flow = std::make_shared<FlowImpl>(
      affine, std::make_shared<StandardNormalImpl>(std::vector<int64_t>{2}));
  flow->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    affine->log_scale.copy_(at::tensor({0.3, -0.7}, at::kDouble));
    affine->shift.copy_(at::tensor({1.0, 2.0}, at::kDouble));
  }
  Tensor x = at::randn({5, 2}, at::kDouble);
  const double s[2] = {0.3, -0.7}, t[2] = {1.0, 2.0};
  Tensor expected = at::zeros({5}, at::kDouble);
  for (int d = 0; d < 2; ++d) {
    const double mu = -t[d] * std::exp(-s[d]), sigma = std::exp(-s[d]);
    Tensor u = (x.select(1, d) - mu) / sigma;
    expected += -0.5 * u * u - std::log(sigma) - 0.5 * std::log(2 * M_PI);
  }
  EXPECT_LT((flow->log_prob(x) - expected).abs().max().item<double>(), 1e-12);
}

TEST(Flow, SampleAndLogProbAgreeWithLogProb) {
  for (const auto& model : {"realnvp", "nice", "glow"}) {
    auto flow = random_flow(model, 3);
    torch::NoGradGuard no_grad;
    auto [x, logp] = flow->sample_and_log_prob(64);
    EXPECT_EQ(x.sizes(), at::IntArrayRef({64, 3})) << model;
    EXPECT_LT((flow->log_prob(x) - logp).abs().max().item<double>(), 1e-9) << model;
    EXPECT_EQ(flow->sample(10).sizes(), at::IntArrayRef({10, 3}));
  }
}

// Through an affine map x = μ + σ·z, samples at temperature T have standard deviation σ·T.
TEST(Flow, TemperatureScalesTheBaseNoise) {
  torch::manual_seed(5);
  auto affine = std::make_shared<ElementwiseAffineImpl>(2);
  auto flow = std::make_shared<FlowImpl>(
      affine, std::make_shared<StandardNormalImpl>(std::vector<int64_t>{2}));
  flow->to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    affine->log_scale.copy_(at::tensor({0.0, std::log(0.5)}, at::kDouble));  // σ = 1, 2
    affine->shift.copy_(at::tensor({1.0, -2.0}, at::kDouble));
  }
  torch::NoGradGuard no_grad;
  const Tensor x = flow->sample_at_temperature(20000, 0.5);
  ASSERT_EQ(x.sizes(), at::IntArrayRef({20000, 2}));
  const Tensor std = x.std(0);
  EXPECT_NEAR(std[0].item<double>(), 0.5, 0.02);
  EXPECT_NEAR(std[1].item<double>(), 1.0, 0.04);
  EXPECT_NEAR(x.mean(0)[0].item<double>(), -1.0, 0.02);  // μ = −t·exp(−s)
  EXPECT_THROW(flow->sample_at_temperature(5, 0.0), ConfigError);
  EXPECT_THROW(flow->sample_at_temperature(5, -1.0), ConfigError);
  auto diagonal = std::make_shared<FlowImpl>(
      affine, std::make_shared<DiagonalNormalImpl>(std::vector<int64_t>{2}));
  EXPECT_THROW(diagonal->sample_at_temperature(5, 0.7), ConfigError);
}

TEST(Flow, EncodeThenDecodeReconstructs) {
  for (const auto& model : {"realnvp", "nice", "glow"}) {
    auto flow = random_flow(model, 5);
    torch::NoGradGuard no_grad;
    Tensor x = at::randn({50, 5}, at::kDouble);
    // Random parameters carry some points far into the logarithmic tails, whose inverse (an
    // exponential) keeps a relative precision of about ln(|z| / 4) ulps, not one.
    EXPECT_LT((flow->decode(flow->transform_to_noise(x)) - x).abs().max().item<double>(), 1e-8)
        << model;
  }
}

TEST(Flow, CompositeStepsListEveryIntermediate) {
  auto flow = random_flow("glow", 2);
  auto composite = std::dynamic_pointer_cast<CompositeTransformImpl>(flow->transform());
  ASSERT_TRUE(composite);
  torch::NoGradGuard no_grad;
  Tensor x = at::randn({8, 2}, at::kDouble);
  auto steps = composite->forward_steps(x);
  ASSERT_EQ(steps.size(), composite->size() + 1);
  EXPECT_TRUE(at::equal(steps.front(), x));
  EXPECT_TRUE(at::allclose(steps.back(), flow->transform_to_noise(x)));
  auto back = composite->inverse_steps(steps.back());
  ASSERT_EQ(back.size(), composite->size() + 1);
  EXPECT_LT((back.back() - x).abs().max().item<double>(), 1e-9);
}

// Standardisation is part of the density: log p(x) = log q((x − m)/s) − Σ log s.
TEST(Flow, StandardizationLogDeterminantIsCounted) {
  BuilderOptions o;
  o.layers = 2;
  o.hidden = 8;
  const Json spec = build_flow_spec("realnvp", 2, o);
  auto plain = make_flow(spec);
  auto standardized = make_flow(with_standardization(spec, {10.0, -5.0}, {2.0, 0.25}));
  plain->to(at::kDouble);
  standardized->to(at::kDouble);
  randomize(*plain);
  load_named_state(
      *std::dynamic_pointer_cast<CompositeTransformImpl>(standardized->transform())->layer(1),
      named_state(*std::dynamic_pointer_cast<CompositeTransformImpl>(plain->transform())->layer(0)),
      "copy");
  load_named_state(
      *std::dynamic_pointer_cast<CompositeTransformImpl>(standardized->transform())->layer(2),
      named_state(*std::dynamic_pointer_cast<CompositeTransformImpl>(plain->transform())->layer(1)),
      "copy");
  Tensor x = at::randn({6, 2}, at::kDouble) * at::tensor({2.0, 0.25}, at::kDouble) +
             at::tensor({10.0, -5.0}, at::kDouble);
  Tensor u = (x - at::tensor({10.0, -5.0}, at::kDouble)) / at::tensor({2.0, 0.25}, at::kDouble);
  Tensor expected = plain->log_prob(u) - std::log(2.0) - std::log(0.25);
  EXPECT_LT((standardized->log_prob(x) - expected).abs().max().item<double>(), 1e-10);
}

TEST(Builders, EveryBuilderBuildsAndRoundTrips) {
  for (const auto& [name, description] : builder_names()) {
    EXPECT_FALSE(description.empty());
    for (int64_t d : {2, 5}) {
      BuilderOptions o;
      o.layers = 3;
      auto flow = make_flow(build_flow_spec(name, d, o));
      EXPECT_EQ(make_flow(flow->spec())->spec(), flow->spec()) << name;
      EXPECT_GT(count_parameters(*flow), 0) << name;
    }
  }
  EXPECT_THROW(build_flow_spec("nope", 2, {}), ConfigError);
  EXPECT_THROW(build_flow_spec("realnvp", 1, {}), ConfigError);
  BuilderOptions bad;
  bad.layers = 0;
  EXPECT_THROW(build_flow_spec("realnvp", 2, bad), ConfigError);
}

// Each coupling starts as the identity: the conditioner's last layer is zero.
TEST(Builders, CouplingFlowsStartAsIdentity) {
  auto flow = make_flow(build_flow_spec("realnvp", 4, {}));
  torch::NoGradGuard no_grad;
  Tensor x = at::randn({10, 4});
  EXPECT_TRUE(at::allclose(flow->transform_to_noise(x), x));
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    flow = random_flow("glow", 3);
    path = temp_path("ckpt.safetensors");
    save_checkpoint(path, *flow, {{"dataset", "unit test"}});
  }
  void TearDown() override { std::filesystem::remove(path); }
  std::string error_of(const std::string& file) {
    try {
      load_checkpoint(file);
    } catch (const IOError& e) {
      return e.what();
    }
    return "";
  }
  FlowPtr flow;
  std::string path;
};

TEST_F(CheckpointTest, RoundTripKeepsDtypeMetadataAndOutputs) {
  auto loaded = load_checkpoint(path);
  EXPECT_EQ(loaded.metadata.at("dataset"), "unit test");
  EXPECT_EQ(loaded.metadata.at("format"), "zflow-flow/1");
  EXPECT_FALSE(loaded.metadata.at("zflow_version").empty());
  EXPECT_EQ(loaded.flow->parameters()[0].scalar_type(), at::kDouble);
  Tensor x = at::randn({4, 3}, at::kDouble);
  EXPECT_TRUE(at::equal(loaded.flow->log_prob(x), flow->log_prob(x)));
}

TEST_F(CheckpointTest, TruncatedFileIsAClearError) {
  const std::uintmax_t size = std::filesystem::file_size(path);
  for (auto keep : {size / 2, size - 1, std::uintmax_t{4}}) {
    std::filesystem::resize_file(path, keep);
    EXPECT_NE(error_of(path).find(path), std::string::npos) << keep;
    save_checkpoint(path, *flow);
  }
}

TEST_F(CheckpointTest, TensorsThatDoNotMatchTheSpecAreRejected) {
  auto file = io::load_safetensors(path);
  auto broken = file;
  broken.tensors[0].second = at::zeros({7}, at::kDouble);
  io::save_safetensors(path, broken);
  EXPECT_NE(error_of(path).find("shape"), std::string::npos);

  broken = file;
  broken.tensors.pop_back();
  io::save_safetensors(path, broken);
  EXPECT_NE(error_of(path).find("missing"), std::string::npos);

  broken = file;
  broken.metadata.erase("format");
  io::save_safetensors(path, broken);
  EXPECT_NE(error_of(path).find("not a zflow model"), std::string::npos);

  broken = file;
  broken.metadata["spec"] = "{\"type\": \"flow\", \"transform\": {\"type\": \"warp\"}}";
  io::save_safetensors(path, broken);
  EXPECT_NE(error_of(path).find("cannot be built"), std::string::npos);

  broken = file;
  broken.tensors[0].second = at::full_like(broken.tensors[0].second, NAN);
  io::save_safetensors(path, broken);
  EXPECT_NE(error_of(path).find("NaN"), std::string::npos);
}

TEST_F(CheckpointTest, MissingFileNamesThePath) {
  EXPECT_NE(error_of(path + ".nope").find(path + ".nope"), std::string::npos);
}

}  // namespace
