#pragma once
/// \file
/// Colours for plots: the viridis colour map for heat maps and a short palette of distinct
/// line colours for series.
///
/// Example:
///
///     std::string fill = zflow::plot::hex(zflow::plot::viridis(0.0));         // "#440154"
///     std::string first = zflow::plot::hex(zflow::plot::series_color(0));     // "#1f77b4"

#include <cstdint>
#include <string>

namespace zflow::plot {

/// An 8-bit sRGB colour.
struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

/// The viridis colour map (perceptually uniform; van der Walt & Smith, matplotlib 2.0) at t
/// in [0, 1]: dark purple #440154 at 0, teal near #21918c at 0.5, yellow #fde725 at 1. t is
/// clamped to [0, 1]; NaN gives light gray (#d3d3d3). Interpolates linearly between 33
/// anchors sampled evenly (t = k / 32) from matplotlib's 256-entry table, within 2 units of
/// that table everywhere.
Rgb viridis(double t);

/// "#rrggbb" in lower case.
std::string hex(Rgb c);

/// Distinct line colours for the series of a chart, a blue and an orange first (the ten
/// "tab10" colours). The index wraps, negative ones too.
Rgb series_color(int index);

}  // namespace zflow::plot
