// The U-Net velocity field (nn/unet.h): shapes for even and odd image sizes, the zero start,
// the dependence on t and the context, independent samples (values and Jacobian), float64,
// double backward (checked against finite differences), the spec round trip, bad specs.

#include "zflow/nn/unet.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/utils.h>

#include "support/expect_error.h"
#include "support/modules.h"
#include "zflow/core/error.h"

using namespace zflow;
using zflow::testing::expect_error;
using zflow::testing::max_abs;
using zflow::testing::parameter_count;
using zflow::testing::randomize_parameters;

namespace {

using nn::VelocityUNetImpl;

// A small net with all parameters random (the last convolution starts at zero otherwise).
std::shared_ptr<VelocityUNetImpl> random_net(const Json& spec, const std::vector<int64_t>& shape,
                                             int64_t context, at::ScalarType dtype) {
  auto net = std::make_shared<VelocityUNetImpl>(spec, shape, context);
  net->to(dtype);
  randomize_parameters(*net, 0.3);
  return net;
}

const Json kSmall = {{"hidden", 8}, {"levels", 2}, {"blocks", 1}, {"embedding_size", 4}};

TEST(VelocityUNet, KeepsTheShapeAndStartsAtZero) {
  torch::manual_seed(0);
  VelocityUNetImpl net(Json::object(), {1, 28, 28}, 0);
  const at::Tensor out = net.forward(at::rand({4}), at::randn({4, 1, 28, 28}), {});
  EXPECT_EQ(out.sizes(), at::IntArrayRef({4, 1, 28, 28}));
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  EXPECT_EQ(max_abs(out), 0.0);
  // Odd sizes, three levels: 7×5 → 4×3 → 2×2 and back.
  VelocityUNetImpl odd({{"hidden", 8}, {"levels", 3}, {"blocks", 2}}, {3, 7, 5}, 0);
  const at::Tensor x = at::randn({2, 3, 7, 5});
  EXPECT_EQ(odd.forward(at::rand({2}), x, {}).sizes(), x.sizes());
  randomize_parameters(odd);
  const at::Tensor live = odd.forward(at::rand({2}), x, {});
  EXPECT_EQ(live.sizes(), x.sizes());
  EXPECT_GT(max_abs(live), 0.0);
  // Any spatial size down to 1×1, also more levels than halvings.
  VelocityUNetImpl deep({{"hidden", 4}, {"levels", 4}, {"groups", 2}}, {2, 1, 1}, 0);
  randomize_parameters(deep);
  for (const auto& size : std::vector<std::vector<int64_t>>{{1, 1}, {2, 3}, {9, 1}}) {
    const at::Tensor y = at::randn({3, 2, size[0], size[1]});
    EXPECT_EQ(deep.forward(at::rand({3}), y, {}).sizes(), y.sizes());
  }
}

TEST(VelocityUNet, HasTheExpectedParameters) {
  // Default spec on 1×28×28: hidden 32, levels 2, blocks 1, 33 sinusoidal time features.
  VelocityUNetImpl net(Json::object(), {1, 28, 28}, 0);
  const auto conv = [](int64_t in, int64_t out, int64_t k) { return in * out * k * k + out; };
  const auto block = [&](int64_t in, int64_t out) {
    return 2 * in + conv(in, out, 3) + (128 * out + out) + 2 * out + conv(out, out, 3) +
           (in != out ? conv(in, out, 1) : 0);
  };
  const int64_t expected = (33 * 128 + 128) + (128 * 128 + 128) + conv(1, 32, 3) + block(32, 32) +
                           conv(32, 32, 3) + block(32, 64) + block(96, 32) + 2 * 32 +
                           conv(32, 1, 3);
  EXPECT_EQ(parameter_count(net), expected);
  EXPECT_EQ(expected, 163937);  // the figure of the header comment
  // A context adds its projection to the embedding.
  VelocityUNetImpl conditional(Json::object(), {1, 28, 28}, 10);
  EXPECT_EQ(parameter_count(conditional), expected + 10 * 128 + 128);
  for (const auto& name : net.named_parameters().keys()) {
    EXPECT_EQ(name.find_first_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), std::string::npos) << name;
  }
  EXPECT_TRUE(net.named_parameters().contains("up.0.skip.weight"));
  EXPECT_TRUE(net.named_parameters().contains("downsample.0.weight"));
}

TEST(VelocityUNet, GroupNormGroupsDivideTheChannels) {
  EXPECT_EQ(nn::group_count(8, 32), 8);
  EXPECT_EQ(nn::group_count(8, 96), 8);
  EXPECT_EQ(nn::group_count(8, 3), 3);
  EXPECT_EQ(nn::group_count(8, 12), 4);
  EXPECT_EQ(nn::group_count(6, 9), 3);
  EXPECT_EQ(nn::group_count(5, 7), 1);
  // Widths 6 and 12 with 4 groups: GroupNorm would refuse a non-divisor.
  VelocityUNetImpl net({{"hidden", 6}, {"groups", 4}}, {1, 6, 6}, 0);
  EXPECT_EQ(net.forward(at::rand({2}), at::randn({2, 1, 6, 6}), {}).sizes(),
            at::IntArrayRef({2, 1, 6, 6}));
}

