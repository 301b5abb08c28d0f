// The fused dense stack behind the MLP and MADE conditioners (hand-written backward pass)
// against its plain-autograd reference, on random inputs: values and gradients, and second
// derivatives (create_graph). The rule of agreement is in support/agreement.h.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/utils.h>

#include "zflow/nn/dense.h"
#include "zflow/nn/made.h"
#include "zflow/nn/mlp.h"

#include "support/agreement.h"

using namespace zflow;
using zflow::testing::as_double_leaf;
using zflow::testing::expect_agree;
using zflow::testing::expect_close;

namespace {

struct Stack {
  std::vector<at::Tensor> weights, biases, masks;
};

// Layers in → hidden... → out with PyTorch-like initial scales; masks (optional) are random
// 0/1 patterns and the weights are zeroed where they are 0, as MaskedLinear keeps them.
Stack random_stack(const std::vector<int64_t>& widths, at::ScalarType dtype, bool masked) {
  Stack s;
  for (size_t l = 0; l + 1 < widths.size(); ++l) {
    const auto in = widths[l], out = widths[l + 1];
    const double scale = 1.0 / std::sqrt(static_cast<double>(in));
    at::Tensor w = at::randn({out, in}, at::TensorOptions(dtype)) * scale;
    if (masked) {
      const at::Tensor mask = (at::rand({out, in}, at::TensorOptions(dtype)) < 0.6).to(dtype);
      w = w * mask;
      s.masks.push_back(mask);
    }
    s.weights.push_back(w.requires_grad_(true));
    s.biases.push_back((at::randn({out}, at::TensorOptions(dtype)) * 0.1).requires_grad_(true));
  }
  return s;
}

nn::DenseLayers layers_of(const Stack& s, const std::string& activation) {
  return {s.weights, s.biases, s.masks, activation};
}

std::vector<at::Tensor> grads_of(const at::Tensor& out, const at::Tensor& upstream,
                                 const std::vector<at::Tensor>& wrt, bool create_graph = false) {
  return torch::autograd::grad({out}, wrt, {upstream}, /*retain_graph=*/true, create_graph,
                               /*allow_unused=*/true);
}

struct DenseCase {
  std::string activation;
  at::ScalarType dtype;
  bool masked;
};

class DenseStackAgreement : public ::testing::TestWithParam<DenseCase> {};

TEST_P(DenseStackAgreement, ValuesAndGradientsMatchTheReference) {
  const auto [activation, dtype, masked] = GetParam();
  torch::manual_seed(7);
  const Stack s = random_stack({6, 32, 32, 10}, dtype, masked);
  const at::Tensor x = at::randn({37, 6}, at::TensorOptions(dtype)).requires_grad_(true);
  const at::Tensor upstream = at::randn({37, 10}, at::TensorOptions(dtype));
  Stack s64;
  for (const auto& w : s.weights) s64.weights.push_back(as_double_leaf(w));
  for (const auto& b : s.biases) s64.biases.push_back(as_double_leaf(b));
  for (const auto& m : s.masks) s64.masks.push_back(m.to(at::kDouble));
  const at::Tensor x64 = as_double_leaf(x);

  // Values, then ∂/∂(x, W, b) of ⟨upstream, outputs⟩.
  auto evaluate = [&](const Stack& stack, const at::Tensor& inputs, bool fused) {
    const nn::DenseLayers layers = layers_of(stack, activation);
    const at::Tensor y =
        fused ? nn::dense_stack(inputs, layers) : nn::dense_stack_reference(inputs, layers);
    std::vector<at::Tensor> wrt{inputs};
    wrt.insert(wrt.end(), stack.weights.begin(), stack.weights.end());
    wrt.insert(wrt.end(), stack.biases.begin(), stack.biases.end());
    std::vector<at::Tensor> all{y};
    for (auto& g : grads_of(y, upstream.to(y.scalar_type()), wrt)) all.push_back(g);
    return all;
  };
  const auto fused = evaluate(s, x, true);
  const auto reference = evaluate(s, x, false);
  const auto exact = evaluate(s64, x64, false);
  for (size_t i = 0; i < fused.size(); ++i) {
    expect_agree(fused[i], reference[i], exact[i],
                 i == 0 ? "values" : "gradient " + std::to_string(i - 1));
  }
  if (masked) {
    // The masked weights' gradients are exactly zero where the mask is.
    for (size_t l = 0; l < s.masks.size(); ++l) {
      EXPECT_EQ((fused[2 + l] * (1 - s.masks[l])).abs().max().item<double>(), 0.0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Activations, DenseStackAgreement,
    ::testing::Values(DenseCase{"relu", at::kDouble, false}, DenseCase{"relu", at::kFloat, false},
                      DenseCase{"relu", at::kDouble, true}, DenseCase{"relu", at::kFloat, true},
                      DenseCase{"leaky_relu", at::kDouble, false},
                      DenseCase{"tanh", at::kDouble, false}, DenseCase{"tanh", at::kFloat, false},
                      DenseCase{"elu", at::kDouble, false}, DenseCase{"gelu", at::kDouble, false},
                      DenseCase{"gelu", at::kFloat, true}, DenseCase{"silu", at::kDouble, false},
                      DenseCase{"silu", at::kFloat, false}),
    [](const auto& info) {
      return info.param.activation + (info.param.dtype == at::kDouble ? "_f64" : "_f32") +
             (info.param.masked ? "_masked" : "");
    });

TEST(DenseStack, SingleLayerAndInputsWithoutGradient) {
  torch::manual_seed(1);
  const Stack s = random_stack({3, 5}, at::kDouble, false);
  const at::Tensor x = at::randn({4, 3}, at::kDouble);  // no requires_grad
  const nn::DenseLayers layers = layers_of(s, "relu");
  const at::Tensor fused = nn::dense_stack(x, layers);
  expect_close(fused, at::linear(x, s.weights[0], s.biases[0]), at::kDouble, "one layer");
  const at::Tensor upstream = at::randn_like(fused);
  const auto g = grads_of(fused, upstream, {s.weights[0], s.biases[0]});
  expect_close(g[0], upstream.t().mm(x), at::kDouble, "weight gradient");
  expect_close(g[1], upstream.sum(0), at::kDouble, "bias gradient");
}

TEST(DenseStack, SecondDerivativesFollowTheReference) {
  torch::manual_seed(2);
  const Stack s = random_stack({3, 16, 4}, at::kDouble, false);
  const at::Tensor x = at::randn({5, 3}, at::kDouble).requires_grad_(true);
  const nn::DenseLayers layers = layers_of(s, "tanh");
  // ∂/∂W₀ of ‖∂(Σ y)/∂x‖²: needs the gradient's own graph.
  auto second = [&](const at::Tensor& y) {
    const at::Tensor gx = grads_of(y, at::ones_like(y), {x}, /*create_graph=*/true)[0];
    return grads_of(gx.pow(2).sum(), at::ones({}, at::kDouble), {s.weights[0]})[0];
  };
  expect_close(second(nn::dense_stack(x, layers)), second(nn::dense_stack_reference(x, layers)),
               at::kDouble, "second derivative");
}

TEST(DenseStack, ShapesAreChecked) {
  const Stack s = random_stack({3, 4}, at::kFloat, false);
  EXPECT_THROW(nn::dense_stack(at::randn({2, 5}), layers_of(s, "relu")), c10::Error);
  EXPECT_THROW(nn::dense_stack(at::randn({2, 3}), nn::DenseLayers{s.weights, {}, {}, "relu"}),
               c10::Error);
}

// MaskedLinear keeps its weight masked: a weight edited from outside (as a loaded checkpoint
// would be) is masked again before MADE uses it, and training keeps the zeros.
TEST(DenseStack, MadeWeightsStayMasked) {
  torch::manual_seed(4);
  nn::MADE made(nn::MADEOptions(4, 2).hidden({16, 16}));
  {
    torch::NoGradGuard no_grad;
    for (auto& p : made->parameters()) p.add_(at::randn_like(p));
  }
  const at::Tensor x = at::randn({8, 4});
  const at::Tensor y = made->forward(x);
  for (const auto& layer : made->modules(/*include_self=*/false)) {
    if (auto* masked = layer->as<nn::MaskedLinearImpl>()) {
      EXPECT_EQ((masked->weight * (1 - masked->mask)).abs().max().item<double>(), 0.0);
    }
  }
  y.pow(2).sum().backward();
  for (const auto& layer : made->modules(/*include_self=*/false)) {
    if (auto* masked = layer->as<nn::MaskedLinearImpl>()) {
      EXPECT_EQ((masked->weight.grad() * (1 - masked->mask)).abs().max().item<double>(), 0.0);
    }
  }
}

// The MLP conditioner (fused) equals a plain evaluation of its own layers.
TEST(DenseStack, MlpUsesTheStackOnAnyLeadingShape) {
  torch::manual_seed(5);
  nn::MLP mlp(nn::MLPOptions(3, 6).hidden_features(8).num_layers(2).zero_init_last(false));
  mlp->to(at::kDouble);
  const at::Tensor x = at::randn({2, 5, 3}, at::kDouble);
  std::vector<at::Tensor> weights, biases;
  for (const auto& item : mlp->named_parameters()) {
    (item.key().find("weight") != std::string::npos ? weights : biases).push_back(item.value());
  }
  const at::Tensor expected =
      nn::dense_stack_reference(x.reshape({10, 3}), {weights, biases, {}, "relu"}).view({2, 5, 6});
  expect_close(mlp->forward(x), expected, at::kDouble, "mlp");
}

}  // namespace
