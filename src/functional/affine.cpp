// The affine transformer z = x·exp(s) + t with s = b·tanh(ŝ/b) (include/zflow/functional/
// affine.h), in plain autograd operations and as one fused pass for the packed form.
//
// Fused backward, per element, from gz = ∂L/∂z and gl = ∂L/∂logabsdet of its row
// (ds/dŝ = 1 − tanh²(ŝ/b) = 1 − (s/b)²):
//   forward  z = x e^s + t,   log|dz/dx| = s:    ∂x = gz e^s,  ∂t = gz,  ∂s = gz x e^s + gl
//   inverse  x = (z − t) e^−s, log|dx/dz| = −s:  ∂z = gz e^−s, ∂t = −gz e^−s, ∂s = −gz x − gl
// and ∂ŝ = ∂s (1 − (s/b)²).

#include "zflow/functional/affine.h"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "zflow/core/kernels.h"

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

// tanh(u) and its derivative 1 − tanh²(u) = 4e / (1 + e)² with e = exp(−2|u|): without
// the cancellation of 1 − tanh² where tanh saturates (|u| ≳ 2, large raw log-scales), which
// would cost float32 gradients several digits.
template <typename T>
struct Tanh {
  T value;
  T derivative;
  explicit Tanh(T u) {
    const T e = std::exp(-2 * std::abs(u));
    const T one_plus_e = 1 + e;
    value = std::copysign(-std::expm1(-2 * std::abs(u)) / one_plus_e, u);
    derivative = 4 * e / (one_plus_e * one_plus_e);
  }
};

// Rows per parallel task: enough elements that a task outweighs its scheduling.
int64_t row_grain(int64_t features) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(features, 1));
}

template <typename T>
void affine_forward_kernel(const at::Tensor& x, const at::Tensor& params, double bound,
                           bool inverse, at::Tensor& out, at::Tensor& logabsdet) {
  const int64_t rows = x.size(0), features = x.size(1);
  const T* xp = x.data_ptr<T>();
  const T* pp = params.data_ptr<T>();
  T* op = out.data_ptr<T>();
  T* lp = logabsdet.data_ptr<T>();
  const T b = static_cast<T>(bound), inv_b = static_cast<T>(1.0 / bound);
  at::parallel_for(0, rows, row_grain(features), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      T sum = 0;
      for (int64_t i = r * features; i < (r + 1) * features; ++i) {
        // Values need no derivative: one tanh (the backward pass uses Tanh<T>).
        const T shift = pp[2 * i], s = b * std::tanh(pp[2 * i + 1] * inv_b);
        if (!inverse) {
          op[i] = xp[i] * std::exp(s) + shift;
          sum += s;
        } else {
          op[i] = (xp[i] - shift) * std::exp(-s);
          sum -= s;
        }
      }
      lp[r] = sum;
    }
  });
}

// Gradients w.r.t. the inputs and the packed params from gz [B, D] and gl [B] (either may
// be undefined: zeros); `out` is the forward's result (the inverse's ∂s needs x = out).
template <typename T>
void affine_backward_kernel(const at::Tensor& x, const at::Tensor& params, const at::Tensor& out,
                            const at::Tensor& gz, const at::Tensor& gl, double bound, bool inverse,
                            at::Tensor& grad_x, at::Tensor& grad_params) {
  const int64_t rows = x.size(0), features = x.size(1);
  const T* xp = x.data_ptr<T>();
  const T* pp = params.data_ptr<T>();
  const T* op = out.data_ptr<T>();
  const T* gzp = gz.defined() ? gz.data_ptr<T>() : nullptr;
  const T* glp = gl.defined() ? gl.data_ptr<T>() : nullptr;
  T* gxp = grad_x.data_ptr<T>();
  T* gpp = grad_params.data_ptr<T>();
  const T b = static_cast<T>(bound), inv_b = static_cast<T>(1.0 / bound);
  at::parallel_for(0, rows, row_grain(features), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T g_logdet = glp ? glp[r] : T(0);
      for (int64_t i = r * features; i < (r + 1) * features; ++i) {
        const Tanh<T> soft_clamp(pp[2 * i + 1] * inv_b);
        const T s = b * soft_clamp.value;
        const T g = gzp ? gzp[i] : T(0);
        T g_s;
        if (!inverse) {
          const T scale = std::exp(s);
          gxp[i] = g * scale;
          gpp[2 * i] = g;
          g_s = g * xp[i] * scale + g_logdet;
        } else {
          const T scale = std::exp(-s);
          gxp[i] = g * scale;
          gpp[2 * i] = -g * scale;
          g_s = -g * op[i] - g_logdet;
        }
        gpp[2 * i + 1] = g_s * soft_clamp.derivative;
      }
    }
  });
}

