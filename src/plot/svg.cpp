#include "zflow/plot/svg.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ostream>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"

namespace zflow::plot {
namespace {

/// A number for the document: at most two decimals, trailing zeros dropped, never "-0".
std::string num(double v) {
  char buffer[64];
  const int n = std::snprintf(buffer, sizeof buffer, "%.2f", v);
  std::string s = (n > 0 && static_cast<size_t>(n) < sizeof buffer) ? std::string(buffer, n)
                                                                    : std::to_string(v);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

/// A number for an error message.
std::string show(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

[[noreturn]] void fail(const std::string& where, const std::string& why) {
  throw ConfigError("plot::Svg::" + where + ": " + why);
}

void check_finite(const std::string& where, std::initializer_list<double> values) {
  for (double v : values) {
    if (!std::isfinite(v)) fail(where, "coordinates must be finite, got " + show(v));
  }
}

void check_size(const std::string& where, double w, double h, bool allow_zero) {
  check_finite(where, {w, h});
  if (allow_zero ? (w < 0 || h < 0) : (w <= 0 || h <= 0)) {
    fail(where, std::string("width and height must be ") +
                    (allow_zero ? "non-negative" : "positive") + ", got " + show(w) + " x " +
                    show(h));
  }
}

/// ` name="value"` with the value escaped.
std::string attr(const char* name, const std::string& value) {
  return std::string(" ") + name + "=\"" + xml_escape(value) + "\"";
}

std::string attr(const char* name, double value) {
  return std::string(" ") + name + "=\"" + num(value) + "\"";
}

/// The Unicode replacement character U+FFFD in UTF-8.
constexpr char kReplacement[] = "\xEF\xBF\xBD";

/// The length of the valid UTF-8 sequence that is an XML character at text[i], or 0.
size_t xml_char_length(const std::string& text, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  size_t length;
  uint32_t cp;
  if (b0 >= 0xC0 && b0 < 0xE0) {
    length = 2, cp = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 < 0xF0) {
    length = 3, cp = b0 & 0x0Fu;
  } else if (b0 >= 0xF0 && b0 < 0xF8) {
    length = 4, cp = b0 & 0x07u;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0u) != 0x80u) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3Fu);
  }
  static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinimum[length] || cp > 0x10FFFF) return 0;  // overlong or too large
  if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF) return 0;  // not XML
  return length;
}

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        case '\t':
          out += "&#9;";
          break;
        case '\n':
          out += "&#10;";
          break;
        case '\r':
          out += "&#13;";
          break;
        default:
          if (c >= 0x20) out += static_cast<char>(c);  // other control characters: dropped
      }
      ++i;
      continue;
    }
    const size_t length = xml_char_length(text, i);
    if (length == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(text, i, length);
      i += length;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto byte = [&](size_t k) {
    return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += kBase64[(v >> 6) & 63];
    out += kBase64[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    const uint32_t v = (byte(i) << 16) | (rest == 2 ? byte(i + 1) << 8 : 0);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += rest == 2 ? kBase64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Svg::Svg(double width, double height) : width_(width), height_(height) {
  if (!std::isfinite(width) || !std::isfinite(height) || width <= 0 || height <= 0) {
    fail("Svg",
         "width and height must be positive and finite, got " + show(width) + " x " + show(height));
  }
}

double Svg::width() const { return width_; }
double Svg::height() const { return height_; }

void Svg::rect(double x, double y, double w, double h, const std::string& fill,
               const std::string& stroke, double stroke_width) {
  check_finite("rect", {x, y, stroke_width});
  check_size("rect", w, h, /*allow_zero=*/true);
  if (stroke_width < 0)
    fail("rect", "stroke_width must be non-negative, got " + show(stroke_width));
  body_ += "<rect" + attr("x", x) + attr("y", y) + attr("width", w) + attr("height", h) +
           attr("fill", fill);
  if (stroke != "none") body_ += attr("stroke", stroke) + attr("stroke-width", stroke_width);
  body_ += "/>\n";
}

void Svg::line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
               const std::string& dash) {
  check_finite("line", {x1, y1, x2, y2, width});
  if (width <= 0) fail("line", "width must be positive, got " + show(width));
  body_ += "<line" + attr("x1", x1) + attr("y1", y1) + attr("x2", x2) + attr("y2", y2) +
           attr("stroke", stroke) + attr("stroke-width", width);
  if (!dash.empty()) body_ += attr("stroke-dasharray", dash);
  body_ += "/>\n";
}

void Svg::polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke,
                   double width) {
  if (points.size() < 2) {
    fail("polyline", "needs at least 2 points, got " + std::to_string(points.size()));
  }
  check_finite("polyline", {width});
  if (width <= 0) fail("polyline", "width must be positive, got " + show(width));
  std::string list;
  list.reserve(points.size() * 12);
  for (const auto& [x, y] : points) {
    check_finite("polyline", {x, y});
    if (!list.empty()) list += ' ';
    list += num(x);
    list += ',';
    list += num(y);
  }
  body_ += "<polyline points=\"" + list + "\" fill=\"none\"" + attr("stroke", stroke) +
           attr("stroke-width", width) + " stroke-linejoin=\"round\" stroke-linecap=\"round\"/>\n";
}

void Svg::circle(double cx, double cy, double r, const std::string& stroke, const std::string& fill,
                 double width, const std::string& dash) {
  check_finite("circle", {cx, cy, r, width});
  if (r <= 0) fail("circle", "radius must be positive, got " + show(r));
  if (width < 0) fail("circle", "width must be non-negative, got " + show(width));
  body_ += "<circle" + attr("cx", cx) + attr("cy", cy) + attr("r", r) + attr("fill", fill);
  if (stroke != "none") {
    body_ += attr("stroke", stroke) + attr("stroke-width", width);
    if (!dash.empty()) body_ += attr("stroke-dasharray", dash);
  }
  body_ += "/>\n";
}

void Svg::text(double x, double y, const std::string& text, double size, const std::string& anchor,
               double rotate, bool bold, const std::string& fill) {
  check_finite("text", {x, y, size, rotate});
  if (size <= 0) fail("text", "size must be positive, got " + show(size));
  if (anchor != "start" && anchor != "middle" && anchor != "end") {
    fail("text", "anchor must be \"start\", \"middle\" or \"end\", got \"" + anchor + "\"");
  }
  body_ += "<text" + attr("x", x) + attr("y", y) + attr("font-size", size);
  if (anchor != "start") body_ += attr("text-anchor", anchor);
  if (bold) body_ += " font-weight=\"bold\"";
  body_ += attr("fill", fill);
  if (rotate != 0) {
    body_ += " transform=\"rotate(" + num(rotate) + " " + num(x) + " " + num(y) + ")\"";
  }
  body_ += ">" + xml_escape(text) + "</text>\n";
}

void Svg::image(double x, double y, double w, double h, const io::Image& image) {
  check_finite("image", {x, y});
  check_size("image", w, h, /*allow_zero=*/false);
  const std::string png = io::encode_png(image);
  body_ += "<image" + attr("x", x) + attr("y", y) + attr("width", w) + attr("height", h) +
           " preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\"" +
           " href=\"data:image/png;base64," + base64(png) + "\"/>\n";
}

void Svg::begin_clip(double x, double y, double w, double h) {
  check_finite("begin_clip", {x, y});
  check_size("begin_clip", w, h, /*allow_zero=*/false);
  const std::string id = "clip_" + num(x) + "_" + num(y) + "_" + num(w) + "_" + num(h);
  if (clip_ids_.insert(id).second) {
    body_ += "<clipPath id=\"" + id + "\"><rect" + attr("x", x) + attr("y", y) + attr("width", w) +
             attr("height", h) + "/></clipPath>\n";
  }
  body_ += "<g clip-path=\"url(#" + id + ")\">\n";
  ++open_groups_;
}

void Svg::end_clip() {
  if (open_groups_ == 0) fail("end_clip", "no begin_clip is open");
  body_ += "</g>\n";
  --open_groups_;
}

std::string Svg::str() const {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\"" + attr("width", width_) +
         attr("height", height_) + " viewBox=\"0 0 " + num(width_) + " " + num(height_) +
         "\" font-family=\"sans-serif\">\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  out += body_;
  for (int i = 0; i < open_groups_; ++i) out += "</g>\n";
  out += "</svg>\n";
  return out;
}

void Svg::save(const std::string& path) const {
  const std::string document = str();
  io::write_atomically(path, [&](std::ostream& out) { out << document; });
}

}  // namespace zflow::plot
