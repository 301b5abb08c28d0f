#pragma once
/// \file
/// Charts on an Svg: "nice" tick values and labels, and Axes, a plot area that maps data
/// coordinates to pixels and draws lines, points, pictures, a frame with ticks, labels, a
/// title and a legend. `zflow plot` draws its learning curves and density panels with it.
///
/// Example (a learning curve; steps and nll are std::vector<double>):
///
///     zflow::plot::Svg svg(480, 320);
///     zflow::plot::Axes axes(svg, 60, 40, 400, 240, {0, 1000}, {1.0, 3.0});
///     axes.line(steps, nll, zflow::plot::hex(zflow::plot::series_color(0)));
///     axes.decorate("Training", "step", "NLL (nats)");  // after the content
///     svg.save("curves.svg");

#include <string>
#include <utility>
#include <vector>

#include "zflow/io/image.h"
#include "zflow/plot/raster.h"
#include "zflow/plot/svg.h"

namespace zflow::plot {

/// "Nice" tick values covering [lo, hi] with about `target` intervals: the step is the
/// smallest of 1, 2, 2.5 or 5 × 10^k that is at least (hi - lo) / target, so there are at
/// most target + 1 ticks; e.g. (0, 1, 5) gives 0, 0.2, ..., 1 and (-3.7, 4.2, 5) gives -2,
/// 0, 2, 4. Only multiples of the step inside [lo, hi] are returned (an end within 1e-9 of
/// the width outside counts as inside), computed so that decimal steps give the closest
/// doubles (0.6, not 0.6000000000000001). ConfigError unless lo and hi are finite with
/// lo < hi and 1 <= target <= 1000.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

/// A tick label with just enough decimals for the step: 0.5 → "0.5", 0.25 → "0.25", 2000 →
/// "2000", 0.0001 → "0.0001". Steps that would need more than 4 decimals (0.00005, 0.00025)
/// or are at least 1e6, and values from 1e15 up, are written in scientific notation with
/// the mantissa decimals the step needs and a short exponent ("2e-5", "1.5e6"). Values
/// within a millionth of a step of 0 are zero, written with the decimals of their
/// neighbours ("0.0" for step 0.2, "0" in scientific notation); "-0" never appears.
/// Non-finite values give "nan", "inf" or "-inf".
/// ConfigError for a step that is not positive and finite.
std::string tick_label(double value, double step);

/// A plot area inside an Svg: maps data coordinates (x right, y up) to pixels, draws a frame,
/// ticks with labels, axis labels and a title. Holds a reference to the Svg, which must
/// outlive it. Content (image, line, scatter, circle) is clipped to the area.
class Axes {
 public:
  /// The plot area is (left, top, width, height) in px; x and y are the data ranges.
  /// ConfigError for a non-finite position, a width or height that is not positive, or a
  /// range that is not finite with lo < hi.
  Axes(Svg& svg, double left, double top, double width, double height, Range x, Range y);

  /// The pixel column of data x (x.lo → left edge, x.hi → right edge).
  double px(double x) const;
  /// The pixel row of data y (y.lo → bottom edge, y.hi → top edge).
  double py(double y) const;
  Range x_range() const;
  Range y_range() const;

  /// The frame, ticks and tick labels on the left and bottom, axis labels, and the title
  /// above (bold, centred). Ticks come from nice_ticks with a target of 5 (fewer on narrow
  /// areas: one per 45 px, between 3 and 6) and are labelled by tick_label. y_ticks = false
  /// leaves out the y ticks and their labels (e.g. for densities in arbitrary units). Call
  /// after the content so that the frame is drawn on top.
  void decorate(const std::string& title, const std::string& xlabel = "",
                const std::string& ylabel = "", bool y_ticks = true);
  /// Fills the plot area with an image (e.g. a heat map whose grid spans exactly x × y).
  void image(const io::Image& image);
  /// A line through the points in order; non-finite points break it (a lone point between
  /// breaks draws nothing). Points far outside the area are pulled to within 10^4 px of it,
  /// which keeps the numbers short and the visible part unchanged unless a segment spans
  /// that far. ConfigError for xs and ys of different sizes or a width that is not positive.
  void line(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& color,
            double width = 1.5);
  /// Filled dots of `radius` px; points outside the ranges and non-finite points are left
  /// out. ConfigError for xs and ys of different sizes or a radius that is not positive.
  void scatter(const std::vector<double>& xs, const std::vector<double>& ys,
               const std::string& color, double radius = 1.5);
  /// A circle in data coordinates, its radius in x units (a true circle on equal-aspect
  /// axes); `dash` as for Svg::line. ConfigError for a non-finite centre or a radius that is
  /// not positive and finite.
  void circle(double cx, double cy, double radius, const std::string& color, double width = 1,
              const std::string& dash = "");
  /// A legend box in the top-right corner of the area: one row per entry, a short line in
  /// the colour (second) followed by the name (first). Draws nothing for no entries.
  void legend(const std::vector<std::pair<std::string, std::string>>& entries);

 private:
  Svg& svg_;
  double left_, top_, width_, height_;
  Range x_, y_;
};

}  // namespace zflow::plot