TEST(VelocityUNet, DependsOnTimeAndContext) {
  torch::manual_seed(1);
  for (const std::string embedding : {"linear", "sinusoidal"}) {
    Json spec = kSmall;
    spec["time_embedding"] = embedding;
    auto net = random_net(spec, {2, 6, 6}, 3, at::kDouble);
    const at::Tensor x = at::randn({4, 2, 6, 6}, at::kDouble);
    const at::Tensor c = at::randn({4, 3}, at::kDouble);
    const at::Tensor t = at::rand({4}, at::kDouble);
    const at::Tensor out = net->forward(t, x, c);
    EXPECT_GT(max_abs(out - net->forward(t + 0.25, x, c)), 1e-6) << embedding;
    EXPECT_GT(max_abs(out - net->forward(t, x, at::randn({4, 3}, at::kDouble))), 1e-6);
    // The context is required, with its size.
    EXPECT_THROW(net->forward(t, x, {}), c10::Error);
    EXPECT_THROW(net->forward(t, x, at::randn({4, 2}, at::kDouble)), c10::Error);
  }
}

TEST(VelocityUNet, ChecksItsInputs) {
  VelocityUNetImpl net(kSmall, {2, 6, 6}, 0);
  EXPECT_THROW(net.forward(at::rand({4}), at::randn({4, 3, 6, 6}), {}), c10::Error);
  EXPECT_THROW(net.forward(at::rand({4}), at::randn({4, 72}), {}), c10::Error);
  EXPECT_THROW(net.forward(at::rand({3}), at::randn({4, 2, 6, 6}), {}), c10::Error);
  EXPECT_THROW(net.forward(at::rand({4, 1}), at::randn({4, 2, 6, 6}), {}), c10::Error);
}

TEST(VelocityUNet, TreatsSamplesIndependently) {
  torch::manual_seed(2);
  auto net = random_net(kSmall, {2, 7, 5}, 2, at::kDouble);
  net->train();
  const at::Tensor t = at::rand({3}, at::kDouble), c = at::randn({3, 2}, at::kDouble);
  const at::Tensor x = at::randn({3, 2, 7, 5}, at::kDouble);
  at::Tensor changed = x.clone();
  changed[1] = at::randn({2, 7, 5}, at::kDouble) * 3.0;
  const at::Tensor a = net->forward(t, x, c), b = net->forward(t, changed, c);
  EXPECT_LT(max_abs(a[0] - b[0]), 1e-12);
  EXPECT_LT(max_abs(a[2] - b[2]), 1e-12);
  EXPECT_GT(max_abs(a[1] - b[1]), 1e-6);
  // The Jacobian of row 0 with respect to the other rows is zero.
  const at::Tensor xg = x.clone().requires_grad_(true);
  const at::Tensor grad = torch::autograd::grad({net->forward(t, xg, c)[0].sum()}, {xg})[0];
  EXPECT_GT(max_abs(grad[0]), 0.0);
  EXPECT_EQ(max_abs(grad.narrow(0, 1, 2)), 0.0);
}

TEST(VelocityUNet, Float64AgreesWithFloat32) {
  torch::manual_seed(3);
  auto net = random_net(kSmall, {1, 8, 8}, 0, at::kFloat);
  const at::Tensor t = at::rand({2}), x = at::randn({2, 1, 8, 8});
  const at::Tensor single = net->forward(t, x, {});
  net->to(at::kDouble);
  const at::Tensor twice = net->forward(t.to(at::kDouble), x.to(at::kDouble), {});
  EXPECT_EQ(twice.scalar_type(), at::kDouble);
  EXPECT_LT(max_abs(twice - single.to(at::kDouble)), 1e-3 * (1.0 + max_abs(twice)));
}

// L(θ) = Σ (εᵀ ∂v/∂x) · ε, the Hutchinson term that maximum likelihood differentiates.
at::Tensor hutchinson(VelocityUNetImpl& net, const at::Tensor& t, const at::Tensor& x,
                      const at::Tensor& c, const at::Tensor& eps) {
  const at::Tensor xg = x.detach().requires_grad_(true);
  const at::Tensor v = net.forward(t, xg, c);
  const at::Tensor vjp = torch::autograd::grad({v}, {xg}, {eps}, /*retain_graph=*/true,
                                               /*create_graph=*/true)[0];
  return (vjp * eps).sum();
}

