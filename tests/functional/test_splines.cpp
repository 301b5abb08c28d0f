// Rational-quadratic splines (functional/rational_quadratic.h): round trips, log-derivatives
// against autograd, and the numerical edge cases (knots, ±B, one ulp either side, far outside,
// extreme parameters) in float32 and float64.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include <cmath>
#include <limits>
#include <vector>

#include "zflow/functional/rational_quadratic.h"

#include "support/spline_knots.h"

using namespace zflow;
using functional::rational_quadratic_spline;
using functional::SplineOptions;

namespace {

constexpr int64_t kBins = 8;
constexpr double kBound = 3.0;
const at::ScalarType kDtypes[] = {at::kFloat, at::kDouble};

SplineOptions options() {
  SplineOptions o;
  o.tail_bound = kBound;
  return o;
}

at::TensorOptions opts(at::ScalarType dtype) { return at::TensorOptions(dtype); }

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }
bool all_finite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }

// Random raw parameters [n, 3K − 1] of a given scale; scale 20 drives the softmax and the
// softplus to their extremes (bins at their minimum size, derivatives near the minimum or 20).
at::Tensor random_params(int64_t n, double scale, at::ScalarType dtype) {
  return at::randn({n, functional::spline_param_count(kBins)}, opts(dtype)) * scale;
}

// ±20 exactly: the most extreme bins (one bin takes almost everything, the rest their minimum).
at::Tensor extreme_params(int64_t n, at::ScalarType dtype) {
  return (at::randint(0, 2, {n, functional::spline_param_count(kBins)}, opts(dtype)) * 2 - 1) *
         20.0;
}

at::Tensor knots_from(const at::Tensor& raw, double min_size) {
  return zflow::testing::knots_from(raw, min_size, kBound);
}
at::Tensor x_knots(const at::Tensor& params) {
  return knots_from(params.narrow(-1, 0, kBins), options().min_bin_width);
}
at::Tensor y_knots(const at::Tensor& params) {
  return knots_from(params.narrow(-1, kBins, kBins), options().min_bin_height);
}

// Runs the spline with gradients on; returns {outputs, logabsdet, d(loss)/d inputs,
// d(loss)/d params} for loss = Σ outputs·w + Σ logabsdet with fixed random weights w.
struct Evaluated {
  at::Tensor outputs, logabsdet, input_grad, param_grad;
};
Evaluated evaluate(const at::Tensor& inputs, const at::Tensor& params, bool inverse) {
  at::Tensor x = inputs.detach().clone().requires_grad_(true);
  at::Tensor p = params.detach().clone().requires_grad_(true);
  auto r = rational_quadratic_spline(x, p, inverse, options());
  at::Tensor loss = (r.outputs * at::rand_like(r.outputs)).sum() + r.logabsdet.sum();
  auto grads = torch::autograd::grad({loss}, {x, p});
  return {r.outputs.detach(), r.logabsdet.detach(), grads[0], grads[1]};
}

// Parameters for each row of `inputs` [n]: a random row repeated, or per-row random ones.
at::Tensor params_for(int64_t n, double scale, at::ScalarType dtype) {
  return scale == 0 ? at::zeros({n, functional::spline_param_count(kBins)}, opts(dtype))
                    : random_params(n, scale, dtype);
}

// Every awkward input: the knots of `params` (per row), ±B, ±B ± 1 ulp, 0, far outside.
std::vector<double> edge_values(at::ScalarType dtype) {
  const double b32 = static_cast<double>(std::nextafter(static_cast<float>(kBound), 0.0f));
  const double a32 = static_cast<double>(std::nextafter(static_cast<float>(kBound), 10.0f));
  const double below = dtype == at::kFloat ? b32 : std::nextafter(kBound, 0.0);
  const double above = dtype == at::kFloat ? a32 : std::nextafter(kBound, 10.0);
  std::vector<double> v = {0.0,  kBound, -kBound, below, -below, above, -above, 1e6,
                           -1e6, 1e30,   -1e30,   4.0,   -4.0,   1e-30, -1e-30};
  if (dtype == at::kDouble) {
    v.push_back(1e300);
    v.push_back(-1e300);
  } else {
    v.push_back(3e38);
    v.push_back(-3e38);
  }
  return v;
}

class SplineTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(2024); }
};

