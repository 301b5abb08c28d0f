#include <gtest/gtest.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stb/stb_image.h>

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support/temp_dir.h"
#include "zflow/core/error.h"
#include "zflow/plot/chart.h"
#include "zflow/plot/color.h"
#include "zflow/plot/raster.h"
#include "zflow/plot/svg.h"

using zflow::ConfigError;
using zflow::io::Image;
using zflow::plot::Axes;
using zflow::plot::Grid;
using zflow::plot::HeatmapOptions;
using zflow::plot::Range;
using zflow::plot::Rgb;
using zflow::plot::Svg;

namespace {

// ---- helpers ---------------------------------------------------------------------------------

/// Rgb from "#rrggbb".
Rgb parse_hex(const std::string& s) {
  const auto byte = [&](size_t at) {
    return static_cast<uint8_t>(std::stoi(s.substr(at, 2), nullptr, 16));
  };
  return {byte(1), byte(3), byte(5)};
}

int distance(Rgb a, Rgb b) {
  return std::max({std::abs(a.r - b.r), std::abs(a.g - b.g), std::abs(a.b - b.b)});
}

double luma(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b; }

/// The test's own base64 decoder (RFC 4648, with padding); throws on a malformed input.
std::string decode_base64(const std::string& text) {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (text.size() % 4 != 0) throw std::runtime_error("base64 length is not a multiple of 4");
  std::string out;
  for (size_t i = 0; i < text.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = text[i + k];
      uint32_t d = 0;
      if (c == '=') {
        if (i + 4 != text.size() || k < 2) throw std::runtime_error("misplaced padding");
        ++pad;
      } else {
        if (pad > 0) throw std::runtime_error("data after padding");
        const size_t at = alphabet.find(c);
        if (at == std::string::npos) throw std::runtime_error("not a base64 character");
        d = static_cast<uint32_t>(at);
      }
      v = (v << 6) | d;
    }
    out += static_cast<char>((v >> 16) & 0xFF);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(v & 0xFF);
  }
  return out;
}

/// libxml2's error messages while parsing (its generic error handler is variadic).
void collect_error(void* context, const char* format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  static_cast<std::string*>(context)->append(buffer);
}

struct FreeDoc {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};

/// A parsed SVG document; doc is null where the text is not well-formed XML.
struct Parsed {
  std::unique_ptr<xmlDoc, FreeDoc> doc;
  std::string errors;
  xmlNode* root() const { return doc ? xmlDocGetRootElement(doc.get()) : nullptr; }
};

Parsed parse(const std::string& text) {
  Parsed parsed;
  xmlSetGenericErrorFunc(&parsed.errors, collect_error);
  parsed.doc.reset(xmlReadMemory(text.data(), static_cast<int>(text.size()), "plot.svg", nullptr,
                                 XML_PARSE_NONET));
  xmlSetGenericErrorFunc(nullptr, nullptr);
  return parsed;
}

std::string name_of(const xmlNode* node) { return reinterpret_cast<const char*>(node->name); }

