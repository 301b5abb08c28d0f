// Dense layer stacks with a hand-written backward pass (include/zflow/nn/dense.h).
//
// Forward, per layer l = 0..n−1 (h_0 = inputs):
//   z_l = b_l + h_l W_lᵀ            (one addmm: bias fused into the product)
//   h_{l+1} = act(z_l), in place where act' can be recovered from the output
// Backward, from g = ∂L/∂h_n down:
//   g ← g ⊙ act'(z_l)               (for l < n − 1; one ATen *_backward kernel)
//   ∂L/∂W_l = gᵀ h_l (⊙ M_l),  ∂L/∂b_l = Σ_rows g,  g ← g W_l
// which is the whole chain rule of the stack; autograd would run the same products plus a
// graph node, saved variables, a transpose node and a gradient accumulation per operation.

#include "zflow/nn/dense.h"

#include <algorithm>
#include <iterator>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "zflow/core/error.h"
#include "zflow/core/reference_gradients.h"
#include "zflow/nn/mlp.h"

namespace zflow::nn {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// In the order of kActivationNames.
enum class Activation : int64_t { relu, leaky_relu, tanh, elu, gelu, silu };
constexpr const char* kActivationNames[] = {"relu", "leaky_relu", "tanh", "elu", "gelu", "silu"};

constexpr double kLeakySlope = 0.01;  // nn::apply_activation's leaky_relu

Activation parse_activation(const std::string& name) {
  for (int64_t i = 0; i < static_cast<int64_t>(std::size(kActivationNames)); ++i) {
    if (name == kActivationNames[i]) return static_cast<Activation>(i);
  }
  apply_activation(name, at::zeros({1}));  // throws the usual ConfigError
  throw ConfigError("unknown activation '" + name + "'");
}

const char* activation_name(Activation a) { return kActivationNames[static_cast<int64_t>(a)]; }

// Activations whose derivative is a function of their output can overwrite their input and
// save only the output; gelu and silu need the pre-activation.
bool derivative_from_output(Activation a) { return a != Activation::gelu && a != Activation::silu; }

// Applies the activation to z, in place when derivative_from_output.
at::Tensor activate(Activation a, at::Tensor z) {
  switch (a) {
    case Activation::relu:
      return z.relu_();
    case Activation::leaky_relu:
      return at::leaky_relu_(z, kLeakySlope);
    case Activation::tanh:
      return z.tanh_();
    case Activation::elu:
      return at::elu_(z);
    case Activation::gelu:
      return at::gelu(z);
    case Activation::silu:
      return at::silu(z);
  }
  TORCH_CHECK(false, "dense_stack: bad activation");
}

// g ⊙ act'(z) from `saved`: the output for derivative_from_output activations, else z.
at::Tensor activation_backward(Activation a, const at::Tensor& grad, const at::Tensor& saved) {
  switch (a) {
    case Activation::relu:
      return at::threshold_backward(grad, saved, 0);
    case Activation::leaky_relu:
      return at::leaky_relu_backward(grad, saved, kLeakySlope, /*self_is_result=*/true);
    case Activation::tanh:
      return at::tanh_backward(grad, saved);
    case Activation::elu:
      return at::elu_backward(grad, 1.0, 1.0, 1.0, /*is_result=*/true, saved);
    case Activation::gelu:
      return at::gelu_backward(grad, saved);
    case Activation::silu:
      return at::silu_backward(grad, saved);
  }
  TORCH_CHECK(false, "dense_stack: bad activation");
}

void check_layers(const at::Tensor& inputs, const DenseLayers& layers) {
  TORCH_CHECK(!layers.weights.empty(), "dense_stack: needs at least one layer");
  TORCH_CHECK(layers.biases.size() == layers.weights.size(),
              "dense_stack: one bias per weight, got ", layers.biases.size(), " and ",
              layers.weights.size());
  TORCH_CHECK(layers.masks.empty() || layers.masks.size() == layers.weights.size(),
              "dense_stack: masks must be empty or one per layer");
  TORCH_CHECK(inputs.dim() == 2, "dense_stack: inputs must be [B, features], got ", inputs.sizes());
  int64_t width = inputs.size(1);
  for (size_t l = 0; l < layers.weights.size(); ++l) {
    const at::Tensor& w = layers.weights[l];
    TORCH_CHECK(w.dim() == 2 && w.size(1) == width && layers.biases[l].dim() == 1 &&
                    layers.biases[l].size(0) == w.size(0),
                "dense_stack: layer ", l, " has weight ", w.sizes(), " and bias ",
                layers.biases[l].sizes(), " after width ", width);
    width = w.size(0);
  }
}

// Saved-variable layout: [weights (n), biases (n), masks (0 or n), layer inputs h_0..h_{n−1}
// (n), pre-activations z_0..z_{n−2} (n − 1, only for gelu/silu)].
struct DenseStackFunction : public torch::autograd::Function<DenseStackFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& inputs, at::TensorList weights,
                            at::TensorList biases, at::TensorList masks, int64_t activation) {
    const auto act = static_cast<Activation>(activation);
    const size_t n = weights.size();
    variable_list saved(weights.begin(), weights.end());
    saved.insert(saved.end(), biases.begin(), biases.end());
    saved.insert(saved.end(), masks.begin(), masks.end());
    std::vector<at::Tensor> pre_activations;
    at::Tensor h = inputs;
    for (size_t l = 0; l < n; ++l) {
      saved.push_back(h);
      at::Tensor z = at::addmm(biases[l], h, weights[l].t());
      if (l + 1 == n) {
        h = std::move(z);
      } else if (derivative_from_output(act)) {
        h = activate(act, std::move(z));
      } else {
        h = activate(act, z);
        pre_activations.push_back(std::move(z));
      }
    }
    saved.insert(saved.end(), pre_activations.begin(), pre_activations.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["layers"] = static_cast<int64_t>(n);
    ctx->saved_data["masked"] = !masks.empty();
    ctx->saved_data["activation"] = activation;
    return h;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto n = static_cast<size_t>(ctx->saved_data["layers"].toInt());
    const bool masked = ctx->saved_data["masked"].toBool();
    const auto act = static_cast<Activation>(ctx->saved_data["activation"].toInt());
    const variable_list saved = ctx->get_saved_variables();
    const auto weights = at::TensorList(saved).slice(0, n);
    const auto biases = at::TensorList(saved).slice(n, n);
    const auto masks = masked ? at::TensorList(saved).slice(2 * n, n) : at::TensorList();
    const size_t first_input = masked ? 3 * n : 2 * n;
    const auto layer_inputs = at::TensorList(saved).slice(first_input, n);
    const at::Tensor& grad = grad_outputs[0];

    // Layout of the result: inputs, weights, biases, masks (never differentiated), activation.
    variable_list result(1 + 2 * n + masks.size() + 1);
    if (!grad.defined()) return result;

    if (at::GradMode::is_enabled()) {
      // create_graph: second derivatives through the reference's autograd graph.
      std::vector<at::Tensor> inputs{layer_inputs[0]};
      inputs.insert(inputs.end(), weights.begin(), weights.end());
      inputs.insert(inputs.end(), biases.begin(), biases.end());
      std::vector<bool> wanted;
      for (const auto& t : inputs) wanted.push_back(t.requires_grad());
      const auto g = reference_gradients(
          [&] {
            return std::vector<at::Tensor>{dense_stack_reference(
                layer_inputs[0], DenseLayers{weights, biases, masks, activation_name(act)})};
          },
          {grad}, inputs, wanted);
      std::copy(g.begin(), g.end(), result.begin());
      return result;
    }

    at::Tensor g = grad;
    size_t next_pre_activation = first_input + n + (n - 1);  // one past z_{n−2}
    for (size_t l = n; l-- > 0;) {
      if (l + 1 < n) {
        // g is ∂L/∂h_{l+1}; h_{l+1} = act(z_l) is layer l + 1's input.
        const at::Tensor& act_saved =
            derivative_from_output(act) ? layer_inputs[l + 1] : saved[--next_pre_activation];
        g = activation_backward(act, g, act_saved);
      }
      at::Tensor grad_weight = g.t().mm(layer_inputs[l]);
      if (masked) grad_weight.mul_(masks[l]);
      result[1 + l] = std::move(grad_weight);
      result[1 + n + l] = g.sum(0);
      if (l > 0 || ctx->needs_input_grad(0)) g = g.mm(weights[l]);
    }
    if (ctx->needs_input_grad(0)) result[0] = std::move(g);
    return result;
  }
};

}  // namespace

at::Tensor dense_stack(const at::Tensor& inputs, const DenseLayers& layers) {
  check_layers(inputs, layers);
  const Activation act = parse_activation(layers.activation);
  return DenseStackFunction::apply(inputs, layers.weights, layers.biases, layers.masks,
                                   static_cast<int64_t>(act));
}

at::Tensor dense_stack_reference(const at::Tensor& inputs, const DenseLayers& layers) {
  check_layers(inputs, layers);
  at::Tensor h = inputs;
  const size_t n = layers.weights.size();
  for (size_t l = 0; l < n; ++l) {
    const at::Tensor weight =
        layers.masks.empty() ? layers.weights[l] : layers.weights[l] * layers.masks[l];
    h = at::linear(h, weight, layers.biases[l]);
    if (l + 1 < n) h = apply_activation(layers.activation, h);
  }
  return h;
}

}  // namespace zflow::nn
