#include "zflow/functional/affine.h"

#include <ATen/ATen.h>

namespace zflow::functional {

AffineResult affine(const at::Tensor& inputs, const at::Tensor& shift,
                    const at::Tensor& raw_log_scale, double scale_bound, bool inverse) {
  // Soft clamp: s ≈ ŝ near 0 and never leaves (−b, b).
  const at::Tensor log_scale = at::tanh(raw_log_scale / scale_bound) * scale_bound;
  if (!inverse) return {inputs * at::exp(log_scale) + shift, log_scale};
  return {(inputs - shift) * at::exp(-log_scale), -log_scale};
}

}  // namespace zflow::functional