/// An attribute's value, or "" without it.
std::string attribute(xmlNode* node, const char* name) {
  xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  if (value == nullptr) return "";
  std::string s(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return s;
}

std::string content(xmlNode* node) {
  xmlChar* value = xmlNodeGetContent(node);
  std::string s(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return s;
}

/// Every element called `name` below `node`, in document order.
std::vector<xmlNode*> elements(xmlNode* node, const std::string& name) {
  std::vector<xmlNode*> found;
  for (xmlNode* child = node ? node->children : nullptr; child; child = child->next) {
    if (child->type != XML_ELEMENT_NODE) continue;
    if (name_of(child) == name) found.push_back(child);
    for (xmlNode* below : elements(child, name)) found.push_back(below);
  }
  return found;
}

std::vector<std::string> texts(const Parsed& parsed) {
  std::vector<std::string> out;
  for (xmlNode* node : elements(parsed.root(), "text")) out.push_back(content(node));
  return out;
}

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

Image small_image() {
  Image image;
  image.width = 2;
  image.height = 2;
  image.channels = 3;
  image.pixels = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30};
  return image;
}

class SvgTest : public zflow::testing::TempDirTest {
 protected:
  SvgTest() : TempDirTest("zflow_test_plot") {}
};

// ---- colours ---------------------------------------------------------------------------------

TEST(Color, ViridisEndpointsAndPublishedValues) {
  EXPECT_EQ(zflow::plot::hex(zflow::plot::viridis(0.0)), "#440154");
  EXPECT_EQ(zflow::plot::hex(zflow::plot::viridis(1.0)), "#fde725");
  // matplotlib's table at indices 64, 128 and 192 of 256 (t = i / 255).
  EXPECT_LE(distance(zflow::plot::viridis(64 / 255.0), parse_hex("#3b528b")), 2);
  EXPECT_LE(distance(zflow::plot::viridis(0.5), parse_hex("#21918c")), 3);
  EXPECT_LE(distance(zflow::plot::viridis(192 / 255.0), parse_hex("#5ec962")), 2);
  // Clamped outside [0, 1].
  EXPECT_EQ(zflow::plot::hex(zflow::plot::viridis(-3.0)), "#440154");
  EXPECT_EQ(zflow::plot::hex(zflow::plot::viridis(INFINITY)), "#fde725");
}

TEST(Color, ViridisGrowsLighter) {
  double previous = -1;
  for (int i = 0; i <= 10; ++i) {
    const double l = luma(zflow::plot::viridis(i / 10.0));
    EXPECT_GT(l, previous + 3) << "at t = " << i / 10.0;
    previous = l;
  }
  // Also finely: from one 1/1000 step to the next never darker by more than the rounding of
  // the channels to integers (one unit of one channel moves luma by at most 0.587).
  for (int i = 1; i <= 1000; ++i) {
    EXPECT_GE(luma(zflow::plot::viridis(i / 1000.0)),
              luma(zflow::plot::viridis((i - 1) / 1000.0)) - 0.6)
        << "at t = " << i / 1000.0;
  }
  // And over every 1/50 the lightness grows.
  for (int i = 1; i <= 50; ++i) {
    EXPECT_GT(luma(zflow::plot::viridis(i / 50.0)), luma(zflow::plot::viridis((i - 1) / 50.0)))
        << "at t = " << i / 50.0;
  }
}

TEST(Color, NanIsLightGray) {
  const Rgb c = zflow::plot::viridis(NAN);
  EXPECT_EQ(c.r, c.g);
  EXPECT_EQ(c.g, c.b);
  EXPECT_GT(c.r, 180);
}

TEST(Color, HexAndSeriesColors) {
  EXPECT_EQ(zflow::plot::hex({255, 0, 16}), "#ff0010");
  EXPECT_EQ(zflow::plot::hex({}), "#000000");
  const Rgb blue = zflow::plot::series_color(0), orange = zflow::plot::series_color(1);
  EXPECT_GT(blue.b, blue.r);
  EXPECT_GT(orange.r, orange.b);
  // Distinct, and wrapping both ways.
  for (int i = 0; i < 10; ++i) {
    for (int j = i + 1; j < 10; ++j) {
      EXPECT_NE(zflow::plot::hex(zflow::plot::series_color(i)),
                zflow::plot::hex(zflow::plot::series_color(j)));
    }
  }
  EXPECT_EQ(zflow::plot::hex(zflow::plot::series_color(10)), zflow::plot::hex(blue));
  EXPECT_EQ(zflow::plot::hex(zflow::plot::series_color(-1)),
            zflow::plot::hex(zflow::plot::series_color(9)));
}

// ---- ticks -----------------------------------------------------------------------------------

TEST(Ticks, UnitIntervalInFifths) {
  const std::vector<double> expected = {0, 0.2, 0.4, 0.6, 0.8, 1.0};
  EXPECT_EQ(zflow::plot::nice_ticks(0, 1, 5), expected);  // exact: 0.6, not 0.6000000000000001
}

TEST(Ticks, StepIsTheSmallestNiceStepAtLeastWidthOverTarget) {
  // (4.2 + 3.7) / 5 = 1.58 → step 2.
  EXPECT_EQ(zflow::plot::nice_ticks(-3.7, 4.2, 5), (std::vector<double>{-2, 0, 2, 4}));
  // 10 / 4 = 2.5 → step 2.5.
  EXPECT_EQ(zflow::plot::nice_ticks(0, 10, 4), (std::vector<double>{0, 2.5, 5, 7.5, 10}));
  // 2000 / 5 = 400 → 500.
  EXPECT_EQ(zflow::plot::nice_ticks(0, 2000, 5), (std::vector<double>{0, 500, 1000, 1500, 2000}));
  // Only ticks inside the range.
  EXPECT_EQ(zflow::plot::nice_ticks(0.3, 0.9, 5), (std::vector<double>{0.4, 0.6, 0.8}));
  // An end just inside by rounding counts.
  EXPECT_EQ(zflow::plot::nice_ticks(1e-12, 1 - 1e-12, 5).size(), 6u);
  EXPECT_EQ(zflow::plot::nice_ticks(-1, -0.5, 5).front(), -1.0);
}

TEST(Ticks, RandomRangesGiveFewNiceEvenlySpacedTicksInside) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> centre(-1000, 1000), log_width(-6, 6);
  for (int trial = 0; trial < 500; ++trial) {
    const double c = centre(rng), w = std::pow(10.0, log_width(rng));
    const double lo = c - w * 0.3, hi = c + w * 0.7;
    const int target = 2 + trial % 7;
    const std::vector<double> ticks = zflow::plot::nice_ticks(lo, hi, target);
    ASSERT_GE(ticks.size(), 1u) << lo << " " << hi << " " << target;
    ASSERT_LE(ticks.size(), static_cast<size_t>(target) + 1) << lo << " " << hi;
    for (double t : ticks) {
      EXPECT_GE(t, lo - 1e-9 * (hi - lo));
      EXPECT_LE(t, hi + 1e-9 * (hi - lo));
    }
    if (ticks.size() < 2) continue;
    const double step = ticks[1] - ticks[0];
    const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
    const bool nice = std::abs(mantissa - 1) < 1e-4 || std::abs(mantissa - 2) < 1e-4 ||
                      std::abs(mantissa - 2.5) < 1e-4 || std::abs(mantissa - 5) < 1e-4 ||
                      std::abs(mantissa - 10) < 1e-4;  // a step a hair below 10^k
    EXPECT_TRUE(nice) << "step " << step << " for [" << lo << ", " << hi << "]";
    EXPECT_GE(step, (hi - lo) / target * (1 - 1e-9));
    for (size_t i = 1; i < ticks.size(); ++i) {
      // Up to rounding of the tick values themselves (ranges far from 0 with tiny steps).
      EXPECT_NEAR(ticks[i] - ticks[i - 1], step, 1e-6 * step + 1e-12 * std::abs(ticks[i]));
    }
  }
}

