// The convolutional conditioners (nn/conv.h): ConvNet is 3×3 conv → ReLU → 1×1 conv → ReLU →
// 3×3 conv with the spatial size kept, so each output sees a 5×5 window of the input;
// both ConvNet and ZeroConv start at zero.

#include "zflow/nn/conv.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include "support/modules.h"
#include "zflow/core/error.h"
#include "zflow/core/kernels.h"

using namespace zflow;
using zflow::testing::max_abs;
using zflow::testing::parameter;
using zflow::testing::parameter_count;
using zflow::testing::randomize_parameters;

namespace {

TEST(ConvNet, KeepsTheSpatialSizeAndStartsAtZero) {
  nn::ConvNet net(3, 6, 16);
  EXPECT_EQ(parameter_count(*net), (3 * 16 * 9 + 16) + (16 * 16 + 16) + (16 * 6 * 9 + 6));
  EXPECT_EQ(net->in_channels(), 3);
  EXPECT_EQ(net->out_channels(), 6);
  EXPECT_EQ(net->hidden_channels(), 16);
  const at::Tensor out = net->forward(at::randn({2, 3, 5, 7}));
  EXPECT_EQ(out.sizes(), at::IntArrayRef({2, 6, 5, 7}));
  EXPECT_EQ(max_abs(out), 0.0);
  nn::ConvNet live(3, 6, 16, /*zero_init_last=*/false);
  EXPECT_GT(max_abs(live->forward(at::randn({2, 3, 5, 7}))), 0.0);
}

TEST(ConvNet, IsThreeConvolutionsWithReluBetween) {
  torch::manual_seed(3);
  nn::ConvNet net(2, 4, 8, false);
  net->to(at::kDouble);
  randomize_parameters(*net);
  const at::Tensor x = at::randn({3, 2, 6, 6}, at::kDouble);
  at::Tensor h =
      at::relu(at::conv2d(x, parameter(*net, "weight1"), parameter(*net, "bias1"), 1, 1));
  h = at::relu(at::conv2d(h, parameter(*net, "weight2"), parameter(*net, "bias2")));
  const at::Tensor expected =
      at::conv2d(h, parameter(*net, "weight3"), parameter(*net, "bias3"), 1, 1);
  EXPECT_LT(max_abs(net->forward(x) - expected), 1e-12);
}

TEST(ConvNet, EachOutputSeesAFiveByFiveWindow) {
  torch::manual_seed(4);
  nn::ConvNet net(1, 1, 8, false);
  net->to(at::kDouble);
  randomize_parameters(*net);
  const at::Tensor x = at::randn({1, 1, 11, 11}, at::kDouble);
  at::Tensor moved = x.clone();
  moved[0][0][5][5] += 1.0;
  const at::Tensor change = (net->forward(moved) - net->forward(x)).abs()[0][0];
  for (int64_t r = 0; r < 11; ++r) {
    for (int64_t c = 0; c < 11; ++c) {
      if (std::abs(r - 5) > 2 || std::abs(c - 5) > 2) {
        EXPECT_EQ(change[r][c].item<double>(), 0.0) << r << "," << c;
      }
    }
  }
  EXPECT_GT(change.narrow(0, 3, 5).narrow(1, 3, 5).sum().item<double>(), 0.0);
}

// The fused conditioner (one autograd node, channels-last activations, hand-written
// backward) against the reference (autograd through ATen's NCHW convolutions and ReLUs):
// values and the gradients of the inputs and of all six parameters, in float64 and float32.
struct Gradients {
  at::Tensor out;
  std::vector<at::Tensor> grads;  // inputs, then the parameters
};

Gradients evaluate(nn::ConvNet& net, const at::Tensor& x, const at::Tensor& upstream, bool fused,
                   bool input_grad = true) {
  use_fused_kernels(fused);
  const at::Tensor input = x.detach().clone().requires_grad_(input_grad);
  for (auto& p : net->parameters()) p.mutable_grad() = at::Tensor();
  Gradients g;
  g.out = net->forward(input);
  (g.out * upstream).sum().backward();
  use_fused_kernels(true);
  g.grads.push_back(input_grad ? input.grad() : at::Tensor());
  for (const auto& p : net->parameters()) g.grads.push_back(p.grad().clone());
  return g;
}

class ConvNetAgreement : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(ConvNetAgreement, FusedValuesAndGradientsMatchTheReference) {
  const at::ScalarType dtype = GetParam();
  const double tol = dtype == at::kDouble ? 1e-10 : 2e-4;
  torch::manual_seed(11);
  // Shapes with fewer and with more input than output channels in both 3×3 convolutions,
  // and images of one row, one column and one pixel, where most of the 3×3 taps fall in the
  // padding.
  const std::tuple<int, int, int, int, int> cases[] = {
      {2, 4, 16, 7, 6},  // Glow's: thin in, thin out
      {4, 8, 8, 7, 6},   // equal channels
      {12, 9, 5, 5, 4},  // wide in, wide out
      {3, 2, 6, 1, 5},   // one row
      {3, 2, 6, 4, 1},   // one column
      {1, 1, 4, 1, 1},   // one pixel
  };
  for (const auto& [in, out, hidden, height, width] : cases) {
    SCOPED_TRACE(::testing::Message()
                 << in << " -> " << hidden << " -> " << out << " on " << height << "x" << width);
    nn::ConvNet net(in, out, hidden, /*zero_init_last=*/false);
    net->to(dtype);
    randomize_parameters(*net);
    const at::Tensor x = at::randn({3, in, height, width}, dtype);
    const at::Tensor upstream = at::randn({3, out, height, width}, dtype);
    const Gradients fused = evaluate(net, x, upstream, true);
    const Gradients reference = evaluate(net, x, upstream, false);
    EXPECT_TRUE(fused.out.is_contiguous());
    const double scale = max_abs(reference.out);
    ASSERT_GT(scale, 0.0);
    EXPECT_LT(max_abs(fused.out - reference.out), tol * scale);
    ASSERT_EQ(fused.grads.size(), 7u);
    for (size_t i = 0; i < fused.grads.size(); ++i) {
      const double g = max_abs(reference.grads[i]);
      ASSERT_GT(g, 0.0) << "gradient " << i;
      EXPECT_LT(max_abs(fused.grads[i] - reference.grads[i]), tol * g) << "gradient " << i;
    }
    // Inputs that need no gradient: the parameters' gradients are the same.
    const Gradients no_input = evaluate(net, x, upstream, true, /*input_grad=*/false);
    for (size_t i = 1; i < no_input.grads.size(); ++i) {
      EXPECT_LT(max_abs(no_input.grads[i] - reference.grads[i]), tol * max_abs(reference.grads[i]));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ConvNetAgreement, ::testing::Values(at::kDouble, at::kFloat));

TEST(ConvNet, FusedSecondDerivativesFollowTheReference) {
  torch::manual_seed(12);
  nn::ConvNet net(2, 4, 8, false);
  net->to(at::kDouble);
  randomize_parameters(*net);
  const at::Tensor x0 = at::randn({2, 2, 5, 5}, at::kDouble);
  auto second = [&](bool fused) {
    use_fused_kernels(fused);
    const at::Tensor x = x0.clone().requires_grad_(true);
    const at::Tensor y = net->forward(x);
    const at::Tensor g = torch::autograd::grad({y.pow(2).sum()}, {x}, {}, true, true)[0];
    const at::Tensor gg = torch::autograd::grad({g.pow(2).sum()}, {x})[0];
    use_fused_kernels(true);
    return gg;
  };
  const at::Tensor reference = second(false);
  ASSERT_GT(max_abs(reference), 0.0);
  EXPECT_LT(max_abs(second(true) - reference), 1e-10 * max_abs(reference));
}

TEST(ConvNet, WrongInputsAndSizesAreErrors) {
  nn::ConvNet net(3, 6, 16);
  EXPECT_THROW(net->forward(at::randn({2, 4, 5, 5})), c10::Error);
  EXPECT_THROW(net->forward(at::randn({3, 5, 5})), c10::Error);
  EXPECT_THROW(nn::ConvNet(0, 6, 16), ConfigError);
  EXPECT_THROW(nn::ConvNet(3, 0, 16), ConfigError);
  EXPECT_THROW(nn::ConvNet(3, 6, 0), ConfigError);
}

TEST(ZeroConv, StartsAtZeroAndIsOnePaddedConvolution) {
  torch::manual_seed(5);
  nn::ZeroConv conv(3, 4);
  EXPECT_EQ(parameter_count(*conv), 3 * 4 * 9 + 4);
  const at::Tensor x = at::randn({2, 3, 5, 6}, at::kDouble);
  conv->to(at::kDouble);
  const at::Tensor out = conv->forward(x);
  EXPECT_EQ(out.sizes(), at::IntArrayRef({2, 4, 5, 6}));
  EXPECT_EQ(max_abs(out), 0.0);
  randomize_parameters(*conv);
  const at::Tensor expected =
      at::conv2d(x, parameter(*conv, "weight"), parameter(*conv, "bias"), 1, 1);
  EXPECT_LT(max_abs(conv->forward(x) - expected), 1e-12);
}

}  // namespace
