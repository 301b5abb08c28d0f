#pragma once
/// \file
/// The elementwise affine transformer shared by affine couplings (Dinh, Sohl-Dickstein &
/// Bengio 2017, "Density estimation using Real NVP", https://arxiv.org/abs/1605.08803) and
/// masked affine autoregressive layers (Papamakarios, Pavlakou & Murray 2017, "Masked
/// Autoregressive Flow for Density Estimation", https://arxiv.org/abs/1705.07057):
///
///     z = x · exp(s) + t,   x = (z − t) · exp(−s),   log|dz/dx| = s,
///
/// with the log-scale softly bounded, s = b · tanh(ŝ / b) (b = `scale_bound`, 3 in the
/// layers by default), so that s ≈ ŝ near 0 and one layer never scales by more than e^±b.
/// The conditioner's outputs (t, ŝ) depend only on features that the layer leaves unchanged
/// (coupling) or that precede the element (autoregressive), so the Jacobian is triangular
/// and log|det J| = Σ_d s_d.
///
/// Example (zero parameters give the identity):
///
///     at::Tensor x = torch::randn({64, 4});
///     at::Tensor params = torch::zeros({64, 4, 2});  // (t, ŝ) per element
///     auto r = zflow::functional::affine_packed(x, params, /*scale_bound=*/3.0, false);
///     // r.outputs equals x, r.logabsdet is zeros({64})

#include <ATen/core/Tensor.h>

namespace zflow::functional {

/// Outputs and log|dz/dx| per element.
struct AffineResult {
  at::Tensor outputs;
  at::Tensor logabsdet;
};

/// Applies z = x·exp(s) + t elementwise (or x = (z − t)·exp(−s) with `inverse`, whose
/// log-derivative is −s). `shift` and `raw_log_scale` broadcast against `inputs`.
AffineResult affine(const at::Tensor& inputs, const at::Tensor& shift,
                    const at::Tensor& raw_log_scale, double scale_bound, bool inverse);

/// The affine coupling's and MAF's form: `inputs` [B, D] and `params` [B, D, 2] holding
/// (shift, raw log-scale) per element, as a conditioner emits them; `logabsdet` is summed
/// over the D features ([B]). One autograd node with a hand-written backward pass (on any
/// device); `affine_packed_reference` when zflow::use_fused_kernels(false) and for second
/// derivatives.
AffineResult affine_packed(const at::Tensor& inputs, const at::Tensor& params, double scale_bound,
                           bool inverse);

/// `affine` on the two parameter planes, log-determinants summed: plain autograd operations.
AffineResult affine_packed_reference(const at::Tensor& inputs, const at::Tensor& params,
                                     double scale_bound, bool inverse);

}  // namespace zflow::functional