TEST(Ticks, InvalidRangesThrow) {
  EXPECT_THROW(zflow::plot::nice_ticks(1, 1), ConfigError);
  EXPECT_THROW(zflow::plot::nice_ticks(2, 1), ConfigError);
  EXPECT_THROW(zflow::plot::nice_ticks(NAN, 1), ConfigError);
  EXPECT_THROW(zflow::plot::nice_ticks(0, INFINITY), ConfigError);
  EXPECT_THROW(zflow::plot::nice_ticks(0, 1, 0), ConfigError);
  EXPECT_THROW(zflow::plot::tick_label(1, 0), ConfigError);
  EXPECT_THROW(zflow::plot::tick_label(1, NAN), ConfigError);
}

TEST(Ticks, Labels) {
  using zflow::plot::tick_label;
  EXPECT_EQ(tick_label(0.2, 0.2), "0.2");
  EXPECT_EQ(tick_label(0.6000000000000001, 0.2), "0.6");
  EXPECT_EQ(tick_label(0.5, 0.5), "0.5");
  EXPECT_EQ(tick_label(0.25, 0.25), "0.25");
  EXPECT_EQ(tick_label(7.5, 2.5), "7.5");
  EXPECT_EQ(tick_label(1000, 500), "1000");
  EXPECT_EQ(tick_label(2000, 1000), "2000");
  EXPECT_EQ(tick_label(-2, 2), "-2");
  EXPECT_EQ(tick_label(0.0003, 0.0001), "0.0003");
  // Scientific for tiny and huge steps, with a short exponent.
  EXPECT_EQ(tick_label(2e-5, 1e-5), "2e-5");
  EXPECT_EQ(tick_label(1.5e-5, 5e-6), "1.5e-5");
  EXPECT_EQ(tick_label(3e6, 1e6), "3e6");
  EXPECT_EQ(tick_label(2.5e7, 5e6), "2.5e7");
  EXPECT_EQ(tick_label(2.5e7, 2.5e6), "2.50e7");  // as its neighbour 2.75e7
  EXPECT_EQ(tick_label(2.75e7, 2.5e6), "2.75e7");
  // Zero with the decimals of its neighbours, never "-0".
  EXPECT_EQ(tick_label(-0.0, 1), "0");
  EXPECT_EQ(tick_label(-1e-17, 0.2), "0.0");
  EXPECT_EQ(tick_label(-0.04, 1), "0");
  EXPECT_EQ(tick_label(-0.004, 0.01), "0.00");
  EXPECT_EQ(tick_label(-1e-12, 1e-5), "0");
  EXPECT_EQ(tick_label(NAN, 1), "nan");
  EXPECT_EQ(tick_label(-INFINITY, 1), "-inf");
  // Every label of some realistic axes is short and distinct.
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{
           {-3.7, 4.2}, {0, 1}, {-0.001, 0.001}, {1e-7, 3e-7}, {0, 2.5e6}, {-12345, 98765}}) {
    const auto ticks = zflow::plot::nice_ticks(lo, hi, 5);
    std::vector<std::string> labels;
    for (double t : ticks) labels.push_back(tick_label(t, ticks[1] - ticks[0]));
    for (size_t i = 0; i < labels.size(); ++i) {
      EXPECT_LE(labels[i].size(), 8u) << labels[i];
      EXPECT_NE(labels[i], "-0");
      for (size_t j = 0; j < i; ++j) EXPECT_NE(labels[i], labels[j]);
    }
  }
}

