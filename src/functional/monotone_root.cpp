#include "zflow/functional/monotone_root.h"

#include <cfloat>
#include <limits>
#include <sstream>

#include <ATen/ATen.h>

#include "zflow/core/error.h"

namespace zflow::functional {

at::Tensor solve_increasing(const ValueAndSlope& f, const at::Tensor& target, at::Tensor lower,
                            at::Tensor upper, const at::Tensor& start, int64_t max_iterations,
                            const std::string& who) {
  TORCH_CHECK(target.scalar_type() == at::kDouble && lower.scalar_type() == at::kDouble &&
                  upper.scalar_type() == at::kDouble && start.scalar_type() == at::kDouble,
              who, ": the root-finding works in float64");
  // Non-finite targets have no root to find: they come out NaN and take no part in the
  // test for convergence. (A NaN value or bracket for a finite target, from NaN
  // parameters, never converges: an error, not a silent NaN.)
  const at::Tensor pass_through = at::logical_not(at::isfinite(target));
  // A few ulps wider than the bracket: where f rounds to its value at an end the root is
  // that end itself, and Newton's steps must still fall strictly inside.
  const at::Tensor pad =
      8 * DBL_EPSILON * (1 + lower.abs().nan_to_num(0, 0, 0) + upper.abs().nan_to_num(0, 0, 0));
  lower = lower - pad;
  upper = upper + pad;
  at::Tensor v = at::minimum(at::maximum(start, lower), upper);
  // The last two steps' sizes (rtsafe's dx and dxold), first the bracket's width.
  at::Tensor step = (upper - lower).nan_to_num(0, 0, 0);
  at::Tensor step_before = step;
  at::Tensor residual;
  // Elements that have converged keep their root: iterating them further could only move
  // them (a tiny Newton step after a tinier one counts as slow and is replaced by the
  // midpoint of a bracket that may still be wide on one side).
  at::Tensor finished = pass_through;
  for (int64_t i = 0; i < max_iterations; ++i) {
    auto [value, slope] = f(v);
    residual = value - target;
    lower = at::where(residual < 0, v, lower);
    upper = at::where(residual > 0, v, upper);
    const at::Tensor newton = v - residual / slope;
    // Newton's step is taken if it stays inside the bracket and is less than half the step
    // before last (otherwise it is not converging fast enough: a misleading slope); a step
    // that rounds to no step at all has converged, and is kept.
    const at::Tensor fast = (newton - v).abs() * 2 <= step_before;
    const at::Tensor inside = ((newton > lower) & (newton < upper) & fast) | (newton == v);
    const at::Tensor next =
        at::where(finished | (residual == 0), v, at::where(inside, newton, 0.5 * (lower + upper)));
    const at::Tensor tolerance = 4 * DBL_EPSILON * (1 + next.abs());
    // A NaN residual (NaN parameters) never counts as converged.
    finished = finished | ((((next - v).abs() <= tolerance) | (upper - lower <= tolerance)) &
                           at::logical_not(at::isnan(residual)));
    step_before = step;
    step = (next - v).abs();
    v = at::where(pass_through, std::numeric_limits<double>::quiet_NaN(), next);
    if (finished.all().item<bool>()) return v;
  }
  std::ostringstream m;
  m << who << "'s root-finding did not converge in " << max_iterations
    << " iterations (largest residual " << residual.abs().nan_to_num(0, 0, 0).max().item<double>()
    << "; raise max_iterations, or check the parameters for NaN or Inf)";
  throw Error(m.str());
}

}  // namespace zflow::functional
