// The safeguarded Newton root-finder (functional/monotone_root.h): machine precision on
// easy and hostile increasing functions, the bisection fallback when Newton's steps are
// useless, non-finite targets passing through, and a clear error instead of a hang.

#include "zflow/functional/monotone_root.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#include "support/expect_error.h"
#include "zflow/core/error.h"

using zflow::functional::solve_increasing;

namespace {

TEST(SolveIncreasing, CubeRootsToMachinePrecision) {
  const at::Tensor y = at::randn({200}, at::kDouble) * 100;
  int calls = 0;
  const at::Tensor v = solve_increasing(
      [&](const at::Tensor& v, const at::Tensor&) {
        ++calls;
        return std::make_pair(v * v * v, 3 * v * v);
      },
      y, -y.abs() - 1, y.abs() + 1, y, 200, "cube root");
  EXPECT_LT(((v * v * v - y).abs() / (1 + y.abs())).max().item<double>(), 1e-14);
  EXPECT_LT(calls, 100);
}

// A slope that misleads Newton's method completely (a thousand times too large): the
// steps barely move, so the bracket's midpoint must do the work. (The stopping test trusts
// the slope: a step of 4 ulps with a slope 1000 times too large leaves the root hundreds of
// ulps away; the layers' slopes are exact.)
TEST(SolveIncreasing, BisectionRescuesUselessNewtonSteps) {
  const at::Tensor y = at::linspace(-5, 5, 11, at::kDouble);
  const at::Tensor v = solve_increasing(
      [](const at::Tensor& v, const at::Tensor&) {
        return std::make_pair(at::sinh(v), 1000 * at::ones_like(v));
      },
      y, at::full_like(y, -10), at::full_like(y, 10), at::zeros_like(y), 200, "sinh");
  EXPECT_LT((v - at::asinh(y)).abs().max().item<double>(), 1e-11);
}

// Converged elements are not evaluated again: the stragglers cost what they are.
TEST(SolveIncreasing, EvaluatesOnlyTheElementsStillUnfinished) {
  const at::Tensor y = at::linspace(1, 4, 8, at::kDouble).view({2, 4});
  // The first row starts at its root, the second far from it.
  const at::Tensor start = at::cat({y[0].unsqueeze(0), (y[1] * 50).unsqueeze(0)});
  std::vector<int64_t> sizes;
  std::vector<int64_t> first_indices;
  const at::Tensor v = solve_increasing(
      [&](const at::Tensor& v, const at::Tensor& index) {
        sizes.push_back(index.numel());
        if (first_indices.empty()) {
          first_indices.assign(index.data_ptr<int64_t>(),
                               index.data_ptr<int64_t>() + index.numel());
        }
        return std::make_pair(at::sinh(v), at::cosh(v));
      },
      at::sinh(y), at::zeros_like(y), at::full_like(y, 300), start, 200, "sinh");
  EXPECT_LT((v - y).abs().max().item<double>(), 1e-12);
  ASSERT_GE(sizes.size(), 3u);
  EXPECT_EQ(sizes[0], 8);
  EXPECT_EQ(first_indices, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(sizes[1], 4);  // the first row converged at once
  EXPECT_LE(sizes.back(), 4);
}

TEST(SolveIncreasing, NonFiniteTargetsPassThroughAsNaN) {
  const at::Tensor y = at::tensor({1.0, NAN, INFINITY, -2.0}, at::kDouble);
  const at::Tensor v = solve_increasing(
      [](const at::Tensor& v, const at::Tensor&) { return std::make_pair(v, at::ones_like(v)); }, y,
      y - 1, y + 1, y, 50, "identity");
  EXPECT_DOUBLE_EQ(v[0].item<double>(), 1.0);
  EXPECT_TRUE(std::isnan(v[1].item<double>()));
  EXPECT_TRUE(std::isnan(v[2].item<double>()));
  EXPECT_DOUBLE_EQ(v[3].item<double>(), -2.0);
}

TEST(SolveIncreasing, NoConvergenceOrNaNFunctionIsAClearError) {
  const at::Tensor y = at::randn({4}, at::kDouble);
  zflow::testing::expect_error<zflow::Error>(
      [&] {
        solve_increasing([](const at::Tensor& v,
                            const at::Tensor&) { return std::make_pair(at::sinh(v), v * 0 + 1); },
                         y, y - 100, y + 100, y, 3, "slow layer");
      },
      {"slow layer's root-finding did not converge in 3 iterations", "max_iterations"});
  zflow::testing::expect_error<zflow::Error>(
      [&] {
        solve_increasing(
            [](const at::Tensor& v, const at::Tensor&) {
              return std::make_pair(v * NAN, at::ones_like(v));
            },
            y, y - 1, y + 1, y, 20, "nan layer");
      },
      {"nan layer's root-finding did not converge in 20"});
}

}  // namespace
