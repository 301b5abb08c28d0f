#include "zflow/io/image.h"

#include <climits>
#include <cstring>
#include <memory>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "zflow/core/error.h"
#include "zflow/io/atomic_file.h"

// The stb implementations live in Debian's libstb.so: no STB_*_IMPLEMENTATION here.

namespace zflow::io {
namespace {

constexpr char kPngSignature[] = "\x89PNG\r\n\x1a\n";

/// Checks the sizes of `image`; `what` starts the message ("cannot write x.png").
void check_image(const Image& image, const std::string& what) {
  const auto invalid = [&](const std::string& why) { throw ConfigError(what + ": " + why); };
  if (image.channels != 1 && image.channels != 3) {
    invalid("an image has 1 (gray) or 3 (RGB) channels, not " + std::to_string(image.channels));
  }
  if (image.width < 1 || image.height < 1 || image.width > INT_MAX / 3 || image.height > INT_MAX) {
    invalid("image size " + std::to_string(image.width) + "x" + std::to_string(image.height) +
            " is not positive or too large for PNG encoding");
  }
  const uint64_t need = static_cast<uint64_t>(image.width) * static_cast<uint64_t>(image.height) *
                        static_cast<uint64_t>(image.channels);
  if (need != image.pixels.size()) {
    invalid("a " + std::to_string(image.width) + "x" + std::to_string(image.height) + "x" +
            std::to_string(image.channels) + " image (width x height x channels) needs " +
            std::to_string(need) + " pixel bytes, it has " + std::to_string(image.pixels.size()));
  }
  // stb_image_write sizes its buffers with int arithmetic (a filter byte per row).
  if (need + static_cast<uint64_t>(image.height) > static_cast<uint64_t>(INT_MAX)) {
    invalid("a " + std::to_string(image.width) + "x" + std::to_string(image.height) +
            " image is too large for PNG encoding (over 2 GiB)");
  }
}

/// stb_image_write's output callback: appends to a std::string.
void append_to_string(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<size_t>(size));
}

/// Encodes a checked image; empty on an stb failure (which is only a failed allocation).
std::string png_bytes(const Image& image) {
  std::string out;
  const int w = static_cast<int>(image.width);
  const int ok = stbi_write_png_to_func(append_to_string, &out, w, static_cast<int>(image.height),
                                        static_cast<int>(image.channels), image.pixels.data(),
                                        w * static_cast<int>(image.channels));
  if (ok == 0) out.clear();
  return out;
}

struct StbFree {
  void operator()(unsigned char* p) const { stbi_image_free(p); }
};

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return reason ? reason : "unknown error";
}

}  // namespace

Image read_png(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kPngSignature, 8) != 0) {
    throw IOError(path + ": not a PNG file (no PNG signature)");
  }
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    throw IOError(path + ": PNG file too large to decode (over 2 GiB)");
  }
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  int w = 0, h = 0, comp = 0;
  if (stbi_info_from_memory(data, length, &w, &h, &comp) == 0) {
    throw IOError(path + ": cannot decode PNG (stb_image: " + stb_reason() + ")");
  }
  // Gray and gray+alpha give gray; RGB, RGBA and palette images give RGB.
  const int channels = comp <= 2 ? 1 : 3;
  std::unique_ptr<unsigned char, StbFree> pixels(
      stbi_load_from_memory(data, length, &w, &h, &comp, channels));
  if (!pixels) throw IOError(path + ": cannot decode PNG (stb_image: " + stb_reason() + ")");

  Image image;
  image.width = w;
  image.height = h;
  image.channels = channels;
  const size_t size = static_cast<size_t>(w) * static_cast<size_t>(h) * channels;
  image.pixels.assign(pixels.get(), pixels.get() + size);
  return image;
}

std::string encode_png(const Image& image) {
  check_image(image, "cannot encode a PNG");
  std::string out = png_bytes(image);
  if (out.empty()) throw IOError("cannot encode a PNG: stb_image_write failed (out of memory?)");
  return out;
}

void write_png(const std::string& path, const Image& image) {
  check_image(image, "cannot write " + path);
  const std::string bytes = png_bytes(image);
  if (bytes.empty()) {
    throw IOError("cannot write " + path + ": PNG encoding failed (out of memory?)");
  }
  write_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

}  // namespace zflow::io
