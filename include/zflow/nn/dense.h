#pragma once
/// \file
/// A stack of dense layers, h_l = act(h_{l−1} W_lᵀ + b_l) with no activation after the last
/// layer: the body of the standard conditioners (MLP, MADE). `dense_stack` evaluates it as
/// one autograd node with a hand-written backward pass: the bias is added inside the matrix
/// product (addmm), the activation is applied in place, and the backward pass runs four
/// operations per layer (activation derivative, two products, the bias sum) without
/// autograd's per-operation graph nodes, saved-variable bookkeeping or transposes.
/// `dense_stack_reference` is the same function in plain autograd operations; tests check
/// that the two agree.
///
/// Example:
///
///     std::vector<at::Tensor> w = {at::randn({32, 4}), at::randn({2, 32})};
///     std::vector<at::Tensor> b = {at::zeros({32}), at::zeros({2})};
///     zflow::nn::DenseLayers layers{w, b, {}, "relu"};
///     at::Tensor y = zflow::nn::dense_stack(x, layers);   // x [B, 4] → y [B, 2]

#include <string>

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

namespace zflow::nn {

/// The layers' parameters. `masks`, when given (one per layer, the weight's shape), are
/// MADE's connectivity masks: the weights must already be zero where the mask is zero, and
/// the weight gradients are masked, so the weights stay masked under any element-wise
/// optimizer. The reference multiplies the weights by the masks instead.
struct DenseLayers {
  at::TensorList weights;  // [out_l, in_l]
  at::TensorList biases;   // [out_l]
  at::TensorList masks;    // empty, or one [out_l, in_l] 0/1 tensor per layer
  /// relu, leaky_relu, tanh, elu, gelu or silu (nn::apply_activation's names).
  std::string activation = "relu";
};

/// inputs [B, in_0] → [B, out_last], one autograd node with a hand-written backward pass.
/// Asking for second derivatives (create_graph) differentiates the reference instead.
at::Tensor dense_stack(const at::Tensor& inputs, const DenseLayers& layers);

/// The same map in plain autograd operations (at::linear and the activation per layer).
at::Tensor dense_stack_reference(const at::Tensor& inputs, const DenseLayers& layers);

}  // namespace zflow::nn
