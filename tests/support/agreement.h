#pragma once

// Agreement of a fused implementation with its plain-autograd reference (the dense stack of
// nn/dense.h, the packed affine transformer of functional/affine.h).
//
// Agreement, per element, with scale = max(|exact|, 1):
// - float64: |fused − reference| ≤ 1e-12 · scale;
// - float32: |fused − exact| ≤ max(1e-6 · scale, 2 |reference − exact|), where "exact" is
//   the reference evaluated in float64 on the same float32 numbers. Gradients such as
//   ∂s = −g·x − g_logdet sum terms much larger than their result, and float32 rounding of
//   those terms (in either implementation) exceeds 1e-6 of the result; the fused version
//   must then be no less accurate than the plain one.

#include <gtest/gtest.h>

#include <string>

#include <ATen/ATen.h>

namespace zflow::testing {

inline double tolerance(at::ScalarType dtype) { return dtype == at::kDouble ? 1e-12 : 1e-6; }

// The rule at the top of this file; `exact` is the float64 evaluation (for float64 inputs, the
// reference itself).
inline void expect_agree(const at::Tensor& fused, const at::Tensor& reference,
                         const at::Tensor& exact, const std::string& what) {
  ASSERT_TRUE(fused.defined() && reference.defined() && exact.defined()) << what;
  ASSERT_EQ(fused.sizes(), exact.sizes()) << what;
  const at::Tensor truth = exact.detach().to(at::kDouble).flatten();
  const at::Tensor scale = truth.abs().clamp_min(1.0);
  const at::Tensor fused_error = (fused.detach().to(at::kDouble).flatten() - truth).abs() / scale;
  const at::Tensor reference_error =
      (reference.detach().to(at::kDouble).flatten() - truth).abs() / scale;
  const at::Tensor allowed = (2 * reference_error).clamp_min(tolerance(fused.scalar_type()));
  const int64_t worst = (fused_error - allowed).argmax().item<int64_t>();
  EXPECT_LE(fused_error[worst].item<double>(), allowed[worst].item<double>())
      << what << ": element " << worst << ", fused " << fused.flatten()[worst].item<double>()
      << ", reference " << reference.flatten()[worst].item<double>() << ", exact "
      << truth[worst].item<double>();
}

// Same dtype, no float64 evaluation: |a − b| ≤ tolerance · max(|b|, 1).
inline void expect_close(const at::Tensor& fused, const at::Tensor& reference, at::ScalarType dtype,
                         const std::string& what) {
  ASSERT_EQ(fused.scalar_type(), dtype) << what;
  expect_agree(fused, reference, reference, what);
}

// A float64 leaf with the same values as `t` (float32 or float64).
inline at::Tensor as_double_leaf(const at::Tensor& t) {
  return t.detach().to(at::kDouble).requires_grad_(t.requires_grad());
}

}  // namespace zflow::testing
