// The convolutional conditioners (nn/conv.h): ConvNet is 3×3 conv → ReLU → 1×1 conv → ReLU →
// 3×3 conv with the spatial size kept, so each output sees a 5×5 window of the input;
// both ConvNet and ZeroConv start at zero.

#include "zflow/nn/conv.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "support/modules.h"
#include "zflow/core/error.h"

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