// (a) inverse(forward(x)) = x, inside and outside [−B, B], for moderate and extreme params.
// Extreme params make the map steep (dy/dx up to ~2·10³) and flat (down to ~10⁻⁷) inside
// some bins, so the round trip is only as accurate as its conditioning allows: the error
// in x is measured against 1 + 1/f'(x) (forward then inverse) and the error in y against
// 1 + f'(x̂) (inverse then forward). For gentle params it is checked absolutely too.
TEST_F(SplineTest, RoundTripInsideAndOutside) {
  for (auto dtype : kDtypes) {
    const double tol = dtype == at::kDouble ? 1e-11 : 1e-5;
    for (double scale : {0.0, 0.3, 1.0, 5.0, 20.0, -1.0}) {
      const int64_t n = 4000;
      const std::string where =
          std::string("dtype ") + c10::toString(dtype) + " scale " + std::to_string(scale);
      at::Tensor params = scale < 0 ? extreme_params(n, dtype) : params_for(n, scale, dtype);
      at::Tensor x = at::randn({n}, opts(dtype)) * 2.5;  // about 23% outside [−3, 3]
      auto fwd = rational_quadratic_spline(x, params, false, options());
      auto inv = rational_quadratic_spline(fwd.outputs, params, true, options());
      at::Tensor slope = at::exp(fwd.logabsdet);
      EXPECT_LT(max_abs((inv.outputs - x) / (1 + 1 / slope)), tol) << where;
      if (scale <= 0.3 && scale >= 0) {
        EXPECT_LT(max_abs(inv.outputs - x), dtype == at::kDouble ? 1e-12 : 1e-5) << where;
        EXPECT_LT(max_abs(inv.logabsdet + fwd.logabsdet), dtype == at::kDouble ? 1e-11 : 1e-4)
            << where;
      }
      // The inverse's logabsdet is minus the forward's at the point it returns.
      auto again = rational_quadratic_spline(inv.outputs, params, false, options());
      EXPECT_LT(max_abs(again.logabsdet + inv.logabsdet), dtype == at::kDouble ? 1e-9 : 1e-3)
          << where;
      // And forward(inverse(y)) = y.
      at::Tensor y = at::randn({n}, opts(dtype)) * 2.5;
      auto x_hat = rational_quadratic_spline(y, params, true, options());
      auto back = rational_quadratic_spline(x_hat.outputs, params, false, options());
      EXPECT_LT(max_abs((back.outputs - y) / (1 + at::exp(back.logabsdet))), tol) << where;
      // Outside the interval: the identity, exactly.
      at::Tensor outside = x.abs() > kBound;
      EXPECT_TRUE(at::equal(fwd.outputs.masked_select(outside), x.masked_select(outside)));
      EXPECT_TRUE(at::equal(inv.outputs.masked_select(outside), x.masked_select(outside)));
      EXPECT_EQ(max_abs(fwd.logabsdet.masked_select(outside)), 0.0);
      EXPECT_EQ(max_abs(inv.logabsdet.masked_select(outside)), 0.0);
    }
  }
}

// (b) logabsdet = log(dy/dx) from autograd (y.sum() wrt x gives the elementwise derivative),
// forward and inverse.
TEST_F(SplineTest, LogabsdetMatchesAutogradDerivative) {
  const auto dtype = at::kDouble;
  for (double scale : {0.5, 3.0, 20.0, -1.0}) {
    const int64_t n = 2000;
    at::Tensor params = scale < 0 ? extreme_params(n, dtype) : random_params(n, scale, dtype);
    for (bool inverse : {false, true}) {
      at::Tensor x = (at::randn({n}, opts(dtype)) * 2.5).requires_grad_(true);
      auto r = rational_quadratic_spline(x, params, inverse, options());
      at::Tensor derivative = torch::autograd::grad({r.outputs.sum()}, {x})[0];
      EXPECT_LT(max_abs(r.logabsdet - at::log(derivative)), 1e-8)
          << "scale " << scale << " inverse " << inverse;
    }
  }
  // Float32 to a float32 tolerance.
  at::Tensor params = random_params(1000, 2.0, at::kFloat);
  at::Tensor x = (at::randn({1000}) * 2.5).requires_grad_(true);
  auto r = rational_quadratic_spline(x, params, false, options());
  at::Tensor derivative = torch::autograd::grad({r.outputs.sum()}, {x})[0];
  EXPECT_LT(max_abs(r.logabsdet - at::log(derivative)), 1e-4);
}

