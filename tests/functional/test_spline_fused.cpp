// The fused rational-quadratic spline kernel (functional/rational_quadratic_fused.cpp)
// against the plain-ATen reference (rational_quadratic_spline_reference): values,
// logabsdet, gradients with respect to inputs and params, unused outputs, shapes and
// strides, and the double-backward fallback. The other spline tests (test_splines.cpp) call
// the public function, which is the fused kernel for CPU float32/float64, so they check the
// fused path's own guarantees; this file is where the reference itself is exercised.
//
// How closely the two can agree. Both evaluate the same formulas in the same order, but
// the exponentials of their softmaxes come from different implementations (glibc for
// float64 and polynomials for float32 here, SLEEF in ATen; they differ by an ulp in about
// one call in ten), so for general parameters their knots differ in the last bit in about
// half the rows. Extreme bins amplify that without
// bound: a bin of the minimum height holds 2B·1e-3 = 6e-3, so an ulp of a knot near 3 is a
// relative 4e-5 of its height in float32; next to a knot with a small derivative, the
// inverse's logabsdet moves by ~0.1 when the knot moves by an ulp in float64. Hence three
// kinds of comparison:
//  - parameters whose softmax and softplus are exact (logits 0 and −1000, derivative
//    logits −1000 or above the softplus threshold 20): the knots and derivatives agree bit
//    for bit and everything else is compared at the full tolerance, every kind of input;
//  - random parameters in float64, inputs off the knots: a tolerance of 1e-10;
//  - float32 against the float64 reference: the fused kernel is at least as accurate as
//    the float32 reference (its gradients are computed in double and are more accurate).

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/function.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "zflow/core/kernels.h"
#include "zflow/functional/rational_quadratic.h"

#include "support/spline_knots.h"

using namespace zflow;
using functional::rational_quadratic_spline;
using functional::rational_quadratic_spline_reference;
using functional::SplineOptions;
using functional::SplineResult;