// ---- rasters ---------------------------------------------------------------------------------

TEST(Raster, Histogram2dCountsWithRowZeroAtTheTop) {
  const std::vector<double> xs = {0.1, 0.9, 1.0, 0.2, 1.5, NAN, -0.1, 0.6};
  const std::vector<double> ys = {0.1, 0.9, 1.0, 0.8, 0.5, 0.5, 0.5, 0.05};
  const Grid grid = zflow::plot::histogram2d(xs, ys, {0, 1}, {0, 1}, /*cols=*/2, /*rows=*/2);
  ASSERT_EQ(grid.rows, 2);
  ASSERT_EQ(grid.cols, 2);
  ASSERT_EQ(grid.values.size(), 4u);
  EXPECT_EQ(grid.at(0, 0), 1);  // (0.2, 0.8): high y, low x → top left
  EXPECT_EQ(grid.at(0, 1), 2);  // (0.9, 0.9) and the upper corner (1, 1)
  EXPECT_EQ(grid.at(1, 0), 1);  // (0.1, 0.1)
  EXPECT_EQ(grid.at(1, 1), 1);  // (0.6, 0.05)
  // Outside points and NaN dropped: 5 of 8 counted.
  double total = 0;
  for (double v : grid.values) total += v;
  EXPECT_EQ(total, 5);

  const Grid tall = zflow::plot::histogram2d({0.5, 0.5}, {9.5, 0.5}, {0, 1}, {0, 10}, 1, 10);
  EXPECT_EQ(tall.at(0, 0), 1);  // y = 9.5 in the top row
  EXPECT_EQ(tall.at(9, 0), 1);  // y = 0.5 in the bottom row
  EXPECT_THROW(tall.at(10, 0), ConfigError);
  EXPECT_THROW(tall.at(0, -1), ConfigError);
}

TEST(Raster, Histogram2dRejectsBadArguments) {
  EXPECT_THROW(zflow::plot::histogram2d({1, 2}, {1}, {0, 1}, {0, 1}, 2, 2), ConfigError);
  EXPECT_THROW(zflow::plot::histogram2d({}, {}, {1, 1}, {0, 1}, 2, 2), ConfigError);
  EXPECT_THROW(zflow::plot::histogram2d({}, {}, {0, 1}, {0, NAN}, 2, 2), ConfigError);
  EXPECT_THROW(zflow::plot::histogram2d({}, {}, {0, 1}, {0, 1}, 0, 2), ConfigError);
  EXPECT_THROW(zflow::plot::histogram2d({}, {}, {0, 1}, {0, 1}, 2, -1), ConfigError);
  EXPECT_THROW(zflow::plot::histogram2d({}, {}, {0, 1}, {0, 1}, 1 << 20, 1 << 20), ConfigError);
}

TEST(Raster, HeatmapPaintsCellsThroughViridis) {
  Grid grid{2, 3, {0, 1, 2, 3, 4, NAN}};
  HeatmapOptions options;
  options.scale = 4;
  const Image image = zflow::plot::heatmap(grid, options);
  ASSERT_EQ(image.width, 12);
  ASSERT_EQ(image.height, 8);
  ASSERT_EQ(image.channels, 3);
  ASSERT_EQ(image.pixels.size(), 12u * 8u * 3u);
  const auto pixel = [&](int64_t x, int64_t y) {
    const uint8_t* p = &image.pixels[static_cast<size_t>((y * image.width + x) * 3)];
    return zflow::plot::hex({p[0], p[1], p[2]});
  };
  EXPECT_EQ(pixel(0, 0), "#440154");   // cell (0, 0) = 0, the minimum
  EXPECT_EQ(pixel(3, 3), "#440154");   // same cell, other corner
  EXPECT_EQ(pixel(4, 4), "#fde725");   // cell (1, 1) = 4, the maximum
  EXPECT_EQ(pixel(11, 7), "#ffffff");  // NaN cell: white
  EXPECT_EQ(pixel(8, 0), zflow::plot::hex(zflow::plot::viridis(0.5)));  // 2 of 0..4

  // Explicit limits clamp; gamma bends the middle.
  options.lo = 1;
  options.hi = 3;
  options.gamma = 0.5;
  options.scale = 1;
  const Image bent = zflow::plot::heatmap(grid, options);
  const auto at = [&](int64_t x, int64_t y) {
    const uint8_t* p = &bent.pixels[static_cast<size_t>((y * bent.width + x) * 3)];
    return zflow::plot::hex({p[0], p[1], p[2]});
  };
  EXPECT_EQ(at(0, 0), "#440154");  // 0 below lo
  EXPECT_EQ(at(2, 0), zflow::plot::hex(zflow::plot::viridis(std::sqrt(0.5))));
  EXPECT_EQ(at(1, 1), "#fde725");  // 4 above hi

  // A constant grid gets the bottom colour.
  const Image flat = zflow::plot::heatmap(Grid{1, 2, {5, 5}});
  EXPECT_EQ(zflow::plot::hex({flat.pixels[0], flat.pixels[1], flat.pixels[2]}), "#440154");
}

