// The spline coupling layer (transforms/spline_coupling.h): round trip, log-determinant
// against the autograd Jacobian, gradients, context, float32, identity at initialisation and
// its spec. The spline itself is tested in tests/functional/test_splines.cpp.

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include <vector>

#include "zflow/core/error.h"
#include "zflow/transforms/spline_coupling.h"

using namespace zflow;

namespace {

constexpr int64_t kBins = 8;
constexpr double kBound = 3.0;

at::TensorOptions opts(at::ScalarType dtype) { return at::TensorOptions(dtype); }

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }
bool all_finite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }

class SplineTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(2024); }
};

// A spline coupling with a small tanh MLP conditioner.
SplineCoupling spline(std::vector<int64_t> mask, int64_t context, int64_t bins, double bound) {
  return SplineCoupling(SplineCouplingOptions(std::move(mask))
                            .conditioner(nn::mlp_conditioner(
                                nn::MLPOptions(0, 0).hidden_features(16).activation("tanh")))
                            .context_features(context)
                            .bins(bins)
                            .tail_bound(bound));
}

void randomize(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) p.add_(at::randn_like(p) * 0.3);
}

// log|det J| per sample from the autograd Jacobian (as in test_properties.cpp).
at::Tensor autograd_logabsdet(TransformImpl& t, const at::Tensor& x) {
  at::Tensor input = x.detach().requires_grad_(true);
  at::Tensor y = t.forward(input).outputs;
  std::vector<at::Tensor> rows;
  for (int64_t i = 0; i < y.size(1); ++i) {
    rows.push_back(torch::autograd::grad({y.select(1, i).sum()}, {input}, {}, true)[0]);
  }
  return std::get<1>(at::linalg_slogdet(at::stack(rows, 1)));
}

TEST_F(SplineTest, SplineCouplingRoundTripAndJacobian) {
  SplineCoupling t = spline(std::vector<int64_t>{1, 0, 1, 0}, 0, kBins, kBound);
  t->to(at::kDouble);
  randomize(*t);
  at::Tensor x = at::randn({6, 4}, opts(at::kDouble)) * 2;
  x[0][0].fill_(7.5);  // one transformed feature outside the interval
  auto fwd = t->forward(x);
  EXPECT_EQ(fwd.outputs.sizes(), x.sizes());
  EXPECT_EQ(fwd.logabsdet.sizes(), at::IntArrayRef({6}));
  EXPECT_GT(max_abs(fwd.outputs - x), 1e-3);  // randomised: not the identity
  auto inv = t->inverse(fwd.outputs);
  EXPECT_LT(max_abs(inv.outputs - x), 1e-9);
  EXPECT_LT(max_abs(fwd.logabsdet + inv.logabsdet), 1e-9);
  EXPECT_LT(max_abs(fwd.logabsdet - autograd_logabsdet(*t, x)), 1e-8);
  EXPECT_DOUBLE_EQ(fwd.outputs[0][0].item<double>(), 7.5);

  // Gradients reach every parameter and are finite.
  at::Tensor xg = x.clone().requires_grad_(true);
  auto out = t->forward(xg);
  (out.outputs.pow(2).sum() + out.logabsdet.sum()).backward();
  for (const auto& p : t->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(all_finite(p.value().grad())) << p.key();
    EXPECT_GT(max_abs(p.value().grad()), 0.0) << p.key();
  }

  // With a context: round trip, Jacobian, and the output depends on the context.
  SplineCoupling tc = spline(std::vector<int64_t>{1, 1, 1, 0}, 3, kBins, kBound);
  tc->to(at::kDouble);
  randomize(*tc);
  at::Tensor ctx = at::randn({6, 3}, opts(at::kDouble));
  auto fc = tc->forward(x, ctx);
  EXPECT_LT(max_abs(tc->inverse(fc.outputs, ctx).outputs - x), 1e-9);
  EXPECT_GT(max_abs(fc.outputs - tc->forward(x, at::randn({6, 3}, opts(at::kDouble))).outputs),
            1e-6);

  // Float32.
  SplineCoupling t32 = spline(std::vector<int64_t>{0, 1, 1, 0}, 0, 5, 2.0);
  randomize(*t32);
  at::Tensor x32 = at::randn({6, 4}) * 2;
  auto f32 = t32->forward(x32);
  auto i32 = t32->inverse(f32.outputs);
  EXPECT_LT(max_abs(i32.outputs - x32), 1e-4);
  EXPECT_LT(max_abs(f32.logabsdet + i32.logabsdet), 1e-4);
}

TEST_F(SplineTest, SplineCouplingStartsAsTheIdentity) {
  for (int64_t bins : {1, 2, 8, 32}) {
    SplineCoupling t = spline(std::vector<int64_t>{1, 0, 1, 0}, 0, bins, kBound);
    t->to(at::kDouble);
    at::Tensor x = at::randn({64, 4}, opts(at::kDouble)) * 2.5;
    auto fwd = t->forward(x);
    EXPECT_LT(max_abs(fwd.outputs - x), 1e-12) << bins << " bins";
    EXPECT_LT(max_abs(fwd.logabsdet), 1e-12) << bins << " bins";
    auto inv = t->inverse(x);
    EXPECT_LT(max_abs(inv.outputs - x), 1e-12) << bins << " bins";
    EXPECT_LT(max_abs(inv.logabsdet), 1e-12) << bins << " bins";
  }
}

TEST_F(SplineTest, SplineCouplingSpec) {
  SplineCoupling t = spline(std::vector<int64_t>{1, 1, 0}, 2, 6, 4.5);
  Json s = t->spec();
  EXPECT_EQ(s["type"], "spline_coupling");
  EXPECT_EQ(s["bins"], 6);
  EXPECT_EQ(s["tail_bound"], 4.5);
  EXPECT_EQ(s["context_features"], 2);
  EXPECT_EQ(s["mask"], Json({1, 1, 0}));
  EXPECT_NE(t->describe().find("bins 6"), std::string::npos);
  at::Tensor x = at::randn({3, 3});
  at::Tensor ctx = at::randn({3, 2});
  EXPECT_EQ(t->forward(x, ctx).outputs.sizes(), x.sizes());
  EXPECT_THROW(spline(std::vector<int64_t>{1, 0}, 0, 0, 3.0), ConfigError);
  EXPECT_THROW(spline(std::vector<int64_t>{1, 0}, 0, 8, 0.0), ConfigError);
  EXPECT_THROW(spline(std::vector<int64_t>{1, 0}, 0, 2000, 3.0), ConfigError);
}

}  // namespace
