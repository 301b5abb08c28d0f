#include "zflow/plot/chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "zflow/core/error.h"

namespace zflow::plot {
namespace {

std::string show(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

/// A tick step c × 10^e with c in {1, 2, 2.5, 5}.
struct Step {
  double c;
  int e;
  double value() const { return c * std::pow(10.0, e); }
  /// k steps, rounded once: for decimal steps the double closest to the decimal k·c·10^e.
  double times(double k) const {
    if (e < 0 && e >= -22) return k * c / std::pow(10.0, -e);  // 10^22 is exact
    return k * c * std::pow(10.0, e);
  }
};

Step nice_step(double width, int target) {
  const double raw = width / target;
  int e = static_cast<int>(std::floor(std::log10(raw)));
  for (double c : {1.0, 2.0, 2.5, 5.0}) {
    const Step step{c, e};
    if (step.value() >= raw * (1 - 1e-12)) return step;
  }
  return Step{1.0, e + 1};
}

/// The fewest decimals d (up to 17) with x · 10^d an integer, up to a relative 1e-6.
int decimals_for(double x) {
  x = std::abs(x);
  for (int d = 0; d < 17; ++d) {
    const double y = x * std::pow(10.0, d);
    if (std::abs(y - std::round(y)) <= 1e-6 * y) return d;
  }
  return 17;
}

/// Drops the sign of a formatted zero ("-0", "-0.00", "-0e5").
std::string without_negative_zero(std::string s) {
  if (!s.empty() && s[0] == '-') {
    const size_t end = s.find_first_of("eE");
    const std::string digits = s.substr(1, end == std::string::npos ? std::string::npos : end - 1);
    if (digits.find_first_not_of("0.") == std::string::npos) s.erase(0, 1);
  }
  return s;
}

/// The number of characters (UTF-8 code points) in s, for estimating text widths.
double characters(const std::string& s) {
  double n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0u) != 0x80u) n += 1;
  }
  return n;
}

/// A rough width in px of `text` at `size` in a sans-serif font.
double text_width(const std::string& text, double size) { return 0.6 * size * characters(text); }

constexpr double kTickLength = 5;
constexpr double kTickFont = 11;
constexpr double kLabelFont = 12;
constexpr double kTitleFont = 14;
constexpr char kFrameColor[] = "#444";
/// How far outside the area (px) line points are pulled in.
constexpr double kFar = 1e4;

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi) || !std::isfinite(hi - lo)) {
    throw ConfigError("plot::nice_ticks: the range must be finite with lo < hi, got [" + show(lo) +
                      ", " + show(hi) + "]");
  }
  if (target < 1 || target > 1000) {
    throw ConfigError("plot::nice_ticks: target must be in [1, 1000], got " +
                      std::to_string(target));
  }
  const Step step = nice_step(hi - lo, target);
  const double tolerance = 1e-9 * (hi - lo);
  const double first = std::ceil((lo - tolerance) / step.value()) - 1;
  const double last = std::floor((hi + tolerance) / step.value()) + 1;
  std::vector<double> ticks;
  for (double k = first; k <= last && ticks.size() <= static_cast<size_t>(target) + 2; ++k) {
    double v = step.times(k);
    if (v < lo - tolerance || v > hi + tolerance) continue;
    if (v == 0) v = 0;  // no -0
    ticks.push_back(v);
  }
  return ticks;
}

std::string tick_label(double value, double step) {
  if (!std::isfinite(step) || step <= 0) {
    throw ConfigError("plot::tick_label: step must be positive and finite, got " + show(step));
  }
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (std::abs(value) < step * 1e-6) value = 0;
  char buffer[512];
  const int decimals = decimals_for(step);
  if (decimals <= 4 && step < 1e6 && std::abs(value) < 1e15) {
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return without_negative_zero(buffer);
  }
  // Scientific: mantissa decimals for the step at the value's power of ten, short exponent.
  if (value == 0) return "0";
  const int e = static_cast<int>(std::floor(std::log10(std::abs(value))));
  const int mantissa_decimals = std::min(decimals_for(step / std::pow(10.0, e)), 16);
  std::snprintf(buffer, sizeof buffer, "%.*e", mantissa_decimals, value);
  std::string s = buffer;
  const size_t at = s.find('e');
  if (at == std::string::npos) return without_negative_zero(s);
  const int exponent = std::stoi(s.substr(at + 1));
  return without_negative_zero(s.substr(0, at) + "e" + std::to_string(exponent));
}