TEST(Raster, HeatmapRejectsBadArguments) {
  EXPECT_THROW(zflow::plot::heatmap(Grid{2, 2, {1, 2, 3}}), ConfigError);
  EXPECT_THROW(zflow::plot::heatmap(Grid{0, 0, {}}), ConfigError);
  HeatmapOptions options;
  options.scale = 0;
  EXPECT_THROW(zflow::plot::heatmap(Grid{1, 1, {1}}, options), ConfigError);
  options.scale = 1;
  options.gamma = 0;
  EXPECT_THROW(zflow::plot::heatmap(Grid{1, 1, {1}}, options), ConfigError);
  options.gamma = 1;
  options.lo = 2;
  options.hi = 1;
  EXPECT_THROW(zflow::plot::heatmap(Grid{1, 1, {1}}, options), ConfigError);
}

TEST(Raster, CoveringRange) {
  std::vector<double> values;
  for (int i = 0; i <= 1000; ++i) values.push_back(i);
  Range r = zflow::plot::covering_range(values, 0, 0);
  EXPECT_DOUBLE_EQ(r.lo, 0);
  EXPECT_DOUBLE_EQ(r.hi, 1000);
  r = zflow::plot::covering_range(values, 0.1, 0);
  EXPECT_DOUBLE_EQ(r.lo, 100);
  EXPECT_DOUBLE_EQ(r.hi, 900);
  r = zflow::plot::covering_range(values, 0, 0.05);
  EXPECT_DOUBLE_EQ(r.lo, -50);
  EXPECT_DOUBLE_EQ(r.hi, 1050);
  r = zflow::plot::covering_range({0, 1, 2, 3}, 0.25, 0);  // interpolated: 0.75 and 2.25
  EXPECT_DOUBLE_EQ(r.lo, 0.75);
  EXPECT_DOUBLE_EQ(r.hi, 2.25);

  // One far outlier among 10000 points does not stretch the default range.
  std::vector<double> data;
  for (int i = 0; i < 9999; ++i) data.push_back(i / 9998.0);
  data.push_back(1e9);
  r = zflow::plot::covering_range(data);
  EXPECT_LT(r.hi, 1.1);
  EXPECT_GT(r.lo, -0.1);

  r = zflow::plot::covering_range({3, 3, 3});
  EXPECT_DOUBLE_EQ(r.lo, 2.5);
  EXPECT_DOUBLE_EQ(r.hi, 3.5);
  r = zflow::plot::covering_range({});
  EXPECT_DOUBLE_EQ(r.lo, -1);
  EXPECT_DOUBLE_EQ(r.hi, 1);
  r = zflow::plot::covering_range({NAN, 1, INFINITY, 2}, 0, 0);
  EXPECT_DOUBLE_EQ(r.lo, 1);
  EXPECT_DOUBLE_EQ(r.hi, 2);
  EXPECT_THROW(zflow::plot::covering_range({1, 2}, 0.5), ConfigError);
  EXPECT_THROW(zflow::plot::covering_range({1, 2}, 0.1, -1), ConfigError);
}

// ---- SVG -------------------------------------------------------------------------------------