// (c) inputs exactly on every knot, at ±B, ±B ± 1 ulp, 0 and far outside: finite outputs,
// logabsdet and gradients wrt inputs and params; the identity outside.
TEST_F(SplineTest, EdgeInputsGiveFiniteValuesAndGradients) {
  for (auto dtype : kDtypes) {
    for (double scale : {0.0, 1.0, 20.0, -1.0}) {
      for (bool inverse : {false, true}) {
        const int64_t rows = 16;
        at::Tensor row_params =
            scale < 0 ? extreme_params(rows, dtype) : params_for(rows, scale, dtype);
        // Knots of the map being evaluated: x-knots for forward, y-knots for inverse.
        at::Tensor knots = inverse ? y_knots(row_params) : x_knots(row_params);  // [rows, K+1]
        if (scale == 0) {
          at::Tensor uniform = at::arange(kBins + 1, opts(dtype)) * (2.0 * kBound / kBins) - kBound;
          EXPECT_LT(max_abs(knots - uniform), 1e-6);
        }
        auto edges = edge_values(dtype);
        at::Tensor edge = at::tensor(edges, opts(at::kDouble)).to(dtype);
        const int64_t per_row = kBins + 1 + static_cast<int64_t>(edges.size());
        at::Tensor inputs = at::cat({knots, edge.unsqueeze(0).expand({rows, -1})}, 1);
        at::Tensor params = row_params.unsqueeze(1).expand({rows, per_row, row_params.size(1)});
        auto e = evaluate(inputs, params, inverse);
        const std::string where = std::string("dtype ") + c10::toString(dtype) + " scale " +
                                  std::to_string(scale) + (inverse ? " inverse" : " forward");
        EXPECT_TRUE(all_finite(e.outputs)) << where;
        EXPECT_TRUE(all_finite(e.logabsdet)) << where;
        EXPECT_TRUE(all_finite(e.input_grad)) << where;
        EXPECT_TRUE(all_finite(e.param_grad)) << where;
        at::Tensor outside = inputs.abs() > kBound;
        EXPECT_TRUE(at::equal(e.outputs.masked_select(outside), inputs.masked_select(outside)))
            << where;
        EXPECT_EQ(max_abs(e.logabsdet.masked_select(outside)), 0.0) << where;
        // ±B map to ±B with log-derivative 0 (boundary derivatives are 1).
        at::Tensor at_bound = inputs.abs() == kBound;
        const double tol = dtype == at::kDouble ? 1e-12 : 1e-5;
        EXPECT_LT(max_abs((e.outputs - inputs).masked_select(at_bound)), tol) << where;
        EXPECT_LT(max_abs(e.logabsdet.masked_select(at_bound)), dtype == at::kDouble ? 1e-9 : 1e-3)
            << where;
      }
    }
  }
}

// (d) The inverse at y exactly on the y-knots returns the x-knots; at ±B it returns ±B.
TEST_F(SplineTest, InverseOnKnotsReturnsKnots) {
  for (auto dtype : kDtypes) {
    for (double scale : {0.0, 2.0, 20.0, -1.0}) {
      const int64_t rows = 32;
      at::Tensor params = scale < 0 ? extreme_params(rows, dtype) : params_for(rows, scale, dtype);
      at::Tensor yk = y_knots(params);
      at::Tensor xk = x_knots(params);
      at::Tensor expanded = params.unsqueeze(1).expand({rows, kBins + 1, params.size(1)});
      auto e = evaluate(yk, expanded, true);
      EXPECT_TRUE(all_finite(e.input_grad) && all_finite(e.param_grad));
      const double tol = dtype == at::kDouble ? 1e-9 : 1e-3;
      EXPECT_LT(max_abs(e.outputs - xk), tol) << "scale " << scale;
      EXPECT_EQ(max_abs(e.outputs.select(1, 0) + kBound), 0.0);
      EXPECT_LT(max_abs(e.outputs.select(1, kBins) - kBound), tol);
      // And the forward at the x-knots gives the y-knots.
      auto f = evaluate(xk, expanded, false);
      EXPECT_LT(max_abs(f.outputs - yk), tol) << "scale " << scale;
    }
  }
}

