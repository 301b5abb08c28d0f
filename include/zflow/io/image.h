#pragma once
/// \file
/// 8-bit PNG images, read with libpng and written with stb_image_write. zflow's image flows
/// work on gray and RGB data, so images in memory have 1 or 3 channels; alpha is dropped on
/// reading.
///
/// Example (a 2×1 gray image, black then white):
///
///     zflow::io::Image image{/*width=*/2, /*height=*/1, /*channels=*/1, {0, 255}};
///     zflow::io::write_png("tiny.png", image);
///     zflow::io::Image back = zflow::io::read_png("tiny.png");  // back.pixels == {0, 255}

#include <cstdint>
#include <string>
#include <vector>

namespace zflow::io {

/// An 8-bit image, pixels interleaved row-major [height][width][channels]; channels 1 (gray)
/// or 3 (RGB).
struct Image {
  int64_t width = 0, height = 0, channels = 0;
  /// height * width * channels bytes.
  std::vector<uint8_t> pixels;
};

/// Reads a PNG file. Gray+alpha becomes gray and RGBA becomes RGB (alpha dropped, not
/// blended); 16-bit PNGs are reduced to 8 bits (high byte); palette images become RGB.
/// IOError naming the path for a file that cannot be read, that is not a PNG (other formats
/// are refused, so that a file's name never lies), that cannot be decoded (the message
/// includes libpng's reason), that is larger than 2^28 pixels, or whose header announces
/// more pixels than its size can hold (deflate compresses at most 1032:1; checked before the
/// pixels are allocated).
Image read_png(const std::string& path);

/// Encodes `image` as PNG and writes it atomically. ConfigError naming the path for an image
/// with inconsistent sizes (see encode_png); IOError naming the path if it cannot be written.
void write_png(const std::string& path, const Image& image);

/// The PNG bytes of an image (for embedding, e.g. base64 in HTML). ConfigError unless width
/// and height are positive (and below 2^31), channels is 1 or 3, and pixels holds exactly
/// width * height * channels bytes.
std::string encode_png(const Image& image);

}  // namespace zflow::io
