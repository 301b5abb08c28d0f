#pragma once
/// \file
/// Raster pictures for plots: counting points into a grid of bins, painting a grid as a heat
/// map through viridis, and choosing a range that covers data without its extreme outliers.
///
/// Example (a 2-D histogram of samples xs, ys as a picture):
///
///     namespace plot = zflow::plot;
///     plot::Range x = plot::covering_range(xs), y = plot::covering_range(ys);
///     plot::Grid counts = plot::histogram2d(xs, ys, x, y, /*cols=*/200, /*rows=*/200);
///     plot::HeatmapOptions options;
///     options.gamma = 0.5;  // lift faint mass into view
///     zflow::io::Image picture = plot::heatmap(counts, options);  // 200×200 RGB

#include <cmath>
#include <cstdint>
#include <vector>

#include "zflow/io/image.h"

namespace zflow::plot {

/// A closed interval [lo, hi] of data values.
struct Range {
  double lo = 0, hi = 1;
  double width() const { return hi - lo; }
};

/// Values on a grid: rows × cols, row 0 at the TOP (largest y), column 0 at the left
/// (smallest x). values holds rows * cols numbers, row-major.
struct Grid {
  int64_t rows = 0, cols = 0;
  std::vector<double> values;
  /// The value in row r, column c. ConfigError for an index outside the grid (or a values
  /// vector too short for it).
  double& at(int64_t r, int64_t c);
  double at(int64_t r, int64_t c) const;
};

/// Counts the points (xs[i], ys[i]) into cols × rows equal bins over x × y. Bins are
/// half-open [a, b) except the last one in each direction, which includes the upper end (as
/// numpy.histogram2d does). Points outside the ranges and non-finite points are dropped. y
/// points up, so row 0 holds the highest y bin. ConfigError for xs and ys of different
/// sizes, a range that is not finite with lo < hi, non-positive cols or rows, or a grid of
/// more than 2^26 cells.
Grid histogram2d(const std::vector<double>& xs, const std::vector<double>& ys, Range x, Range y,
                 int64_t cols, int64_t rows);

/// Options for heatmap.
struct HeatmapOptions {
  /// The value painted with the bottom colour of viridis; NaN: the grid's smallest finite value.
  double lo = NAN;
  /// The value painted with the top colour of viridis; NaN: the grid's largest finite value.
  double hi = NAN;
  /// After normalising to t in [0, 1], cells are painted at t^gamma: below 1 (e.g. 0.5)
  /// lifts faint mass into view, above 1 stresses the peaks.
  double gamma = 1.0;
  /// Pixels per cell in each direction.
  int64_t scale = 1;
};

/// An RGB image of the grid through viridis, cols * scale pixels wide and rows * scale high,
/// row 0 at the top. Values at or below lo get #440154, at or above hi #fde725; where lo
/// equals hi (a constant grid) every finite cell gets the bottom colour. Non-finite cells
/// are white. ConfigError for a grid whose sizes are not positive or do not match its
/// values, a scale below 1 or an image side over 32768 pixels, a gamma that is not positive
/// and finite, or an explicit lo / hi that is infinite or has lo > hi.
io::Image heatmap(const Grid& grid, const HeatmapOptions& options = {});

/// The range covering the values' [q, 1 - q] quantiles (linear interpolation between order
/// statistics, as numpy.quantile), widened by `margin` (a fraction of its width) on both
/// sides. Non-finite values are ignored. A degenerate range (all values equal) becomes
/// value ± 0.5 (no margin); no finite values at all give {-1, 1}. ConfigError unless
/// 0 <= q < 0.5 and margin is finite and non-negative.
Range covering_range(std::vector<double> values, double q = 0.001, double margin = 0.05);

}  // namespace zflow::plot