TEST(SvgText, EscapeAndBase64) {
  EXPECT_EQ(zflow::plot::xml_escape("<a & b> \"q\" 'x'"),
            "&lt;a &amp; b&gt; &quot;q&quot; &apos;x&apos;");
  EXPECT_EQ(zflow::plot::xml_escape("é ∑ 😀"), "é ∑ 😀");  // valid UTF-8 kept
  EXPECT_EQ(zflow::plot::xml_escape(std::string("a\x01"
                                                "b\xff",
                                                4)),
            "ab\xEF\xBF\xBD");
  // RFC 4648 test vectors.
  EXPECT_EQ(zflow::plot::base64(""), "");
  EXPECT_EQ(zflow::plot::base64("f"), "Zg==");
  EXPECT_EQ(zflow::plot::base64("fo"), "Zm8=");
  EXPECT_EQ(zflow::plot::base64("foo"), "Zm9v");
  EXPECT_EQ(zflow::plot::base64("foob"), "Zm9vYg==");
  EXPECT_EQ(zflow::plot::base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(zflow::plot::base64("foobar"), "Zm9vYmFy");
  std::mt19937 rng(3);
  for (int n = 0; n < 40; ++n) {
    std::string bytes;
    for (int i = 0; i < n; ++i) bytes += static_cast<char>(rng() & 0xFF);
    EXPECT_EQ(decode_base64(zflow::plot::base64(bytes)), bytes) << n;
  }
}

TEST_F(SvgTest, DocumentIsWellFormedAndKeepsText) {
  Svg svg(300, 200);
  EXPECT_EQ(svg.width(), 300);
  EXPECT_EQ(svg.height(), 200);
  const std::string title = "<a & b> \"quoted\" 'single' é";
  svg.text(150, 20, title, 14, "middle", 0, true);
  svg.text(10, 100, "rotated", 12, "middle", -90);
  svg.rect(10, 30, 100, 50, "#ff0000", "#000", 1);
  svg.begin_clip(0, 0, 150, 100);
  svg.line(1.0 / 3, 2, 100, 2.5, "#00f", 1, "4 3");
  svg.polyline({{0, 0}, {10, 10}, {20, 5}}, "#0a0");
  svg.circle(50, 50, 5, "#000", "#abc", 1.5, "2 2");
  svg.end_clip();
  svg.image(200, 100, 40, 40, small_image());
  svg.text(0, 190, std::string("control\x02 and bad \xC3 bytes"), 10);

  const std::string doc = svg.str();
  EXPECT_EQ(doc.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 0), 0u);
  EXPECT_NE(doc.find("x1=\"0.33\""), std::string::npos) << "numbers are written compactly";
  EXPECT_EQ(doc.find("0.3333"), std::string::npos);
  EXPECT_EQ(doc.find("e+"), std::string::npos);

  const Parsed parsed = parse(doc);
  ASSERT_NE(parsed.doc, nullptr) << parsed.errors;
  EXPECT_EQ(parsed.errors, "");
  xmlNode* root = parsed.root();
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(name_of(root), "svg");
  ASSERT_NE(root->ns, nullptr);
  EXPECT_STREQ(reinterpret_cast<const char*>(root->ns->href), "http://www.w3.org/2000/svg");
  EXPECT_EQ(attribute(root, "width"), "300");
  EXPECT_EQ(attribute(root, "height"), "200");
  EXPECT_EQ(attribute(root, "viewBox"), "0 0 300 200");
  EXPECT_EQ(attribute(root, "font-family"), "sans-serif");

  const auto all_texts = texts(parsed);
  ASSERT_EQ(all_texts.size(), 3u);
  EXPECT_EQ(all_texts[0], title);
  EXPECT_EQ(all_texts[2], "control and bad \xEF\xBF\xBD bytes");
  const auto text_nodes = elements(root, "text");
  EXPECT_EQ(attribute(text_nodes[0], "font-weight"), "bold");
  EXPECT_EQ(attribute(text_nodes[0], "text-anchor"), "middle");
  EXPECT_EQ(attribute(text_nodes[1], "transform"), "rotate(-90 10 100)");

  // The background first, then the elements.
  const auto rects = elements(root, "rect");
  ASSERT_GE(rects.size(), 2u);
  EXPECT_EQ(attribute(rects[0], "fill"), "white");
  EXPECT_EQ(elements(root, "polyline").size(), 1u);
  EXPECT_EQ(attribute(elements(root, "circle").at(0), "stroke-dasharray"), "2 2");
  EXPECT_EQ(attribute(elements(root, "line").at(0), "stroke-dasharray"), "4 3");

  // The clip group refers to a clip path defined in the document.
  const auto groups = elements(root, "g");
  ASSERT_EQ(groups.size(), 1u);
  const std::string clip = attribute(groups[0], "clip-path");
  const auto clip_paths = elements(root, "clipPath");
  ASSERT_EQ(clip_paths.size(), 1u);
  EXPECT_EQ(clip, "url(#" + attribute(clip_paths[0], "id") + ")");

  // The embedded picture decodes to the PNG of the image.
  const auto images = elements(root, "image");
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(attribute(images[0], "width"), "40");
  EXPECT_NE(attribute(images[0], "style").find("image-rendering:pixelated"), std::string::npos);
  const std::string href = attribute(images[0], "href");
  const std::string prefix = "data:image/png;base64,";
  ASSERT_EQ(href.rfind(prefix, 0), 0u) << href.substr(0, 40);
  const std::string png = decode_base64(href.substr(prefix.size()));
  ASSERT_GE(png.size(), 8u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  int w = 0, h = 0, channels = 0;
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()),
                            static_cast<int>(png.size()), &w, &h, &channels, 3),
      stbi_image_free);
  ASSERT_NE(pixels, nullptr);
  EXPECT_EQ(w, 2);
  EXPECT_EQ(h, 2);
  const Image expected = small_image();
  EXPECT_TRUE(std::equal(expected.pixels.begin(), expected.pixels.end(), pixels.get()));

  // save writes the same document.
  svg.save(path("figure.svg"));
  EXPECT_EQ(read_bytes(path("figure.svg")), doc);
}

