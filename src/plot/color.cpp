#include "zflow/plot/color.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

namespace zflow::plot {
namespace {

/// viridis at t = k / 32, k = 0..32: matplotlib's 256-entry table (index i at t = i / 255)
/// interpolated linearly at those points and rounded.
constexpr int kIntervals = 32;
constexpr std::array<Rgb, kIntervals + 1> kViridis = {{
    {68, 1, 84},    {71, 13, 96},   {72, 24, 106},  {72, 35, 116},  {71, 45, 123},  {69, 55, 129},
    {66, 64, 134},  {62, 73, 137},  {59, 82, 139},  {55, 91, 141},  {51, 99, 141},  {47, 107, 142},
    {44, 114, 142}, {41, 122, 142}, {38, 130, 142}, {35, 137, 142}, {33, 144, 140}, {31, 151, 139},
    {31, 159, 136}, {33, 166, 133}, {39, 173, 129}, {49, 181, 123}, {62, 188, 116}, {77, 194, 108},
    {92, 200, 99},  {110, 206, 88}, {130, 211, 77}, {149, 216, 64}, {170, 220, 50}, {192, 223, 37},
    {213, 226, 26}, {234, 229, 26}, {253, 231, 37},
}};

/// The "tab10" palette.
constexpr std::array<Rgb, 10> kSeries = {{
    {0x1f, 0x77, 0xb4},  // blue
    {0xff, 0x7f, 0x0e},  // orange
    {0x2c, 0xa0, 0x2c},  // green
    {0xd6, 0x27, 0x28},  // red
    {0x94, 0x67, 0xbd},  // purple
    {0x8c, 0x56, 0x4b},  // brown
    {0xe3, 0x77, 0xc2},  // pink
    {0x7f, 0x7f, 0x7f},  // gray
    {0xbc, 0xbd, 0x22},  // olive
    {0x17, 0xbe, 0xcf},  // cyan
}};

uint8_t mix(uint8_t a, uint8_t b, double f) {
  const double v = static_cast<double>(a) + (static_cast<double>(b) - a) * f;
  return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
}

}  // namespace

Rgb viridis(double t) {
  if (std::isnan(t)) return {211, 211, 211};
  const double p = std::clamp(t, 0.0, 1.0) * kIntervals;
  const int k = std::min(static_cast<int>(p), kIntervals - 1);
  const double f = p - k;
  const Rgb& a = kViridis[static_cast<size_t>(k)];
  const Rgb& b = kViridis[static_cast<size_t>(k) + 1];
  return {mix(a.r, b.r, f), mix(a.g, b.g, f), mix(a.b, b.b, f)};
}

std::string hex(Rgb c) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "#%02x%02x%02x", c.r, c.g, c.b);
  return buffer;
}

Rgb series_color(int index) {
  const int n = static_cast<int>(kSeries.size());
  return kSeries[static_cast<size_t>(((index % n) + n) % n)];
}

}  // namespace zflow::plot
