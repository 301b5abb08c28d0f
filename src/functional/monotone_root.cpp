#include "zflow/functional/monotone_root.h"

#include <cfloat>
#include <limits>
#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow::functional {

at::Tensor solve_increasing(const ValueAndSlope& f, const at::Tensor& target,
                            const at::Tensor& lower, const at::Tensor& upper,
                            const at::Tensor& start, int64_t max_iterations,
                            const std::string& who) {
  TORCH_CHECK(target.scalar_type() == at::kDouble && lower.scalar_type() == at::kDouble &&
                  upper.scalar_type() == at::kDouble && start.scalar_type() == at::kDouble,
              who, ": the root-finding works in float64");
  // Everything flat, element i at position i: f sees the unfinished elements only.
  const at::Tensor y = target.reshape(-1);
  // Non-finite targets have no root to find: they come out NaN and take no part in the
  // test for convergence. (A NaN value or bracket for a finite target, from NaN
  // parameters, never converges: an error, not a silent NaN.)
  const at::Tensor pass_through = at::logical_not(at::isfinite(y));
  // A few ulps wider than the bracket: where f rounds to its value at an end the root is
  // that end itself, and Newton's steps must still fall strictly inside.
  const at::Tensor low = lower.expand_as(target).reshape(-1);
  const at::Tensor high = upper.expand_as(target).reshape(-1);
  const at::Tensor pad =
      8 * DBL_EPSILON * (1 + low.abs().nan_to_num(0, 0, 0) + high.abs().nan_to_num(0, 0, 0));
  at::Tensor lo = low - pad;
  at::Tensor hi = high + pad;
  at::Tensor v = at::minimum(at::maximum(start.expand_as(target).reshape(-1), lo), hi);
  // The last two steps' sizes (rtsafe's dx and dxold), first the bracket's width.
  at::Tensor step = (hi - lo).nan_to_num(0, 0, 0);
  at::Tensor step_before = step.clone();
  // Elements that have converged keep their root and are not evaluated again: iterating
  // them further could only move them (a tiny Newton step after a tinier one counts as slow
  // and is replaced by the midpoint of a bracket that may still be wide on one side), and
  // the last few stragglers cost a few evaluations, not a pass over the whole batch each.
  at::Tensor finished = pass_through.clone();
  at::Tensor residual;
  for (int64_t i = 0; i < max_iterations; ++i) {
    const at::Tensor active = at::logical_not(finished).nonzero().squeeze(1);
    if (active.numel() == 0) break;
    const at::Tensor va = v.index_select(0, active);
    auto [value, slope] = f(va, active);
    residual = value.reshape(-1) - y.index_select(0, active);
    at::Tensor la = at::where(residual < 0, va, lo.index_select(0, active));
    at::Tensor ua = at::where(residual > 0, va, hi.index_select(0, active));
    const at::Tensor newton = va - residual / slope.reshape(-1);
    // Newton's step is taken if it stays inside the bracket and is less than half the step
    // before last (otherwise it is not converging fast enough: a misleading slope); a step
    // that rounds to no step at all has converged, and is kept.
    const at::Tensor fast = (newton - va).abs() * 2 <= step_before.index_select(0, active);
    const at::Tensor inside = ((newton > la) & (newton < ua) & fast) | (newton == va);
    const at::Tensor next =
        at::where(residual == 0, va, at::where(inside, newton, 0.5 * (la + ua)));
    const at::Tensor tolerance = 4 * DBL_EPSILON * (1 + next.abs());
    // A NaN residual (NaN parameters) never counts as converged.
    const at::Tensor done = (((next - va).abs() <= tolerance) | (ua - la <= tolerance)) &
                            at::logical_not(at::isnan(residual));
    step_before.index_copy_(0, active, step.index_select(0, active));
    step.index_copy_(0, active, (next - va).abs());
    lo.index_copy_(0, active, la);
    hi.index_copy_(0, active, ua);
    v.index_copy_(0, active, next);
    finished.index_copy_(0, active, done);
  }
  if (!finished.all().item<bool>()) {
    std::ostringstream m;
    m << who << "'s root-finding did not converge in " << max_iterations
      << " iterations (largest residual " << residual.abs().nan_to_num(0, 0, 0).max().item<double>()
      << "; raise max_iterations, or check the parameters for NaN or Inf)";
    throw Error(m.str());
  }
  return at::where(pass_through, std::numeric_limits<double>::quiet_NaN(), v).view(target.sizes());
}

}  // namespace zflow::functional