namespace {

constexpr double kBound = 3.0;

at::TensorOptions opts(at::ScalarType dtype) { return at::TensorOptions(dtype); }

SplineOptions default_options() {
  SplineOptions o;
  o.tail_bound = kBound;
  return o;
}

// Minimum sizes and derivative 2⁻¹⁰: with the power-of-two regime below every fraction,
// knot and derivative is exact in float32, so float32 and float64 share their knots and
// the float64 reference is the exact answer for the float32 kernels.
SplineOptions power_of_two_options() {
  SplineOptions o = default_options();
  o.min_bin_width = o.min_bin_height = o.min_derivative = std::ldexp(1.0, -10);
  return o;
}

// Parameter regimes.
enum class Regime {
  kExact,       // size logits 0 or −1000, derivative logits −1000, 21.5, 25 or 40
  kPowerOfTwo,  // the same with 2^j of the K size logits 0 (power_of_two_options)
  kRandom,      // scale · N(0, 1)
  kPlusMinus20  // ±20 at random: the softmax and softplus at their extremes
};

std::string name(Regime regime, double scale) {
  switch (regime) {
    case Regime::kExact:
      return "exact";
    case Regime::kPowerOfTwo:
      return "power-of-two";
    case Regime::kRandom:
      return "random " + std::to_string(scale);
    case Regime::kPlusMinus20:
      return "±20";
  }
  return "";
}

// Raw parameters [n, 3K − 1]. The exact regimes have bins of the minimum size next to
// bins holding the rest (steep and flat bins) and derivatives from the minimum to 40.
at::Tensor make_params(int64_t n, int64_t bins, Regime regime, double scale) {
  const int64_t count = functional::spline_param_count(bins);
  const auto f32 = opts(at::kFloat);
  at::Tensor derivatives =
      at::tensor({-1000.0, 21.5, 25.0, 40.0}, f32).index({at::randint(0, 4, {n, bins - 1})});
  switch (regime) {
    case Regime::kExact:
      return at::cat({at::randint(0, 2, {n, 2 * bins}, f32) * -1000.0, derivatives}, 1);
    case Regime::kPowerOfTwo: {
      auto sizes = [&] {
        const int64_t levels = static_cast<int64_t>(std::log2(static_cast<double>(bins))) + 1;
        at::Tensor big = at::pow(2, at::randint(0, levels, {n, 1}));
        at::Tensor order = at::argsort(at::rand({n, bins}), int64_t{1}, false);
        return at::where(order < big, at::zeros({n, bins}, f32), at::full({n, bins}, -1000.0, f32));
      };
      return at::cat({sizes(), sizes(), derivatives}, 1);
    }
    case Regime::kRandom:
      return at::randn({n, count}, f32) * scale;
    case Regime::kPlusMinus20:
      return (at::randint(0, 2, {n, count}, f32) * 2 - 1) * 20.0;
  }
  return {};
}

at::Tensor knots_from(const at::Tensor& raw, double min_size) {
  return zflow::testing::knots_from(raw, min_size, kBound);
}

// Inputs [n] for params [n, 3K − 1] (of the dtype wanted), cycling through every kind of
// awkward value, by element index i % 8: 0–3 random N(0, 2.5²) (about 23 % outside
// [−B, B]); 4 exactly on a knot of the map evaluated (x-knots forward, y-knots inverse) or,
// without `on_knots`, random too; 5 ±B; 6 one ulp inside ±B; 7 one ulp outside ±B or far
// outside (1e30, 1e300 in float64).
at::Tensor make_inputs(const at::Tensor& params, int64_t bins, bool inverse, const SplineOptions& o,
                       bool on_knots) {
  const int64_t n = params.size(0);
  const auto dtype = params.scalar_type();
  const bool f32 = dtype == at::kFloat;
  at::Tensor index = at::arange(n);
  at::Tensor group = at::div(index, 8, "floor");
  at::Tensor kind = index % 8;
  at::Tensor sign =
      at::where(group % 2 == 0, at::ones({n}, opts(dtype)), -at::ones({n}, opts(dtype)));
  const double inside_b =
      f32 ? std::nextafter(static_cast<float>(kBound), 0.0f) : std::nextafter(kBound, 0.0);
  const double outside_b =
      f32 ? std::nextafter(static_cast<float>(kBound), 10.0f) : std::nextafter(kBound, 10.0);
  at::Tensor x = at::randn({n}, opts(dtype)) * 2.5;
  if (on_knots) {
    at::Tensor knots = inverse ? knots_from(params.narrow(1, bins, bins), o.min_bin_height)
                               : knots_from(params.narrow(1, 0, bins), o.min_bin_width);
    at::Tensor on_knot = knots.gather(1, (group % (bins + 1)).unsqueeze(1)).squeeze(1);
    x = at::where(kind == 4, on_knot, x);
  }
  x = at::where(kind == 5, sign * kBound, x);
  x = at::where(kind == 6, sign * inside_b, x);
  at::Tensor far =
      at::where(at::div(group, 2, "floor") % 2 == 0, at::full({n}, outside_b, opts(dtype)),
                at::full({n}, f32 ? 1e30 : 1e300, opts(dtype)));
  return at::where(kind == 7, sign * far, x);
}

struct Evaluation {
  at::Tensor outputs, logabsdet, grad_inputs, grad_params;
};

using Spline = SplineResult (*)(const at::Tensor&, const at::Tensor&, bool, const SplineOptions&);

SplineResult fused(const at::Tensor& x, const at::Tensor& p, bool inverse, const SplineOptions& o) {
  return rational_quadratic_spline(x, p, inverse, o);
}
SplineResult reference(const at::Tensor& x, const at::Tensor& p, bool inverse,
                       const SplineOptions& o) {
  return rational_quadratic_spline_reference(x, p, inverse, o);
}

// Values, and the gradients of Σ g_y·outputs + Σ g_l·logabsdet (either g may be left
// undefined: that output is then unused). Everything is cast to `dtype` first.
Evaluation evaluate(Spline spline, at::ScalarType dtype, const at::Tensor& inputs,
                    const at::Tensor& params, bool inverse, const SplineOptions& o,
                    const at::Tensor& g_y, const at::Tensor& g_l) {
  at::Tensor x = inputs.detach().to(dtype).clone().requires_grad_(true);
  at::Tensor p = params.detach().to(dtype).clone().requires_grad_(true);
  SplineResult r = spline(x, p, inverse, o);
  std::vector<at::Tensor> outs, grads;
  if (g_y.defined()) {
    outs.push_back(r.outputs);
    grads.push_back(g_y.to(dtype));
  }
  if (g_l.defined()) {
    outs.push_back(r.logabsdet);
    grads.push_back(g_l.to(dtype));
  }
  auto g = torch::autograd::grad(outs, {x, p}, grads, /*retain_graph=*/c10::nullopt,
                                 /*create_graph=*/false, /*allow_unused=*/true);
  return {r.outputs.detach(), r.logabsdet.detach(), g[0], g[1]};
}

// Per-element errors |a − b| / max(|b|, 1), b the reference: relative above magnitude 1,
// absolute below.
at::Tensor errors(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor a64 = a.to(at::kDouble), b64 = b.to(at::kDouble);
  return ((a64 - b64).abs() / b64.abs().clamp_min(1.0)).reshape({-1});
}
double max_error(const at::Tensor& a, const at::Tensor& b) {
  return errors(a, b).max().item<double>();
}
double percentile(const at::Tensor& e, double q) {
  at::Tensor sorted = std::get<0>(e.sort());
  const int64_t i = std::min<int64_t>(sorted.numel() - 1, static_cast<int64_t>(q * sorted.numel()));
  return sorted[i].item<double>();
}

// Per-element errors of the gradient: for each element its gradient vector v = (∂L/∂x,
// ∂L/∂params) ∈ R^3K, compared norm-wise, ‖v − v_ref‖∞ / max(‖v_ref‖∞, 1). Per component
// would be wrong: the softmax's backward σ_l (g_l − Σ σ_i g_i) cancels, and a component
// that is tiny next to the gradients it came from (as large as ∂L/∂x, by translation
// invariance: moving x and both knots of its bin together changes nothing) keeps an error
// of the order of those.
at::Tensor gradient_errors(const Evaluation& a, const Evaluation& b) {
  const int64_t n = a.grad_inputs.numel();
  auto vector = [n](const Evaluation& e) {
    return at::cat({e.grad_inputs.reshape({n, 1}), e.grad_params.reshape({n, -1})}, 1)
        .to(at::kDouble);
  };
  at::Tensor va = vector(a), vb = vector(b);
  return (va - vb).abs().amax(1) / vb.abs().amax(1).clamp_min(1.0);
}

// The three compared quantities: outputs, logabsdet (per element, relative above 1) and the
// gradient (norm-wise per element).
const char* const kQuantities[] = {"outputs", "logabsdet", "gradient"};
std::vector<at::Tensor> all_errors(const Evaluation& a, const Evaluation& b) {
  return {errors(a.outputs, b.outputs), errors(a.logabsdet, b.logabsdet), gradient_errors(a, b)};
}

// One configuration: inputs of `shape`, params shape × (3K − 1), random upstream
// gradients for both outputs.
struct Case {
  int64_t bins;
  Regime regime;
  double scale;
  bool inverse;
  at::ScalarType dtype;
  std::vector<int64_t> shape{1200};