Axes::Axes(Svg& svg, double left, double top, double width, double height, Range x, Range y)
    : svg_(svg), left_(left), top_(top), width_(width), height_(height), x_(x), y_(y) {
  if (!std::isfinite(left) || !std::isfinite(top) || !std::isfinite(width) ||
      !std::isfinite(height) || width <= 0 || height <= 0) {
    throw ConfigError("plot::Axes: the area must be finite with a positive size, got (" +
                      show(left) + ", " + show(top) + ", " + show(width) + ", " + show(height) +
                      ")");
  }
  for (const auto& [name, r] : {std::pair<const char*, Range>{"x", x}, {"y", y}}) {
    if (!std::isfinite(r.lo) || !std::isfinite(r.hi) || !(r.lo < r.hi) ||
        !std::isfinite(r.width())) {
      throw ConfigError(std::string("plot::Axes: the ") + name +
                        " range must be finite with lo < hi, got [" + show(r.lo) + ", " +
                        show(r.hi) + "]");
    }
  }
}

double Axes::px(double x) const { return left_ + (x - x_.lo) / x_.width() * width_; }

double Axes::py(double y) const { return top_ + height_ - (y - y_.lo) / y_.width() * height_; }

Range Axes::x_range() const { return x_; }

Range Axes::y_range() const { return y_; }

void Axes::decorate(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                    bool y_ticks) {
  const double bottom = top_ + height_;
  svg_.rect(left_, top_, width_, height_, "none", kFrameColor, 1);

  const auto target = [](double pixels) { return std::clamp(static_cast<int>(pixels / 45), 3, 6); };
  const auto step_of = [](const std::vector<double>& ticks, Range r, int n) {
    return ticks.size() >= 2 ? ticks[1] - ticks[0] : nice_step(r.width(), n).value();
  };

  const int nx = target(width_);
  const std::vector<double> xt = nice_ticks(x_.lo, x_.hi, nx);
  const double x_step = step_of(xt, x_, nx);
  for (double t : xt) {
    const double X = px(t);
    svg_.line(X, bottom, X, bottom + kTickLength, kFrameColor, 1);
    svg_.text(X, bottom + kTickLength + kTickFont + 1, tick_label(t, x_step), kTickFont, "middle");
  }
  if (!xlabel.empty()) {
    svg_.text(left_ + width_ / 2, bottom + kTickLength + kTickFont + kLabelFont + 8, xlabel,
              kLabelFont, "middle");
  }

  double label_width = 0;
  if (y_ticks) {
    const int ny = target(height_);
    const std::vector<double> yt = nice_ticks(y_.lo, y_.hi, ny);
    const double y_step = step_of(yt, y_, ny);
    for (double t : yt) {
      const double Y = py(t);
      const std::string label = tick_label(t, y_step);
      svg_.line(left_ - kTickLength, Y, left_, Y, kFrameColor, 1);
      svg_.text(left_ - kTickLength - 3, Y + 0.35 * kTickFont, label, kTickFont, "end");
      label_width = std::max(label_width, text_width(label, kTickFont));
    }
  }
  if (!ylabel.empty()) {
    const double x = left_ - (y_ticks ? kTickLength + 3 + label_width + 8 : 8);
    svg_.text(x, top_ + height_ / 2, ylabel, kLabelFont, "middle", -90);
  }
  if (!title.empty()) {
    svg_.text(left_ + width_ / 2, top_ - 8, title, kTitleFont, "middle", 0, true);
  }
}

