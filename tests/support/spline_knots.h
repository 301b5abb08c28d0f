#pragma once

// The knots a rational-quadratic spline uses, recomputed in the tests from raw bin sizes the
// way functional::rational_quadratic_spline makes them (docs/splines.md).

#include <ATen/ATen.h>

namespace zflow::testing {

/// Knots [n, K + 1] of one axis from raw sizes [n, K]: min + (1 − K·min)·softmax(raw),
/// cumulative, scaled onto [−bound, bound], with both ends exact.
inline at::Tensor knots_from(const at::Tensor& raw, double min_size, double bound) {
  const int64_t bins = raw.size(-1);
  at::Tensor fractions =
      min_size + (1.0 - min_size * static_cast<double>(bins)) * at::softmax(raw, -1);
  at::Tensor knots =
      at::cat({at::zeros({raw.size(0), 1}, raw.options()), at::cumsum(fractions, -1)}, -1) *
          (2.0 * bound) -
      bound;
  knots.select(-1, 0).fill_(-bound);
  knots.select(-1, bins).fill_(bound);
  return knots;
}

}  // namespace zflow::testing