  std::string str() const {
    std::string s = std::string(c10::toString(dtype)) + ", K " + std::to_string(bins) + ", " +
                    name(regime, scale) + (inverse ? ", inverse" : ", forward") + ", shape [";
    for (int64_t d : shape) s += " " + std::to_string(d);
    return s + " ]";
  }
  SplineOptions options() const {
    return regime == Regime::kPowerOfTwo ? power_of_two_options() : default_options();
  }
  bool exact_knots() const { return regime == Regime::kExact || regime == Regime::kPowerOfTwo; }
};

struct Data {
  at::Tensor inputs, params, g_y, g_l;
};

// The knots are used as inputs only where both implementations have the same knots.
Data make_data(const Case& c) {
  int64_t n = 1;
  for (int64_t d : c.shape) n *= d;
  at::Tensor params = make_params(n, c.bins, c.regime, c.scale).to(c.dtype);
  at::Tensor inputs = make_inputs(params, c.bins, c.inverse, c.options(), c.exact_knots());
  std::vector<int64_t> param_shape = c.shape;
  param_shape.push_back(params.size(1));
  return {inputs.reshape(c.shape), params.reshape(param_shape), at::randn(c.shape, opts(c.dtype)),
          at::randn(c.shape, opts(c.dtype))};
}

class SplineFusedTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(7); }
};

