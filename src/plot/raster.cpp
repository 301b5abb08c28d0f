#include "zflow/plot/raster.h"

#include <algorithm>
#include <cstdio>
#include <string>

#include "zflow/core/error.h"
#include "zflow/plot/color.h"

namespace zflow::plot {
namespace {

/// The most cells histogram2d makes.
constexpr int64_t kMaxCells = int64_t{1} << 26;
/// The largest side of a heat map image, in pixels.
constexpr int64_t kMaxSide = 32768;

std::string show(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

void check_range(const char* where, const char* name, Range r) {
  if (!std::isfinite(r.lo) || !std::isfinite(r.hi) || !(r.lo < r.hi)) {
    throw ConfigError(std::string("plot::") + where + ": the " + name +
                      " range must be finite with lo < hi, got [" + show(r.lo) + ", " + show(r.hi) +
                      "]");
  }
}

/// The index of the bin of v in n equal bins over r, or -1 outside (the upper end is in the
/// last bin).
int64_t bin(double v, Range r, int64_t n) {
  if (!(v >= r.lo && v <= r.hi)) return -1;  // also NaN
  const auto k = static_cast<int64_t>((v - r.lo) / r.width() * static_cast<double>(n));
  return std::clamp<int64_t>(k, 0, n - 1);
}

size_t checked_index(const Grid& grid, int64_t r, int64_t c) {
  if (r < 0 || r >= grid.rows || c < 0 || c >= grid.cols) {
    throw ConfigError("plot::Grid::at: cell (" + std::to_string(r) + ", " + std::to_string(c) +
                      ") is outside a " + std::to_string(grid.rows) + " x " +
                      std::to_string(grid.cols) + " grid");
  }
  const auto index = static_cast<size_t>(r * grid.cols + c);
  if (index >= grid.values.size()) {
    throw ConfigError("plot::Grid::at: a " + std::to_string(grid.rows) + " x " +
                      std::to_string(grid.cols) + " grid holds only " +
                      std::to_string(grid.values.size()) + " values");
  }
  return index;
}

}  // namespace

double& Grid::at(int64_t r, int64_t c) { return values[checked_index(*this, r, c)]; }

double Grid::at(int64_t r, int64_t c) const { return values[checked_index(*this, r, c)]; }

Grid histogram2d(const std::vector<double>& xs, const std::vector<double>& ys, Range x, Range y,
                 int64_t cols, int64_t rows) {
  if (xs.size() != ys.size()) {
    throw ConfigError("plot::histogram2d: xs and ys differ in size (" + std::to_string(xs.size()) +
                      " and " + std::to_string(ys.size()) + ")");
  }
  check_range("histogram2d", "x", x);
  check_range("histogram2d", "y", y);
  if (cols < 1 || rows < 1 || cols > kMaxCells / rows) {
    throw ConfigError("plot::histogram2d: a grid of " + std::to_string(rows) + " x " +
                      std::to_string(cols) + " (rows x cols) bins is empty or over 2^26 cells");
  }
  Grid grid{rows, cols, std::vector<double>(static_cast<size_t>(rows * cols), 0.0)};
  for (size_t i = 0; i < xs.size(); ++i) {
    const int64_t c = bin(xs[i], x, cols);
    const int64_t b = bin(ys[i], y, rows);
    if (c < 0 || b < 0) continue;
    grid.values[static_cast<size_t>((rows - 1 - b) * cols + c)] += 1.0;
  }
  return grid;
}

io::Image heatmap(const Grid& grid, const HeatmapOptions& options) {
  const auto fail = [](const std::string& why) { throw ConfigError("plot::heatmap: " + why); };
  if (grid.rows < 1 || grid.cols < 1 || grid.rows > kMaxCells / grid.cols ||
      grid.values.size() != static_cast<size_t>(grid.rows * grid.cols)) {
    fail("a " + std::to_string(grid.rows) + " x " + std::to_string(grid.cols) +
         " grid (rows x cols) with " + std::to_string(grid.values.size()) +
         " values is empty or inconsistent");
  }
  const int64_t scale = options.scale;
  if (scale < 1 || grid.cols > kMaxSide / scale || grid.rows > kMaxSide / scale) {
    fail("scale " + std::to_string(scale) + " is below 1 or makes an image side over " +
         std::to_string(kMaxSide) + " pixels");
  }
  if (!std::isfinite(options.gamma) || options.gamma <= 0) {
    fail("gamma must be positive and finite, got " + show(options.gamma));
  }
  if (std::isinf(options.lo) || std::isinf(options.hi) || options.lo > options.hi) {
    fail("lo and hi must be finite (or NaN for the data's) with lo <= hi, got " + show(options.lo) +
         " and " + show(options.hi));
  }
  double lo = options.lo, hi = options.hi;
  if (std::isnan(lo) || std::isnan(hi)) {
    double min = INFINITY, max = -INFINITY;
    for (double v : grid.values) {
      if (std::isfinite(v)) min = std::min(min, v), max = std::max(max, v);
    }
    if (std::isnan(lo)) lo = min;
    if (std::isnan(hi)) hi = max;
  }

  // One colour per cell, then the cells blown up to scale × scale pixels.
  std::vector<Rgb> colors(grid.values.size());
  for (size_t i = 0; i < grid.values.size(); ++i) {
    const double v = grid.values[i];
    if (!std::isfinite(v)) {
      colors[i] = {255, 255, 255};
      continue;
    }
    double t = hi > lo ? std::clamp((v - lo) / (hi - lo), 0.0, 1.0) : (v > hi ? 1.0 : 0.0);
    if (options.gamma != 1.0) t = std::pow(t, options.gamma);
    colors[i] = viridis(t);
  }
  io::Image image;
  image.width = grid.cols * scale;
  image.height = grid.rows * scale;
  image.channels = 3;
  image.pixels.resize(static_cast<size_t>(image.width * image.height * 3));
  uint8_t* out = image.pixels.data();
  for (int64_t py = 0; py < image.height; ++py) {
    const Rgb* row = colors.data() + (py / scale) * grid.cols;
    for (int64_t px = 0; px < image.width; ++px) {
      const Rgb& c = row[px / scale];
      *out++ = c.r;
      *out++ = c.g;
      *out++ = c.b;
    }
  }
  return image;
}

Range covering_range(std::vector<double> values, double q, double margin) {
  if (!(q >= 0 && q < 0.5)) {
    throw ConfigError("plot::covering_range: q must be in [0, 0.5), got " + show(q));
  }
  if (!std::isfinite(margin) || margin < 0) {
    throw ConfigError("plot::covering_range: margin must be finite and non-negative, got " +
                      show(margin));
  }
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
      values.end());
  if (values.empty()) return {-1.0, 1.0};
  std::sort(values.begin(), values.end());
  const auto quantile = [&](double p) {
    const double position = p * static_cast<double>(values.size() - 1);
    const auto k = static_cast<size_t>(position);
    if (k + 1 >= values.size()) return values.back();
    const double f = position - static_cast<double>(k);
    return values[k] + (values[k + 1] - values[k]) * f;
  };
  double lo = quantile(q), hi = quantile(1.0 - q);
  if (!(hi > lo)) {
    const double v = lo;
    double half = 0.5;
    while (!(v + half > v - half)) half *= 2;  // values so large that ±0.5 vanishes
    return {v - half, v + half};
  }
  const double pad = (hi - lo) * margin;
  return {lo - pad, hi + pad};
}

}  // namespace zflow::plot