TEST(SvgDocument, UnclosedClipsAreClosedAndIdsReused) {
  Svg svg(100, 100);
  svg.begin_clip(10, 10, 50, 50);
  svg.end_clip();
  svg.begin_clip(10, 10, 50, 50);  // the same rectangle: the same clip path
  svg.begin_clip(0, 0, 20.5, 20);  // nested, left open
  svg.rect(0, 0, 5, 5, "red");
  const Parsed parsed = parse(svg.str());
  ASSERT_NE(parsed.doc, nullptr) << parsed.errors;
  EXPECT_EQ(elements(parsed.root(), "clipPath").size(), 2u);
  EXPECT_EQ(elements(parsed.root(), "g").size(), 3u);
}

TEST(SvgDocument, InvalidArgumentsThrow) {
  EXPECT_THROW(Svg(0, 10), ConfigError);
  EXPECT_THROW(Svg(10, -1), ConfigError);
  EXPECT_THROW(Svg(NAN, 10), ConfigError);
  Svg svg(100, 100);
  EXPECT_THROW(svg.rect(0, 0, -1, 5, "red"), ConfigError);
  EXPECT_THROW(svg.rect(NAN, 0, 1, 5, "red"), ConfigError);
  EXPECT_THROW(svg.line(0, 0, INFINITY, 1, "red"), ConfigError);
  EXPECT_THROW(svg.line(0, 0, 1, 1, "red", 0), ConfigError);
  EXPECT_THROW(svg.polyline({{0, 0}}, "red"), ConfigError);
  EXPECT_THROW(svg.polyline({{0, 0}, {NAN, 1}}, "red"), ConfigError);
  EXPECT_THROW(svg.circle(0, 0, 0, "red"), ConfigError);
  EXPECT_THROW(svg.text(0, 0, "x", 12, "left"), ConfigError);
  EXPECT_THROW(svg.text(0, 0, "x", 0), ConfigError);
  EXPECT_THROW(svg.image(0, 0, 0, 10, small_image()), ConfigError);
  EXPECT_THROW(svg.image(0, 0, 10, 10, Image{}), ConfigError);
  EXPECT_THROW(svg.begin_clip(0, 0, 0, 10), ConfigError);
  EXPECT_THROW(svg.end_clip(), ConfigError);
  // Nothing half-written: the document is still well-formed and holds no elements.
  const Parsed parsed = parse(svg.str());
  ASSERT_NE(parsed.doc, nullptr) << parsed.errors;
  EXPECT_EQ(elements(parsed.root(), "rect").size(), 1u);  // the background
}

TEST(SvgDocument, EscapesAttributeValues) {
  Svg svg(100, 100);
  svg.rect(0, 0, 10, 10, "red\" onload=\"alert(1)");
  svg.text(0, 0, "x", 12, "start", 0, false, "<bad>");
  const Parsed parsed = parse(svg.str());
  ASSERT_NE(parsed.doc, nullptr) << parsed.errors;
  const auto rects = elements(parsed.root(), "rect");
  ASSERT_EQ(rects.size(), 2u);
  EXPECT_EQ(attribute(rects[1], "fill"), "red\" onload=\"alert(1)");
  EXPECT_EQ(attribute(rects[1], "onload"), "");
}

// ---- axes ------------------------------------------------------------------------------------

TEST(AxesTest, MapsRangeEndsToAreaEdges) {
  Svg svg(500, 400);
  const Axes axes(svg, 60, 40, 400, 300, {-2, 2}, {0, 10});
  EXPECT_DOUBLE_EQ(axes.px(-2), 60);
  EXPECT_DOUBLE_EQ(axes.px(2), 460);
  EXPECT_DOUBLE_EQ(axes.px(0), 260);
  EXPECT_DOUBLE_EQ(axes.py(0), 340);  // y up: the low end at the bottom
  EXPECT_DOUBLE_EQ(axes.py(10), 40);
  EXPECT_DOUBLE_EQ(axes.py(2.5), 265);
  EXPECT_EQ(axes.x_range().lo, -2);
  EXPECT_EQ(axes.y_range().hi, 10);
  EXPECT_THROW(Axes(svg, 0, 0, 0, 10, {0, 1}, {0, 1}), ConfigError);
  EXPECT_THROW(Axes(svg, 0, 0, 10, 10, {1, 1}, {0, 1}), ConfigError);
  EXPECT_THROW(Axes(svg, 0, 0, 10, 10, {0, 1}, {0, NAN}), ConfigError);
}