TEST_F(SplineFusedTest, PublicFunctionUsesTheFusedKernelOnTheCpu) {
  for (auto dtype : {at::kFloat, at::kDouble}) {
    at::Tensor x = at::randn({4}, opts(dtype)).requires_grad_(true);
    at::Tensor p = at::randn({4, 23}, opts(dtype));
    EXPECT_TRUE(functional::detail::fused_spline_applies(x, p));
    auto r = rational_quadratic_spline(x, p, false, default_options());
    ASSERT_TRUE(r.outputs.grad_fn() != nullptr);
    EXPECT_NE(r.outputs.grad_fn()->name().find("FusedSpline"), std::string::npos)
        << r.outputs.grad_fn()->name();
  }
  EXPECT_FALSE(functional::detail::fused_spline_applies(at::zeros({4}, opts(at::kBFloat16)),
                                                        at::zeros({4, 23}, opts(at::kBFloat16))));
  // The process-wide switch of core/kernels.h selects the reference.
  use_fused_kernels(false);
  at::Tensor x = at::randn({4}).requires_grad_(true);
  auto r = rational_quadratic_spline(x, at::randn({4, 23}), false, default_options());
  use_fused_kernels(true);
  EXPECT_EQ(r.outputs.grad_fn()->name().find("FusedSpline"), std::string::npos)
      << r.outputs.grad_fn()->name();
  // The reference checks its arguments like the public function.
  at::Tensor z = at::zeros({5, 3}, opts(at::kDouble));
  EXPECT_THROW(
      rational_quadratic_spline_reference(z, at::zeros({5, 3, 4}, opts(at::kDouble)), false),
      c10::Error);
  EXPECT_THROW(rational_quadratic_spline_reference(z, at::zeros({5, 3, 5}), false), c10::Error);
}

// Knots agree bit for bit (exact regime): every kind of input, knots included, K = 1, 2,
// 8, 20 and 80 (80 is beyond the kernel's 64-bin stack scratch). Per element, with
// err = |fused − reference| / max(|reference|, 1):
//   float64: err ≤ 1e-12 for outputs, logabsdet, grad_inputs and grad_params;
//   float32: err ≤ 1e-6 for outputs; ≤ 4e-6 for logabsdet, the difference of two float32
//            logarithms of magnitude up to ~16 whose ulp is 2e-6 (glibc's logf against
//            SLEEF's). float32 gradients: Float32IsAsAccurateAsTheReference.
TEST_F(SplineFusedTest, MatchesReferenceWhereTheKnotsAgree) {
  for (auto dtype : {at::kDouble, at::kFloat}) {
    for (int64_t bins : {1, 2, 8, 20, 80}) {
      for (bool inverse : {false, true}) {
        const Case c{bins, Regime::kExact, 0.0, inverse, dtype};
        const Data d = make_data(c);
        const Evaluation f =
            evaluate(fused, dtype, d.inputs, d.params, inverse, c.options(), d.g_y, d.g_l);
        const Evaluation r =
            evaluate(reference, dtype, d.inputs, d.params, inverse, c.options(), d.g_y, d.g_l);
        const auto e = all_errors(f, r);
        for (size_t q = 0; q < e.size(); ++q) {
          const double err = e[q].max().item<double>();
          if (dtype == at::kDouble) {
            EXPECT_LE(err, 1e-12) << c.str() << ": " << kQuantities[q];
          } else if (q < 2) {
            EXPECT_LE(err, q == 0 ? 1e-6 : 4e-6) << c.str() << ": " << kQuantities[q];
          }
        }
      }
    }
  }
}

// Random parameters in float64, every kind of input except the knots: per element
// |fused − reference| / max(|reference|, 1) ≤ 1e-10 for all four quantities. (Their knots
// differ in the last bit here; measured worst 2e-11, at K = 20 and 80 with scale-3 logits.)
TEST_F(SplineFusedTest, MatchesReferenceOnRandomParameters) {
  const std::vector<std::pair<Regime, double>> regimes = {{Regime::kRandom, 0.3},
                                                          {Regime::kRandom, 1.0},
                                                          {Regime::kRandom, 3.0},
                                                          {Regime::kRandom, 20.0},
                                                          {Regime::kPlusMinus20, 0.0}};
  for (int64_t bins : {2, 8, 20, 80}) {
    for (const auto& [regime, scale] : regimes) {
      for (bool inverse : {false, true}) {
        const Case c{bins, regime, scale, inverse, at::kDouble};
        const Data d = make_data(c);
        const Evaluation f =
            evaluate(fused, at::kDouble, d.inputs, d.params, inverse, c.options(), d.g_y, d.g_l);
        const Evaluation r = evaluate(reference, at::kDouble, d.inputs, d.params, inverse,
                                      c.options(), d.g_y, d.g_l);
        const auto e = all_errors(f, r);
        for (size_t q = 0; q < e.size(); ++q) {
          EXPECT_LE(e[q].max().item<double>(), 1e-10) << c.str() << ": " << kQuantities[q];
        }
      }
    }
  }
}