TEST(VelocityUNet, SupportsDoubleBackward) {
  torch::manual_seed(4);
  auto net = random_net(kSmall, {2, 5, 6}, 2, at::kDouble);
  const at::Tensor t = at::rand({3}, at::kDouble), c = at::randn({3, 2}, at::kDouble);
  const at::Tensor x = at::randn({3, 2, 5, 6}, at::kDouble);
  const at::Tensor eps = at::randn_like(x);
  const auto params = net->parameters();
  const auto grads = torch::autograd::grad({hutchinson(*net, t, x, c, eps)}, params, {},
                                           /*retain_graph=*/c10::nullopt,
                                           /*create_graph=*/false, /*allow_unused=*/true);
  ASSERT_EQ(grads.size(), params.size());
  // Every parameter but the last convolution's bias (v is affine in it) gets a gradient.
  int64_t nonzero = 0;
  for (const auto& g : grads) nonzero += g.defined() && max_abs(g) > 0.0;
  EXPECT_GE(nonzero, static_cast<int64_t>(params.size()) - 1);
  // Against a central difference along a random direction d of all parameters.
  std::vector<at::Tensor> direction;
  double analytic = 0.0;
  for (size_t i = 0; i < params.size(); ++i) {
    direction.push_back(at::randn_like(params[i]));
    if (grads[i].defined()) analytic += (grads[i] * direction[i]).sum().item<double>();
  }
  const double h = 1e-5;
  const auto shifted = [&](double step) {
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) params[i].add_(direction[i] * step);
    }
    return hutchinson(*net, t, x, c, eps).item<double>();
  };
  const double plus = shifted(h), minus = shifted(-2.0 * h);
  shifted(h);
  EXPECT_NEAR(analytic, (plus - minus) / (2.0 * h), 1e-5 * (1.0 + std::abs(analytic)));
}

TEST(VelocityUNet, SpecRebuildsTheSameNet) {
  torch::manual_seed(5);
  VelocityUNetImpl defaults(Json::object(), {1, 28, 28}, 0);
  EXPECT_EQ(defaults.spec(), Json({{"type", "unet"},
                                   {"hidden", 32},
                                   {"levels", 2},
                                   {"blocks", 1},
                                   {"time_embedding", "sinusoidal"},
                                   {"embedding_size", 32},
                                   {"groups", 8}}));
  const Json spec = {{"type", "unet"},      {"hidden", 8}, {"levels", 3},
                     {"blocks", 2},         {"groups", 4}, {"time_embedding", "linear"},
                     {"embedding_size", 32}};
  auto net = random_net(spec, {3, 7, 5}, 4, at::kDouble);
  EXPECT_EQ(net->spec(), spec);
  VelocityUNetImpl copy(net->spec(), {3, 7, 5}, 4);
  copy.to(at::kDouble);
  {
    torch::NoGradGuard no_grad;
    const auto source = net->named_parameters();
    const auto target = copy.named_parameters();
    ASSERT_EQ(source.size(), target.size());
    for (const auto& item : source) target[item.key()].copy_(item.value());
  }
  const at::Tensor t = at::rand({2}, at::kDouble), c = at::randn({2, 4}, at::kDouble);
  const at::Tensor x = at::randn({2, 3, 7, 5}, at::kDouble);
  EXPECT_EQ(max_abs(net->forward(t, x, c) - copy.forward(t, x, c)), 0.0);
}

TEST(VelocityUNet, BadSpecsAreConfigErrors) {
  const std::vector<int64_t> shape{1, 8, 8};
  const auto make = [&](const Json& spec) { VelocityUNetImpl net(spec, shape, 0); };
  expect_error<ConfigError>([&] { make({{"hiden", 8}}); }, {"hiden"});
  expect_error<ConfigError>([&] { make({{"hidden", 0}}); }, {"hidden"});
  expect_error<ConfigError>([&] { make({{"levels", 0}}); }, {"levels"});
  expect_error<ConfigError>([&] { make({{"levels", 40}}); }, {"levels"});
  expect_error<ConfigError>([&] { make({{"blocks", -1}}); }, {"blocks"});
  expect_error<ConfigError>([&] { make({{"groups", 0}}); }, {"groups"});
  expect_error<ConfigError>([&] { make({{"hidden", 2.5}}); }, {"hidden"});
  expect_error<ConfigError>([&] { make({{"embedding_size", 7}}); }, {"embedding_size"});
  expect_error<ConfigError>([&] { make({{"time_embedding", "fourier"}}); }, {"fourier"});
  expect_error<ConfigError>([&] { make({{"type", "mlp"}}); }, {"mlp"});
  expect_error<ConfigError>([&] { make(Json::array()); }, {"object"});
  expect_error<ConfigError>(
      [] {
        VelocityUNetImpl net(Json::object(), {28, 28}, 0);
      },
      {"[C, H, W]", "[28, 28]"});
  expect_error<ConfigError>([] { VelocityUNetImpl net(Json::object(), {1, 0, 28}, 0); }, {"size"});
  expect_error<ConfigError>(
      [] {
        VelocityUNetImpl net(Json::object(), {1, 8, 8}, -1);
      },
      {"context"});
}

TEST(VelocityUNet, PrintsItsStructure) {
  VelocityUNetImpl net(Json::object(), {1, 28, 28}, 10);
  std::ostringstream stream;
  net.pretty_print(stream);
  EXPECT_EQ(stream.str(),
            "VelocityUNet([1, 28, 28] + t + 10 context, hidden 32, levels 2, blocks 1, "
            "sinusoidal time)");
}

}  // namespace