void Axes::image(const io::Image& image) { svg_.image(left_, top_, width_, height_, image); }

void Axes::line(const std::vector<double>& xs, const std::vector<double>& ys,
                const std::string& color, double width) {
  if (xs.size() != ys.size()) {
    throw ConfigError("plot::Axes::line: xs and ys differ in size (" + std::to_string(xs.size()) +
                      " and " + std::to_string(ys.size()) + ")");
  }
  if (!std::isfinite(width) || width <= 0) {
    throw ConfigError("plot::Axes::line: width must be positive, got " + show(width));
  }
  std::vector<std::vector<std::pair<double, double>>> runs(1);
  for (size_t i = 0; i < xs.size(); ++i) {
    const double X = px(xs[i]), Y = py(ys[i]);
    if (!std::isfinite(X) || !std::isfinite(Y)) {
      if (!runs.back().empty()) runs.emplace_back();
      continue;
    }
    runs.back().emplace_back(std::clamp(X, left_ - kFar, left_ + width_ + kFar),
                             std::clamp(Y, top_ - kFar, top_ + height_ + kFar));
  }
  bool open = false;
  for (const auto& run : runs) {
    if (run.size() < 2) continue;
    if (!open) svg_.begin_clip(left_, top_, width_, height_), open = true;
    svg_.polyline(run, color, width);
  }
  if (open) svg_.end_clip();
}

void Axes::scatter(const std::vector<double>& xs, const std::vector<double>& ys,
                   const std::string& color, double radius) {
  if (xs.size() != ys.size()) {
    throw ConfigError("plot::Axes::scatter: xs and ys differ in size (" +
                      std::to_string(xs.size()) + " and " + std::to_string(ys.size()) + ")");
  }
  if (!std::isfinite(radius) || radius <= 0) {
    throw ConfigError("plot::Axes::scatter: radius must be positive, got " + show(radius));
  }
  bool open = false;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i], y = ys[i];
    if (!(x >= x_.lo && x <= x_.hi && y >= y_.lo && y <= y_.hi)) continue;  // also NaN
    if (!open) svg_.begin_clip(left_, top_, width_, height_), open = true;
    svg_.circle(px(x), py(y), radius, "none", color, 0);
  }
  if (open) svg_.end_clip();
}

void Axes::circle(double cx, double cy, double radius, const std::string& color, double width,
                  const std::string& dash) {
  const double r = radius / x_.width() * width_;
  if (!std::isfinite(cx) || !std::isfinite(cy) || !std::isfinite(r) || !(radius > 0)) {
    throw ConfigError(
        "plot::Axes::circle: the centre must be finite and the radius positive, "
        "got (" +
        show(cx) + ", " + show(cy) + ") and " + show(radius));
  }
  svg_.begin_clip(left_, top_, width_, height_);
  svg_.circle(px(cx), py(cy), r, color, "none", width, dash);
  svg_.end_clip();
}

void Axes::legend(const std::vector<std::pair<std::string, std::string>>& entries) {
  if (entries.empty()) return;
  constexpr double kRow = 16, kPad = 8, kSample = 18, kGap = 6;
  double name_width = 0;
  for (const auto& entry : entries) {
    name_width = std::max(name_width, text_width(entry.first, kTickFont));
  }
  const double box_width = kPad + kSample + kGap + name_width + kPad;
  const double box_height = kRow * static_cast<double>(entries.size()) + kPad;
  const double x0 = left_ + width_ - box_width - kPad;
  const double y0 = top_ + kPad;
  svg_.rect(x0, y0, box_width, box_height, "white", "#999", 0.8);
  for (size_t i = 0; i < entries.size(); ++i) {
    const double cy = y0 + kPad / 2 + kRow * static_cast<double>(i) + kRow / 2;
    svg_.line(x0 + kPad, cy, x0 + kPad + kSample, cy, entries[i].second, 2);
    svg_.text(x0 + kPad + kSample + kGap, cy + 0.35 * kTickFont, entries[i].first, kTickFont);
  }
}

}  // namespace zflow::plot
