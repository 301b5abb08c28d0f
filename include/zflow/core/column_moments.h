#pragma once
/// \file
/// Per-column minimum, maximum, mean and standard deviation of a table's rows, computed in
/// chunks so that a table larger than memory (a memory-mapped .npy file) is read once,
/// a chunk at a time, and never copied whole. The chunks' moments are merged with the
/// pairwise update of Chan, Golub & LeVeque (1979, "Updating formulae and a pairwise
/// algorithm for computing sample variances"): for chunks a and b with n_a, n_b rows,
///
///     δ = mean_b − mean_a,   mean = mean_a + δ·n_b/n,   M2 = M2_a + M2_b + δ²·n_a·n_b/n,
///
/// where M2 is the sum of squared deviations (std = sqrt(M2 / n), the biased estimate).
/// A table of at most one chunk gives exactly at::mean and at::std of the whole.
///
/// Example:
///
///     zflow::ColumnMoments m = zflow::column_moments(table, /*rows=*/train_rows);
///     // m.mean, m.std, m.min, m.max: [D] float64

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace zflow {

struct ColumnMoments {
  /// Rows counted.
  int64_t count = 0;
  /// [D] float64 each.
  at::Tensor min, max, mean, std;
};

/// The moments of `rows` (int64 indices; undefined: every row) of `table` [N, D], read
/// `chunk_rows` rows at a time and converted to float64 chunk by chunk.
ColumnMoments column_moments(const at::Tensor& table, const at::Tensor& rows = {},
                             int64_t chunk_rows = int64_t{1} << 20);

/// Rows `begin`..`begin + count` of `rows` of `table` (all rows when `rows` is undefined),
/// gathered into a new tensor.
at::Tensor gather_rows(const at::Tensor& table, const at::Tensor& rows, int64_t begin,
                       int64_t count);

}  // namespace zflow
