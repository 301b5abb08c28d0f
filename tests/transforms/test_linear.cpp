// LULinear (transforms/linear.h): W = P L U starts as the permutation P; z = W x + b with
// log|det J| = log|det W| per sample (H·W times that on images, Glow's 1×1 convolution);
// the inverse; the spec; configuration errors.

#include "zflow/transforms/linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "support/modules.h"
#include "zflow/core/error.h"
#include "zflow/core/random.h"

using namespace zflow;
using zflow::testing::max_abs;

namespace {

// With the exp diagonal the start is exact: W = P, z_i = x_{perm[i]}, log|det| = 0. The
// softplus diagonal starts at 1 + 1e-5 (its floor), so only close to that.
TEST(LULinear, StartsAsItsPermutation) {
  LULinear identity(4, "exp");
  identity->to(at::kDouble);
  EXPECT_TRUE(at::equal(identity->weight(), at::eye(4, at::kDouble)));

  LULinear t(5, "exp", 7);
  t->to(at::kDouble);
  const std::vector<int64_t> order = random_permutation(5, 7);
  ASSERT_NE(order, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  const at::Tensor index = at::tensor(order, at::kLong);
  EXPECT_TRUE(at::equal(t->weight(), at::eye(5, at::kDouble).index_select(0, index)));
  const at::Tensor x = at::randn({3, 5}, at::kDouble);
  const auto fwd = t->forward(x);
  EXPECT_TRUE(at::equal(fwd.outputs, x.index_select(1, index)));
  EXPECT_EQ(max_abs(fwd.logabsdet), 0.0);

  LULinear soft(5, "softplus", 7);
  soft->to(at::kDouble);
  EXPECT_LT(max_abs(soft->weight() - at::eye(5, at::kDouble).index_select(0, index)), 2e-5);
  EXPECT_LT(max_abs(soft->forward(x).logabsdet), 1e-4);
}

TEST(LULinear, IsAnAffineMapWithItsLogDeterminant) {
  for (const char* diagonal : {"softplus", "exp"}) {
    torch::manual_seed(3);
    LULinear t(4, diagonal, 2);
    t->to(at::kDouble);
    zflow::testing::randomize_parameters(*t);
    const at::Tensor w = t->weight();
    const at::Tensor x = at::randn({6, 4}, at::kDouble);
    const auto fwd = t->forward(x);
    EXPECT_LT(max_abs(fwd.outputs - (x.mm(w.t()) + t->bias)), 1e-12) << diagonal;
    const double logdet = std::get<1>(at::linalg_slogdet(w)).item<double>();
    EXPECT_GT(std::abs(logdet), 1e-3) << diagonal;  // randomised: not volume preserving
    EXPECT_LT(max_abs(fwd.logabsdet - logdet), 1e-10) << diagonal;
    const auto inv = t->inverse(fwd.outputs);
    EXPECT_LT(max_abs(inv.outputs - x), 1e-10) << diagonal;
    EXPECT_LT(max_abs(inv.logabsdet + logdet), 1e-10) << diagonal;
  }
}

TEST(LULinear, OnImagesActsOnTheChannelsOfEveryPixel) {
  torch::manual_seed(4);
  LULinear t(3, "softplus", 1);
  t->to(at::kDouble);
  zflow::testing::randomize_parameters(*t);
  const at::Tensor x = at::randn({2, 3, 4, 5}, at::kDouble);
  const auto fwd = t->forward(x);
  ASSERT_EQ(fwd.outputs.sizes(), x.sizes());
  const at::Tensor expected =
      at::einsum("oc,bchw->bohw", {t->weight(), x}) + t->bias.view({1, 3, 1, 1});
  EXPECT_LT(max_abs(fwd.outputs - expected), 1e-12);
  const double logdet = std::get<1>(at::linalg_slogdet(t->weight())).item<double>();
  EXPECT_LT(max_abs(fwd.logabsdet - 20 * logdet), 1e-9);
  EXPECT_LT(max_abs(t->inverse(fwd.outputs).outputs - x), 1e-10);
}

TEST(LULinear, SpecAndErrors) {
  LULinear t(3, "exp", 9);
  EXPECT_EQ(t->spec(),
            Json({{"type", "lu_linear"}, {"features", 3}, {"diagonal", "exp"}, {"seed", 9}}));
  EXPECT_THROW(LULinear(0), ConfigError);
  EXPECT_THROW(LULinear(3, "square"), ConfigError);
  EXPECT_THROW(t->forward(at::randn({2, 4})), c10::Error);
}

}  // namespace
