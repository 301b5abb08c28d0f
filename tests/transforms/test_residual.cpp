// Planar, radial and Sylvester flows (transforms/residual.h): the log-determinants at
// hand-computed points, invertibility for any raw parameters (the forward's root-finding
// converges and undoes the closed-form inverse), a clear error instead of a hang when it
// cannot converge, the densities a flow of them gives its own samples, and bad specs.

#include "zflow/transforms/residual.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include <ATen/ATen.h>
#include <torch/utils.h>

#include "support/expect_error.h"
#include "support/modules.h"
#include "zflow/core/error.h"
#include "zflow/distributions/normal.h"
#include "zflow/flows/flow.h"
#include "zflow/flows/registry.h"

using namespace zflow;
using zflow::testing::expect_error;
using zflow::testing::max_abs;

namespace {

at::Tensor doubles(std::initializer_list<double> values) {
  return at::tensor(std::vector<double>(values), at::kDouble);
}

void set(at::Tensor& parameter, const at::Tensor& value) {
  torch::NoGradGuard no_grad;
  parameter.copy_(value);
}

double softplus_inverse(double y) { return std::log(std::expm1(y)); }

double softplus(double x) { return std::log1p(std::exp(x)); }

// Rezende & Mohamed 2015, eq. 10–12 and appendix A.1, by hand at u = (1, 0), w = (1, 1),
// b = 0.5, z = (0.2, −0.1).
TEST(Planar, MatchesThePaperAtAHandComputedPoint) {
  Planar t(2);
  t->to(at::kDouble);
  set(t->u, doubles({1.0, 0.0}));
  set(t->w, doubles({1.0, 1.0}));
  set(t->b, doubles({0.5}));
  const double m = -1 + softplus(1.0);  // m(wᵀu), wᵀu = 1
  const double uh0 = 1.0 + (m - 1.0) * 0.5, uh1 = (m - 1.0) * 0.5;
  const double th = std::tanh(0.2 - 0.1 + 0.5);
  const auto out = t->inverse(doubles({0.2, -0.1}).view({1, 2}));
  EXPECT_NEAR(out.outputs[0][0].item<double>(), 0.2 + uh0 * th, 1e-14);
  EXPECT_NEAR(out.outputs[0][1].item<double>(), -0.1 + uh1 * th, 1e-14);
  // wᵀû = m: log|1 + m·tanh'(wᵀz + b)|.
  EXPECT_NEAR(out.logabsdet.item<double>(), std::log(1 + m * (1 - th * th)), 1e-14);
  const auto back = t->forward(out.outputs);
  EXPECT_LT(max_abs(back.outputs - doubles({0.2, -0.1}).view({1, 2})), 1e-14);
  EXPECT_NEAR(back.logabsdet.item<double>(), -out.logabsdet.item<double>(), 1e-14);
}

// Eq. 13–14 at z0 = 0, α = 1, β = 2, z = (3, 4): r = 5, h = 1/6, x = z (1 + β h) = 4z/3 and
// log|det| = (D − 1) log(1 + βh) + log(1 + βh − βr h²) = log(4/3) + log(38/36). Then with
// β = −0.5 (contracting, β ≥ −α).
TEST(Radial, MatchesThePaperAtAHandComputedPoint) {
  Radial t(2);
  t->to(at::kDouble);
  set(t->center, doubles({0.0, 0.0}));
  set(t->raw_alpha, doubles({softplus_inverse(1.0)}));
  set(t->raw_beta, doubles({softplus_inverse(3.0)}));  // α + β
  const at::Tensor z = doubles({3.0, 4.0}).view({1, 2});
  auto out = t->inverse(z);
  EXPECT_LT(max_abs(out.outputs - z * 4.0 / 3.0), 1e-14);
  EXPECT_NEAR(out.logabsdet.item<double>(), std::log(4.0 / 3.0) + std::log(38.0 / 36.0), 1e-14);
  EXPECT_LT(max_abs(t->forward(out.outputs).outputs - z), 1e-14);

  set(t->raw_beta, doubles({softplus_inverse(0.5)}));
  out = t->inverse(z);
  const double h = 1.0 / 6.0, beta = -0.5;
  EXPECT_LT(max_abs(out.outputs - z * (1 + beta * h)), 1e-14);
  EXPECT_NEAR(out.logabsdet.item<double>(),
              std::log(1 + beta * h) + std::log(1 + beta * h - beta * 5.0 * h * h), 1e-14);
  EXPECT_LT(max_abs(t->forward(out.outputs).outputs - z), 1e-14);
}

// van den Berg et al. 2018: log|det| = Σ_i log(1 + r_ii r̃_ii tanh'(a_i)), a = R̃ Qᵀ z + b; and
// Q is orthogonal.
TEST(Sylvester, LogabsdetIsTheTriangularDiagonalsAndQIsOrthogonal) {
  Sylvester t(SylvesterOptions(3).num_reflections(3));
  t->to(at::kDouble);
  zflow::testing::randomize_parameters(*t, 0.8);
  const at::Tensor q = t->orthogonal();
  EXPECT_LT(max_abs(at::matmul(q.t(), q) - at::eye(3, at::kDouble)), 1e-14);
  const at::Tensor z = at::randn({5, 3}, at::kDouble);
  const at::Tensor r = at::triu(t->r_entries, 1) + at::diag(at::tanh(t->r_raw_diagonal));
  const at::Tensor rt =
      at::triu(t->r_tilde_entries, 1) + at::diag(at::tanh(t->r_tilde_raw_diagonal));
  const at::Tensor a = at::matmul(at::matmul(z, q), rt.t()) + t->bias;
  const at::Tensor expected =
      at::log1p(at::diagonal(r) * at::diagonal(rt) / at::cosh(a).pow(2)).sum(1);
  const auto out = t->inverse(z);
  EXPECT_LT(max_abs(out.logabsdet - expected), 1e-13);
  EXPECT_LT(max_abs(out.outputs - z - at::matmul(at::matmul(at::tanh(a), r.t()), q.t())), 1e-13);
}

// As zflow's other layers, each starts as the identity: a flow of them is its base.
TEST(ResidualFlows, StartAsTheIdentity) {
  for (const char* type : {"planar", "radial", "sylvester"}) {
    auto t = make_transform({{"type", type}, {"features", 3}});
    const at::Tensor z = at::randn({10, 3});
    const auto out = t->inverse(z);
    EXPECT_LT(max_abs(out.outputs - z), 1e-6) << type;
    EXPECT_LT(max_abs(out.logabsdet), 1e-6) << type;
  }
}

// Large random raw parameters (the constraints are on the parameterisation, not on the
// values), far inputs: every forward converges, undoes the inverse, and the two
// log-determinants are finite and opposite.
TEST(ResidualFlows, InvertibleForAnyRawParameters) {
  torch::manual_seed(3);
  const std::vector<Json> specs = {
      {{"type", "planar"}, {"features", 3}},
      {{"type", "radial"}, {"features", 3}},
      {{"type", "sylvester"}, {"features", 3}, {"num_reflections", 2}},
      {{"type", "sylvester"}, {"features", 3}, {"num_reflections", 0}}};
  for (const auto& spec : specs) {
    for (double scale : {0.1, 3.0, 10.0, 30.0}) {
      for (int trial = 0; trial < 5; ++trial) {
        SCOPED_TRACE(spec.dump() + " scale " + std::to_string(scale));
        auto t = make_transform(spec);
        t->to(at::kDouble);
        zflow::testing::randomize_parameters(*t, scale);
        const at::Tensor z = at::randn({64, 3}, at::kDouble) * scale;
        const auto inv = t->inverse(z);
        const auto fwd = t->forward(inv.outputs);
        EXPECT_TRUE(at::isfinite(inv.logabsdet).all().item<bool>());
        EXPECT_LT(max_abs(fwd.outputs - z), 1e-9 * (1 + scale * scale));
        // Saturated diagonals make 1 + r_ii r̃_ii tanh' nearly 0 and the log-determinant
        // ill-conditioned: errors of ~1e-9 at scale 10.
        EXPECT_LT(max_abs(fwd.logabsdet + inv.logabsdet), 1e-8 * (1 + scale * scale));
      }
    }
  }
}

// Planar's constraint: wᵀû > −1 whatever u and w, so the scalar map a ↦ a + wᵀû tanh(a + b)
// of the pre-image equation increases; along w the planar map is then increasing.
TEST(Planar, ConstraintKeepsTheMapIncreasingAlongW) {
  torch::manual_seed(5);
  for (int trial = 0; trial < 20; ++trial) {
    Planar t(2);
    t->to(at::kDouble);
    zflow::testing::randomize_parameters(*t, 5.0);
    // A line through the point −b/‖w‖² w (where tanh' peaks), along w.
    const at::Tensor w = t->w.detach();
    const at::Tensor steps = at::linspace(-4, 4, 801, at::kDouble).unsqueeze(1);
    const at::Tensor line = (-t->b.detach() / w.dot(w)) * w + steps * w / w.norm().pow(2);
    const at::Tensor along = at::matmul(t->inverse(line).outputs, w);
    EXPECT_GT((along.slice(0, 1) - along.slice(0, 0, -1)).min().item<double>(), 0.0);
  }
}

// Forward's outputs come from a detached root plus one Newton step under autograd: their
// gradients to every parameter must be those of the exact pre-image (central differences).
TEST(ResidualFlows, ForwardGradientsAreThoseOfThePreImage) {
  torch::manual_seed(8);
  for (const Json& spec :
       {Json{{"type", "planar"}, {"features", 3}}, Json{{"type", "radial"}, {"features", 3}},
        Json{{"type", "sylvester"}, {"features", 3}, {"num_reflections", 2}}}) {
    SCOPED_TRACE(spec.dump());
    auto t = make_transform(spec);
    t->to(at::kDouble);
    zflow::testing::randomize_parameters(*t, 0.8);
    const at::Tensor x = at::randn({4, 3}, at::kDouble);
    const at::Tensor weights = at::randn({4, 3}, at::kDouble);
    auto loss = [&] {
      const auto out = t->forward(x);
      return (out.outputs * weights).sum() + out.logabsdet.sum();
    };
    t->zero_grad();
    loss().backward();
    torch::NoGradGuard no_grad;
    for (auto& p : t->parameters()) {
      const at::Tensor flat = p.view({-1});
      const at::Tensor grad = p.grad().view({-1});
      for (int64_t i = 0; i < flat.numel(); ++i) {
        const double h = 1e-6, saved = flat[i].item<double>();
        flat[i].fill_(saved + h);
        const double up = loss().item<double>();
        flat[i].fill_(saved - h);
        const double down = loss().item<double>();
        flat[i].fill_(saved);
        EXPECT_NEAR(grad[i].item<double>(), (up - down) / (2 * h), 1e-6);
      }
    }
  }
}

TEST(ResidualFlows, RootFindingThatCannotConvergeIsAClearError) {
  for (const Json& spec : {Json{{"type", "planar"}, {"features", 2}, {"max_iterations", 1}},
                           Json{{"type", "sylvester"}, {"features", 2}, {"max_iterations", 1}}}) {
    auto t = make_transform(spec);
    t->to(at::kDouble);
    zflow::testing::randomize_parameters(*t, 2.0);
    const at::Tensor x = at::randn({8, 2}, at::kDouble) * 3;
    expect_error<Error>(
        [&] { t->forward(x); },
        {spec_type(spec) + ": forward's root-finding did not converge in 1", "max_iterations"});
  }
  // NaN parameters: an error after max_iterations, not a hang.
  Planar nan_planar(2);
  set(nan_planar->u, at::full({2}, NAN));
  expect_error<Error>([&] { nan_planar->forward(at::randn({3, 2})); }, {"did not converge"});
  // NaN inputs pass through, as in every other transform.
  Planar planar(2);
  const auto out = planar->forward(at::full({2, 2}, NAN));
  EXPECT_TRUE(at::isnan(out.outputs).all().item<bool>());
}

// What variational inference relies on: the density a flow of these layers gives its own
// samples (closed form, noise → data) is the one log_prob finds by root-finding.
TEST(ResidualFlows, SampleDensitiesAgreeWithLogProb) {
  torch::manual_seed(11);
  auto stack = std::make_shared<CompositeTransformImpl>();
  for (int k = 0; k < 3; ++k) {
    stack->push_back(make_transform({{"type", "planar"}, {"features", 2}}));
    stack->push_back(make_transform({{"type", "radial"}, {"features", 2}}));
    stack->push_back(make_transform({{"type", "sylvester"}, {"features", 2}}));
  }
  auto flow = std::make_shared<FlowImpl>(
      stack, std::make_shared<StandardNormalImpl>(std::vector<int64_t>{2}));
  flow->to(at::kDouble);
  zflow::testing::randomize_parameters(*flow, 1.0);
  torch::NoGradGuard no_grad;
  const auto [x, log_q] = flow->sample_and_log_prob(500);
  EXPECT_LT(max_abs(flow->log_prob(x) - log_q), 1e-9);
}

TEST(ResidualFlows, BadSpecsAndShapesAreClearErrors) {
  expect_error<ConfigError>(
      [] {
        make_transform({{"type", "planar"}, {"features", 0}});
      },
      {"planar: features"});
  expect_error<ConfigError>(
      [] {
        make_transform({{"type", "planar"}, {"features", 2}, {"max_iterations", 0}});
      },
      {"planar: max_iterations"});
  expect_error<ConfigError>(
      [] {
        make_transform({{"type", "sylvester"}, {"features", 2}, {"num_reflections", -1}});
      },
      {"sylvester: num_reflections"});
  expect_error<ConfigError>(
      [] {
        make_transform({{"type", "radial"}, {"features", 2}, {"max_iterations", 5}});
      },
      {"max_iterations"});
  // Refused by the size checks before anything is allocated.
  expect_error<ConfigError>(
      [] {
        make_transform(
            {{"type", "sylvester"}, {"features", 2}, {"num_reflections", 1000000000000}});
      },
      {"num_reflections"});
  for (const char* type : {"planar", "radial", "sylvester"}) {
    auto t = make_transform({{"type", type}, {"features", 3}});
    try {
      t->inverse(at::randn({2, 4}));
      ADD_FAILURE() << type << ": no error";
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find(type), std::string::npos);
    }
  }
}

}  // namespace
