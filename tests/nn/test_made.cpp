// MADE (nn/made.h): the autoregressive property and its masks.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include "zflow/core/error.h"
#include "zflow/nn/made.h"

using namespace zflow;

namespace {

void randomize(torch::nn::Module& module, double scale = 0.5) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.add_(at::randn_like(p) * scale);
}

struct MadeCase {
  std::string ordering;
  bool residual;
  int64_t context;
};

class MadeProperty : public ::testing::TestWithParam<MadeCase> {};

// ∂ output_i / ∂ input_j must be exactly 0 whenever j does not come before i in the
// ordering, and (with random weights) non-zero for every j that does.
TEST_P(MadeProperty, JacobianIsZeroExactlyWhereTheOrderingSays) {
  torch::manual_seed(3);
  const int64_t d = 5, p = 3;
  nn::MADE made(nn::MADEOptions(d, p)
                    .hidden({32, 32, 32})
                    .ordering(GetParam().ordering)
                    .seed(11)
                    .residual(GetParam().residual)
                    .context_features(GetParam().context));
  made->to(at::kDouble);
  randomize(*made);
  Tensor x = at::randn({4, d}, at::kDouble).requires_grad_(true);
  Tensor ctx = GetParam().context ? at::randn({4, GetParam().context}, at::kDouble) : Tensor();
  Tensor out = made->forward(x, ctx);
  ASSERT_EQ(out.sizes(), at::IntArrayRef({4, d, p}));
  const auto& degree = made->input_degrees();
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t q = 0; q < p; ++q) {
      Tensor grad = torch::autograd::grad({out.select(1, i).select(1, q).sum()}, {x}, {}, true,
                                          false, true)[0];
      if (!grad.defined()) grad = at::zeros_like(x);
      for (int64_t j = 0; j < d; ++j) {
        const double g = grad.select(1, j).abs().max().item<double>();
        if (degree[j] >= degree[i]) {
          EXPECT_EQ(g, 0.0) << "output " << i << " depends on input " << j;
        } else {
          EXPECT_GT(g, 0.0) << "output " << i << " ignores earlier input " << j;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Orderings, MadeProperty,
    ::testing::Values(MadeCase{"natural", false, 0}, MadeCase{"reversed", false, 0},
                      MadeCase{"random", false, 0}, MadeCase{"random", true, 0},
                      MadeCase{"natural", false, 2}, MadeCase{"reversed", true, 3}),
    [](const auto& info) {
      return info.param.ordering + (info.param.residual ? "_residual" : "") +
             (info.param.context ? "_context" : "");
    });

TEST(Made, MasksAreBuffersSavedWithTheModel) {
  nn::MADE made(nn::MADEOptions(3, 2).hidden({8}));
  int masks = 0;
  for (const auto& b : made->named_buffers()) masks += b.key().find("mask") != std::string::npos;
  EXPECT_EQ(masks, 2);
  EXPECT_THROW(nn::MADE(nn::MADEOptions(3, 2).ordering("sideways")), ConfigError);
  EXPECT_THROW(nn::MADE(nn::MADEOptions(3, 2).hidden({8, 16}).residual(true)), ConfigError);
}

}  // namespace
