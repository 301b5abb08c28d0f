#pragma once
/// \file
/// Second derivatives for custom autograd functions. A fused kernel's hand-written backward
/// pass is not itself differentiable; when autograd calls it with create_graph (grad mode
/// on), the kernel hands the work to its plain-LibTorch reference instead: recompute the
/// reference's outputs with their graph and differentiate those. Used by the fused spline,
/// the packed affine node and the dense stacks.
///
/// What it computes is the vector-Jacobian product of autograd's backward pass,
/// ∂L/∂inputs = Σᵢ (∂outputs[i]/∂inputs)ᵀ · upstream[i], built with create_graph so that it
/// can be differentiated again (e.g. for gradient penalties or Hessian-vector products).
///
/// Example (in the backward of a custom autograd function, grad mode on):
///
///     auto g = zflow::reference_gradients(
///         [&] { auto r = affine_packed_reference(x, params, bound, inverse);
///               return std::vector<at::Tensor>{r.outputs, r.logabsdet}; },
///         {grad_outputs, grad_logabsdet}, {x, params},
///         {x.requires_grad(), params.requires_grad()});

#include <functional>
#include <vector>

#include <ATen/core/Tensor.h>

namespace zflow {

/// Gradients of Σᵢ ⟨upstream[i], outputs[i]⟩ with respect to `inputs`, with a graph (so
/// that they can be differentiated again), where `reference()` recomputes the outputs from
/// the inputs with grad mode on. Outputs whose upstream gradient is undefined are left out;
/// inputs with `wanted[i]` false get an undefined gradient, and so does every input when
/// nothing is wanted or no upstream gradient is defined (then `reference` is not called).
std::vector<at::Tensor> reference_gradients(
    const std::function<std::vector<at::Tensor>()>& reference,
    const std::vector<at::Tensor>& upstream, const std::vector<at::Tensor>& inputs,
    const std::vector<bool>& wanted);

}  // namespace zflow
