#pragma once
/// \file
/// Fused kernels or plain-LibTorch references. zflow's hot element-wise functions (the
/// rational-quadratic spline, the packed affine transformer), its dense conditioner stacks
/// (hand-written backward passes) and its training loop's optimizer (one flat buffer) each
/// have a plain-LibTorch reference implementation kept next to them; tests check that the
/// two agree. This process-wide switch selects the references instead, so that a benchmark
/// can measure both in one run (`zflow bench --reference`). Fused is the default.
///
/// Example:
///
///     zflow::use_fused_kernels(false);  // time the plain-LibTorch references
///     auto r = zflow::functional::rational_quadratic_spline(x, params, /*inverse=*/false);
///     zflow::use_fused_kernels(true);

namespace zflow {

/// Uses the fused implementations (true, the default) or the plain references (false).
void use_fused_kernels(bool fused);

/// Whether the fused implementations are in use.
bool fused_kernels();

}  // namespace zflow
