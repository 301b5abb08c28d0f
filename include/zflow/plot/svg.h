#pragma once
/// \file
/// A minimal SVG writer: a document is built element by element and serialised as one
/// standalone file. Text stays text (searchable, sharp at any zoom); pictures are embedded
/// as base64 PNG data URIs, so a chart is a single self-contained file that also inlines
/// into HTML.
///
/// Every number is written with at most two decimals (trailing zeros dropped), and every
/// string (text, colours, dash patterns) is escaped, so that any input gives well-formed XML.
///
/// Example:
///
///     zflow::plot::Svg svg(320, 200);
///     svg.rect(10, 10, 300, 180, "none", "#222", 1);
///     svg.text(160, 40, "moons", 14, "middle", /*rotate=*/0, /*bold=*/true);
///     svg.line(20, 100, 300, 100, "#1f77b4", 1.5, "4 3");  // dashed
///     svg.save("title.svg");  // or svg.str() to inline it into HTML

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "zflow/io/image.h"

namespace zflow::plot {

/// `text` with the XML special characters (& < > " ') replaced by entities, tab / newline /
/// carriage return as character references, other control characters (not allowed in XML
/// 1.0) dropped, and invalid UTF-8 bytes replaced by U+FFFD. Safe in content and in
/// attribute values.
std::string xml_escape(const std::string& text);

/// Standard base64 (RFC 4648, alphabet A-Z a-z 0-9 + /, '=' padding, no line breaks).
std::string base64(const std::string& bytes);

/// A standalone SVG document built element by element (coordinates in px, y down).
///
/// Colours are any SVG paint ("#1f77b4", "none", "white"). Every method throws ConfigError
/// for a non-finite coordinate or a size that makes no sense (stated per method).
class Svg {
 public:
  /// ConfigError unless width and height are positive and finite.
  Svg(double width, double height);

  double width() const;
  double height() const;

  /// A rectangle with its top-left corner at (x, y). ConfigError for a negative w or h or
  /// stroke_width.
  void rect(double x, double y, double w, double h, const std::string& fill,
            const std::string& stroke = "none", double stroke_width = 0);
  /// A line segment; `dash` is an SVG stroke-dasharray such as "4 3" ("" for solid).
  /// ConfigError for a width that is not positive.
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
            const std::string& dash = "");
  /// An open polyline through the points (round joins, no fill). ConfigError for fewer than
  /// two points or a width that is not positive.
  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke,
                double width = 1.5);
  /// A circle; the outline is left out when stroke is "none". `dash` as for line.
  /// ConfigError for a radius that is not positive or a negative width.
  void circle(double cx, double cy, double r, const std::string& stroke,
              const std::string& fill = "none", double width = 1, const std::string& dash = "");
  /// A text whose baseline starts at (x, y) ("start"), is centred on it ("middle") or ends
  /// there ("end"); rotate in degrees (clockwise, as SVG) about (x, y). ConfigError for
  /// another anchor or a size that is not positive.
  void text(double x, double y, const std::string& text, double size = 12,
            const std::string& anchor = "start", double rotate = 0, bool bold = false,
            const std::string& fill = "#222");
  /// An embedded PNG (data:image/png;base64,...) stretched over the rectangle, drawn with
  /// image-rendering: pixelated so that cells stay sharp. ConfigError for a w or h that is
  /// not positive, or an image that cannot be encoded (see io::encode_png).
  void image(double x, double y, double w, double h, const io::Image& image);
  /// Opens a <g> clipped to the rectangle (for plot areas); close it with end_clip. Clips
  /// nest. The clip path's id is made from the rectangle, so that documents inlined into
  /// one HTML page never disagree about an id. ConfigError for a w or h that is not positive.
  void begin_clip(double x, double y, double w, double h);
  /// Closes the innermost begin_clip. ConfigError when none is open.
  void end_clip();

  /// The whole document: XML declaration, <svg xmlns=... width height viewBox
  /// font-family="sans-serif">, a white background, the elements (groups still open are
  /// closed), </svg>.
  std::string str() const;
  /// Writes str() to `path` atomically (io::write_atomically); IOError naming the path on
  /// failure.
  void save(const std::string& path) const;

 private:
  double width_, height_;
  std::string body_;
  int open_groups_ = 0;
  std::set<std::string> clip_ids_;
};

}  // namespace zflow::plot
