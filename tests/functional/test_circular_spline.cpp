// The circular rational-quadratic spline (functional/rational_quadratic.h): a diffeomorphism
// of the circle whose value and derivative are continuous across ±π, periodic in its input
// and inverted exactly (tests/transforms/test_circular.cpp has the layer built on it).

#include <gtest/gtest.h>

#include <cmath>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "zflow/functional/rational_quadratic.h"

using namespace zflow;
namespace F = zflow::functional;

namespace {

constexpr double kPi = 3.14159265358979323846;

F::SplineOptions circle() {
  F::SplineOptions o;
  o.tail_bound = kPi;
  return o;
}

/// Random parameters [n, 1, 3K] for n splines, large enough for very uneven bins.
at::Tensor random_params(int64_t n, int64_t bins, at::ScalarType dtype) {
  return at::randn({n, 1, F::circular_spline_param_count(bins)}, at::TensorOptions(dtype)) * 2;
}

TEST(CircularSpline, EndsAreFixedAndShareTheirDerivative) {
  at::manual_seed(1);
  const at::Tensor params = random_params(50, 6, at::kDouble);
  const auto at_lower = F::circular_rational_quadratic_spline(at::full({50, 1}, -kPi, at::kDouble),
                                                              params, false, circle());
  // Just below +π: +π itself is the same point of the circle as −π (wrapped onto it).
  const auto at_upper = F::circular_rational_quadratic_spline(
      at::full({50, 1}, kPi * (1 - 1e-15), at::kDouble), params, false, circle());
  EXPECT_LT((at_lower.outputs + kPi).abs().max().item<double>(), 1e-12);
  EXPECT_LT((at_upper.outputs - kPi).abs().max().item<double>(), 1e-12);
  // log f' on both sides of the seam: the same end derivative δ_0 = δ_K.
  EXPECT_LT((at_lower.logabsdet - at_upper.logabsdet).abs().max().item<double>(), 1e-9);
  // And it is a free parameter: not 1 for random parameters.
  EXPECT_GT(at_lower.logabsdet.abs().max().item<double>(), 0.1);
}

TEST(CircularSpline, IsPeriodicInItsInput) {
  at::manual_seed(2);
  const at::Tensor params = random_params(40, 5, at::kDouble);
  const at::Tensor x = (at::rand({40, 1}, at::kDouble) * 2 - 1) * kPi;
  const auto base = F::circular_rational_quadratic_spline(x, params, false, circle());
  for (double turns : {-3.0, 1.0, 7.0}) {
    const auto shifted =
        F::circular_rational_quadratic_spline(x + 2 * kPi * turns, params, false, circle());
    EXPECT_LT((shifted.outputs - base.outputs).abs().max().item<double>(), 1e-11) << turns;
    EXPECT_LT((shifted.logabsdet - base.logabsdet).abs().max().item<double>(), 1e-9) << turns;
  }
}

TEST(CircularSpline, InverseUndoesForwardAndLogDerivativeIsAutograds) {
  at::manual_seed(3);
  for (auto dtype : {at::kDouble, at::kFloat}) {
    const double tolerance = dtype == at::kDouble ? 1e-10 : 2e-4;
    const at::Tensor params = random_params(200, 8, dtype);
    const at::Tensor x =
        ((at::rand({200, 1}, at::TensorOptions(dtype)) * 2 - 1) * kPi).requires_grad_(true);
    const auto y = F::circular_rational_quadratic_spline(x, params, false, circle());
    const at::Tensor derivative = torch::autograd::grad({y.outputs.sum()}, {x})[0];
    EXPECT_LT((at::log(derivative) - y.logabsdet).abs().max().item<double>(), tolerance);
    const auto back = F::circular_rational_quadratic_spline(y.outputs, params, true, circle());
    // Measured where the map is well conditioned: in float32 a bin with a derivative near
    // min_derivative turns the output's rounding into a larger error in x.
    const auto again = F::circular_rational_quadratic_spline(back.outputs, params, false, circle());
    EXPECT_LT((again.outputs - y.outputs).abs().max().item<double>(), tolerance);
    if (dtype == at::kDouble) {
      EXPECT_LT((back.outputs - x).abs().max().item<double>(), tolerance);
      EXPECT_LT((back.logabsdet + y.logabsdet).abs().max().item<double>(), tolerance);
    }
  }
}

TEST(CircularSpline, ZeroParametersWithTheIdentityOffsetAreTheIdentity) {
  const at::Tensor params = F::identity_offset(
      at::zeros({9, 1, F::circular_spline_param_count(4)}, at::kDouble), 4, circle());
  const at::Tensor x = at::linspace(-kPi, kPi * 0.999, 9, at::kDouble).view({9, 1});
  const auto y = F::circular_rational_quadratic_spline(x, params, false, circle());
  EXPECT_LT((y.outputs - x).abs().max().item<double>(), 1e-12);
  EXPECT_LT(y.logabsdet.abs().max().item<double>(), 1e-12);
}

TEST(CircularSpline, ParametersOfTheLinearTailsSplineAreAnError) {
  const at::Tensor x = at::zeros({2, 1}, at::kDouble);
  EXPECT_THROW(F::circular_rational_quadratic_spline(
                   x, at::zeros({2, 1, F::spline_param_count(4)}, at::kDouble), false, circle()),
               c10::Error);
}

}  // namespace
