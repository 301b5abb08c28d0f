// MADE (nn/made.h): the autoregressive property and its masks.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include <string>
#include <vector>

#include "zflow/core/error.h"
#include "zflow/core/random.h"
#include "zflow/nn/made.h"

using namespace zflow;
using at::Tensor;

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

// The masks alone, without weights: the number of paths from input j to output unit i·P + q
// is the product of the 0/1 masks, and it is non-zero exactly when j comes before i in the
// ordering (every earlier input reaches every later output once the hidden layers are at
// least D − 1 wide).
TEST(Made, MaskProductConnectsExactlyTheEarlierInputs) {
  const int64_t d = 6, p = 2;
  for (const std::string ordering : {"natural", "reversed", "random"}) {
    nn::MADE made(nn::MADEOptions(d, p).hidden({8, 10}).ordering(ordering).seed(5));
    const auto buffers = made->named_buffers();
    ASSERT_EQ(buffers.size(), 3u) << ordering;
    at::Tensor paths = buffers["layers.0.mask"];
    ASSERT_EQ(paths.sizes(), at::IntArrayRef({8, d}));
    paths = buffers["layers.1.mask"].mm(paths);
    paths = buffers["output.mask"].mm(paths);
    ASSERT_EQ(paths.sizes(), at::IntArrayRef({d * p, d}));

    const auto& degree = made->input_degrees();
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t q = 0; q < p; ++q) {
        for (int64_t j = 0; j < d; ++j) {
          const bool connected = paths[i * p + q][j].item<float>() > 0;
          EXPECT_EQ(connected, degree[j] < degree[i])
              << ordering << ": output " << i << "." << q << ", input " << j;
        }
      }
    }
  }
}

// The degrees are the positions in the ordering, counted from 1.
TEST(Made, DegreesFollowTheOrdering) {
  const int64_t d = 5;
  EXPECT_EQ(nn::MADE(nn::MADEOptions(d, 1).ordering("natural"))->input_degrees(),
            (std::vector<int64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(nn::MADE(nn::MADEOptions(d, 1).ordering("reversed"))->input_degrees(),
            (std::vector<int64_t>{5, 4, 3, 2, 1}));
  const std::vector<int64_t> order = random_permutation(d, 9);
  const auto degree = nn::MADE(nn::MADEOptions(d, 1).ordering("random").seed(9))->input_degrees();
  for (int64_t pos = 0; pos < d; ++pos) EXPECT_EQ(degree[order[pos]], pos + 1) << pos;
  // The same seed gives the same ordering.
  EXPECT_EQ(nn::MADE(nn::MADEOptions(d, 1).ordering("random").seed(9))->input_degrees(), degree);
}

// A fresh MADE outputs zeros (zero-initialised output layer), of shape [B, D, P].
TEST(Made, StartsAtZeroWithTheShapeOfItsParameters) {
  nn::MADE made(nn::MADEOptions(4, 3).hidden({16}));
  const at::Tensor out = made->forward(at::randn({7, 4}));
  EXPECT_EQ(out.sizes(), at::IntArrayRef({7, 4, 3}));
  EXPECT_EQ(out.abs().max().item<double>(), 0.0);
  EXPECT_THROW(made->forward(at::randn({7, 5})), c10::Error);
  EXPECT_THROW(nn::MADE(nn::MADEOptions(0, 2)), ConfigError);
  EXPECT_THROW(nn::MADE(nn::MADEOptions(3, 2).hidden({})), ConfigError);
}

}  // namespace
