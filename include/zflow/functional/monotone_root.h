#pragma once
/// \file
/// Roots of strictly increasing scalar functions, element by element: for every element i
/// the v_i with f(v)_i = y_i, given a bracket lower_i ≤ v_i ≤ upper_i that holds the root.
/// The layers whose inverse (or forward) has no closed form use it: planar and Sylvester
/// flows (transforms/residual.h), the deep sigmoidal transformer of neural autoregressive
/// flows and block neural autoregressive flows (transforms/neural_autoregressive.h).
///
/// The method is Newton's, safeguarded by bisection (Press et al., Numerical Recipes,
/// 3rd ed., §9.4, "rtsafe"): each evaluation shrinks the bracket by the sign of the
/// residual, and a Newton step that would leave the bracket, or that is more than half the
/// step before last (Newton's method is not converging fast: a misleading slope), is
/// replaced by the bracket's midpoint.
/// So it converges whatever the function, as bisection does (one bit a step: about 60 steps
/// from a bracket of width 2⁸ to float64 precision), and quadratically near the root, as
/// Newton's method does. It works in float64; an element is done (and left alone) when its
/// step or bracket is within 4 ulps of |v| + 1, and the call returns when all are. The
/// layers' inverses take 4–15 iterations (measured on trained NAF and B-NAF models).
///
/// Example: the cube root of y, by v³ = y on [−|y| − 1, |y| + 1]:
///
///     at::Tensor y = at::randn({8}, at::kDouble);
///     at::Tensor v = zflow::functional::solve_increasing(
///         [](const at::Tensor& v, const at::Tensor&) { return std::make_pair(v * v * v, 3 * v *
///         v); }, y, -y.abs() - 1, y.abs() + 1, y, 100, "cube root");

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include <ATen/core/Tensor.h>

namespace zflow::functional {

/// f and f' at the elements `index` (int64 [n], positions in the target flattened
/// row-major) of the unknown, whose current values are `v` [n]: two float64 tensors of n
/// elements (the slope may be anything positive, it only steers Newton's steps). The solver
/// asks only for the elements that have not converged yet.
using ValueAndSlope =
    std::function<std::pair<at::Tensor, at::Tensor>(const at::Tensor& v, const at::Tensor& index)>;

/// The roots of f(v) = `target`, element by element, starting at `start`, inside
/// [`lower`, `upper`] (all float64, broadcastable to the target's shape, no autograd; the
/// caller ensures the bracket holds the root); the result has the target's shape. Where the target
/// is not finite the root is NaN: non-finite inputs pass through as NaN, as in every transform.
/// Throws zflow::Error, "<who>'s root-finding did not converge in N iterations …", if some element
/// has not converged after `max_iterations` evaluations (also where NaN parameters make f or the
/// bracket NaN).
at::Tensor solve_increasing(const ValueAndSlope& f, const at::Tensor& target,
                            const at::Tensor& lower, const at::Tensor& upper,
                            const at::Tensor& start, int64_t max_iterations,
                            const std::string& who);

}  // namespace zflow::functional