// (e) Elements far outside do not leak NaN into the gradients of a batch that mixes them
// with inside elements; their own parameters get exactly zero gradient.
TEST_F(SplineTest, MaskedElementsDoNotLeakIntoGradients) {
  for (auto dtype : kDtypes) {
    for (bool inverse : {false, true}) {
      const int64_t n = 512;
      at::Tensor params = extreme_params(n, dtype);
      at::Tensor inside = at::rand({n}, opts(dtype)) * 5.8 - 2.9;
      at::Tensor far = at::where(at::rand({n}, opts(dtype)) > 0.5, at::full({n}, 1e6, opts(dtype)),
                                 at::full({n}, dtype == at::kDouble ? -1e300 : -1e30, opts(dtype)));
      at::Tensor pick = at::arange(n) % 2 == 0;
      at::Tensor inputs = at::where(pick, inside, far);
      auto e = evaluate(inputs, params, inverse);
      EXPECT_TRUE(all_finite(e.param_grad));
      EXPECT_TRUE(all_finite(e.input_grad));
      EXPECT_EQ(max_abs(e.param_grad.index({~pick})), 0.0);
      EXPECT_GT(max_abs(e.param_grad.index({pick})), 0.0);
      // Outside: dy/dx = 1 from the identity (loss weight w ∈ [0, 1)).
      EXPECT_TRUE((e.input_grad.index({~pick}) >= 0).all().item<bool>());
    }
  }
}

// (f) Monotonicity: sorted inputs give sorted outputs, forward and inverse.
TEST_F(SplineTest, SortedInputsGiveSortedOutputs) {
  for (auto dtype : kDtypes) {
    for (double scale : {1.0, 20.0, -1.0}) {
      at::Tensor row = scale < 0 ? extreme_params(1, dtype) : random_params(1, scale, dtype);
      const int64_t n = 20001;
      at::Tensor x = at::linspace(-4.0, 4.0, n, opts(dtype));
      at::Tensor params = row.expand({n, row.size(1)});
      for (bool inverse : {false, true}) {
        at::Tensor y = rational_quadratic_spline(x, params, inverse, options()).outputs;
        at::Tensor steps = y.narrow(0, 1, n - 1) - y.narrow(0, 0, n - 1);
        EXPECT_GE(steps.min().item<double>(), 0.0) << "scale " << scale << " inverse " << inverse;
      }
    }
  }
}

// (g) Continuity at ±B: just inside and just outside agree (float64: ±1e-12 around ±B, where
// the log-derivative is continuous too; float32: one ulp either side).
TEST_F(SplineTest, ContinuousAtTheBounds) {
  for (auto dtype : kDtypes) {
    const int64_t n = 256;
    at::Tensor params = at::cat({random_params(n / 2, 3.0, dtype), extreme_params(n / 2, dtype)});
    for (double sign : {-1.0, 1.0}) {
      const double edge = sign * kBound;
      double in_value = edge - sign * 1e-12;
      double out_value = edge + sign * 1e-12;
      if (dtype == at::kFloat) {
        in_value = std::nextafter(static_cast<float>(edge), 0.0f);
        out_value = std::nextafter(static_cast<float>(edge), static_cast<float>(10 * edge));
      }
      for (bool inverse : {false, true}) {
        auto in = rational_quadratic_spline(at::full({n}, in_value, opts(dtype)), params, inverse,
                                            options());
        auto out = rational_quadratic_spline(at::full({n}, out_value, opts(dtype)), params, inverse,
                                             options());
        EXPECT_LT(max_abs(in.outputs - out.outputs), 1e-6)
            << "edge " << edge << " dtype " << dtype << " inverse " << inverse;
        if (dtype == at::kDouble) {
          EXPECT_LT(max_abs(in.logabsdet - out.logabsdet), 1e-5);
        }
      }
    }
  }
}

// One bin (3K − 1 = 2 parameters, no inner derivative) is the identity whatever the params;
// malformed shapes and dtypes are clear errors.
TEST_F(SplineTest, SingleBinIsIdentityAndShapesAreChecked) {
  at::Tensor x = at::randn({5, 3}, opts(at::kDouble)) * 3;
  at::Tensor params = at::randn({5, 3, 2}, opts(at::kDouble)) * 5;  // K = 1: 3K − 1 = 2
  auto r = rational_quadratic_spline(x, params, false, options());
  EXPECT_LT(max_abs(r.outputs - x), 1e-12);
  EXPECT_LT(max_abs(r.logabsdet), 1e-12);
  EXPECT_THROW(rational_quadratic_spline(x, at::zeros({5, 3, 4}, opts(at::kDouble)), false),
               c10::Error);
  EXPECT_THROW(rational_quadratic_spline(x, at::zeros({5, 2, 5}, opts(at::kDouble)), false),
               c10::Error);
  EXPECT_THROW(rational_quadratic_spline(x, at::zeros({5, 3, 5}), false), c10::Error);
}

}  // namespace