// float32: both implementations against the float64 reference on the same float32 numbers,
// err = |· − reference_float64| / max(|reference_float64|, 1) per element. The fused
// kernel must be at least as accurate as the float32 reference: for each quantity its 99th
// percentile error ≤ 2 × the reference's + 1e-7, and its worst ≤ 8 × the reference's
// worst + 1e-6 (the worst of 2000 elements is a noisy statistic, dominated by the worst
// conditioned element: measured ratios of the 99th percentiles 0.5–1.12, of the worst
// 0.3–3.5). The forward arithmetic is the same, so the values' errors are alike samples of
// the same rounding; the gradients are computed in double, more accurately.
// In the power-of-two regime float32 and float64 share their knots, so the float64
// reference is the exact answer and the inputs include the knots; elsewhere the errors
// include the float32 rounding of the knots, the same for both implementations.
TEST_F(SplineFusedTest, Float32IsAsAccurateAsTheReference) {
  const std::vector<std::pair<Regime, double>> regimes = {
      {Regime::kPowerOfTwo, 0.0}, {Regime::kRandom, 0.3},  {Regime::kRandom, 1.0},
      {Regime::kRandom, 3.0},     {Regime::kRandom, 20.0}, {Regime::kPlusMinus20, 0.0}};
  for (int64_t bins : {2, 8, 16, 80}) {
    for (const auto& [regime, scale] : regimes) {
      for (bool inverse : {false, true}) {
        Case c{bins, regime, scale, inverse, at::kFloat};
        c.shape = {2000};
        const Data d = make_data(c);
        const SplineOptions o = c.options();
        const Evaluation f =
            evaluate(fused, at::kFloat, d.inputs, d.params, inverse, o, d.g_y, d.g_l);
        const Evaluation r32 =
            evaluate(reference, at::kFloat, d.inputs, d.params, inverse, o, d.g_y, d.g_l);
        const Evaluation r64 =
            evaluate(reference, at::kDouble, d.inputs, d.params, inverse, o, d.g_y, d.g_l);
        const auto efs = all_errors(f, r64), ers = all_errors(r32, r64);
        for (size_t q = 0; q < efs.size(); ++q) {
          const at::Tensor& ef = efs[q];
          const at::Tensor& er = ers[q];
          const double f99 = percentile(ef, 0.99), r99 = percentile(er, 0.99);
          const double fmax = ef.max().item<double>(), rmax = er.max().item<double>();
          EXPECT_LE(f99, 2 * r99 + 1e-7) << c.str() << ": " << kQuantities[q];
          EXPECT_LE(fmax, 8 * rmax + 1e-6) << c.str() << ": " << kQuantities[q];
        }
      }
    }
  }
}

// 2-D and 3-D inputs, non-contiguous inputs and expanded (stride-0) params give what
// contiguous 1-D ones give.
TEST_F(SplineFusedTest, ShapesAndStrides) {
  for (std::vector<int64_t> shape : std::vector<std::vector<int64_t>>{{30, 40}, {5, 6, 40}}) {
    for (bool inverse : {false, true}) {
      Case c{8, Regime::kExact, 0.0, inverse, at::kDouble};
      c.shape = shape;
      const Data d = make_data(c);
      const Evaluation f =
          evaluate(fused, at::kDouble, d.inputs, d.params, inverse, c.options(), d.g_y, d.g_l);
      const Evaluation r =
          evaluate(reference, at::kDouble, d.inputs, d.params, inverse, c.options(), d.g_y, d.g_l);
      EXPECT_EQ(f.outputs.sizes(), r.outputs.sizes());
      EXPECT_EQ(f.logabsdet.sizes(), r.logabsdet.sizes());
      EXPECT_EQ(f.grad_inputs.sizes(), r.grad_inputs.sizes());
      EXPECT_EQ(f.grad_params.sizes(), r.grad_params.sizes());
      const auto e = all_errors(f, r);
      for (size_t q = 0; q < e.size(); ++q) {
        EXPECT_LE(e[q].max().item<double>(), 1e-12) << c.str() << ": " << kQuantities[q];
      }
    }
  }
  // A transposed input and params expanded along a dimension.
  at::Tensor x = (at::randn({40, 30}, opts(at::kDouble)) * 2).t();  // [30, 40], strided
  at::Tensor row = at::randn({1, 40, 23}, opts(at::kDouble));
  at::Tensor p = row.expand({30, 40, 23});
  ASSERT_FALSE(x.is_contiguous());
  for (bool inverse : {false, true}) {
    at::Tensor g_y = at::randn({30, 40}, opts(at::kDouble));
    at::Tensor g_l = at::randn({30, 40}, opts(at::kDouble));
    const SplineOptions o = default_options();
    const Evaluation strided = evaluate(fused, at::kDouble, x, p, inverse, o, g_y, g_l);
    const Evaluation dense =
        evaluate(fused, at::kDouble, x.contiguous(), p.contiguous(), inverse, o, g_y, g_l);
    EXPECT_TRUE(at::equal(strided.outputs, dense.outputs));
    EXPECT_TRUE(at::equal(strided.logabsdet, dense.logabsdet));
    EXPECT_TRUE(at::equal(strided.grad_inputs, dense.grad_inputs));
    EXPECT_TRUE(at::equal(strided.grad_params, dense.grad_params));
    // Through the expansion: the gradient of the shared row sums over the expanded dim.
    at::Tensor shared = row.clone().requires_grad_(true);
    SplineResult r = rational_quadratic_spline(x, shared.expand({30, 40, 23}), inverse, o);
    (r.outputs * g_y + r.logabsdet * g_l).sum().backward();
    EXPECT_LE(max_error(shared.grad(), dense.grad_params.sum(0, true)), 1e-10);
  }
}

