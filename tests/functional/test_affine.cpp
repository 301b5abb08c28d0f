// The packed affine transformer of couplings and MAF (functional/affine.h; one pass forward,
// one backward) against its plain-autograd reference, on random inputs: values, gradients and
// second derivatives (create_graph). The rule of agreement is in support/agreement.h.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include "zflow/functional/affine.h"

#include "support/agreement.h"

using namespace zflow;
using zflow::testing::as_double_leaf;
using zflow::testing::expect_agree;
using zflow::testing::expect_close;

namespace {

struct AffineCase {
  at::ScalarType dtype;
  bool inverse;
};

class AffinePackedAgreement : public ::testing::TestWithParam<AffineCase> {};

TEST_P(AffinePackedAgreement, ValuesAndGradientsMatchTheReference) {
  const auto [dtype, inverse] = GetParam();
  torch::manual_seed(9);
  const auto options = at::TensorOptions(dtype);
  const at::Tensor x = (at::randn({33, 5}, options) * 2).requires_grad_(true);
  // Raw log-scales up to about ±12: beyond the soft bound of 3, where tanh saturates.
  at::Tensor params = at::randn({33, 5, 2}, options) * 3;
  params.select(2, 1).mul_(1.5);
  params.requires_grad_(true);
  const at::Tensor gy = at::randn({33, 5}, options), gl = at::randn({33}, options);
  const double bound = 3.0;

  // outputs, logabsdet, ∂/∂(x, params) of ⟨gy, outputs⟩ + ⟨gl, logabsdet⟩, and ∂/∂params of
  // ⟨gl, logabsdet⟩ alone (one output's gradient undefined).
  auto evaluate = [&](const at::Tensor& in, const at::Tensor& p, bool fused) {
    const auto r = fused ? functional::affine_packed(in, p, bound, inverse)
                         : functional::affine_packed_reference(in, p, bound, inverse);
    const auto t = in.scalar_type();
    auto g = torch::autograd::grad({r.outputs, r.logabsdet}, {in, p}, {gy.to(t), gl.to(t)},
                                   /*retain_graph=*/true);
    auto only_logdet = torch::autograd::grad({r.logabsdet}, {p}, {gl.to(t)}, true)[0];
    return std::vector<at::Tensor>{r.outputs, r.logabsdet, g[0], g[1], only_logdet};
  };
  const auto fused = evaluate(x, params, true);
  const auto reference = evaluate(x, params, false);
  const auto exact = evaluate(as_double_leaf(x), as_double_leaf(params), false);
  const char* names[] = {"outputs", "logabsdet", "input gradient", "parameter gradient",
                         "logabsdet-only gradient"};
  for (size_t i = 0; i < fused.size(); ++i) {
    expect_agree(fused[i], reference[i], exact[i], names[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(Directions, AffinePackedAgreement,
                         ::testing::Values(AffineCase{at::kDouble, false},
                                           AffineCase{at::kDouble, true},
                                           AffineCase{at::kFloat, false},
                                           AffineCase{at::kFloat, true}),
                         [](const auto& info) {
                           return std::string(info.param.dtype == at::kDouble ? "f64" : "f32") +
                                  (info.param.inverse ? "_inverse" : "_forward");
                         });

TEST(AffinePacked, InverseUndoesForwardAndNonContiguousInputs) {
  torch::manual_seed(10);
  const at::Tensor x = at::randn({6, 4}, at::kDouble).t().contiguous().t();  // column-major
  const at::Tensor params = at::randn({6, 4, 2}, at::kDouble);
  const auto y = functional::affine_packed(x, params, 2.0, false);
  const auto back = functional::affine_packed(y.outputs, params, 2.0, true);
  EXPECT_LT((back.outputs - x).abs().max().item<double>(), 1e-12);
  EXPECT_LT((back.logabsdet + y.logabsdet).abs().max().item<double>(), 1e-12);
  EXPECT_THROW(functional::affine_packed(x, at::randn({6, 4, 3}, at::kDouble), 2.0, false),
               c10::Error);
}

TEST(AffinePacked, SecondDerivativesFollowTheReference) {
  torch::manual_seed(11);
  const at::Tensor x = at::randn({4, 3}, at::kDouble).requires_grad_(true);
  const at::Tensor params = at::randn({4, 3, 2}, at::kDouble).requires_grad_(true);
  auto second = [&](const functional::AffineResult& r) {
    const at::Tensor g = torch::autograd::grad({r.outputs.pow(2).sum() + r.logabsdet.sum()}, {x},
                                               {}, true, /*create_graph=*/true)[0];
    return torch::autograd::grad({g.pow(2).sum()}, {params}, {}, true)[0];
  };
  expect_close(second(functional::affine_packed(x, params, 3.0, false)),
               second(functional::affine_packed_reference(x, params, 3.0, false)), at::kDouble,
               "second derivative");
}

}  // namespace