TEST(AxesTest, DecorateLabelsEveryTick) {
  Svg svg(500, 400);
  Axes axes(svg, 60, 40, 400, 300, {-3.7, 4.2}, {0, 1});
  axes.decorate("Density <p(x)> & more", "x₁", "density");
  const Parsed parsed = parse(svg.str());
  ASSERT_NE(parsed.doc, nullptr) << parsed.errors;
  const auto labels = texts(parsed);

  const auto x_ticks = zflow::plot::nice_ticks(-3.7, 4.2, 5);
  const auto y_ticks = zflow::plot::nice_ticks(0, 1, 5);
  ASSERT_EQ(x_ticks.size(), 4u);
  ASSERT_EQ(y_ticks.size(), 6u);
  for (double t : x_ticks) {
    EXPECT_TRUE(contains(labels, zflow::plot::tick_label(t, 2))) << t;
  }
  for (double t : y_ticks) {
    EXPECT_TRUE(contains(labels, zflow::plot::tick_label(t, 0.2))) << t;
  }
  EXPECT_TRUE(contains(labels, "Density <p(x)> & more"));
  EXPECT_TRUE(contains(labels, "x₁"));
  EXPECT_TRUE(contains(labels, "density"));
  EXPECT_EQ(labels.size(), x_ticks.size() + y_ticks.size() + 3);

  // The title is bold, centred above the area; tick marks are lines.
  for (xmlNode* node : elements(parsed.root(), "text")) {
    if (content(node) != "Density <p(x)> & more") continue;
    EXPECT_EQ(attribute(node, "font-weight"), "bold");
    EXPECT_EQ(attribute(node, "text-anchor"), "middle");
    EXPECT_EQ(attribute(node, "x"), "260");
    EXPECT_LT(std::stod(attribute(node, "y")), 40);
  }
  EXPECT_EQ(elements(parsed.root(), "line").size(), x_ticks.size() + y_ticks.size());

  // Without y ticks: only the x tick labels, the title and the axis labels.
  Svg bare(500, 400);
  Axes(bare, 60, 40, 400, 300, {-3.7, 4.2}, {0, 1}).decorate("t", "x", "y", false);
  EXPECT_EQ(texts(parse(bare.str())).size(), x_ticks.size() + 3);
}

TEST(AxesTest, ContentIsClippedAndLinesBreakAtNan) {
  Svg svg(500, 400);
  Axes axes(svg, 60, 40, 400, 300, {-2, 2}, {0, 10});
  axes.image(zflow::plot::heatmap(Grid{2, 2, {0, 1, 2, 3}}));
  axes.line({-2, -1, NAN, 0, 1, 2, NAN, 1.5}, {0, 1, 5, 2, 3, 1e300, 4, 4}, "#1f77b4");
  axes.scatter({0, 1, 5, NAN, -2}, {5, 5, 5, 5, 0}, "#ff7f0e", 2);
  axes.circle(0, 5, 1, "#333", 1, "4 3");
  axes.legend({{"model", "#1f77b4"}, {"data & more", "#ff7f0e"}});
  axes.decorate("");
  const std::string doc = svg.str();
  const Parsed parsed = parse(doc);
  ASSERT_NE(parsed.doc, nullptr) << parsed.errors;
  xmlNode* root = parsed.root();

  const auto images = elements(root, "image");
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(attribute(images[0], "x"), "60");
  EXPECT_EQ(attribute(images[0], "y"), "40");
  EXPECT_EQ(attribute(images[0], "width"), "400");
  EXPECT_EQ(attribute(images[0], "height"), "300");

  // Two runs of at least two points; the lone (1.5, 4) draws nothing; the far point is
  // pulled in to keep the numbers short.
  const auto lines = elements(root, "polyline");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(attribute(lines[0], "points"), "60,340 160,310");
  EXPECT_EQ(doc.find("e+"), std::string::npos);
  for (xmlNode* line : lines) EXPECT_LT(attribute(line, "points").size(), 100u);

  // Scatter: three points inside the ranges; the circle's radius is in x units (100 px).
  const auto circles = elements(root, "circle");
  ASSERT_EQ(circles.size(), 4u);
  EXPECT_EQ(attribute(circles[3], "r"), "100");
  EXPECT_EQ(attribute(circles[3], "stroke-dasharray"), "4 3");
  EXPECT_EQ(attribute(circles[3], "fill"), "none");

  // Every piece of content sits in a group clipped to the plot area.
  for (const char* name : {"polyline", "circle"}) {
    for (xmlNode* node : elements(root, name)) {
      ASSERT_NE(node->parent, nullptr);
      EXPECT_EQ(name_of(node->parent), "g") << name;
      EXPECT_NE(attribute(node->parent, "clip-path"), "") << name;
    }
  }

  const auto labels = texts(parsed);
  EXPECT_TRUE(contains(labels, "model"));
  EXPECT_TRUE(contains(labels, "data & more"));

  EXPECT_THROW(axes.line({1, 2}, {1}, "red"), ConfigError);
  EXPECT_THROW(axes.scatter({1}, {1, 2}, "red"), ConfigError);
  EXPECT_THROW(axes.circle(0, 0, 0, "red"), ConfigError);
  EXPECT_THROW(axes.circle(NAN, 0, 1, "red"), ConfigError);
}

}  // namespace