// Only one output used: the other's gradient arrives undefined and counts as zero.
TEST_F(SplineFusedTest, UnusedOutputs) {
  for (bool inverse : {false, true}) {
    const Case c{8, Regime::kRandom, 1.0, inverse, at::kDouble};
    const Data d = make_data(c);
    for (int used = 0; used < 2; ++used) {
      const at::Tensor g_y = used == 0 ? d.g_y : at::Tensor();
      const at::Tensor g_l = used == 1 ? d.g_l : at::Tensor();
      const Evaluation f =
          evaluate(fused, at::kDouble, d.inputs, d.params, inverse, c.options(), g_y, g_l);
      const Evaluation r =
          evaluate(reference, at::kDouble, d.inputs, d.params, inverse, c.options(), g_y, g_l);
      EXPECT_LE(gradient_errors(f, r).max().item<double>(), 1e-10) << c.str() << " used " << used;
    }
  }
}

// Backward with create_graph = true differentiates the reference, so second derivatives
// are the reference's: d/d(x, params) of Σ a·∂L/∂x + Σ b·∂L/∂params for L = Σ g_y·outputs +
// Σ g_l·logabsdet, with the inputs inside [−B, B] and outside, forward and inverse, and
// with only the params requiring gradients.
TEST_F(SplineFusedTest, DoubleBackwardMatchesReference) {
  for (bool inverse : {false, true}) {
    for (bool inputs_require_grad : {true, false}) {
      const int64_t n = 300;
      const int64_t bins = 8;
      at::Tensor params = at::randn({n, functional::spline_param_count(bins)}, opts(at::kDouble));
      at::Tensor inputs = at::randn({n}, opts(at::kDouble)) * 2.5;
      at::Tensor g_y = at::randn({n}, opts(at::kDouble)), g_l = at::randn({n}, opts(at::kDouble));
      at::Tensor a = at::randn({n}, opts(at::kDouble)), b = at::randn_like(params);
      std::vector<at::Tensor> second[2], first[2];
      int which = 0;
      for (Spline spline : {fused, reference}) {
        at::Tensor x = inputs.clone().requires_grad_(inputs_require_grad);
        at::Tensor p = params.clone().requires_grad_(true);
        SplineResult r = spline(x, p, inverse, default_options());
        at::Tensor loss = (r.outputs * g_y).sum() + (r.logabsdet * g_l).sum();
        std::vector<at::Tensor> wrt = {p};
        if (inputs_require_grad) wrt.push_back(x);
        auto g = torch::autograd::grad({loss}, wrt, {}, /*retain_graph=*/true,
                                       /*create_graph=*/true);
        at::Tensor inner = (g[0] * b).sum();
        if (inputs_require_grad) inner = inner + (g[1] * a).sum();
        first[which] = {g[0].detach()};
        second[which] = torch::autograd::grad({inner}, wrt);
        ++which;
      }
      EXPECT_LE(max_error(first[0][0], first[1][0]), 1e-12);
      for (size_t i = 0; i < second[0].size(); ++i) {
        EXPECT_LE(max_error(second[0][i], second[1][i]), 1e-12)
            << "inverse " << inverse << " wrt " << i;
        EXPECT_GT(second[0][i].abs().max().item<double>(), 0.0);
      }
    }
  }
}

}  // namespace
