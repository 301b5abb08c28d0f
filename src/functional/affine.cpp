// The affine transformer z = x·exp(s) + t with s = b·tanh(ŝ/b) (include/zflow/functional/
// affine.h), in plain autograd operations and, for the packed form, as one autograd node
// with a hand-written backward pass: five vectorised ATen operations forward, about eight
// backward, against about twenty graph nodes for the reference. (A per-element C++ loop
// was tried first and measured slower: libm's scalar exp and tanh cost more than the
// bookkeeping saved, 13.5 against 3.1 ms forward + backward at 65536 rows.)
//
// Backward, per element, from gz = ∂L/∂z and gl = ∂L/∂logabsdet of its row
// (ds/dŝ = 1 − tanh²(ŝ/b)):
//   forward  z = x e^s + t,   log|dz/dx| = s:    ∂x = gz e^s,  ∂t = gz,  ∂s = gz x e^s + gl
//   inverse  x = (z − t) e^−s, log|dx/dz| = −s:  ∂z = gz e^−s, ∂t = −gz e^−s, ∂s = −gz x − gl
// and ∂ŝ = ∂s (1 − (s/b)²).

#include "zflow/functional/affine.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "zflow/core/kernels.h"
#include "zflow/core/reference_gradients.h"

namespace zflow::functional {

AffineResult affine(const at::Tensor& inputs, const at::Tensor& shift,
                    const at::Tensor& raw_log_scale, double scale_bound, bool inverse) {
  // Soft clamp: s ≈ ŝ near 0 and never leaves (−b, b).
  const at::Tensor log_scale = at::tanh(raw_log_scale / scale_bound) * scale_bound;
  if (!inverse) return {inputs * at::exp(log_scale) + shift, log_scale};
  return {(inputs - shift) * at::exp(-log_scale), -log_scale};
}

AffineResult affine_packed_reference(const at::Tensor& inputs, const at::Tensor& params,
                                     double scale_bound, bool inverse) {
  auto r = affine(inputs, params.select(2, 0), params.select(2, 1), scale_bound, inverse);
  return {r.outputs, r.logabsdet.sum(1)};
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct AffinePackedFunction : public torch::autograd::Function<AffinePackedFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& inputs,
                               const at::Tensor& params, double bound, bool inverse) {
    const at::Tensor shift = params.select(2, 0);
    const at::Tensor soft = at::tanh(params.select(2, 1) * (1.0 / bound));  // s / b
    const at::Tensor log_scale = inverse ? soft * (-bound) : soft * bound;  // ±s
    const at::Tensor scale = at::exp(log_scale);                            // e^±s
    const at::Tensor out =
        inverse ? (inputs - shift).mul_(scale) : at::addcmul(shift, inputs, scale);
    // The original tensors, not copies: the create_graph path differentiates through them.
    ctx->save_for_backward({inputs, params, out, scale, soft});
    ctx->saved_data["bound"] = bound;
    ctx->saved_data["inverse"] = inverse;
    return {out, log_scale.sum(1)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const double bound = ctx->saved_data["bound"].toDouble();
    const bool inverse = ctx->saved_data["inverse"].toBool();
    if (at::GradMode::is_enabled()) {
      // create_graph: second derivatives through the reference's autograd graph.
      const auto g = reference_gradients(
          [&] {
            const AffineResult r = affine_packed_reference(saved[0], saved[1], bound, inverse);
            return std::vector<at::Tensor>{r.outputs, r.logabsdet};
          },
          {grads[0], grads[1]}, {saved[0], saved[1]},
          {saved[0].requires_grad(), saved[1].requires_grad()});
      return {g[0], g[1], at::Tensor(), at::Tensor()};
    }
    const at::Tensor& out = saved[2];
    const at::Tensor& scale = saved[3];
    const at::Tensor& soft = saved[4];
    const at::Tensor& gz = grads[0];
    const at::Tensor& gl = grads[1];
    // ∂L/∂s per element: from the outputs (forward: gz·e^s·x; inverse: −gz·x, where x is
    // the output) and from the row's logabsdet (±gl).
    at::Tensor grad_x, grad_shift, grad_s;
    if (gz.defined()) {
      grad_x = gz * scale;
      grad_shift = inverse ? -grad_x : gz;
      grad_s = inverse ? -(gz * out) : grad_x * saved[0];
    } else {
      grad_x = at::zeros_like(out);
      grad_shift = at::zeros_like(out);
      grad_s = at::zeros_like(out);
    }
    if (gl.defined()) grad_s = inverse ? grad_s - gl.unsqueeze(1) : grad_s + gl.unsqueeze(1);
    // s = b·tanh(ŝ/b): ∂s/∂ŝ = 1 − tanh²(ŝ/b).
    const at::Tensor grad_raw = at::tanh_backward(grad_s, soft);
    const at::Tensor grad_p = at::stack({grad_shift, grad_raw}, 2);
    return {grad_x, grad_p, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

AffineResult affine_packed(const at::Tensor& inputs, const at::Tensor& params, double scale_bound,
                           bool inverse) {
  TORCH_CHECK(inputs.dim() == 2 && params.dim() == 3 && params.size(0) == inputs.size(0) &&
                  params.size(1) == inputs.size(1) && params.size(2) == 2,
              "affine_packed: expected inputs [B, D] and params [B, D, 2], got ", inputs.sizes(),
              " and ", params.sizes());
  if (!fused_kernels()) return affine_packed_reference(inputs, params, scale_bound, inverse);
  const variable_list r = AffinePackedFunction::apply(inputs, params, scale_bound, inverse);
  return {r[0], r[1]};
}

}  // namespace zflow::functional
