// Permutation (transforms/permutation.h): z_i = x_{indices[i]}, its inverse, a zero
// log-determinant, the reverse and seeded random orders, and invalid index lists.

#include "zflow/transforms/permutation.h"

#include <gtest/gtest.h>

#include <vector>

#include <ATen/ATen.h>

#include "support/expect_error.h"
#include "zflow/core/error.h"
#include "zflow/core/random.h"
#include "zflow/flows/registry.h"

using namespace zflow;
using zflow::testing::expect_error;

namespace {

TEST(Permutation, OutputIThenIsInputIndicesI) {
  Permutation p(std::vector<int64_t>{2, 0, 3, 1});
  const at::Tensor x = at::arange(8, at::kDouble).view({2, 4});
  const auto fwd = p->forward(x);
  EXPECT_TRUE(at::equal(
      fwd.outputs, at::tensor({2.0, 0.0, 3.0, 1.0, 6.0, 4.0, 7.0, 5.0}, at::kDouble).view({2, 4})));
  EXPECT_EQ(fwd.logabsdet.sizes(), at::IntArrayRef({2}));
  EXPECT_EQ(fwd.logabsdet.scalar_type(), at::kDouble);
  EXPECT_EQ(fwd.logabsdet.abs().max().item<double>(), 0.0);
  const auto inv = p->inverse(fwd.outputs);
  EXPECT_TRUE(at::equal(inv.outputs, x));
  EXPECT_EQ(inv.logabsdet.abs().max().item<double>(), 0.0);
  EXPECT_THROW(p->forward(at::randn({2, 5})), c10::Error);
}

TEST(Permutation, ReverseAndSeededRandomOrders) {
  EXPECT_EQ(PermutationImpl::reverse(4)->indices(), (std::vector<int64_t>{3, 2, 1, 0}));
  EXPECT_EQ(PermutationImpl::random(9, 4)->indices(), random_permutation(9, 4));
  EXPECT_NE(PermutationImpl::random(9, 4)->indices(), PermutationImpl::random(9, 5)->indices());
  // Through the registry, as a saved spec would build it.
  auto random =
      make_transform({{"type", "permutation"}, {"features", 9}, {"kind", "random"}, {"seed", 4}});
  EXPECT_EQ(random->spec()["indices"], Json(random_permutation(9, 4)));
  auto reverse = make_transform({{"type", "permutation"}, {"features", 3}});
  EXPECT_EQ(reverse->spec(), Json({{"type", "permutation"}, {"indices", {2, 1, 0}}}));
  EXPECT_THROW(make_transform({{"type", "permutation"}, {"features", 3}, {"kind", "sideways"}}),
               ConfigError);
}

TEST(Permutation, InvalidIndicesAreConfigErrors) {
  expect_error<ConfigError>([] { Permutation(std::vector<int64_t>{}); }, {"at least one"});
  expect_error<ConfigError>(
      [] {
        Permutation(std::vector<int64_t>{0, 0, 1});
      },
      {"not a permutation", "0..2"});
  expect_error<ConfigError>(
      [] {
        Permutation(std::vector<int64_t>{0, 3, 1});
      },
      {"not a permutation"});
  expect_error<ConfigError>(
      [] {
        Permutation(std::vector<int64_t>{-1, 0});
      },
      {"not a permutation"});
}

}  // namespace
