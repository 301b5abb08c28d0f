#pragma once
/// \file
/// The elementwise affine transformer shared by affine couplings and masked affine
/// autoregressive layers: z = x · exp(s) + t, with the log-scale softly bounded,
/// s = b · tanh(ŝ / b), so that one layer never scales by more than e^±b.

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