struct AffinePackedFunction : public torch::autograd::Function<AffinePackedFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& inputs,
                               const at::Tensor& params, double bound, bool inverse) {
    const at::Tensor x = inputs.contiguous();
    const at::Tensor p = params.contiguous();
    at::Tensor out = at::empty_like(x);
    at::Tensor logabsdet = at::empty({x.size(0)}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "affine_packed", [&] {
      affine_forward_kernel<scalar_t>(x, p, bound, inverse, out, logabsdet);
    });
    // The original tensors, not contiguous copies: the create_graph path differentiates
    // through them.
    ctx->save_for_backward({inputs, params, out});
    ctx->saved_data["bound"] = bound;
    ctx->saved_data["inverse"] = inverse;
    return {out, logabsdet};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const double bound = ctx->saved_data["bound"].toDouble();
    const bool inverse = ctx->saved_data["inverse"].toBool();
    if (at::GradMode::is_enabled()) {
      // create_graph: second derivatives through the reference's autograd graph.
      variable_list wrt, result(4);
      std::vector<size_t> position;
      for (size_t i = 0; i < 2; ++i) {
        if (saved[i].requires_grad()) {
          wrt.push_back(saved[i]);
          position.push_back(i);
        }
      }
      if (wrt.empty()) return result;
      const AffineResult r = affine_packed_reference(saved[0], saved[1], bound, inverse);
      variable_list outputs, upstream;
      for (size_t i = 0; i < 2; ++i) {
        if (grads[i].defined()) {
          outputs.push_back(i == 0 ? r.outputs : r.logabsdet);
          upstream.push_back(grads[i]);
        }
      }
      if (outputs.empty()) return result;
      const variable_list g = torch::autograd::grad(outputs, wrt, upstream, /*retain_graph=*/true,
                                                    /*create_graph=*/true, /*allow_unused=*/true);
      for (size_t i = 0; i < g.size(); ++i) result[position[i]] = g[i];
      return result;
    }
    const at::Tensor x = saved[0].contiguous();
    const at::Tensor p = saved[1].contiguous();
    at::Tensor grad_x = at::empty_like(x);
    at::Tensor grad_p = at::empty_like(p);
    const at::Tensor gz = grads[0].defined() ? grads[0].contiguous() : at::Tensor();
    const at::Tensor gl = grads[1].defined() ? grads[1].contiguous() : at::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "affine_packed_backward", [&] {
      affine_backward_kernel<scalar_t>(x, p, saved[2], gz, gl, bound, inverse, grad_x, grad_p);
    });
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
  const bool fused = fused_kernels() && inputs.device().is_cpu() && params.device().is_cpu() &&
                     inputs.scalar_type() == params.scalar_type() &&
                     (inputs.scalar_type() == at::kFloat || inputs.scalar_type() == at::kDouble);
  if (!fused) return affine_packed_reference(inputs, params, scale_bound, inverse);
  const variable_list r = AffinePackedFunction::apply(inputs, params, scale_bound, inverse);
  return {r[0], r[1]};
}

}  // namespace zflow::functional
