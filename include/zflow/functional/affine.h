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

}  // namespace zflow::functional
